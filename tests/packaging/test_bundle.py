"""The PyInstaller bundle, built for real and run: this is how CI builds and checks it.

A session fixture runs scripts/build_bundle.sh into a temporary dist/ and build/ (the checkout
stays clean), then scripts/smoke_bundle.py runs the frozen programs (self-test, the window
started and stopped, both demos, PortAudio loading with the system copy hidden, the S3
model). About 25 s to build and 15 s to smoke-test on a 2-core machine.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.slow


@pytest.fixture(scope="session")
def bundle(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("bundle")
    proc = subprocess.run(["bash", str(REPO / "scripts" / "build_bundle.sh"), "--distpath", str(root / "dist"),
                           "--workpath", str(root / "build")], cwd=REPO, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, f"the bundle did not build:\n{proc.stdout[-4000:]}\n{proc.stderr[-8000:]}"
    print(proc.stdout.strip().splitlines()[-1])  # "build_bundle: built ... in N s: M MB, K files"
    return root / "dist" / "callrec-desktop"


def test_the_bundle_passes_the_smoke_test(bundle):
    proc = subprocess.run([sys.executable, str(REPO / "scripts" / "smoke_bundle.py"), "--bundle", str(bundle)],
                          cwd=REPO, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, f"smoke test failed:\n{proc.stdout}\n{proc.stderr}"
    assert "checks passed" in proc.stdout


def test_the_bundle_holds_resources_and_native_libraries_and_no_unused_qt(bundle):
    internal = bundle / "_internal"
    resources = internal / "resources"
    for name in ("defaults.toml", "lines.toml", "privacy-notice.txt", "demo/demo-call.flac", "demo/demo-call.json",
                 "translations/README.md"):
        assert (resources / name).is_file(), f"resources/{name} is missing from the bundle"
    assert (resources / "demo" / "demo-call.flac").read_bytes() == (REPO / "resources/demo/demo-call.flac").read_bytes()
    assert list(internal.glob("libportaudio.so*")), "PortAudio is not bundled"
    assert list((internal / "_soundfile_data").glob("libsndfile*")), "libsndfile is not bundled"
    assert list((internal / "av.libs").glob("libavcodec*")), "PyAV's FFmpeg libraries are not bundled"

    qt_libs = {p.name for p in (internal / "PySide6" / "Qt" / "lib").iterdir()}
    unwanted = [n for n in qt_libs if n.startswith(("libQt6Qml", "libQt6Quick", "libQt6WebEngine", "libQt63D",
                                                    "libQt6Multimedia", "libQt6Pdf", "libQt6Sql", "libQt6Test"))]
    assert not unwanted, f"unused Qt libraries were bundled: {unwanted}"
    modules = {p.name.split(".")[0] for p in (internal / "PySide6").glob("Qt*.so")}
    assert modules == {"QtCore", "QtGui", "QtWidgets"}, modules

    data = internal / "botocore" / "data"
    assert (data / "s3").is_dir() and not (data / "ec2").exists(), "botocore models: only S3 and the auth services"


def bundled_modules(executable: Path) -> set[str]:
    """The Python modules in a frozen program's archive (PyInstaller's own reader)."""
    from PyInstaller.archive.readers import CArchiveReader

    archive = CArchiveReader(str(executable))
    [pyz] = [name for name in archive.toc if name.endswith(".pyz")]
    return set(archive.open_embedded_archive(pyz).toc)


def test_every_module_of_the_package_is_in_a_frozen_program(bundle):
    """Modules the programs import only when first needed (the call dialogs, help, settings,
    the Library, the engine on its worker) must still be frozen: a missing one would only show
    as ModuleNotFoundError when a handler first opens it."""
    package = REPO / "callrec_desktop"
    ours = {".".join(p.relative_to(REPO).with_suffix("").parts).removesuffix(".__init__")
            for p in package.rglob("*.py")}
    window, cli = bundled_modules(bundle / "callrec-desktop"), bundled_modules(bundle / "callrec")
    assert {"callrec_desktop.ui.call_dialogs", "callrec_desktop.ui.help", "callrec_desktop.ui.library_window"} <= window
    missing = ours - {"callrec_desktop.__main__"} - window - cli
    assert not missing, f"not frozen into either program: {sorted(missing)}"
