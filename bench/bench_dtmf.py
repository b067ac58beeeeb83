"""DTMF detector: ITU-T Q.24 acceptance beside multimon-ng and spandsp's dtmf_rx, talk-off, CPU.

    .venv/bin/python bench/bench_dtmf.py                       # everything (~10 min on 2 cores)
    .venv/bin/python bench/bench_dtmf.py --skip-talk-off       # the acceptance table only
    .venv/bin/python bench/bench_dtmf.py --talk-off-hours 3 --digits 640
    .venv/bin/python bench/bench_dtmf.py --cpu-only --cpu-minutes 10

Needs (Debian): multimon-ng, libspandsp-dev and gcc (dtmf_rx is built by
tests/support/dtmf_reference.py), ffmpeg (with libgsm and libopus), espeak-ng, and for the
talk-off corpus asterisk-core-sounds-en-wav, asterisk-core-sounds-fr-wav and
asterisk-moh-opsound-wav:

    apt-get install -y --no-install-recommends multimon-ng libspandsp-dev gcc ffmpeg espeak-ng \\
        asterisk-core-sounds-en-wav asterisk-core-sounds-fr-wav asterisk-moh-opsound-wav

It exits with a message naming what is missing.

1. **Acceptance.** For each condition, ``--digits`` key presses (the 16 keys in random order)
   are generated with tests/support/dtmf_reference.py at 8000 Hz (the telephone channel): tones
   of 50 ms with 1 ms ramps unless the condition is about duration, gaps of 60-90 ms, -10 dBm0
   per tone unless the condition is about level (0 dBm0 = 3.14 dB below a full-scale sine,
   G.711 μ-law). Noise conditions add white noise over 0-4 kHz at the stated SNR (to the
   tones' power while they sound); codec conditions go through ffmpeg (G.711 μ-law, GSM 06.10
   full rate via libgsm, Opus at 10 kbit/s via libopus) and back. The same audio goes to:
   ours at 16000 Hz (the recorder's default rate: resampled by ffmpeg, as a softphone's audio
   arrives), ours at 8000 Hz, multimon-ng (at 22050 Hz, its rate) and dtmf_rx (8000 Hz).
   Each cell: digits found in order (% of those keyed; a longest common subsequence, so a
   wrong or extra digit does not count) and false digits (reported digits beyond those).
   The target column is Q.24's; ``ok`` marks our 16 kHz figure meeting it.
2. **Talk-off.** Hours of speech and music with no key tones: Debian's asterisk prompts
   (a recorded English and a recorded French voice), its music on hold, and espeak-ng in
   many languages (Welsh among them) and voice variants at three pitches, filling up to
   ``--talk-off-hours``. Each decoder's reported digits, per source and in total, as false
   triggers per hour with the one-sided 95 % upper bound (Poisson; 3.0 / hours for zero).
3. **CPU.** Our detector fed the caller's channel of stereo 16 kHz blocks of 20 ms (a
   device callback) and of 250 ms (the recorder's batches, what its block observers get)
   over ``--cpu-minutes`` of the talk-off audio, against a bare numpy rfft of each of the
   same blocks measured in the same run: CPU seconds per hour of audio, and the ratio.

Prints tables (markdown). Asserts nothing.
"""

from __future__ import annotations

import argparse
import glob
import math
import shutil
import sys
import time
import wave
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common  # noqa: E402,F401  (puts the project root on sys.path)

from callrec_desktop.audio.dtmf import DtmfDetector  # noqa: E402
from callrec_desktop.audio.sources import AudioBlock  # noqa: E402
from tests.support.dtmf_reference import (  # noqa: E402
    ReferenceMissing,
    codec_round_trip,
    espeak_speech,
    keyed_digits,
    multimon_digits,
    resample,
    spandsp_binary,
    spandsp_digits,
    with_white_noise,
)

TEL = 8000  # the telephone channel's rate: conditions are generated here
REC = 16000  # the recorder's default rate
KEYS = "123A456B789C*0#D"
ASTERISK = {
    "asterisk prompts, en (recorded voice)": ("asterisk-core-sounds-en-wav", "/usr/share/asterisk/sounds/en*/**/*.wav"),
    "asterisk prompts, fr (recorded voice)": ("asterisk-core-sounds-fr-wav", "/usr/share/asterisk/sounds/fr*/**/*.wav"),
    "asterisk music on hold": ("asterisk-moh-opsound-wav", "/usr/share/asterisk/moh/*.wav"),
}

