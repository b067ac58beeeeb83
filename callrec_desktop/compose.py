"""Composition helpers shared by the two composition roots, ``cli.py`` (headless) and
``app.py`` (the window). They build objects from a ``Config``; they hold no state and import
no Qt, so the CLI never pulls in the GUI.
"""

from __future__ import annotations


from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from callrec_desktop import __version__
from callrec_desktop.config import Config

# The engine's modules (numpy, PyAV, PortAudio, tenacity) are imported inside the functions
# that build it: the window imports this module before it is shown, and builds the desk on a
# worker thread afterwards (see app.py).
if TYPE_CHECKING:
    from callrec_desktop.audio.sources import AudioBlock, AudioSource
    from callrec_desktop.desk import Desk
    from callrec_desktop.recorder import Identity, RecordingSettings
    from callrec_desktop.storage.base import Store
    from callrec_desktop.uploader import UploadSettings


class StoreSetupError(ValueError):
    """The configured store cannot be opened (bad URL, missing folder, keyring refused)."""


def open_configured_store(config: Config, url: str | None = None, endpoint_url: str | None = None, *,
                          require_folder: bool = True, credentials_provider=None) -> Store:
    """The store named by ``url`` (default: the configured one), with endpoint, region and
    CA bundle from settings and credentials from the OS keyring.

    The embedded default folder store is created when missing (it is ours). Any other folder
    is never created: a missing one usually is an unmounted network share. With
    ``require_folder`` such a folder is an error here (the CLI); without it the store opens
    anyway and the uploader reports it unreachable until it appears (the window, which keeps
    recording into the spool meanwhile).
    """
    from callrec_desktop.credentials import CredentialsError, CredentialStore
    from callrec_desktop.storage.factory import StoreUrlError, open_store, parse_store_url

    s = config.store
    target = url or config.store_url
    try:
        parsed = parse_store_url(target)
    except StoreUrlError as exc:
        raise StoreSetupError(str(exc)) from None
    if parsed[0] == "folder":
        folder = Path(parsed[1])
        if not url and not config.store.url:
            from callrec_desktop.private_files import private_dir

            private_dir(folder)  # the embedded default store: ours to create, 0700 (files in it 0600)
        elif require_folder and not folder.is_dir():
            raise StoreSetupError(f"store folder {folder} does not exist (create it, or mount the share)")
    try:
        return open_store(
            target,
            endpoint_url=endpoint_url or s.endpoint_url or None,
            region=s.region or None,
            addressing_style=s.addressing_style,
            ca_bundle=s.ca_bundle,
            credentials_provider=credentials_provider or CredentialStore().lookup,
        )
    except (StoreUrlError, CredentialsError) as exc:
        raise StoreSetupError(str(exc)) from None


def recording_settings(config: Config, codec: str | None = None, chunk_seconds: float | None = None,
                       channels: int | None = None) -> RecordingSettings:
    """Encoder, chunk and look-behind settings; ``ValueError`` for a chunk length out of range."""
    from callrec_desktop.audio.encoders import CodecSettings
    from callrec_desktop.recorder import RecordingSettings

    r = config.recorder
    if chunk_seconds is not None and not (1 <= chunk_seconds <= 300):
        raise ValueError(f"--chunk-seconds: must be between 1 and 300, got {chunk_seconds}")
    codec_settings = CodecSettings(
        codec=codec or r.codec, sample_rate=r.sample_rate, channels=channels or config.audio.channels,
        opus_bitrate_per_channel=r.opus_bitrate_per_channel, opus_complexity=r.opus_complexity,
    )
    return RecordingSettings(
        codec=codec_settings,
        chunk_frames=round((chunk_seconds or r.chunk_seconds) * r.sample_rate),
        lookbehind_frames=round(r.lookbehind_seconds * r.sample_rate),
    )


def upload_settings(config: Config) -> UploadSettings:
    from callrec_desktop.uploader import UploadSettings

    u = config.upload
    return UploadSettings(u.initial_backoff_seconds, u.max_backoff_seconds, u.max_attempts_per_pass)


def identity(config: Config) -> Identity:
    from callrec_desktop.recorder import Identity

    return Identity(config.identity.agent_id, config.identity.workstation, __version__)


def block_frames(config: Config) -> int:
    """Frames per capture block (``recorder.block_ms`` at the recording rate)."""
    return round(config.recorder.block_ms * config.recorder.sample_rate / 1000)


def device_source_factory(config: Config) -> Callable[[], AudioSource]:
    """Builds a fresh (not started) DeviceSource from ``[audio]`` each time capture (re)starts.

    Building one touches no device; the recorder thread opens it, and a PC without a
    microphone then reports ``NoInputDeviceError`` there (the desk shows it as a fault).
    """
    a = config.audio

    def make() -> AudioSource:
        from callrec_desktop.audio.sources import DeviceSource

        return DeviceSource(a.agent_device, a.caller_device or None, a.channels,
                            config.recorder.sample_rate, block_frames(config))

    return make


def build_desk(config: Config, *, store: Store, source_factory: Callable[[], AudioSource],
               spool_dir: Path | None = None, channels: int | None = None,
               block_observers: list[Callable[[AudioBlock], None]] | None = None) -> Desk:
    """Spool, Uploader (reporting to the desk) and Desk. Nothing is started: call ``desk.start()``
    (it recovers the spool, which is I/O: not on a GUI thread)."""
    from callrec_desktop.desk import Desk
    from callrec_desktop.spool import Spool
    from callrec_desktop.uploader import Uploader

    spool = Spool(spool_dir or config.paths.spool_dir)
    desk_ref: list = []
    uploader = Uploader(spool, store, upload_settings(config),
                        on_status=lambda status: desk_ref[0].upload_status_changed(status),
                        status_file=spool.root / "upload-status.json")
    desk = Desk(lines=config.lines, spool=spool, uploader=uploader,
                settings=recording_settings(config, channels=channels), identity=identity(config),
                source_factory=source_factory, block_observers=block_observers)
    desk_ref.append(desk)
    return desk

