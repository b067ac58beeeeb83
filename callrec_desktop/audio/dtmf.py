"""DTMF (touch-tone) detection on captured audio, frame-exact, cheap enough for every block.

Why: a caller keying card digits on the phone keypad must never be recorded (PCI DSS), and
people forget to press Payment. The detector runs on the recorder thread on every captured
block *before* the look-behind buffer, so a pause stamped at the first tone still removes it.

How (ITU-T Q.23 frequencies, Q.24 reception practice):

* The 8 DTMF frequencies are measured with single-bin DFTs (what Goertzel's recursion
  computes), vectorised with numpy: the audio is cut into contiguous 5 ms sub-blocks on a grid
  anchored at the capture frame of the first block, each sub-block is correlated with a
  precomputed complex basis (one matrix product), and the sub-block results, phase-aligned by
  their place on that grid, are summed into 20 ms analysis windows that slide by 5 ms.
  Summing is exact (the DFT is linear), so this is the 20 ms Goertzel result, four times per
  window length, for the price of one. A small carry-over buffer keeps sub-blocks contiguous
  across blocks of any size, so hits do not depend on how the audio was cut into blocks.
* A window holds a key when: the strongest row tone and the strongest column tone are each
  at least ``group_margin_db`` above the other tones of their group; each is at least
  ``min_level_dbfs`` (RMS of one tone); twist is within limits (column louder than row by at
  most ``normal_twist_db``, row louder than column by at most ``reverse_twist_db``); and the
  two tones carry at least ``min_energy_ratio`` of the window's energy (speech, music and
  noise spread their energy and fail this).
* A key press is reported when ``min_windows`` consecutive windows hold the same key (with
  the defaults: every tone of 40 ms or more, no tone shorter than 35 ms; Q.24 asks for
  >= 40 ms to operate and <= 20 ms not to). It is reported once: the press lasts until
  ``release_windows`` consecutive windows no longer hold it (a drop-out of 15 ms or less
  does not make a second press, Q.24 asks for 10 ms; a pause of 25 ms or more does, Q.24
  asks for 40 ms).

The frame of a hit is the start of the first window in which the key's tone appears: the
window one hop (5 ms) before the first window that holds the key, since a window holds it
once the tone fills 3/4 of it. That is at most 10 ms before the tone's first sample and never
after it, so a pause stamped there (minus a safety margin) removes every sample of the tone.

Limits: a pure two-note chord whose notes sit on a DTMF row and column frequency *is* DTMF
to any detector; card numbers read out by voice are not tones at all (see docs/triggers.md).
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass

import numpy as np

from callrec_desktop.audio.sources import AudioBlock

ROW_HZ = (697, 770, 852, 941)
COL_HZ = (1209, 1336, 1477, 1633)
KEYS = ("123A", "456B", "789C", "*0#D")  # KEYS[row][col]

_FREQS = np.array(ROW_HZ + COL_HZ, dtype=np.int64)
_DIGITS = np.array([KEYS[r][c] for r in range(4) for c in range(4)])  # index r * 4 + c

SUB_SECONDS = 0.005  # hop between analysis windows
SUBS_PER_WINDOW = 4  # window = 4 sub-blocks = 20 ms

# The loose dual-tone test of earliest_tone_energy: energy at one row and one column
# frequency, each clearly above the rest of its group, above a low floor, any plausible twist.
LOOSE_GROUP_MARGIN_DB = 6.0
LOOSE_MIN_LEVEL_DBFS = -50.0
LOOSE_TWIST_DB = 12.0


@dataclass(frozen=True)
class DtmfHit:
    """One key press: ``frame`` is the capture frame where the first window in which its tone
    appears starts (at or up to 10 ms before the tone's first sample)."""

    frame: int
    digit: str


class DtmfDetector:
    """Finds key presses in one channel of a stream of contiguous ``AudioBlock``s.

    Not thread-safe: one thread (the recorder thread) feeds it.
    """

    def __init__(
        self,
        sample_rate: int,
        channel: int = 1,
        *,
        min_level_dbfs: float = -40.0,
        normal_twist_db: float = 9.0,  # Q.24 practice: accept 8 dB; 1 dB guard for leakage
        reverse_twist_db: float = 5.0,  # Q.24 practice: accept 4 dB; 1 dB guard
        group_margin_db: float = 6.0,
        min_energy_ratio: float = 0.75,
        min_windows: int = 6,
        release_windows: int = 7,
        history_seconds: float = 2.5,
    ) -> None:
        if sample_rate < 4000:
            raise ValueError(f"DTMF needs a sample rate of at least 4000 Hz, got {sample_rate}")
        if channel < 0:
            raise ValueError(f"channel must not be negative, got {channel}")
        self.sample_rate = int(sample_rate)
        self.channel = int(channel)
        self.hop = max(1, round(self.sample_rate * SUB_SECONDS))
        self.window = self.hop * SUBS_PER_WINDOW
        self.min_windows = int(min_windows)
        self.release_windows = int(release_windows)
        # Thresholds on tone powers normalised so that a full-window sine of amplitude A has
        # power A**2 / 2 (its mean square), comparable with the window's mean square.
        self._min_power = 10 ** (min_level_dbfs / 10)
        self._normal_twist = 10 ** (normal_twist_db / 10)
        self._reverse_twist = 10 ** (reverse_twist_db / 10)
        self._group_margin = 10 ** (group_margin_db / 10)
        self._min_ratio = float(min_energy_ratio)
        self._power_scale = 2.0 / self.window**2
        if history_seconds < 0:
            raise ValueError(f"history_seconds must not be negative, got {history_seconds}")
        self._history_frames = round(history_seconds * self.sample_rate)
        # The loose dual-tone test behind earliest_tone_energy (see there).
        self._loose_margin = 10 ** (LOOSE_GROUP_MARGIN_DB / 10)
        self._loose_twist = 10 ** (LOOSE_TWIST_DB / 10)
        self._loose_floor = 10 ** (LOOSE_MIN_LEVEL_DBFS / 10)
        n = np.arange(self.hop)
        # Correlating a sub-block with this basis gives its DFT at the 8 frequencies, relative
        # to the sub-block's first sample.
        self._basis = np.exp(-2j * np.pi * np.outer(n, _FREQS) / self.sample_rate).astype(np.complex64)
        # Sub-block i (counted from the grid origin) starts i * hop frames in: its DFT is moved
        # onto the common timeline by exp(-2πi f i hop / rate). The frequencies and the rate
        # are integers, so that factor repeats every rate / gcd(hop, rate) sub-blocks: a table
        # (exact for any length of shift, no growing phase error).
        period = self.sample_rate // math.gcd(self.hop, self.sample_rate)
        turns = (np.outer(np.arange(period, dtype=np.int64) * self.hop, _FREQS) % self.sample_rate) / self.sample_rate
        self._phases = np.exp(-2j * np.pi * turns)
        self.reset()

    def reset(self) -> None:
        """Forget everything (a new, unrelated stream follows)."""
        self._carry = np.zeros(0, dtype=np.float32)
        self._carry_frame: int | None = None  # capture frame of _carry[0] (next sub-block start)
        self._origin = 0  # capture frame where the sub-block grid starts
        self._sub_index = 0  # sub-blocks analysed since the origin
        # The last SUBS_PER_WINDOW - 1 sub-blocks: (start frames, spectra, energies).
        self._hist_x = np.zeros((0, len(_FREQS)), dtype=np.complex128)
        self._hist_e = np.zeros(0, dtype=np.float64)
        self._hist_start = np.zeros(0, dtype=np.int64)
        self._run_digit: str | None = None
        self._run_len = 0
        self._run_start = 0
        self._held: str | None = None  # the press already reported, until it is released
        self._absent = 0
        # Start frames of the analysed windows that passed the loose dual-tone test, oldest
        # first, those older than history_seconds dropped: bounded by history / hop entries.
        self._onsets: deque[int] = deque()

    def feed(self, block: AudioBlock) -> list[DtmfHit]:
        """Analyse ``block``; return the key presses that became certain in it (usually none).

        Runs on the recorder thread for every captured block; cost is a few tens of µs.
        """
        data = block.data
        if data.ndim != 2 or data.shape[0] == 0:
            return []
        ch = self.channel if data.shape[1] > self.channel else 0  # mono: channel 0
        x = data[:, ch]
        if self._carry_frame is None or self._carry_frame + len(self._carry) != block.start_frame:
            # First block, or a discontinuity (should not happen: sources are contiguous):
            # restart the sub-block grid here rather than mixing unrelated audio.
            if self._carry_frame is not None:
                self.reset()
            self._carry = np.zeros(0, dtype=np.float32)
            self._carry_frame = self._origin = block.start_frame
        buf = np.concatenate((self._carry, x)) if len(self._carry) else x
        n_sub = len(buf) // self.hop
        if n_sub == 0:
            self._carry = np.array(buf, dtype=np.float32)
            return []
        used = n_sub * self.hop
        subs = buf[:used].reshape(n_sub, self.hop)
        starts = self._carry_frame + self.hop * np.arange(n_sub, dtype=np.int64)
        turns = (self._sub_index + np.arange(n_sub)) % len(self._phases)
        spectra = (subs @ self._basis).astype(np.complex128) * self._phases[turns]
        self._sub_index += n_sub
        energies = np.einsum("ij,ij->i", subs, subs, dtype=np.float64)
        self._carry = np.array(buf[used:], dtype=np.float32)
        self._carry_frame += used

        all_x = np.concatenate((self._hist_x, spectra))
        all_e = np.concatenate((self._hist_e, energies))
        all_s = np.concatenate((self._hist_start, starts))
        keep = SUBS_PER_WINDOW - 1
        self._hist_x, self._hist_e, self._hist_start = all_x[-keep:], all_e[-keep:], all_s[-keep:]
        if len(all_x) < SUBS_PER_WINDOW:
            return []
        digits = self._classify(all_x, all_e, all_s)
        return self._track(digits, all_s[: len(digits)])

    def earliest_tone_energy(self, since_frame: int) -> int | None:
        """The capture frame where dual-tone energy starts earliest at or after
        ``since_frame``, among the windows analysed in (at least) the last ``history_seconds``
        whose row and column tones pass a loose dual-tone test; None if there is none. The
        frame is the start of the first 5 ms sub-block of such a window that carries energy:
        within one hop of the tone's first sample (at or before it unless the tone starts in
        the last eighth of a sub-block).

        Why: the strict test behind ``feed`` may miss the first digits of a keyed card number
        (short, off-frequency or quiet tones) and only hit a later one; a payment pause that
        reaches back to this onset removes those too. The loose test: one row tone and one
        column tone each at least LOOSE_GROUP_MARGIN_DB above the other tones of its group,
        each above LOOSE_MIN_LEVEL_DBFS, twist within ±LOOSE_TWIST_DB, in a single 20 ms
        window (no minimum duration); a false onset only makes a pause start earlier.

        Runs on the recorder thread (the thread that feeds), usually right after ``feed``
        returned a hit; cost: a scan of at most history / hop stored frames.
        """
        return min((f for f in self._onsets if f >= since_frame), default=None)

    # ---- internals ------------------------------------------------------------------------
    def _classify(self, sub_x: np.ndarray, sub_e: np.ndarray, sub_s: np.ndarray) -> list[str | None]:
        """The key held in each 20 ms window (None where none is), windows starting at every
        sub-block that has SUBS_PER_WINDOW - 1 successors. Also notes the windows that pass
        the loose dual-tone test (earliest_tone_energy)."""
        n = len(sub_x) - SUBS_PER_WINDOW + 1
        w = sub_x[0:n].copy()
        e = sub_e[0:n].copy()
        for j in range(1, SUBS_PER_WINDOW):  # sliding sums over 4 sub-blocks (a handful of rows)
            w += sub_x[j : j + n]
            e += sub_e[j : j + n]
        mean_square = e / self.window
        power = (w.real**2 + w.imag**2) * self._power_scale  # (windows, 8)
        rows, cols = power[:, :4], power[:, 4:]
        pr, pc = rows.max(axis=1), cols.max(axis=1)
        self._note_loose(rows, cols, pr, pc, sub_e, sub_s[:n])
        # Most windows (silence, speech) fail the cheap tests: stop there.
        candidate = (pr >= self._min_power) & (pc >= self._min_power) & (pr + pc >= self._min_ratio * mean_square)
        if not candidate.any():
            return [None] * n
        idx = np.arange(n)
        r = np.argmax(rows, axis=1)
        c = np.argmax(cols, axis=1)
        rows_other = rows.copy()
        rows_other[idx, r] = 0.0
        cols_other = cols.copy()
        cols_other[idx, c] = 0.0
        ok = (
            candidate
            & (pr >= self._group_margin * rows_other.max(axis=1))
            & (pc >= self._group_margin * cols_other.max(axis=1))
            & (pc <= self._normal_twist * pr)  # column (high group) louder: normal twist
            & (pr <= self._reverse_twist * pc)  # row (low group) louder: reverse twist
        )
        if not ok.any():
            return [None] * n
        keys = _DIGITS[r * 4 + c]
        return [str(k) if v else None for k, v in zip(keys, ok)]

    def _note_loose(self, rows: np.ndarray, cols: np.ndarray, pr: np.ndarray, pc: np.ndarray,
                    sub_e: np.ndarray, starts: np.ndarray) -> None:
        """Remember where the windows passing the loose dual-tone test show energy first and
        forget what is older than history_seconds before the newest window."""
        if len(starts) == 0:
            return
        loose = (pr >= self._loose_floor) & (pc >= self._loose_floor)
        loose &= (pc <= self._loose_twist * pr) & (pr <= self._loose_twist * pc)
        if loose.any():
            # the second-strongest tone of each group (4 values a row: a sort is cheap)
            rest_r = np.sort(rows, axis=1)[:, -2]
            rest_c = np.sort(cols, axis=1)[:, -2]
            loose &= (pr >= self._loose_margin * rest_r) & (pc >= self._loose_margin * rest_c)
        if loose.any():
            # A window passes once the tone fills part of it: the onset is in the first of its
            # 5 ms sub-blocks that carries a noticeable share (1/8 of the strongest) of energy.
            idx = np.flatnonzero(loose)
            e = np.stack([sub_e[idx + j] for j in range(SUBS_PER_WINDOW)], axis=1)
            first = np.argmax(e >= e.max(axis=1, keepdims=True) / 8, axis=1)
            self._onsets.extend((starts[idx] + first * self.hop).tolist())
        oldest = int(starts[-1]) - self._history_frames
        while self._onsets and self._onsets[0] < oldest:
            self._onsets.popleft()

    def _track(self, digits: list[str | None], starts: np.ndarray) -> list[DtmfHit]:
        """Turn per-window keys into presses: report a key after min_windows windows in a row,
        once, until it has been absent for release_windows windows."""
        hits: list[DtmfHit] = []
        for d, s in zip(digits, starts):
            if d is not None and d == self._run_digit:
                self._run_len += 1
            else:
                self._run_digit, self._run_len, self._run_start = d, (1 if d is not None else 0), int(s)
            if self._held is not None:
                if d == self._held:
                    self._absent = 0
                else:
                    self._absent += 1
                    if self._absent >= self.release_windows:
                        self._held = None
            if d is not None and d != self._held and self._run_len >= self.min_windows:
                # The window one hop before the first that holds the key holds the tone's onset
                # (a window holds the key once the tone fills 3/4 of it).
                hits.append(DtmfHit(max(self._origin, self._run_start - self.hop), d))
                self._held, self._absent = d, 0
        return hits