# (label, Q.24 target, generator arguments, post-processing)
CONDITIONS: list[tuple[str, str, dict, tuple]] = [
    ("40 ms tones, 1 ms ramps", ">= 99 %", {"tone_seconds": 0.040, "gap_seconds": 0.05}, ()),
    ("30 ms tones", "(grey zone)", {"tone_seconds": 0.030, "gap_seconds": 0.05}, ()),
    ("25 ms tones", "(grey zone)", {"tone_seconds": 0.025, "gap_seconds": 0.05}, ()),
    ("20 ms tones", "0 %", {"tone_seconds": 0.020, "gap_seconds": 0.05}, ()),
    ("offset +1.5 %", ">= 99 %", {"offset": 0.015}, ()),
    ("offset -1.5 %", ">= 99 %", {"offset": -0.015}, ()),
    ("offset +2.5 %", "(grey zone)", {"offset": 0.025}, ()),
    ("offset +3.5 %", "0 %", {"offset": 0.035}, ()),
    ("offset -3.5 %", "0 %", {"offset": -0.035}, ()),
    ("twist: high group +4 dB", ">= 99 %", {"twist_db": 4.0}, ()),
    ("twist: high group +6 dB", "(beyond)", {"twist_db": 6.0}, ()),
    ("twist: low group +6 dB", ">= 99 %", {"twist_db": -6.0}, ()),
    ("twist: low group +8 dB", ">= 99 %", {"twist_db": -8.0}, ()),
    ("twist: low group +10 dB", "(beyond)", {"twist_db": -10.0}, ()),
    ("level -3 dBm0", ">= 99 %", {"level_dbm0": -3.0}, ()),
    ("level -20 dBm0", ">= 99 %", {"level_dbm0": -20.0}, ()),
    ("level -30 dBm0", ">= 99 %", {"level_dbm0": -30.0}, ()),
    ("level -36 dBm0", ">= 99 %", {"level_dbm0": -36.0}, ()),
    ("level -40 dBm0", "(grey zone)", {"level_dbm0": -40.0}, ()),
    ("level -46 dBm0", "0 %", {"level_dbm0": -46.0}, ()),
    ("white noise, 10 dB SNR, -20 dBm0", ">= 99 %", {"level_dbm0": -20.0}, ("noise", 10.0)),
    ("white noise, 6 dB SNR, -20 dBm0", "(beyond)", {"level_dbm0": -20.0}, ("noise", 6.0)),
    ("G.711 μ-law, -20 dBm0", ">= 95 %", {"level_dbm0": -20.0}, ("codec", "g711-ulaw")),
    ("GSM full rate, -20 dBm0", ">= 95 %", {"level_dbm0": -20.0}, ("codec", "gsm-fr")),
    ("Opus 10 kbit/s, -20 dBm0", ">= 95 %", {"level_dbm0": -20.0}, ("codec", "opus-10k")),
    ("GSM full rate, 40 ms tones, -20 dBm0", "(harder)", {"level_dbm0": -20.0, "tone_seconds": 0.040,
                                                          "gap_seconds": 0.05}, ("codec", "gsm-fr")),
    ("Opus 10 kbit/s, 40 ms tones, -20 dBm0", "(harder)", {"level_dbm0": -20.0, "tone_seconds": 0.040,
                                                           "gap_seconds": 0.05}, ("codec", "opus-10k")),
]

# espeak-ng voices for the talk-off corpus: (voice, text). Texts are a contact centre's talk
# (addresses, sums, dates, reference and card numbers read out); languages spoken in UK council
# areas, Welsh first. Voices without their own text read the English one in their phonology.
ENGLISH = ("Good morning, you're through to the council. Can I take the first line of your address and "
           "your postcode? That's forty nine Heol y Nant, Cardiff, CF14 2AB. Your council tax for this year "
           "is one thousand, six hundred and twelve pounds, in ten monthly instalments of one hundred and "
           "sixty one pounds twenty. The card number is four nine two nine, one one eight three, seven seven "
           "zero two, five five six one, expiry twelve twenty seven, and the security code is seven three seven. "
           "Thank you, that payment has gone through; your reference is M K eight four four one nine.")
