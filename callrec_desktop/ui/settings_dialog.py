"""The settings dialog: devices (with a live test meter), central store and its credentials,
the control API token, payment-trigger window titles, the handler's id.

All I/O happens on worker threads started through ``DeskAdapter.run_task``: the snapshot the
dialog shows is gathered before it opens (``user_settings.load_snapshot``), the device test,
the connection test and the save each run as a job and report back on the GUI thread.
Secrets typed here go to the OS keyring and are never shown back. A key IT's machine-wide file
sets (it wins over every other file) shows IT's value, disabled, with a tooltip naming IT's
file; the same for keys set by the ``--config`` file. Card key-tone detection is shown, never
edited.
"""

from __future__ import annotations

import hashlib
import json
import queue
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QTimer, Signal
from PySide6.QtGui import QGuiApplication
from PySide6.QtWidgets import (
    QButtonGroup,
    QCheckBox,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPlainTextEdit,
    QPushButton,
    QRadioButton,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from callrec_desktop.config import Config
from callrec_desktop.ui.adapter import TaskResult, emit_signal
from callrec_desktop.ui.user_settings import (
    FIELDS,
    SaveRequest,
    SaveResult,
    SettingsSnapshot,
    changed_values,
    save_settings,
    validate_values,
)
from callrec_desktop.ui.settings_services import SettingsServices  # noqa: F401 - the dialog's own input
from callrec_desktop.ui.widgets import LevelMeter, make_labels_plain, safe_tooltip

if TYPE_CHECKING:  # the audio stack loads when a device is listed or tested, never at start-up
    from callrec_desktop.audio.sources import AudioSource

DEVICE_TEST_SECONDS = 4.0
SECRET_STORED = "stored in the keyring"


# ---- jobs for worker threads (Qt-free) ------------------------------------------------------------

def _device_test_source(name: str, sample_rate: int, block_frames: int) -> AudioSource:
    from callrec_desktop.audio.sources import DeviceSource

    return DeviceSource(name, None, 1, sample_rate, block_frames)


@dataclass(frozen=True)
class ConnectionTest:
    """Write one small health object to a store, as the uploader would. Worker thread."""

    url: str
    endpoint_url: str | None
    region: str | None
    addressing_style: str
    ca_bundle: Path | None
    workstation: str
    typed_credentials: tuple[str, str] | None = field(default=None, repr=False)

    def run(self, credentials) -> str:
        from callrec_desktop.storage.factory import open_store

        def provider(endpoint, bucket):
            if self.typed_credentials:
                return self.typed_credentials
            return credentials.lookup(endpoint, bucket) if credentials is not None else None

        store = open_store(self.url, endpoint_url=self.endpoint_url, region=self.region,
                           addressing_style=self.addressing_style, ca_bundle=self.ca_bundle,
                           credentials_provider=provider)
        body = json.dumps({"workstation": self.workstation, "at": datetime.now(timezone.utc).isoformat(),
                           "kind": "connection test"}).encode()
        key = f"health/{re.sub(r'[^A-Za-z0-9_.-]', '_', self.workstation)[:64] or 'workstation'}.json"
        store.put(key, body, sha256=hashlib.sha256(body).hexdigest(), metadata={"kind": "health"},
                  content_type="application/json")
        return f"Connected: wrote a test object to {store.description}."


def run_level_test(make_source: Callable[[], AudioSource], levels: queue.Queue, stop: threading.Event,
                   seconds: float) -> float:
    """Capture for ``seconds`` (or until ``stop``), putting each block's dBFS into ``levels``
    (size 1, stale values dropped). Returns the loudest level heard. Worker thread."""
    import numpy as np

    source = make_source()
    peak = -120.0
    source.start()
    try:
        limit = seconds * source.sample_rate
        while not stop.is_set() and source.frames_captured < limit:
            block = source.read(timeout=0.1)
            if block is None:
                break
            if not len(block.data):
                continue
            rms = float(np.sqrt(np.mean(np.square(block.data[:, 0], dtype=np.float64))))
            db = 20 * np.log10(max(rms, 1e-6))
            peak = max(peak, db)
            try:
                levels.get_nowait()
            except queue.Empty:
                pass
            try:
                levels.put_nowait(db)
            except queue.Full:
                pass
    finally:
        source.stop()
    return peak


# ---- the dialog -------------------------------------------------------------------------------------

class SettingsDialog(QDialog):
    """Edit the handler's settings. ``saved(SaveResult)`` after a successful save."""

    saved = Signal(object)

    def __init__(self, snapshot: SettingsSnapshot, config: Config, adapter, services: SettingsServices,
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Settings — callrec-desktop")
        self.setMinimumWidth(620)
        self.snapshot = snapshot
        self._config = config
        self._adapter = adapter
        self._services = services
        self._levels: queue.Queue[float] = queue.Queue(maxsize=1)
        self._stop_test = threading.Event()
        self._device_job: int | None = None
        self._busy = False

        self.tabs = QTabWidget(self)
        self.tabs.addTab(self._general_tab(), "General")
        self.tabs.addTab(self._audio_tab(), "Audio")
        self.tabs.addTab(self._storage_tab(), "Central storage")
        self.tabs.addTab(self._payment_tab(), "Payment pause")

        self.error_label = QLabel(self)
        self.error_label.setWordWrap(True)
        self.error_label.setStyleSheet("color: #B42318;")
        self.error_label.setAccessibleName("Problems")
        self.error_label.hide()
        self.status_label = QLabel(self)
        self.status_label.setWordWrap(True)
        self.buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Save | QDialogButtonBox.StandardButton.Cancel, self)
        self.save_button = self.buttons.button(QDialogButtonBox.StandardButton.Save)
        self.buttons.accepted.connect(self.save)
        self.buttons.rejected.connect(self.reject)

        layout = QVBoxLayout(self)
        layout.setContentsMargins(18, 18, 18, 14)
        layout.setSpacing(12)
        self.locked_note = _hint("Greyed-out settings are fixed by IT or by a settings file read after yours: "
                                 "point at one to see where.", self)
        self.locked_note.setVisible(bool(snapshot.locked))
        layout.addWidget(self.locked_note)
        layout.addWidget(self.tabs)
        layout.addWidget(self.error_label)
        layout.addWidget(self.status_label)
        layout.addWidget(self.buttons)

        self._meter_timer = QTimer(self)
        self._meter_timer.setInterval(66)
        self._meter_timer.timeout.connect(self._on_meter_timer_timeout)
        self._apply_locks()
        make_labels_plain(self)  # device names, paths and errors: shown as text, never HTML

    # ---- tabs ------------------------------------------------------------------------------
    def _form(self) -> tuple[QWidget, QFormLayout]:
        page = QWidget(self)
        form = QFormLayout(page)
        form.setContentsMargins(16, 16, 16, 16)
        form.setHorizontalSpacing(16)
        form.setVerticalSpacing(12)
        form.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.AllNonFixedFieldsGrow)
        return page, form

    def _general_tab(self) -> QWidget:
        page, form = self._form()
        v = self.snapshot.values
        self.agent_id = QLineEdit(str(v["identity.agent_id"]), page)
        self.agent_id.setAccessibleName("Handler id")
        form.addRow("Handler id", self.agent_id)
        form.addRow("", _hint("Written into every recording's metadata as the agent.", page))

        self.token_field = QLineEdit(page)
        self.token_field.setReadOnly(True)
        self.token_field.setAccessibleName("Control API token")
        self.copy_token_button = QPushButton("Copy", page)
        self.copy_token_button.clicked.connect(self._on_copy_token_clicked)
        if self.snapshot.token:
            self.token_field.setText(self.snapshot.token)
        else:
            self.token_field.setPlaceholderText(self.snapshot.token_note or "control API disabled")
            self.token_field.setEnabled(False)
            self.copy_token_button.setEnabled(False)
        row = QHBoxLayout()
        row.addWidget(self.token_field, 1)
        row.addWidget(self.copy_token_button)
        form.addRow("Control API token", row)
        form.addRow("", _hint("Softphone, CTI and payment software use this token to tell callrec-desktop "
                              "about calls and payments. Keep it private.", page))
        return page

    def _audio_tab(self) -> QWidget:
        page, form = self._form()
        v = self.snapshot.values
        self.agent_device = QComboBox(page)
        self.agent_device.setAccessibleName("Agent microphone")
        self.agent_device.addItem("System default input", "default")
        self.caller_device = QComboBox(page)
        self.caller_device.setAccessibleName("Caller input")
        self.caller_device.addItem("Second channel of the agent's device", "")
        for name in self.snapshot.devices:
            self.agent_device.addItem(name, name)
            self.caller_device.addItem(name, name)
        _select(self.agent_device, v["audio.agent_device"])
        _select(self.caller_device, v["audio.caller_device"])
        form.addRow("Agent microphone", self.agent_device)
        form.addRow("Caller input", self.caller_device)
        if self.snapshot.devices_error:
            form.addRow("", _hint(self.snapshot.devices_error, page, warn=True))

        self.test_button = QPushButton("Test microphone", page)
        self.test_button.setToolTip(f"Listen to the chosen agent microphone for {DEVICE_TEST_SECONDS:.0f} seconds")
        self.test_button.clicked.connect(self._on_test_button_clicked)
        self.test_meter = LevelMeter("", "Microphone test level", page)
        self.test_meter.set_level(None, 0.0, in_call=False, available=False, unavailable_text="Not testing")
        self.test_result = QLabel(page)
        self.test_result.setWordWrap(True)
        form.addRow("", self.test_button)
        form.addRow("", self.test_meter)
        form.addRow("", self.test_result)
        return page

    def _storage_tab(self) -> QWidget:
        page, form = self._form()
        v = self.snapshot.values
        url = str(v["store.url"])
        is_s3 = url.startswith("s3://")
        self.folder_radio = QRadioButton("A folder (this PC or a network share)", page)
        self.s3_radio = QRadioButton("S3-compatible storage", page)
        group = QButtonGroup(page)
        group.addButton(self.folder_radio)
        group.addButton(self.s3_radio)
        (self.s3_radio if is_s3 else self.folder_radio).setChecked(True)
        kind = QVBoxLayout()
        kind.addWidget(self.folder_radio)
        kind.addWidget(self.s3_radio)
        form.addRow("Recordings go to", kind)

        self.folder_path = QLineEdit("" if is_s3 else url, page)
        self.folder_path.setPlaceholderText(f"Default: {self.snapshot.default_store_dir}")
        self.folder_path.setAccessibleName("Store folder")
        self.browse_button = QPushButton("Browse…", page)
        self.browse_button.clicked.connect(self._on_browse_button_clicked)
        row = QHBoxLayout()
        row.addWidget(self.folder_path, 1)
        row.addWidget(self.browse_button)
        form.addRow("Folder", row)

        bucket, _, prefix = url[len("s3://"):].partition("/") if is_s3 else ("", "", "")
        self.endpoint = QLineEdit(str(v["store.endpoint_url"]), page)
        self.endpoint.setPlaceholderText("https://storage.council.local:9000 (empty: AWS)")
        self.endpoint.setAccessibleName("S3 endpoint")
        self.bucket = QLineEdit(bucket, page)
        self.bucket.setAccessibleName("S3 bucket")
        self.prefix = QLineEdit(prefix, page)
        self.prefix.setAccessibleName("S3 prefix")
        self.prefix.setPlaceholderText("optional, e.g. contact-centre")
        form.addRow("S3 endpoint", self.endpoint)
        form.addRow("Bucket", self.bucket)
        form.addRow("Prefix", self.prefix)

        placeholder = SECRET_STORED if self.snapshot.has_credentials else "not set"
        self.access_key = QLineEdit(page)
        self.access_key.setPlaceholderText(placeholder)
        self.access_key.setAccessibleName("S3 access key id")
        self.secret = QLineEdit(page)
        self.secret.setEchoMode(QLineEdit.EchoMode.Password)
        self.secret.setPlaceholderText(placeholder)
        self.secret.setAccessibleName("S3 secret access key")
        form.addRow("Access key id", self.access_key)
        form.addRow("Secret key", self.secret)
        form.addRow("", _hint("Credentials are kept in the operating system's keyring and never shown again. "
                              "Leave both empty to keep the stored ones.", page))
        if self.snapshot.credentials_note:
            form.addRow("", _hint(self.snapshot.credentials_note, page, warn=True))

        self.test_connection_button = QPushButton("Test connection", page)
        self.test_connection_button.clicked.connect(self._on_test_connection_button_clicked)
        self.connection_result = QLabel(page)
        self.connection_result.setWordWrap(True)
        self.connection_result.setAccessibleName("Connection test result")
        form.addRow("", self.test_connection_button)
        form.addRow("", self.connection_result)
        self.folder_radio.toggled.connect(self._update_store_fields)
        self._update_store_fields()
        return page

    def _payment_tab(self) -> QWidget:
        page, form = self._form()
        self.patterns = QPlainTextEdit("\n".join(self.snapshot.values["triggers.payment_window_titles"]), page)
        self.patterns.setAccessibleName("Payment window titles")
        self.patterns.setMinimumHeight(120)
        form.addRow("Payment window titles", self.patterns)
        form.addRow("", _hint("One per line. When a window whose title matches one of these gains focus during a "
                              "call, recording pauses for payment. Regular expressions, not case-sensitive.", page))
        # Never edited here: a handler must not be able to switch it off (it changes in a settings
        # file). Shown so everyone can see it is on, and, via the tooltip, who set it.
        self.dtmf_enabled = QCheckBox("Pause when card key tones (DTMF) are heard on the caller's line", page)
        self.dtmf_enabled.setAccessibleName("Card key-tone detection")
        self.dtmf_enabled.setChecked(bool(self.snapshot.values.get("triggers.dtmf_enabled", True)))
        self.dtmf_enabled.setEnabled(False)
        self.dtmf_enabled.setToolTip("Changed only in a settings file: [triggers] dtmf_enabled")
        form.addRow("Card key tones", self.dtmf_enabled)
        unsupported = self.snapshot.focus_unsupported
        if unsupported:
            self.focus_unsupported = _hint(f"This trigger cannot work on this PC: {unsupported} "
                                           "Card-tone detection and the control API still pause recording.", page)
            self.focus_unsupported.setAccessibleName("Window-title trigger unavailable")
            form.addRow("", self.focus_unsupported)
        return page

    # ---- locks --------------------------------------------------------------------------------
    def _fields_for(self, key: str) -> list[QWidget]:
        """The widgets showing ``key`` (none for a key this dialog does not show)."""
        return {
            "audio.agent_device": [self.agent_device, self.test_button],
            "audio.output_device": [],  # the Library's "Play on" list shows it, locked the same way
            "audio.caller_device": [self.caller_device],
            "store.url": [self.folder_radio, self.s3_radio, self.folder_path, self.browse_button, self.bucket,
                          self.prefix],
            "store.endpoint_url": [self.endpoint],
            "triggers.payment_window_titles": [self.patterns],
            "identity.agent_id": [self.agent_id],
            "triggers.dtmf_enabled": [self.dtmf_enabled],
        }.get(key, [])

    def _apply_locks(self) -> None:
        """Disable every widget of a locked key, its tooltip naming the file that set it (IT's
        machine-wide file, or one read after the user's). GUI thread."""
        for key, reason in self.snapshot.locked.items():
            for widget in self._fields_for(key):
                widget.setEnabled(False)
                widget.setToolTip(safe_tooltip(reason))  # names a settings file
                widget.setProperty("lockedBy", reason)

    def is_locked(self, key: str) -> bool:
        return key in self.snapshot.locked

    def _update_store_fields(self) -> None:
        folder = self.folder_radio.isChecked()
        locked_url = self.is_locked("store.url")
        for w in (self.folder_path, self.browse_button):
            w.setEnabled(folder and not locked_url)
        for w in (self.bucket, self.prefix):
            w.setEnabled(not folder and not locked_url)
        self.endpoint.setEnabled(not folder and not self.is_locked("store.endpoint_url"))
        for w in (self.access_key, self.secret):
            w.setEnabled(not folder)

    # ---- values ---------------------------------------------------------------------------------
    def store_url(self) -> str:
        if self.folder_radio.isChecked():
            return self.folder_path.text().strip()
        bucket = self.bucket.text().strip()
        prefix = self.prefix.text().strip().strip("/")
        return f"s3://{bucket}/{prefix}" if prefix else f"s3://{bucket}"

    def values(self) -> dict[str, Any]:
        """What the dialog holds now, keyed like the settings file."""
        patterns = [line.strip() for line in self.patterns.toPlainText().splitlines() if line.strip()]
        endpoint = self.endpoint.text().strip() if self.s3_radio.isChecked() else self.snapshot.values["store.endpoint_url"]
        return {
            "audio.agent_device": self.agent_device.currentData(),
            "audio.caller_device": self.caller_device.currentData(),
            "store.url": self.store_url(),
            "store.endpoint_url": endpoint,
            "triggers.payment_window_titles": patterns,
            "identity.agent_id": self.agent_id.text().strip(),
        }

    def changes(self) -> dict[str, Any]:
        return changed_values(self.snapshot.values, self.values(), self.snapshot.locked)

    def _typed_credentials(self) -> tuple[str, str] | None:
        access, secret = self.access_key.text().strip(), self.secret.text()
        return (access, secret) if access and secret else None

    def problems(self) -> list[str]:
        values = self.values()
        problems = validate_values(values)
        if self.s3_radio.isChecked() and not self.bucket.text().strip():
            problems.append("Central store: give the S3 bucket name.")
        access, secret = self.access_key.text().strip(), self.secret.text()
        if self.s3_radio.isChecked() and bool(access) != bool(secret):
            problems.append("S3 credentials: give both the access key id and the secret key (or neither).")
        if not values["identity.agent_id"]:
            problems.append("Handler id: must not be empty.")
        return problems

    # ---- save ------------------------------------------------------------------------------------
    def save(self) -> None:
        if self._busy:
            return
        problems = self.problems()
        if problems:
            self.error_label.setText("\n".join(problems))
            self.error_label.show()
            self.status_label.setText("Not saved: fix the problems above.")
            return
        self.error_label.hide()
        credentials = None
        typed = self._typed_credentials()
        if typed is not None and self.s3_radio.isChecked():
            from callrec_desktop.credentials import profile_for

            profile = profile_for(self.values()["store.endpoint_url"] or None, self.bucket.text().strip())
            credentials = (profile, typed[0], typed[1])
        changes = self.changes()
        if not changes and credentials is None:
            self.status_label.setText("Nothing changed.")
            self.accept()
            return
        request = SaveRequest(self.snapshot.user_file, changes, credentials)
        self._set_busy(True, "Saving…")
        store = self._services.credentials
        self._adapter.run_task(lambda: save_settings(request, store), self._on_save_done, name="save-settings")

    def _on_save_done(self, result: TaskResult) -> None:
        self._set_busy(False, "")
        if not result.ok:
            self.error_label.setText(f"Not saved: {result.error}")
            self.error_label.show()
            return
        saved: SaveResult = result.value
        self.secret.clear()
        self.access_key.clear()
        self.status_label.setText(restart_message(saved))
        emit_signal(self.saved, saved)
        self.accept()

    def _set_busy(self, busy: bool, text: str) -> None:
        self._busy = busy
        self.save_button.setEnabled(not busy)
        if text:
            self.status_label.setText(text)

    # ---- connection test -----------------------------------------------------------------------
    def _on_test_connection_button_clicked(self) -> None:
        values = self.values()
        url = values["store.url"] or str(self.snapshot.default_store_dir)
        problems = [p for p in validate_values(values) if p.startswith(("Central store", "S3 endpoint"))]
        if problems:
            self._show_connection("\n".join(problems), ok=False)
            return
        s = self._config.store
        job = ConnectionTest(url, values["store.endpoint_url"] or None, s.region or None, s.addressing_style,
                             s.ca_bundle, self._config.identity.workstation, self._typed_credentials())
        self.test_connection_button.setEnabled(False)
        self._show_connection("Testing the connection…", ok=None)
        creds = self._services.credentials
        self._adapter.run_task(lambda: job.run(creds), self._on_connection_test_done, name="store-test")

    def _on_connection_test_done(self, result: TaskResult) -> None:
        self.test_connection_button.setEnabled(True)
        if result.ok:
            self._show_connection(result.value, ok=True)
        else:
            self._show_connection(f"Connection failed: {result.error}", ok=False)

    def _show_connection(self, text: str, ok: bool | None) -> None:
        colour = {True: "#067647", False: "#B42318", None: "#475467"}[ok]
        self.connection_result.setStyleSheet(f"color: {colour};")
        self.connection_result.setText(text)
        self.connection_result.setAccessibleDescription(text)

    # ---- device test -----------------------------------------------------------------------------
    def _on_test_button_clicked(self) -> None:
        if self._device_job is not None:
            return
        device = self.agent_device.currentData() or "default"
        rate = self._config.recorder.sample_rate
        block = round(self._config.recorder.block_ms * rate / 1000)
        factory = self._services.test_source_factory or _device_test_source
        self._stop_test.clear()
        levels, stop = self._levels, self._stop_test
        self._device_job = self._adapter.run_task(
            lambda: run_level_test(lambda: factory(device, rate, block), levels, stop, DEVICE_TEST_SECONDS),
            self._on_device_test_done, name="device-test")
        self.test_button.setEnabled(False)
        self.test_result.setText("Listening… speak into the headset.")
        self._meter_timer.start()

    def _on_meter_timer_timeout(self) -> None:
        try:
            db = self._levels.get_nowait()
        except queue.Empty:
            db = None
        self.test_meter.set_level(db, time.monotonic(), in_call=False)

    def _on_device_test_done(self, result: TaskResult) -> None:
        self._device_job = None
        self._meter_timer.stop()
        self.test_button.setEnabled(not self.is_locked("audio.agent_device"))
        if not result.ok:
            self.test_result.setText(f"The microphone could not be used: {result.error}")
            self.test_meter.set_level(None, 0.0, in_call=False, available=False, unavailable_text="No input")
        elif result.value > -60:
            self.test_result.setText(f"Working: loudest sound heard {result.value:.0f} dBFS.".replace("-", "−"))
        else:
            self.test_result.setText("No sound was heard. Check that the headset is plugged in and not muted.")

    @property
    def device_test_running(self) -> bool:
        return self._device_job is not None

    # ---- misc ------------------------------------------------------------------------------------
    def _on_copy_token_clicked(self) -> None:
        QGuiApplication.clipboard().setText(self.token_field.text())
        self.status_label.setText("Control API token copied.")

    def _on_browse_button_clicked(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Folder for recordings", self.folder_path.text())
        if folder:
            self.folder_path.setText(folder)

    def done(self, result: int) -> None:  # accept/reject: stop the device test first
        self._stop_test.set()
        self._meter_timer.stop()
        super().done(result)


def restart_message(saved: SaveResult) -> str:
    names = saved.restart_needed
    if not names:
        return "Nothing changed."
    return (f"Settings saved to {saved.user_file}. Restart callrec-desktop to use the new "
            f"{', '.join(names)}.")


def _hint(text: str, parent: QWidget, *, warn: bool = False) -> QLabel:
    label = QLabel(text, parent)
    label.setWordWrap(True)
    label.setStyleSheet("color: #B54708;" if warn else "color: #667085;")
    return label


def _select(combo: QComboBox, value: str) -> None:
    """Select the item whose data is ``value``; add it if the list does not have it."""
    index = combo.findData(value)
    if index < 0:
        combo.addItem(f"{value} (from settings)", value)
        index = combo.count() - 1
    combo.setCurrentIndex(index)


__all__ = ["FIELDS", "ConnectionTest", "SettingsDialog", "SettingsServices", "restart_message", "run_level_test"]
