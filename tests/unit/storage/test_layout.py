"""Object keys come only from validated ids; anything that could steer a key is refused."""

from __future__ import annotations

from datetime import date

import pytest

from callrec_desktop.core.ids import InvalidIdError
from callrec_desktop.core.manifest import chunk_file_name
from callrec_desktop.storage import layout
from callrec_desktop.storage.layout import InvalidKeyError

CALL = "20261129T092233Z-3f9a1c0b7d2e"


def test_manifest_key_is_partitioned_by_the_call_date():
    assert layout.manifest_key(CALL) == f"manifests/2026/11/29/{CALL}.json"


def test_chunk_key_uses_the_chunk_file_name():
    assert layout.chunk_key(CALL, chunk_file_name(7, "opus")) == f"audio/2026/11/29/{CALL}/000007.opus"
    assert layout.chunk_key(CALL, "999999.flac") == f"audio/2026/11/29/{CALL}/999999.flac"
    assert layout.audio_prefix(CALL) == f"audio/2026/11/29/{CALL}/"


def test_manifests_prefix():
    assert layout.manifests_prefix(date(2026, 1, 5)) == "manifests/2026/01/05/"
    assert layout.manifests_prefix(None) == "manifests/"
    assert layout.manifests_prefix() == "manifests/"


def test_manifests_prefix_never_matches_audio():
    day = date(2026, 11, 29)
    assert not layout.chunk_key(CALL, "000001.opus").startswith(layout.manifests_prefix(day))
    assert not layout.chunk_key(CALL, "000001.opus").startswith(layout.manifests_prefix())
    assert layout.manifest_key(CALL).startswith(layout.manifests_prefix(day))


def test_call_id_from_manifest_key_roundtrip():
    assert layout.call_id_from_manifest_key(layout.manifest_key(CALL)) == CALL


@pytest.mark.parametrize("key", [
    "manifests/2026/11/28/20261129T092233Z-3f9a1c0b7d2e.json",  # wrong date folder
    "manifests/2026/11/29/20261129T092233Z-3f9a1c0b7d2e.txt",
    "audio/2026/11/29/20261129T092233Z-3f9a1c0b7d2e/000001.opus",
    "manifests/2026/11/29/../20261129T092233Z-3f9a1c0b7d2e.json",
    "manifests/2026/11/29/x.json",
    "/manifests/2026/11/29/20261129T092233Z-3f9a1c0b7d2e.json",
    "",
])
def test_call_id_from_manifest_key_refuses_other_keys(key):
    with pytest.raises(InvalidKeyError):
        layout.call_id_from_manifest_key(key)


def test_arrival_keys_are_partitioned_by_the_upload_day_and_name_the_call():
    key = layout.arrival_key(CALL, date(2026, 12, 2))
    assert key == f"arrivals/2026/12/02/{CALL}.json"
    assert key.startswith(layout.arrivals_prefix(date(2026, 12, 2)))
    assert layout.call_id_from_arrival_key(key) == CALL
    assert not key.startswith(layout.manifests_prefix())


@pytest.mark.parametrize("key", [
    f"arrivals/2026/12/02/{CALL}.txt",
    f"arrivals/2026/13/02/{CALL}.json",  # no 13th month
    "arrivals/2026/12/02/../x.json",
    "arrivals/2026/12/02/x.json",
    f"manifests/2026/11/29/{CALL}.json",
])
def test_call_id_from_arrival_key_refuses_other_keys(key):
    with pytest.raises(InvalidKeyError):
        layout.call_id_from_arrival_key(key)


def test_content_types():
    assert layout.chunk_content_type("000001.opus") == "audio/ogg"
    assert layout.chunk_content_type("000001.flac") == "audio/flac"
    assert layout.MANIFEST_CONTENT_TYPE == "application/json"


BAD_IDS = [
    "../x", "a/b", "/etc/passwd", "C:\\calls", "..", "",
    CALL + "/../../x",
    "20261129T092233Z-3f9a1c0b7d2\u0435",  # Cyrillic e look-alike
    "２0261129T092233Z-3f9a1c0b7d2e",  # full-width digit
    "20261129T092233Z-3f9a1c0b7d2e\n",
    "20261399T092233Z-3f9a1c0b7d2e",  # no such date
]


@pytest.mark.parametrize("bad", BAD_IDS)
def test_traversal_in_call_id_is_refused(bad):
    with pytest.raises(InvalidIdError):
        layout.manifest_key(bad)
    with pytest.raises(InvalidIdError):
        layout.chunk_key(bad, "000001.opus")


@pytest.mark.parametrize("bad", [
    "../x", "a/b", "/000001.opus", "..\\000001.opus", "000001.opus/..", "000001.wav", "1.opus",
    "000000.opus", "0000001.opus", "000001.opus\n", "٠٠٠٠٠١.opus",  # Arabic-Indic digits match \d
    "000001.OPUS", "", None, 1,
])
def test_traversal_in_chunk_name_is_refused(bad):
    with pytest.raises(InvalidKeyError):
        layout.chunk_key(CALL, bad)


@pytest.mark.parametrize("bad", [
    "", "/abs", "a/../b", "..", "a//b", "a/", "./a", "a\\b", "C:/x", "a/.hidden", "caf\u00e9", "a\x00b",
])
def test_check_relative_key_refuses(bad):
    with pytest.raises(InvalidKeyError):
        layout.check_relative_key(bad)


def test_check_relative_key_accepts_layout_keys():
    assert layout.check_relative_key(layout.manifest_key(CALL))
    assert layout.check_relative_key(layout.chunk_key(CALL, "000001.opus"))


@pytest.mark.parametrize("good", ["", "manifests/", "manifests/2026/1", "audio/2026/11/29/"])
def test_check_prefix_accepts(good):
    assert layout.check_prefix(good) == good


@pytest.mark.parametrize("bad", ["/", "/x", "../", "a/../", "a//", "a\\"])
def test_check_prefix_refuses(bad):
    with pytest.raises(InvalidKeyError):
        layout.check_prefix(bad)