TEXTS = {
    "cy": ("Bore da, croeso i'r cyngor. Sut alla i eich helpu chi heddiw? Hoffwn i dalu treth y cyngor, os "
           "gwelwch yn dda. Beth yw rhif eich cyfrif chi? Pedwar, naw, dau, naw, un, un, wyth, tri. A'ch cod "
           "post? C F un pedwar, dau A B. Diolch yn fawr iawn. Mae'r taliad o gant chwe deg un punt wedi mynd "
           "drwodd. Hwyl fawr, a chofiwch fod y casgliadau gwastraff yn newid ddydd Llun nesaf."),
    "fr-fr": ("Bonjour, je voudrais payer ma facture. Le numéro de client est trois cent quarante-deux, "
              "sept cent quatre-vingt-dix-neuf. La somme est de quatre-vingt-dix-neuf euros et cinquante "
              "centimes. Merci beaucoup, au revoir."),
    "de": ("Guten Tag, ich möchte meine Rechnung bezahlen. Die Kartennummer beginnt mit vier neun zwei neun, "
           "das Ablaufdatum ist Dezember siebenundzwanzig. Vielen Dank und auf Wiederhören."),
    "es": ("Buenas tardes, quiero pagar el impuesto municipal. El importe es ciento veinte euros. Mi número "
           "de referencia es cuatro, nueve, dos, nueve. Muchas gracias, adiós."),
    "pl": ("Dzień dobry, chciałbym zapłacić podatek od nieruchomości. Mój numer konta to dwa siedem osiem "
           "cztery, a kod pocztowy to C F czternaście. Dziękuję bardzo, do widzenia."),
    "pt": ("Bom dia, gostaria de pagar a minha conta. O número do cartão começa com quatro nove dois nove. "
           "Muito obrigado, tenha um bom dia."),
    "it": ("Buongiorno, vorrei pagare la tassa sui rifiuti. Il codice è quattro nove due nove, uno uno otto "
           "tre. Grazie mille, arrivederci."),
    "ro": ("Bună ziua, aș dori să plătesc taxa locală. Numărul de referință este patru nouă doi nouă. "
           "Mulțumesc frumos, la revedere."),
    "lt": ("Laba diena, norėčiau sumokėti mokestį. Mano sąskaitos numeris yra keturi devyni du devyni. Ačiū."),
    "tr": ("Merhaba, belediye vergimi ödemek istiyorum. Referans numaram dört dokuz iki dokuz. Teşekkürler."),
    "ur": "السلام علیکم، میں اپنا کونسل ٹیکس ادا کرنا چاہتا ہوں۔ میرا حوالہ نمبر چار نو دو نو ہے۔ شکریہ۔",
    "pa": "ਸਤ ਸ੍ਰੀ ਅਕਾਲ, ਮੈਂ ਆਪਣਾ ਕੌਂਸਲ ਟੈਕਸ ਭਰਨਾ ਚਾਹੁੰਦਾ ਹਾਂ। ਮੇਰਾ ਨੰਬਰ ਚਾਰ ਨੌਂ ਦੋ ਨੌਂ ਹੈ। ਧੰਨਵਾਦ।",
    "bn": "নমস্কার, আমি আমার কাউন্সিল ট্যাক্স দিতে চাই। আমার রেফারেন্স নম্বর চার নয় দুই নয়। ধন্যবাদ।",
    "ar": "مرحبا، أريد أن أدفع ضريبة المجلس. رقم المرجع أربعة تسعة اثنان تسعة. شكرا جزيلا.",
    "cmn": "你好，我想缴纳市政税。我的参考号码是四九二九，一一八三。谢谢，再见。",
    "gd": "Madainn mhath, bu toil leam cìs na comhairle a phàigheadh. Tapadh leibh.",
    "ga": "Dia duit, ba mhaith liom an cháin a íoc. Go raibh míle maith agat.",
    "so": "Subax wanaagsan, waxaan rabaa inaan bixiyo canshuurta. Mahadsanid.",
}
VOICES = ["en-gb", "cy", "en-us", "en-gb-scotland", "en-gb-x-rp", "en-gb-x-gbcwmd", "fr-fr", "de", "es", "pl",
          "pt", "it", "ro", "lt", "tr", "ur", "pa", "bn", "ar", "cmn", "gd", "ga", "hi", "so", "sk", "hu", "el", "nl"]
