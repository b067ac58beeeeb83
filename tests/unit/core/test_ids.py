"""Call ids: the only strings that become file names or object keys."""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone

import pytest

from callrec_desktop.core.ids import CALL_ID_RE, InvalidIdError, call_date, new_call_id, validate_call_id

GOOD = "20261129T092233Z-3f9a1c0b7d2e"


# ---- new_call_id ----------------------------------------------------------------------

def test_new_call_id_has_utc_start_and_48_random_bits():
    cid = new_call_id(datetime(2026, 11, 29, 9, 22, 33, 987654, tzinfo=timezone.utc))
    stamp, rand = cid.split("-")
    assert stamp == "20261129T092233Z"
    assert len(rand) == 12 and all(c in "0123456789abcdef" for c in rand)
    assert validate_call_id(cid) == cid


def test_new_call_id_converts_other_zones_to_utc():
    bst = timezone(timedelta(hours=1))
    cid = new_call_id(datetime(2026, 7, 1, 0, 30, 0, tzinfo=bst))
    # 00:30 BST on 1 July is 23:30 UTC on 30 June: the date partition is the UTC one.
    assert cid.startswith("20260630T233000Z-")
    assert call_date(cid) == date(2026, 6, 30)


def test_new_call_id_refuses_naive_datetime():
    with pytest.raises(ValueError, match="aware"):
        new_call_id(datetime(2026, 11, 29, 9, 22, 33))


def test_new_call_id_pads_small_years():
    cid = new_call_id(datetime(999, 1, 2, 3, 4, 5, tzinfo=timezone.utc))
    assert cid.startswith("09990102T030405Z-")
    assert validate_call_id(cid) == cid


def test_new_call_ids_are_unique_for_the_same_second():
    start = datetime(2026, 11, 29, 9, 22, 33, tzinfo=timezone.utc)
    ids = {new_call_id(start) for _ in range(5000)}
    assert len(ids) == 5000
    assert {i[:16] for i in ids} == {"20261129T092233Z"}


# ---- validate_call_id -------------------------------------------------------------------

def test_validate_returns_a_good_id_unchanged():
    assert validate_call_id(GOOD) == GOOD
    assert CALL_ID_RE.fullmatch(GOOD)


@pytest.mark.parametrize(
    "bad",
    [
        "",
        "../../etc",
        "../../etc/passwd",
        "20261129T092233Z-3f9a1c0b7d2e/../x",
        "20261129T092233Z-3f9a1c0b7d2e/",
        "/20261129T092233Z-3f9a1c0b7d2e",
        "20261129T092233Z-3f9a1c0b7d2e\\x",
        "..\\20261129T092233Z-3f9a1c0b7d2e",
        "20261129T092233Z-3f9a1c0b7d2e\n",
        "\n20261129T092233Z-3f9a1c0b7d2e",
        " 20261129T092233Z-3f9a1c0b7d2e",
        "20261129T092233Z-3f9a1c0b7d2e ",
        "20261129T092233Z-3f9a1c0b7d2e\x00",
        "20261129T092233Z-3F9A1C0B7D2E",  # upper-case hex
        "20261129T092233Z-3f9a1c0b7d2",  # 11 hex digits
        "20261129T092233Z-3f9a1c0b7d2e0",  # 13 hex digits
        "20261129T092233Z-3f9a1c0b7d2g",
        "20261129T092233-3f9a1c0b7d2e",  # no Z
        "20261129 092233Z-3f9a1c0b7d2e",
        "2026-11-29T09:22:33Z-3f9a1c0b7d2e",
        "20261129T092233Z_3f9a1c0b7d2e",
        "20261129T092233Z-3f9a1c0b7d2e-3f9a1c0b7d2e",
        "２０２６1129T092233Z-3f9a1c0b7d2e",  # fullwidth digits
        "\u0662\u0660\u0662\u06061129T092233Z-3f9a1c0b7d2e",  # Arabic-Indic digits
        "20261129T092233Z\u20103f9a1c0b7d2e",  # unicode hyphen
        "20261129T092233Z-3f9a1c0b7d2\u0435",  # Cyrillic e
        "20261129Т092233Z-3f9a1c0b7d2e",  # Cyrillic Te
        "20261130T092233Z-3f9a1c0b7d2e".replace("1130", "0230"),  # 30 February
        "20261301T092233Z-3f9a1c0b7d2e",  # month 13
        "20261100T092233Z-3f9a1c0b7d2e",  # day 0
        "00001129T092233Z-3f9a1c0b7d2e",  # year 0
        "20261129T242233Z-3f9a1c0b7d2e",  # hour 24
        "20261129T096033Z-3f9a1c0b7d2e",  # minute 60
        "20261129T092261Z-3f9a1c0b7d2e",  # second 61
    ],
)
def test_validate_refuses_anything_else(bad):
    with pytest.raises(InvalidIdError, match="not a call id"):
        validate_call_id(bad)


@pytest.mark.parametrize("bad", [None, 20261129, b"20261129T092233Z-3f9a1c0b7d2e", ["x"], {"id": GOOD}])
def test_validate_refuses_non_strings(bad):
    with pytest.raises(InvalidIdError, match="not a call id"):
        validate_call_id(bad)


def test_invalid_id_error_is_a_value_error_and_quotes_the_value():
    with pytest.raises(ValueError) as info:
        validate_call_id("../../etc")
    assert "'../../etc'" in str(info.value)


def test_leap_day_is_a_valid_date_only_in_leap_years():
    assert validate_call_id("20280229T000000Z-000000000000")
    with pytest.raises(InvalidIdError, match="day is out of range"):
        validate_call_id("20270229T000000Z-000000000000")


# ---- call_date -------------------------------------------------------------------------

def test_call_date_reads_the_utc_date():
    assert call_date(GOOD) == date(2026, 11, 29)
    assert call_date("20271231T235959Z-ffffffffffff") == date(2027, 12, 31)


@pytest.mark.parametrize("bad", ["../../etc", "20270229T000000Z-000000000000", "20261129T250000Z-000000000000"])
def test_call_date_refuses_bad_ids(bad):
    with pytest.raises(InvalidIdError):
        call_date(bad)
