"""Who is using this program, as the operating system knows it: the author of access events and notes.

The access log and notes must say who wrote them in a way the writer cannot simply type: a
``--user`` flag or ``[identity] agent_id`` is whatever the person at the keyboard put there. The
author is therefore the OS login of the process, read here:

- Windows: the account as ``DOMAIN\\user`` from the Win32 API (``GetUserNameExW`` with
  ``NameSamCompatible``: the domain account a team leader signed in with); only if that call
  fails, ``USERDOMAIN\\USERNAME`` from the environment (which the user's own shell could change:
  the API is what counts).
- Linux/macOS: the login name of the process's *real* uid from the password database
  (``pwd.getpwuid(os.getuid())``), never ``$USER``/``$LOGNAME``, which anyone can set. A uid
  without a password entry (a container) is ``uid:1234``.

A typed id (``--label``, ``agent_id``) is still recorded beside it as a display label, never as
the author. This proves who wrote an object only as far as the PC's login is trusted and the store's
credentials are kept per team leader (README, roles): someone who writes to the store with their
own tools can put any text in an object; the hash chain (``access_log``) makes later edits and
removals of access events visible, not forgeries of new ones.

Runs on any thread; no state.
"""

from __future__ import annotations

import os
import sys

MAX_LOGIN = 256  # what readers accept for an author (access_log, notes)


class OsUserError(RuntimeError):
    """The OS login could not be read (no password entry and no uid, or the Win32 call and the
    environment both failed)."""


def os_login() -> str:
    """The OS login of this process: ``DOMAIN\\user`` on Windows, the real uid's login name
    elsewhere. Raises ``OsUserError`` if there is none to be had."""
    name = _windows_login() if sys.platform == "win32" else _posix_login()
    name = name.strip()
    if not name:
        raise OsUserError("the operating system gave an empty login name for this process")
    return name[:MAX_LOGIN]


def _posix_login() -> str:
    import pwd

    uid = os.getuid()  # the real uid: who started the program, not a set-uid owner
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return f"uid:{uid}"


def _windows_login() -> str:  # pragma: no cover - exercised on Windows only
    import ctypes

    name_sam_compatible = 2  # EXTENDED_NAME_FORMAT: "DOMAIN\user"
    try:
        secur32 = ctypes.WinDLL("secur32")  # type: ignore[attr-defined]
        size = ctypes.c_ulong(0)
        secur32.GetUserNameExW(name_sam_compatible, None, ctypes.byref(size))
        buf = ctypes.create_unicode_buffer(size.value or 512)
        if secur32.GetUserNameExW(name_sam_compatible, buf, ctypes.byref(size)) and buf.value:
            return buf.value
    except (OSError, AttributeError):
        pass
    user, domain = os.environ.get("USERNAME", ""), os.environ.get("USERDOMAIN", "")
    if not user:
        raise OsUserError("GetUserNameExW failed and USERNAME is not set: the Windows account is unknown")
    return f"{domain}\\{user}" if domain else user