VARIANTS = ["", "+m1", "+f1", "+m3", "+f2", "+m5", "+f4", "+m7", "+f5", "+klatt", "+m2", "+f3"]
PITCHES = (25, 50, 80)


def missing_requirements(talk_off: bool) -> list[str]:
    """What the bench cannot find, as install hints (empty: all there)."""
    out = []
    for exe, pkg in (("multimon-ng", "multimon-ng"), ("ffmpeg", "ffmpeg"), ("espeak-ng", "espeak-ng")):
        if shutil.which(exe) is None:
            out.append(f"{exe} (apt-get install {pkg})")
    try:
        spandsp_binary()
    except ReferenceMissing as exc:
        out.append(f"spandsp dtmf_rx ({exc})")
    if talk_off:
        for pkg, pattern in ASTERISK.values():
            if not glob.glob(pattern, recursive=True):
                out.append(f"{pattern} (apt-get install {pkg})")
    return out


# ---- decoders ---------------------------------------------------------------------------------


def ours(x: np.ndarray, rate: int) -> str:
    """Our detector on mono float audio ``x``, fed in 20 ms blocks as the recorder does."""
    det = DtmfDetector(rate, 0)
    blk = rate // 50
    data = np.ascontiguousarray(np.asarray(x, dtype=np.float32)[:, None])
    hits = []
    for i in range(0, len(data), blk):
        hits += det.feed(AudioBlock(i, data[i : i + blk]))
    return "".join(h.digit for h in hits)


def decoders(x8: np.ndarray, x16: np.ndarray) -> dict[str, str]:
    return {
        "ours 16 kHz": ours(x16, REC),
        "ours 8 kHz": ours(x8, TEL),
        "multimon-ng": multimon_digits(x8, TEL),
        "dtmf_rx": spandsp_digits(x8, TEL),
    }


def common_subsequence(a: str, b: str) -> int:
    """Length of the longest common subsequence of ``a`` and ``b`` (dynamic programming; difflib's
    matching blocks undercount sparse matches)."""
    prev = [0] * (len(b) + 1)
    for ca in a:
        cur = [0]
        for j, cb in enumerate(b):
            cur.append(prev[j] + 1 if ca == cb else max(prev[j + 1], cur[j]))
        prev = cur
    return prev[-1]


def found_and_false(sent: str, got: str) -> tuple[float, int]:
    same = common_subsequence(sent, got)
    return 100.0 * same / len(sent), len(got) - same


# ---- 1. acceptance ----------------------------------------------------------------------------


