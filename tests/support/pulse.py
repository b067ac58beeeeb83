"""A private PulseAudio server with a null sink: the tests' real capture device.

Recipe from ci-recipes.md ("a real capture device"): a PulseAudio daemon on a unix socket in
a temporary directory, a null sink ``vsink`` (16 kHz stereo) whose monitor is the capture
source, and a keep-alive ``pacat`` playing silence so the sink runs with low latency (without
it the monitor's first 0.7-1.9 s of audio never arrive). PortAudio reaches it through ALSA's
``pulse`` device (libasound2-plugins); whatever is played into ``vsink`` is recorded.

PortAudio reads its device list when it initialises (``import sounddevice``), so the
``PULSE_*`` variables are set before that, and if sounddevice is already imported PortAudio
is re-initialised (``sd._terminate(); sd._initialize()``, the documented way to rescan).
That is only safe while no stream is open: tests close their streams before fixtures end.

Fixtures:
- ``pulse_server`` (session): the shared server; ``.env``, ``.play(...)``, ``.stop()``.
- ``private_pulse_server`` (function): a server of the test's own, for tests that kill it.
- ``no_audio_env`` (function): PortAudio sees no audio server, like a PC with no microphone.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping
from pathlib import Path

import numpy as np
import pytest

INSTALL_HINT = (
    "apt-get install -y --no-install-recommends "
    "pulseaudio pulseaudio-utils libportaudio2 libasound2-plugins"
)
SINK = "vsink"
RATE = 16000
CHANNELS = 2
READY_TIMEOUT = 10.0
_TOOLS = ("pulseaudio", "pactl", "pacat", "paplay")


class PulseUnavailable(RuntimeError):
    """The virtual audio server cannot be started on this machine."""


def reinit_portaudio() -> None:
    """Make PortAudio rescan devices after the environment changed (no-op before import)."""
    sd = sys.modules.get("sounddevice")
    if sd is None:
        return  # the first `import sounddevice` will see the current environment
    sd._terminate()
    sd._initialize()


def _apply_env(env: Mapping[str, str | None]) -> None:
    for key, value in env.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


@contextlib.contextmanager
def pulse_environment(env: Mapping[str, str | None]) -> Iterator[None]:
    """Set (value) or unset (None) variables, rescan PortAudio; restore and rescan on exit."""
    saved = {key: os.environ.get(key) for key in env}
    _apply_env(env)
    reinit_portaudio()
    try:
        yield
    finally:
        _apply_env(saved)
        reinit_portaudio()


def _poll(condition, timeout: float, interval: float = 0.05) -> bool:
    """Call ``condition`` until it is true or ``timeout`` seconds passed; True if it became true."""
    deadline = time.monotonic() + timeout
    while True:
        if condition():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval)


class PulseServer:
    """One private PulseAudio daemon. ``start()`` returns when it is ready to record from."""

    def __init__(self) -> None:
        missing = [tool for tool in _TOOLS if shutil.which(tool) is None]
        if missing:
            raise PulseUnavailable(
                f"{', '.join(missing)} not found: the device tests need a virtual audio server. "
                f"Install it with: {INSTALL_HINT}"
            )
        # Short path under /tmp: a unix socket path must stay under 108 bytes.
        self.root = Path(tempfile.mkdtemp(prefix="callrec-pulse-"))
        self.socket = self.root / "native"
        self.log_path = self.root / "pulse.log"
        run, home = self.root / "run", self.root / "home"
        run.mkdir(mode=0o700)
        home.mkdir()
        self.env: dict[str, str] = {
            "PULSE_SERVER": f"unix:{self.socket}",
            "PULSE_SINK": SINK,
            "PULSE_SOURCE": f"{SINK}.monitor",
            "PULSE_LATENCY_MSEC": "20",
            # libpulse clients (PortAudio in the test process too) would otherwise create
            # ~/.config/pulse/cookie and a runtime-dir link in the real home.
            "PULSE_COOKIE": str(self.root / "cookie"),
            "XDG_RUNTIME_DIR": str(run),
        }
        # The daemon and the pa* tools get a private runtime dir and home, so nothing touches
        # the user's real PulseAudio configuration; LC_ALL=C keeps pactl's output parseable.
        self._tool_env = {
            **os.environ,
            **self.env,
            "HOME": str(home),
            "LC_ALL": "C",
        }
        self._server: subprocess.Popen[bytes] | None = None
        self._keepalive: subprocess.Popen[bytes] | None = None
        self._players: list[subprocess.Popen[bytes]] = []
        self._counter = itertools.count()

    # -- life cycle ------------------------------------------------------------------------

    def start(self, timeout: float = READY_TIMEOUT) -> PulseServer:
        self._server = subprocess.Popen(
            [
                "pulseaudio", "--daemonize=no", "-n", "--exit-idle-time=-1", "--disallow-exit",
                "--disable-shm=yes", "--use-pid-file=no", f"--log-target=file:{self.log_path}",
                f"--load=module-native-protocol-unix socket={self.socket} auth-anonymous=1",
                f"--load=module-null-sink sink_name={SINK} rate={RATE} channels={CHANNELS}",
                "--load=module-always-sink",
            ],
            env=self._tool_env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            if not _poll(self._answers, timeout):
                raise PulseUnavailable(f"PulseAudio did not answer within {timeout:.0f} s{self._log_tail()}")
            self._keepalive = subprocess.Popen(
                ["pacat", "--playback", "--latency-msec=20", f"--device={SINK}", f"--rate={RATE}",
                 f"--channels={CHANNELS}", "--format=s16le", "/dev/zero"],
                env=self._tool_env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            # The sink renders ahead by up to 2 s until a low-latency client arrives; audio
            # played before that backlog drained reaches the monitor late. Wait it out.
            if not _poll(self._settled, timeout):
                raise PulseUnavailable(
                    f"the null sink's latency did not settle within {timeout:.0f} s"
                    f" (pactl: {self.pactl('list', 'sinks', check=False)[-300:]!r}){self._log_tail()}"
                )
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        """Stop players, the keep-alive and the daemon (SIGTERM, then SIGKILL); remove files."""
        for proc in [*self._players, self._keepalive]:
            if proc is not None and proc.poll() is None:
                proc.kill()
                proc.wait(timeout=5)
        self._players.clear()
        self._keepalive = None
        if self._server is not None:
            if self._server.poll() is None:
                self._server.send_signal(signal.SIGCONT)  # in case a test froze it
                self._server.terminate()
                try:
                    self._server.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    self._server.kill()
                    self._server.wait(timeout=5)
            self._server = None
        shutil.rmtree(self.root, ignore_errors=True)

    def freeze(self) -> None:
        """SIGSTOP the daemon: the device stays "connected" but delivers nothing (a hung driver)."""
        assert self._server is not None
        self._server.send_signal(signal.SIGSTOP)

    def thaw(self) -> None:
        assert self._server is not None
        self._server.send_signal(signal.SIGCONT)

    @property
    def running(self) -> bool:
        return self._server is not None and self._server.poll() is None

    # -- helpers ---------------------------------------------------------------------------

    def pactl(self, *args: str, check: bool = True) -> str:
        proc = subprocess.run(
            ["pactl", *args], env=self._tool_env, capture_output=True, text=True, timeout=5
        )
        if check and proc.returncode != 0:
            raise PulseUnavailable(f"pactl {' '.join(args)} failed: {proc.stderr.strip()}")
        return proc.stdout

    def play(
        self,
        audio: str | Path | np.ndarray,
        rate: int = RATE,
        *,
        wait: bool = True,
        timeout: float | None = None,
    ) -> subprocess.Popen[bytes]:
        """Play a file or a float array (``(frames,)`` or ``(frames, channels)``) into ``vsink``.

        With ``wait`` (default) returns once ``paplay`` finished; otherwise returns the running
        process (killed at ``stop()`` if still playing).
        """
        if isinstance(audio, (str, Path)):
            path = Path(audio)
            seconds = None
        else:
            import soundfile as sf

            data = np.asarray(audio, dtype=np.float32)
            path = self.root / f"play-{next(self._counter)}.wav"
            sf.write(str(path), data, rate, subtype="PCM_16")
            seconds = data.shape[0] / rate
        proc = subprocess.Popen(
            ["paplay", f"--device={SINK}", str(path)],
            env=self._tool_env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        if not wait:
            self._players.append(proc)
            return proc
        if timeout is None:
            timeout = (seconds or 60.0) + 10.0
        try:
            _, err = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate()
            raise
        if proc.returncode != 0:
            raise RuntimeError(f"paplay {path} failed ({proc.returncode}): {err.decode(errors='replace')}")
        return proc

    def _answers(self) -> bool:
        if self._server is not None and self._server.poll() is not None:
            raise PulseUnavailable(f"PulseAudio exited with code {self._server.returncode}{self._log_tail()}")
        try:
            return subprocess.run(
                ["pactl", "info"], env=self._tool_env, capture_output=True, timeout=2
            ).returncode == 0
        except subprocess.TimeoutExpired:
            return False

    def _settled(self) -> bool:
        if self._keepalive is not None and self._keepalive.poll() is not None:
            raise PulseUnavailable(f"the keep-alive pacat exited with code {self._keepalive.returncode}")
        if not self.pactl("list", "short", "sink-inputs", check=False).strip():
            return False
        match = re.search(r"^\s*Latency: (\d+) usec", self.pactl("list", "sinks", check=False), re.M)
        return match is not None and int(match.group(1)) < 50_000

    def _log_tail(self) -> str:
        try:
            tail = self.log_path.read_text(errors="replace").strip().splitlines()[-15:]
        except OSError:
            return ""
        return "\nPulseAudio log (last lines):\n" + "\n".join(tail)


def _check_portaudio_sees_pulse() -> None:
    import sounddevice as sd

    names = [d["name"] for d in sd.query_devices() if d["max_input_channels"] > 0]
    if "pulse" not in names:
        pytest.fail(
            "PortAudio does not list ALSA's 'pulse' device although the virtual audio server "
            f"runs (input devices: {names}). Install the ALSA pulse plugin: {INSTALL_HINT}"
        )


@contextlib.contextmanager
def _running_server() -> Iterator[PulseServer]:
    try:
        server = PulseServer().start()
    except PulseUnavailable as exc:
        problem = str(exc)
    else:
        problem = None
    if problem is not None:
        pytest.fail(problem, pytrace=False)  # fail, not skip: no silently skipped suites
    try:
        with pulse_environment(server.env):
            _check_portaudio_sees_pulse()
            yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def pulse_server() -> Iterator[PulseServer]:
    """The shared virtual audio server; PULSE_* point at it for the whole session."""
    with _running_server() as server:
        yield server


@pytest.fixture
def private_pulse_server() -> Iterator[PulseServer]:
    """A server of this test's own (to kill it, say); the previous environment comes back after."""
    with _running_server() as server:
        yield server


@pytest.fixture
def no_audio_env(tmp_path: Path) -> Iterator[None]:
    """PortAudio finds no audio server: what a PC with no microphone looks like.

    PULSE_SERVER names a socket that does not exist (which also stops libpulse autospawning a
    daemon). On a machine with a real sound card ALSA's hardware devices would still show.
    """
    run = tmp_path / "run"
    run.mkdir(mode=0o700)
    with pulse_environment(
        {
            "PULSE_SERVER": f"unix:{tmp_path}/no-audio-server",
            "XDG_RUNTIME_DIR": str(run),
            "PULSE_SINK": None,
            "PULSE_SOURCE": None,
            "PULSE_COOKIE": str(tmp_path / "cookie"),
        }
    ):
        yield
