"""Placeholder: the virtual audio server fixture (filled in by the audio-sources work)."""
