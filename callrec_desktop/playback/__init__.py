"""Playback core for the team leaders' player: no Qt here (import-linter contract).

- :mod:`.call_audio` — a stored call on its own timeline, decoded lazily chunk by chunk;
- :mod:`.waveform` — a per-channel min/max overview, cached on disk;
- :mod:`.tempo` — speed change with pitch kept (ffmpeg ``atempo`` through PyAV);
- :mod:`.player` — a sounddevice output stream fed from a ring buffer by a feeder thread.

The Qt side (a future adapter) re-emits the player's ``position_changed`` / ``finished``
listeners as signals on the GUI thread. See docs/player.md.
"""
