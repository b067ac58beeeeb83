"""DTMF (touch-tone) detection on captured audio, frame-exact, cheap enough for every block.

Why: a caller keying card digits on the phone keypad must never be recorded (PCI DSS), and
people forget to press Payment. The detector runs on the recorder thread on every captured
block *before* the look-behind buffer, so a pause stamped at the first tone still removes it.

What it accepts (ITU-T Q.23 frequencies, Q.24 reception practice; measured by
``bench/bench_dtmf.py`` beside multimon-ng and spandsp's dtmf_rx, figures in
docs/triggers.md): tones of 40 ms (with 1 ms ramps) and more, none of 20 ms or less; each
tone within ±1.5 % of its frequency, none off by ±3.5 %; the high group up to 4 dB louder
than the low group ("normal" or forward twist) and the low group up to 8 dB louder ("reverse"
twist), accepting up to 8 and 9 dB; each tone from -3 down to -36 dBm0 and not below -42 dBm0.
Levels: 0 dBm0 is 3.14 dB below a full-scale sine (G.711 μ-law), so a full-scale sine of
amplitude 1.0 is +3.14 dBm0 and a tone at L dBm0 has amplitude 10 ** ((L - 3.14) / 20).

How:

* The 8 DTMF frequencies are measured with single-bin DFTs (what Goertzel's recursion
  computes), vectorised with numpy: the audio is cut into contiguous 5 ms sub-blocks on a grid
  anchored at the capture frame of the first block, each sub-block is correlated with a
  precomputed complex basis (one matrix product), and the sub-block results, phase-aligned by
  their place on that grid, are combined into 20 ms analysis windows that slide by 5 ms. A
  small carry-over buffer keeps sub-blocks contiguous across blocks of any size, so hits do
  not depend on how the audio was cut into blocks.
* Frequency: in each window, the phase advance of each frequency's DFT from the window's
  first 10 ms half to its second is its tone's offset from the nominal frequency (2π ·
  offset · 10 ms); the halves are Hann-tapered (from two extra basis columns per frequency),
  so a strong tone in the other group does not pull the estimate, and the mean step between
  the 5 ms sub-blocks resolves the ambiguity beyond ±50 Hz. A tone is *on frequency* when
  that offset is within ``freq_tolerance`` (2.5 %: between the ±1.5 % Q.24 accepts and the
  ±3.5 % it rejects), and its power is then measured with the second half de-rotated by that
  step, so a tone 1.5 % off loses no power in a 20 ms window (a plain 20 ms DFT loses up to
  4 dB there, which made the previous energy-ratio test reject it). An off-frequency bin keeps
  its plain 20 ms DFT power, so a tone in a neighbouring bin (73 Hz or more away) stays well
  below it.
* A window holds a key when: the strongest row and column frequencies are both on frequency;
  each is ``group_margin_db`` above the other frequencies of its group; each is at least
  ``min_level_dbm0``; twist is within ``normal_twist_db`` (column louder) and
  ``reverse_twist_db`` (row louder); the two tones carry at least ``min_energy_ratio`` of the
  window's energy (speech, music and noise spread their energy and fail this); the column
  tone's second harmonic is ``harmonic_db`` below it (an instrument playing a column note
  has one, a keypad does not); and both tones are *steady* across the window's four sub-blocks (the weakest sub-block within
  ``steady_db`` of the strongest), so a window only holds a key when the tone covers it
  nearly whole. That makes the duration test exact in time rather than dependent on level.
* A key press is reported when ``min_windows`` windows hold the same key in a run (one
  window in between may miss: a click or a codec frame does not break a tone): with the
  defaults and 1 ms ramps, half of the tones of 35 ms register and all of 38 ms and more;
  tones of 30 ms or less never do (Q.24: 40 ms must, 20 ms must not).
  It is reported once: the press lasts until ``release_subs`` consecutive sub-blocks (5 ms
  each) no longer carry its two tones at a tenth of their level (a drop-out of 15 ms is the
  same press, Q.24 asks for 10 ms; a pause of 25 ms makes a second one, Q.24 asks for 40 ms),
  or until a different key is held for ``min_windows`` windows.

The frame of a hit is the start of the earliest 5 ms sub-block, around the first window that
holds the key, in which both its tones already show, minus half a sub-block (what a 1 ms ramp
can hide): at or before the tone's first sample and at most about 10 ms before it,
so a pause stamped there (minus a safety margin) removes every sample of the tone.

``earliest_tone_energy`` answers, for a pause that reaches back, where dual-tone energy began
among the windows of the last ``history_seconds``, with a much looser test (a single window,
no frequency or steadiness test): the first digits of a card number may be too short or too
distorted for the strict test, yet still leave dual-tone energy there.

Limits: two pure tones on a DTMF row and column frequency within the twist Q.24 requires
*are* DTMF to any detector (a synthetic vowel with formants on 697 and 1209 Hz held at
F0 = 174 Hz does trigger); card numbers read out by voice are not tones at all (see
docs/triggers.md).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from callrec_desktop.audio.sources import AudioBlock

ROW_HZ = (697, 770, 852, 941)
COL_HZ = (1209, 1336, 1477, 1633)
KEYS = ("123A", "456B", "789C", "*0#D")  # KEYS[row][col]

_FREQS = np.array(ROW_HZ + COL_HZ, dtype=np.int64)
_HARMONICS = 2 * np.array(COL_HZ, dtype=np.int64)  # second harmonics of the column tones
_DIGITS = np.array([KEYS[r][c] for r in range(4) for c in range(4)])  # index r * 4 + c

SUB_SECONDS = 0.005  # hop between analysis windows
SUBS_PER_WINDOW = 4  # window = 4 sub-blocks = 20 ms
HISTORY_SUBS = 16  # sub-blocks kept across blocks: the last windows and the onset look-back

DBM0_OF_FULL_SCALE_SINE = 3.14  # G.711 μ-law: 0 dBm0 is 3.14 dB below a full-scale sine

# The loose dual-tone test of earliest_tone_energy: energy at one row and one column
# frequency, each clearly above the rest of its group, above a low floor, any plausible twist.
LOOSE_GROUP_MARGIN_DB = 6.0
LOOSE_MIN_LEVEL_DBM0 = -45.0
LOOSE_TWIST_DB = 12.0
LOOSE_ENERGY_RATIO = 0.4  # the two tones hold this share of the window's energy


def dbm0_amplitude(level_dbm0: float) -> float:
    """Peak amplitude (full scale 1.0) of a sine at ``level_dbm0`` (see the module's note)."""
    return 10 ** ((level_dbm0 - DBM0_OF_FULL_SCALE_SINE) / 20)


def _power_of_dbm0(level_dbm0: float) -> float:
    """Mean square of a sine at ``level_dbm0``: the scale of the detector's tone powers."""
    return dbm0_amplitude(level_dbm0) ** 2 / 2


@dataclass(frozen=True)
class DtmfHit:
    """One key press: ``frame`` is the capture frame where its tone shows first (at or up to
    about 10 ms before the tone's first sample)."""

    frame: int
    digit: str


class DtmfDetector:
    """Finds key presses in one channel of a stream of contiguous ``AudioBlock``s.

    Not thread-safe: one thread (the recorder thread) feeds it and asks it questions.
    """

    def __init__(
        self,
        sample_rate: int,
        channel: int = 1,
        *,
        min_level_dbm0: float = -42.0,  # Q.24 practice: accept -36 dBm0 per tone; spandsp: -42
        normal_twist_db: float = 8.0,  # column (high group) louder; Q.24 practice accepts 4 dB
        reverse_twist_db: float = 9.0,  # row (low group) louder; Q.24 practice accepts 8 dB
        group_margin_db: float = 8.0,
        min_energy_ratio: float = 0.72,
        freq_tolerance: float = 0.025,
        steady_db: float = 6.0,
        harmonic_db: float = 15.0,
        min_windows: int = 4,
        release_subs: int = 4,
        history_seconds: float = 2.5,
    ) -> None:
        if not 8000 <= sample_rate <= 192000:
            # 8000 Hz: the column tones' second harmonics (up to 3266 Hz) must be measurable
            raise ValueError(f"DTMF needs a sample rate between 8000 and 192000 Hz, got {sample_rate}")
        if channel < 0:
            raise ValueError(f"channel must not be negative, got {channel}")
        if history_seconds < 0:
            raise ValueError(f"history_seconds must not be negative, got {history_seconds}")
        if min_windows < 1 or release_subs < 1:
            raise ValueError(f"min_windows and release_subs must be at least 1, got {min_windows}, {release_subs}")
        self.sample_rate = int(sample_rate)
        self.channel = int(channel)
        self.hop = max(1, round(self.sample_rate * SUB_SECONDS))
        self.window = self.hop * SUBS_PER_WINDOW
        self.min_windows = int(min_windows)
        self.release_subs = int(release_subs)
        # Tone powers are normalised so that a sine of amplitude A has power A**2 / 2 (its
        # mean square), both for a whole window and for one sub-block.
        self._min_power = _power_of_dbm0(min_level_dbm0)
        self._normal_twist = 10 ** (normal_twist_db / 10)
        self._reverse_twist = 10 ** (reverse_twist_db / 10)
        self._group_margin = 10 ** (group_margin_db / 10)
        self._min_ratio = float(min_energy_ratio)
        self._steady = 10 ** (-steady_db / 10)
        self._harmonic = 10 ** (-harmonic_db / 10)
        self._window_scale = 2.0 / self.window**2
        self._sub_scale = 2.0 / self.hop**2
        # Relative offset of a tone per radian of phase step between 10 ms halves, per frequency.
        self._per_radian = self.sample_rate / (2 * np.pi * _FREQS * 2 * self.hop)
        self._tolerance = float(freq_tolerance)
        if not 0 < freq_tolerance < 0.5 / (max(_FREQS) * 2 * SUB_SECONDS):
            raise ValueError(f"freq_tolerance {freq_tolerance} is not measurable (0 < tolerance < 3 %)")
        # Sub-blocks kept for earliest_tone_energy: every window of the last history_seconds.
        self._ring_size = math.ceil(history_seconds * self.sample_rate / self.hop) + SUBS_PER_WINDOW
        self._loose_margin = 10 ** (LOOSE_GROUP_MARGIN_DB / 10)
        self._loose_twist = 10 ** (LOOSE_TWIST_DB / 10)
        self._loose_floor = _power_of_dbm0(LOOSE_MIN_LEVEL_DBM0)
        n = np.arange(self.hop)
        # Correlating a sub-block with this basis gives its DFT at the 8 frequencies, relative
        # to the sub-block's first sample.
        # Columns 8-15 and 16-23: the same DFT with the rising and the falling half of a 10 ms
        # Hann window, so that two consecutive sub-blocks give a tapered 10 ms DFT (a tone in
        # the other group, 268 Hz or more away, leaks ~30 dB less into it than into a plain
        # one: the offset measured from two such halves is not pulled by the other tone).
        # Columns 24-27: plain DFTs at the second harmonics of the column tones (a DTMF key has
        # none to speak of; an instrument playing the column note has).
        freqs = np.concatenate([_FREQS, _FREQS, _FREQS, _HARMONICS])
        plain = np.exp(-2j * np.pi * np.outer(n, _FREQS) / self.sample_rate)
        rising = np.sin(np.pi * (n + 0.5) / (2 * self.hop)) ** 2
        harmonics = np.exp(-2j * np.pi * np.outer(n, _HARMONICS) / self.sample_rate)
        basis = np.hstack([plain, rising[:, None] * plain, rising[::-1, None] * plain, harmonics])
        self._columns = basis.shape[1]
        # As one real float32 matrix (real parts, then imaginary parts): a real product of
        # this size stays on the calling thread in OpenBLAS, where a complex one of a 250 ms
        # batch spread to its worker threads and cost 2.5 times the CPU for the same result.
        self._basis = np.ascontiguousarray(np.hstack([basis.real, basis.imag]), dtype=np.float32)
        # Sub-block i (counted from the grid origin) starts i * hop frames in: its DFT is moved
        # onto the common timeline by exp(-2πi f i hop / rate). The frequencies and the rate
        # are integers, so that factor repeats every rate / gcd(hop, rate) sub-blocks: a table
        # (exact for any length of stream, no growing phase error).
        period = self.sample_rate // math.gcd(self.hop, self.sample_rate)
        turns = (np.outer(np.arange(period, dtype=np.int64) * self.hop, freqs) % self.sample_rate) / self.sample_rate
        self._phases = np.exp(-2j * np.pi * turns)
        self.reset()

    def reset(self) -> None:
        """Forget everything (a new, unrelated stream follows)."""
        self._carry = np.zeros(0, dtype=np.float32)
        self._carry_frame: int | None = None  # capture frame of _carry[0] (next sub-block start)
        self._origin = 0  # capture frame where the sub-block grid starts
        self._sub_index = 0  # sub-blocks analysed since the origin
        # The last HISTORY_SUBS sub-blocks: spectra, energies, start frames.
        self._hist_x = np.zeros((0, self._columns), dtype=np.complex128)
        self._hist_e = np.zeros(0, dtype=np.float64)
        self._hist_start = np.zeros(0, dtype=np.int64)
        # The run of windows holding one key: digit, count, first window's start, last one's.
        self._run_digit: str | None = None
        self._run_len = 0
        self._run_first = 0
        self._run_last = 0
        # The press already reported, until released: its digit, bins, tone powers, and how
        # many sub-blocks in a row have lacked its tones.
        self._held: str | None = None
        self._held_bins = (0, 4)
        self._held_power = (0.0, 0.0)
        self._silent = 0
        # The last _ring_size sub-blocks (spectra, energies, start frames), written in a circle
        # at _ring_at: earliest_tone_energy analyses them only when asked (bounded memory,
        # no cost per block beyond the copy).
        self._ring_x = np.zeros((self._ring_size, self._columns), dtype=np.complex128)
        self._ring_e = np.zeros(self._ring_size, dtype=np.float64)
        self._ring_s = np.zeros(self._ring_size, dtype=np.int64)
        self._ring_at = 0
        self._ring_count = 0

    def feed(self, block: AudioBlock) -> list[DtmfHit]:
        """Analyse ``block``; return the key presses that became certain in it (usually none).

        Runs on the recorder thread for every captured block; under 0.1 ms for a 20 ms block
        (bench/bench_dtmf.py).
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
        product = subs @ self._basis
        spectra = (product[:, : self._columns] + 1j * product[:, self._columns :]) * self._phases[turns]
        self._sub_index += n_sub
        energies = np.einsum("ij,ij->i", subs, subs, dtype=np.float64)
        self._carry = np.array(buf[used:], dtype=np.float32)
        self._carry_frame += used

        self._remember(spectra, energies, starts)
        first = max(0, len(self._hist_x) - (SUBS_PER_WINDOW - 1))  # first window not analysed yet
        all_x = np.concatenate((self._hist_x, spectra))
        all_e = np.concatenate((self._hist_e, energies))
        all_s = np.concatenate((self._hist_start, starts))
        self._hist_x, self._hist_e = all_x[-HISTORY_SUBS:], all_e[-HISTORY_SUBS:]
        self._hist_start = all_s[-HISTORY_SUBS:]
        if len(all_x) - first < SUBS_PER_WINDOW:
            return []
        return self._analyse(all_x, all_e, all_s, first)

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
        each above LOOSE_MIN_LEVEL_DBM0, twist within ±LOOSE_TWIST_DB, together at least
        LOOSE_ENERGY_RATIO of the window's energy, in a single 20 ms
        window (no minimum duration, no frequency or steadiness test); a false onset only
        makes a pause start earlier.

        Runs on the recorder thread (the thread that feeds), usually right after ``feed``
        returned a hit; the windows are analysed then (a few hundred µs), not on every block.
        """
        m = self._ring_count
        if m < SUBS_PER_WINDOW:
            return None
        order = (self._ring_at - m + np.arange(m)) % self._ring_size
        sub_x, sub_e, sub_s = self._ring_x[order], self._ring_e[order], self._ring_s[order]
        n = m - SUBS_PER_WINDOW + 1
        later = np.flatnonzero(sub_s[:n] + self.window > since_frame)  # windows reaching past since_frame
        if len(later) == 0:
            return None
        first = int(later[0])
        n -= first
        power, _, _ = self._window_powers([sub_x[first + j : first + j + n] for j in range(SUBS_PER_WINDOW)])
        rows, cols = power[:, :4], power[:, 4:]
        pr, pc = rows.max(axis=1), cols.max(axis=1)
        second_r, second_c = np.sort(rows, axis=1)[:, -2], np.sort(cols, axis=1)[:, -2]
        loose = (pr >= self._loose_floor) & (pc >= self._loose_floor)
        loose &= (pc <= self._loose_twist * pr) & (pr <= self._loose_twist * pc)
        loose &= (pr >= self._loose_margin * second_r) & (pc >= self._loose_margin * second_c)
        energy = sub_e[first : first + n].copy()
        for j in range(1, SUBS_PER_WINDOW):
            energy += sub_e[first + j : first + j + n]
        loose &= pr + pc >= LOOSE_ENERGY_RATIO * energy / self.window
        # A window passes once the tone fills part of it: the onset is in the first of its 5 ms
        # sub-blocks that carries a noticeable share (1/8 of the strongest) of energy.
        at = first + np.flatnonzero(loose)
        if len(at) == 0:
            return None
        e = np.stack([sub_e[at + j] for j in range(SUBS_PER_WINDOW)], axis=1)
        shown = sub_s[at] + self.hop * np.argmax(e >= e.max(axis=1, keepdims=True) / 8, axis=1)
        shown = shown[shown >= since_frame]
        return int(shown.min()) if len(shown) else None

    def _remember(self, spectra: np.ndarray, energies: np.ndarray, starts: np.ndarray) -> None:
        """Write the newest sub-blocks into the ring for earliest_tone_energy."""
        k = min(len(starts), self._ring_size)
        at = self._ring_at
        first = min(k, self._ring_size - at)  # up to the end of the ring, then from its start
        for lo, hi, src in ((at, at + first, slice(len(starts) - k, len(starts) - k + first)),
                            (0, k - first, slice(len(starts) - k + first, len(starts)))):
            if hi > lo:
                self._ring_x[lo:hi], self._ring_e[lo:hi], self._ring_s[lo:hi] = spectra[src], energies[src], starts[src]
        self._ring_at = (at + k) % self._ring_size
        self._ring_count = min(self._ring_size, self._ring_count + k)

    # ---- internals ------------------------------------------------------------------------
    def _window_powers(self, parts: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Tone power of each window at each of the 8 frequencies, the unit phasor that
        de-rotates its second 10 ms half onto its first, and whether the tone's offset is
        within the tolerance; ``parts[j]`` holds the spectra of each window's j-th sub-block.

        The tone's offset from each frequency is the phase step between the window's two
        10 ms halves (precise: a strong tone in the other group leaks little into a 10 ms
        DFT), unwrapped with the mean step between its 5 ms sub-blocks (which sees up to
        ±100 Hz unambiguously). Where it is within the tolerance, the power is measured with
        the halves de-rotated by that step (the same tone, slightly off); elsewhere it is the
        plain 20 ms DFT power (a tone in a neighbouring bin stays well below)."""
        tapered = (parts[0][:, 8:16] + parts[1][:, 16:24]), (parts[2][:, 8:16] + parts[3][:, 16:24])
        parts = [p[:, :8] for p in parts]
        first_half, second_half = parts[0] + parts[1], parts[2] + parts[3]
        fine = tapered[1] * np.conj(tapered[0])
        coarse = parts[1] * np.conj(parts[0]) + parts[2] * np.conj(parts[1]) + parts[3] * np.conj(parts[2])
        fine_angle = np.angle(fine)
        wraps = np.round((2 * np.angle(coarse) - fine_angle) / (2 * np.pi))
        offset = (fine_angle + 2 * np.pi * wraps) * self._per_radian
        on_freq = np.abs(offset) <= self._tolerance
        size = np.abs(fine)
        unit = np.where(size > 0, np.conj(fine) / np.where(size > 0, size, 1.0), 1.0)
        turned = first_half + second_half * unit
        plain = first_half + second_half
        power = np.where(on_freq, turned.real**2 + turned.imag**2, plain.real**2 + plain.imag**2)
        return power * self._window_scale, unit, on_freq

    def _analyse(self, sub_x: np.ndarray, sub_e: np.ndarray, sub_s: np.ndarray, first: int) -> list[DtmfHit]:
        """Classify the windows starting at sub-blocks ``first`` … (each with SUBS_PER_WINDOW
        - 1 successors) and track presses through them."""
        n = len(sub_x) - SUBS_PER_WINDOW + 1 - first
        magnitude = np.abs(sub_x[first:, :8])
        bound = magnitude[0:n].copy()  # |sum of 4 sub-blocks| <= sum of their magnitudes
        e = sub_e[first : first + n].copy()
        for j in range(1, SUBS_PER_WINDOW):
            bound += magnitude[j : j + n]
            e += sub_e[first + j : first + j + n]
        bound = bound**2 * self._window_scale
        mean_square = e / self.window
        # Most windows (silence, speech) fail on this upper bound of the tone powers: stop there
        # unless a press is being tracked.
        br, bc = bound[:, :4].max(axis=1), bound[:, 4:].max(axis=1)
        candidate = (br >= self._min_power) & (bc >= self._min_power) & (br + bc >= self._min_ratio * mean_square)
        if not candidate.any() and self._held is None and self._run_digit is None:
            return []
        power, unit, on_freq = self._window_powers([sub_x[first + j : first + j + n] for j in range(SUBS_PER_WINDOW)])
        rows, cols = power[:, :4], power[:, 4:]
        r = np.argmax(rows, axis=1)
        c = np.argmax(cols, axis=1)
        idx = np.arange(n)
        pr, pc = rows[idx, r], cols[idx, c]
        second_r = np.sort(rows, axis=1)[:, -2]
        second_c = np.sort(cols, axis=1)[:, -2]
        ok = (
            candidate
            & (pr >= self._min_power) & (pc >= self._min_power)
            & (pr + pc >= self._min_ratio * mean_square)
            & (pc <= self._normal_twist * pr)  # column (high group) louder: normal twist
            & (pr <= self._reverse_twist * pc)  # row (low group) louder: reverse twist
            & (pr >= self._group_margin * second_r) & (pc >= self._group_margin * second_c)
            & on_freq[idx, r] & on_freq[idx, 4 + c]
        )
        if ok.any():  # no second harmonic of the column tone (an instrument's note has one)
            parts = [sub_x[first + j : first + j + n, 24:] for j in range(SUBS_PER_WINDOW)]
            turn = unit[idx, 4 + c] ** 2  # the harmonic turns twice as fast as its tone
            h = (parts[0] + parts[1])[idx, c] + (parts[2] + parts[3])[idx, c] * turn
            ok &= (h.real**2 + h.imag**2) * self._window_scale <= self._harmonic * pc
        plain = sub_x[:, :8]
        sub_power = (plain.real**2 + plain.imag**2) * self._sub_scale  # (sub-blocks, 8)
        if ok.any():  # steady: the two tones together cover the whole window
            pair = np.stack([sub_power[first + j + idx, r] + sub_power[first + j + idx, 4 + c]
                             for j in range(SUBS_PER_WINDOW)])
            ok &= pair.min(axis=0) >= self._steady * pair.max(axis=0)
        if not ok.any() and self._held is None and self._run_digit is None:
            return []
        keys = _DIGITS[r * 4 + c]
        return self._track(keys, ok, r, c, pr, pc, sub_power, sub_s, first, n)

    def _track(self, keys: np.ndarray, ok: np.ndarray, r: np.ndarray, c: np.ndarray, pr: np.ndarray,
               pc: np.ndarray, sub_power: np.ndarray, sub_s: np.ndarray, first: int, n: int) -> list[DtmfHit]:
        """Turn per-window keys into presses (see the module's note). Window i starts at
        sub-block first + i; its newest sub-block, first + i + 3, is the one the release test
        looks at."""
        hits: list[DtmfHit] = []
        for i in range(n):
            w = first + i
            if self._held is not None:
                newest = sub_power[w + SUBS_PER_WINDOW - 1]
                (hr, hc), (ppr, ppc) = self._held_bins, self._held_power
                # together, as in _onset: a 5 ms DFT of the weaker tone is swamped by leakage
                if newest[hr] + newest[hc] >= 0.1 * (ppr + ppc):
                    self._silent = 0
                else:
                    self._silent += 1
                    if self._silent >= self.release_subs:
                        self._held = None
            start = int(sub_s[w])
            if ok[i]:
                d = str(keys[i])
                if d == self._run_digit and start - self._run_last <= 2 * self.hop:
                    self._run_len += 1  # one window in between may have missed
                else:
                    self._run_digit, self._run_len, self._run_first = d, 1, start
                self._run_last = start
                if d != self._held and self._run_len >= self.min_windows:
                    hits.append(DtmfHit(self._onset(int(r[i]), 4 + int(c[i]), float(pr[i]), float(pc[i]),
                                                    sub_power, sub_s), d))
                    self._held, self._silent = d, 0
                    self._held_bins = (int(r[i]), 4 + int(c[i]))
                    self._held_power = (float(pr[i]), float(pc[i]))
            elif self._run_digit is not None and start - self._run_last > 2 * self.hop:
                self._run_digit, self._run_len = None, 0
        return hits

    def _onset(self, rb: int, cb: int, pr: float, pc: float, sub_power: np.ndarray, sub_s: np.ndarray) -> int:
        """The hit frame: the start of the earliest sub-block, the one before the run's first
        window or that window's first, in which the two tones show at 1/100 of their
        power (together: a 5 ms DFT of the weaker one is swamped by the stronger one's leakage),
        minus half a sub-block (what a 1 ms ramp and a few samples of tone can hide there: the
        DFT of a few samples of a sine is not yet proportional to their number)."""
        at = max(0, int((self._run_first - sub_s[0]) // self.hop))
        for j in range(max(0, at - 1), at + 1):
            if sub_power[j, rb] + sub_power[j, cb] >= (pr + pc) / 100:
                at = j
                break
        return max(self._origin, int(sub_s[at]) - self.hop // 2)
