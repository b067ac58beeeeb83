"""Runtime hook: let sounddevice find the PortAudio library bundled beside the program.

sounddevice looks PortAudio up with ``ctypes.util.find_library("portaudio")``, which on Linux
asks ``ldconfig``'s cache and never looks inside the bundle: on a PC without the system
package the bundled ``libportaudio.so.2`` would be ignored and capture would fail with
"PortAudio library not found" (the most common frozen-build bug in Friture and
python-sounddevice issues). This wraps ``find_library`` to answer from ``sys._MEIPASS`` first
for the libraries we bundle. Runs before the app's code; imports nothing but the standard
library (never Qt: Picard #1923).
"""


def _install() -> None:
    import ctypes.util
    import glob
    import os
    import sys

    bundle = getattr(sys, "_MEIPASS", None)
    if not bundle or not sys.platform.startswith("linux"):
        return  # the Windows/macOS wheels ship PortAudio inside _sounddevice_data
    system_find_library = ctypes.util.find_library

    def find_library(name):
        if name == "portaudio":
            found = sorted(glob.glob(os.path.join(bundle, "libportaudio.so*")))
            if found:
                return found[0]
        return system_find_library(name)

    ctypes.util.find_library = find_library


_install()
del _install
