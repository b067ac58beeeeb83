"""Help → "How calls are recorded": what the window does, its keyboard shortcuts, and the
council's call recording privacy notice word for word (``resources/privacy-notice.txt``, read
by the composition root and passed in as text)."""

from __future__ import annotations

import html

from PySide6.QtWidgets import QDialog, QDialogButtonBox, QTextBrowser, QVBoxLayout, QWidget

SUMMARY = """
<h2>How calls are recorded</h2>
<p>Calls on the council's public lines are recorded. The window always shows, in words, whether the call
is being recorded <i>right now</i>.</p>
<ul>
<li><b>Start call</b> ({start}) begins recording on the line you choose.</li>
<li><b>Take payment</b> ({pay}) pauses recording at once: card details are never recorded. Recording
resumes only when you press <b>Payment finished</b> ({paid}).</li>
<li><b>Transfer…</b> ({transfer}) stops the recording at the moment of transfer: the call leaves the
contact centre and is not recorded after that.</li>
<li><b>End call</b> ({end}) stops the recording.</li>
</ul>
<p>Recordings are kept on this PC until central storage has them, then kept for 13 months.
If anything stops a recording — a lost headset, a full disk — the window says
<b>NOT RECORDING</b> and why.</p>
<p><i>The notice callers are given, word for word:</i></p>
<hr>
"""


class HelpDialog(QDialog):
    """Non-modal: the agent can keep it open beside the window during a call."""

    def __init__(self, notice_text: str, shortcuts: dict[str, str], parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("How calls are recorded — callrec-desktop")
        self.resize(680, 640)
        self.browser = QTextBrowser(self)
        self.browser.setOpenExternalLinks(False)
        self.browser.setAccessibleName("How calls are recorded")
        notice = notice_text.strip() or "The privacy notice could not be found in this installation."
        body = SUMMARY.format(**{k: html.escape(v) for k, v in shortcuts.items()})
        first, _, rest = notice.partition("\n")
        body += f"<h2>{html.escape(first.strip())}</h2>"
        body += "".join(f"<p>{html.escape(par.strip()).replace(chr(10), '<br>')}</p>"
                        for par in rest.split("\n\n") if par.strip())
        self.browser.setHtml(body)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close, self)
        buttons.rejected.connect(self.close)
        layout = QVBoxLayout(self)
        layout.addWidget(self.browser)
        layout.addWidget(buttons)

    def text(self) -> str:
        return self.browser.toPlainText()