def acceptance(n_digits: int) -> None:
    rng = np.random.default_rng(24)
    sent = "".join(rng.permutation(list(KEYS * (n_digits // 16 + 1)))[:n_digits])
    names = ["ours 16 kHz", "ours 8 kHz", "multimon-ng", "dtmf_rx"]
    print(f"\n### Q.24 acceptance: {n_digits} digits per condition (found % / false digits)\n")
    print("| condition | Q.24 target | " + " | ".join(names) + " | ours 16 kHz meets it |")
    print("|---" * (len(names) + 3) + "|")
    for label, target, kw, post in CONDITIONS:
        x8, _ = keyed_digits(sent, TEL, seed=7, **kw)
        if post and post[0] == "noise":
            x8 = with_white_noise(x8, post[1], seed=3)
        elif post and post[0] == "codec":
            x8 = codec_round_trip(x8, TEL, post[1])
        x16 = resample(x8, TEL, REC)
        got = decoders(x8, x16)
        cells = []
        for name in names:
            share, false = found_and_false(sent, got[name])
            cells.append(f"{share:.1f} % / {false}")
        share16, false16 = found_and_false(sent, got["ours 16 kHz"])
        if target.startswith(">="):
            verdict = "ok" if share16 >= float(target.split()[1]) and false16 == 0 else "NO"
        elif target == "0 %":
            verdict = "ok" if got["ours 16 kHz"] == "" else "NO"
        else:
            verdict = "-"
        print(f"| {label} | {target} | " + " | ".join(cells) + f" | {verdict} |", flush=True)


# ---- 2. talk-off ------------------------------------------------------------------------------


def _wav(path: str) -> np.ndarray:
    with wave.open(path) as w:
        if w.getsampwidth() != 2:
            raise ValueError(f"{path}: expected 16-bit PCM, got {8 * w.getsampwidth()}-bit")
        pcm = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2").astype(np.float64) / 32768
        if w.getnchannels() > 1:
            pcm = pcm.reshape(-1, w.getnchannels())[:, 0]
        return resample(pcm, w.getframerate(), TEL) if w.getframerate() != TEL else pcm


def asterisk_segments(pattern: str, segment_seconds: float = 300.0):
    """The corpus's files (sorted) joined with 0.1 s of silence, in segments of about
    ``segment_seconds`` at 8000 Hz."""
    parts, size = [], 0
    gap = np.zeros(TEL // 10)
    for path in sorted(glob.glob(pattern, recursive=True)):
        x = _wav(path)
        parts += [x, gap]
        size += len(x) + len(gap)
        if size >= segment_seconds * TEL:
            yield np.concatenate(parts)
            parts, size = [], 0
    if parts:
        yield np.concatenate(parts)


def espeak_segments(seconds: float, segment_seconds: float = 300.0):
    """espeak-ng speech, voice by voice (each variant and pitch in turn), ``seconds`` in all,
    in segments at 8000 Hz; also yields the voices used (as the last item, a list)."""
    used, parts, size, total = [], [], 0, 0.0
    gap = np.zeros(TEL // 5)
    combos = [(v, var, p) for var in VARIANTS for v in VOICES for p in PITCHES]
    for voice, variant, pitch in combos:
        if total >= seconds:
            break
        text = TEXTS.get(voice.split("-")[0] if voice not in TEXTS else voice, ENGLISH)
        try:
            x = espeak_speech(text, voice + variant, TEL, pitch=pitch, speed=150 + 10 * (pitch % 3))
        except ReferenceMissing:
            continue  # a voice this espeak-ng build lacks
        used.append(voice + variant)
        x = 0.7 * x / max(float(np.abs(x).max()), 1e-9)
        parts += [x, gap]
        size += len(x) + len(gap)
        total += (len(x) + len(gap)) / TEL
        if size >= segment_seconds * TEL:
            yield np.concatenate(parts)
            parts, size = [], 0
    if parts:
        yield np.concatenate(parts)
    yield sorted(set(used))


def poisson_upper_95(k: int) -> float:
    """One-sided 95 % upper bound on the mean of a Poisson count ``k`` (3.0 for k = 0)."""
    lo, hi = float(k), float(k) + 10.0 + 5 * math.sqrt(k + 1)
    for _ in range(100):
        mid = (lo + hi) / 2
        cdf = sum(math.exp(-mid) * mid**i / math.factorial(i) for i in range(k + 1))
        lo, hi = (mid, hi) if cdf > 0.05 else (lo, mid)
    return hi


def talk_off(hours: float, cpu_minutes: float) -> None:
    names = ["ours 16 kHz", "ours 8 kHz", "multimon-ng", "dtmf_rx"]
    rows = []  # (source, seconds, {decoder: digits})
    cpu_audio: list[np.ndarray] = []
    for source, (_, pattern) in ASTERISK.items():
        seconds, found = 0.0, dict.fromkeys(names, "")
        for seg in asterisk_segments(pattern):
            got = decoders(seg, resample(seg, TEL, REC))
            for k in names:
                found[k] += got[k]
            seconds += len(seg) / TEL
            if sum(len(a) for a in cpu_audio) < cpu_minutes * 60 * TEL:
                cpu_audio.append(seg)
        rows.append((source, seconds, found))
        print(f"  {source}: {seconds / 60:.1f} min, {found}", file=sys.stderr, flush=True)
    rest = max(0.0, hours * 3600 - sum(r[1] for r in rows))
    seconds, found, voices = 0.0, dict.fromkeys(names, ""), []
    for seg in espeak_segments(rest):
        if isinstance(seg, list):
            voices = seg
            break
        got = decoders(seg, resample(seg, TEL, REC))
        for k in names:
            found[k] += got[k]
        seconds += len(seg) / TEL
        print(f"  espeak-ng: {seconds / 60:.1f} min so far, {found}", file=sys.stderr, flush=True)
    rows.append((f"espeak-ng, {len(voices)} voices x 3 pitches", seconds, found))

    total = sum(r[1] for r in rows) / 3600
    print(f"\n### Talk-off: {total:.2f} h of speech and music without key tones (false digits)\n")
    print("| source | hours | " + " | ".join(names) + " |")
    print("|---" * (len(names) + 2) + "|")
    for source, secs, found in rows:
        print(f"| {source} | {secs / 3600:.2f} | " + " | ".join(str(len(found[k])) for k in names) + " |")
    print("| **per hour (95 % upper bound)** | " + f"{total:.2f} | " + " | ".join(
        f"{sum(len(r[2][k]) for r in rows) / total:.2f} ({poisson_upper_95(sum(len(r[2][k]) for r in rows)) / total:.2f})"
        for k in names) + " |")
    print(f"\nespeak-ng voices: {', '.join(voices)}")
    cpu(np.concatenate(cpu_audio)[: int(cpu_minutes * 60 * TEL)])


# ---- 3. CPU -----------------------------------------------------------------------------------


def cpu(x8: np.ndarray) -> None:
    """CPU of the detector on the caller's channel of stereo 16 kHz blocks, for 20 ms blocks
    (a device's callback size) and for the recorder's 250 ms batches (what its block
    observers get: Recorder.BATCH_SECONDS), each against a bare rfft of the same blocks."""
    from callrec_desktop.recorder import Recorder

    x16 = resample(x8, TEL, REC).astype(np.float32)
    stereo = np.zeros((len(x16), 2), dtype=np.float32)
    stereo[:, 1] = x16  # the caller's channel, as the recorder's blocks carry it
    hours = len(x16) / REC / 3600
    print(f"\n### CPU: {len(x16) / REC / 60:.1f} min of the talk-off audio, 16 kHz stereo, best of 3\n")
    print("| blocks | what | CPU s per hour of audio | % of one core | µs per block |")
    print("|---|---|---|---|---|")
    for label, seconds in (("20 ms", 0.02), (f"{Recorder.BATCH_SECONDS * 1000:.0f} ms (recorder batch)",
                                             Recorder.BATCH_SECONDS)):
        blk = round(seconds * REC)
        blocks = [AudioBlock(i, stereo[i : i + blk]) for i in range(0, len(stereo), blk)]

        def bare(blocks=blocks) -> None:
            for b in blocks:
                np.fft.rfft(b.data[:, 1])

        def detector(blocks=blocks) -> None:
            det = DtmfDetector(REC, 1)
            for b in blocks:
                det.feed(b)

        best = {}
        for name, fn in (("bare numpy rfft per block", bare), ("DtmfDetector.feed", detector)):
            runs = []
            for _ in range(3):
                t0 = time.process_time()
                fn()
                runs.append(time.process_time() - t0)
            best[name] = min(runs)
            secs = best[name]
            print(f"| {label} | {name} | {secs / hours:.1f} | {100 * secs / (hours * 3600):.3f} | "
                  f"{1e6 * secs / len(blocks):.1f} |", flush=True)
        print(f"| {label} | ratio detector / bare rfft | {best['DtmfDetector.feed'] / best['bare numpy rfft per block']:.1f} | | |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--digits", type=int, default=320, help="key presses per acceptance condition")
    ap.add_argument("--talk-off-hours", type=float, default=2.5, help="hours of talk-off audio in all")
    ap.add_argument("--cpu-minutes", type=float, default=20.0, help="minutes of audio for the CPU figure")
    ap.add_argument("--skip-talk-off", action="store_true", help="only the acceptance table")
    ap.add_argument("--cpu-only", action="store_true", help="only the CPU figure (on the asterisk prompts)")
    args = ap.parse_args()
    missing = missing_requirements(talk_off=not args.skip_talk_off)
    if missing:
        raise SystemExit("bench_dtmf.py needs:\n  " + "\n  ".join(missing))
    t0 = time.monotonic()
    if args.cpu_only:
        audio, size = [], 0
        for seg in asterisk_segments(next(iter(ASTERISK.values()))[1]):
            audio.append(seg)
            size += len(seg)
            if size >= args.cpu_minutes * 60 * TEL:
                break
        cpu(np.concatenate(audio)[: int(args.cpu_minutes * 60 * TEL)])
    else:
        acceptance(args.digits)
        if not args.skip_talk_off:
            talk_off(args.talk_off_hours, args.cpu_minutes)
    print(f"\n(wall {time.monotonic() - t0:.0f} s)")


if __name__ == "__main__":
    main()
