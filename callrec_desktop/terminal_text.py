"""Data from the store shown on a terminal as text, never as terminal commands.

A manifest, note or access event is written by whoever holds a key to the store, and its
department, caller, agent, note text or key may hold ``ESC [ 2 J`` (clear the screen), a
title-setting or hyperlink sequence, a carriage return that overwrites the line before, or
Unicode bidirectional overrides that make a line read differently from what it holds. The
``callrec`` command prints such fields through ``shown(text)``, which replaces every C0 and
C1 control character and DEL with a visible escape (``\\x1b``) and the bidi controls with
``\\u202e``-style escapes; and ``EscapingWriter`` wraps stdout and stderr as a net under every
other print (a store name in an error message), keeping only line breaks and tabs, and
escaping with ``\\u00XX`` there so a JSON line stays valid JSON.

Pure text; no I/O but the wrapped stream's; any thread.
"""

from __future__ import annotations

import re

# C0 controls, DEL, C1 controls; bidi embeddings/overrides/isolates; line/paragraph separators.
_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069\u2028\u2029]")


def _escape(ch: str) -> str:
    code = ord(ch)
    return f"\\x{code:02x}" if code <= 0xFF else f"\\u{code:04x}"


def shown(text: object) -> str:
    """``str(text)`` with every control character (newlines and tabs too: one field stays on
    one line) replaced by a visible escape: ``"\\x1b[2J"`` for ESC [ 2 J."""
    return _UNSAFE.sub(lambda m: _escape(m.group()), str(text))


def lines_shown(text: str) -> str:
    """Like ``shown`` but keeps line breaks and tabs: for multi-line text such as a log
    record with its traceback."""
    return _UNSAFE.sub(lambda m: m.group() if m.group() in "\n\t" else _escape(m.group()), text)


def _escape_json_safe(ch: str) -> str:
    return f"\\u{ord(ch):04x}"


class EscapingWriter:
    """A text stream that passes line breaks and tabs and escapes every other control
    character (``\\u001b``) before it reaches the terminal. Wraps ``sys.stdout``/``sys.stderr``
    for the whole run of the ``callrec`` command; everything else is the wrapped stream's."""

    def __init__(self, stream) -> None:
        self._stream = stream

    def write(self, text: str) -> int:
        self._stream.write(_UNSAFE.sub(lambda m: m.group() if m.group() in "\n\t" else _escape_json_safe(m.group()),
                                       text))
        return len(text)

    def __getattr__(self, name: str):
        return getattr(self._stream, name)
