#!/usr/bin/env python3
"""Generate the bundled demo call: ``resources/demo/demo-call.flac`` and its script
``resources/demo/demo-call.json``.

    .venv/bin/python scripts/make_demo_audio.py [--out resources/demo]

A ~45 s two-sided call on the Council Tax line (01443 425002), spoken by espeak-ng: the agent
(left channel, en-gb, female variant) and the caller (right channel, West Midlands English,
male, band-limited to 300-3400 Hz like a phone line). The caller keys a 16-digit card number
as real DTMF key tones (numpy, ITU-T Q.23 frequencies) inside the payment stretch; the agent
then says "I'll transfer you to Housing now" and the call is transferred; the caller's first
words to Housing follow, which must not be recorded.

The script (the ``callrec record --script`` format, so
``callrec record --source resources/demo/demo-call.flac --script resources/demo/demo-call.json``
plays it headless) holds: call_started on 01443 425002 with the caller's number,
payment_started 0.5 s before the first key tone, payment_ended 0.6 s after the last one,
transferred to "Housing" 0.4 s after the agent's sentence.

Generated once and committed (16 kHz stereo FLAC, ~1 MB). Regenerate after changing the
dialogue below; the output is deterministic for a given espeak-ng version (1.51 here).
Needs espeak-ng (``apt-get install -y --no-install-recommends espeak-ng``) and the project
venv (numpy, soundfile, PyAV for the 22.05 → 16 kHz resampling).
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
RATE = 16000
LINE = "01443 425002"
CALLER_NUMBER = "07700 900123"  # an Ofcom drama number: never a real subscriber
DEPARTMENT = "Housing"
# A published test card number (Stripe's Visa debit test card): Luhn-valid, never a real card.
CARD_DIGITS = "4000056655665556"

AGENT_VOICE = ["-v", "en-gb+f3", "-p", "55", "-s", "172"]
CALLER_VOICE = ["-v", "en-gb-x-gbcwmd", "-p", "35", "-s", "165"]

# (who, text); the markers "<payment>" and "<transfer>" place the card tones and the transfer.
DIALOGUE: list[tuple[str, str]] = [
    ("agent", "Good morning, Council Tax, Business Rates and Benefits. You're speaking to Sam. How can I help?"),
    ("caller", "Hello. I'd like to pay my council tax bill, please."),
    ("agent", "Of course. The balance is one hundred and twelve pounds. When you're ready, "
              "key in your card number on your phone keypad."),
    ("caller", "Okay, keying it in now."),
    ("<payment>", ""),
    ("agent", "Thank you. That payment has gone through, and your receipt is on its way."),
    ("caller", "Lovely. While I've got you, the boiler in my council flat has broken."),
    ("agent", "Sorry to hear that. Repairs are dealt with by Housing. I'll transfer you to Housing now."),
    ("<transfer>", ""),
    ("caller", "Hello, Housing? It's about my boiler."),
]

GAP_S = 0.4  # between turns
LEAD_IN_S = 0.6
TAIL_S = 1.0
DTMF_TONE_S = 0.12  # key press: Q.24 needs >= 40 ms; a keypad sends ~100 ms
DTMF_GAP_S = 0.13
DTMF_GROUP_GAP_S = 0.4  # people key the number in groups of four
DTMF_AMPLITUDE = 0.22  # each of the two tones: about -16 dBFS RMS
PAYMENT_LEAD_S = 0.5  # payment_started this long before the first tone
PAYMENT_TAIL_S = 0.6  # payment_ended this long after the last tone
TRANSFER_AFTER_S = 0.4  # transferred this long after the agent's sentence ends

DTMF_FREQS = {
    "1": (697, 1209), "2": (697, 1336), "3": (697, 1477),
    "4": (770, 1209), "5": (770, 1336), "6": (770, 1477),
    "7": (852, 1209), "8": (852, 1336), "9": (852, 1477),
    "*": (941, 1209), "0": (941, 1336), "#": (941, 1477),
}


def need_espeak() -> str:
    exe = shutil.which("espeak-ng")
    if exe is None:
        raise SystemExit("make_demo_audio: espeak-ng not found. Install it with:\n"
                         "  sudo apt-get update && sudo apt-get install -y --no-install-recommends espeak-ng")
    return exe


def speak(exe: str, voice: list[str], text: str, tmp: Path) -> np.ndarray:
    """espeak-ng's WAV (22.05 kHz mono) resampled to 16 kHz float32 with PyAV (libswresample)."""
    import av
    import soundfile as sf

    wav = tmp / "say.wav"
    subprocess.run([exe, *voice, "-w", str(wav), text], check=True)
    data, rate = sf.read(wav, dtype="float32", always_2d=True)
    data = data[:, 0]
    if rate != RATE:
        resampler = av.AudioResampler(format="flt", layout="mono", rate=RATE)
        frame = av.AudioFrame.from_ndarray(data.reshape(1, -1), format="flt", layout="mono")
        frame.sample_rate = rate
        parts = [f.to_ndarray().reshape(-1) for f in resampler.resample(frame)]
        parts += [f.to_ndarray().reshape(-1) for f in resampler.resample(None)]
        data = np.concatenate(parts)
    # trim espeak's leading/trailing silence so the gaps are ours
    loud = np.flatnonzero(np.abs(data) > 0.01)
    if len(loud):
        data = data[max(0, loud[0] - 160): loud[-1] + 320]
    return (data / max(1e-6, float(np.abs(data).max())) * 0.5).astype(np.float32)


def phone_band(x: np.ndarray) -> np.ndarray:
    """The caller comes over a phone line: 300-3400 Hz (a brick-wall FFT filter is enough here)."""
    spectrum = np.fft.rfft(x)
    freqs = np.fft.rfftfreq(len(x), 1 / RATE)
    spectrum[(freqs < 300) | (freqs > 3400)] = 0
    return np.fft.irfft(spectrum, len(x)).astype(np.float32)


def room_tone(frames: int) -> np.ndarray:
    """A quiet low rumble on both channels, about -52 dBFS: a live headset and a phone line are
    never digitally silent, and the window warns "no signal" below -60 dBFS. Low-passed
    (< 250 Hz) so FLAC's predictor keeps it cheap."""
    rng = np.random.default_rng(2024)
    noise = rng.standard_normal((frames, 2))
    spectrum = np.fft.rfft(noise, axis=0)
    spectrum[np.fft.rfftfreq(frames, 1 / RATE) > 250] = 0
    rumble = np.fft.irfft(spectrum, frames, axis=0)
    rumble *= 10 ** (-52 / 20) / np.sqrt(np.mean(rumble**2, axis=0))
    return rumble.astype(np.float32)


def dtmf_digit(digit: str) -> np.ndarray:
    lo, hi = DTMF_FREQS[digit]
    t = np.arange(round(DTMF_TONE_S * RATE)) / RATE
    tone = DTMF_AMPLITUDE * (np.sin(2 * np.pi * lo * t) + np.sin(2 * np.pi * hi * t))
    ramp = np.minimum(1.0, np.minimum(np.arange(len(t)), np.arange(len(t))[::-1]) / 40)  # 2.5 ms, no clicks
    return (tone * ramp).astype(np.float32)


def build(tmp: Path) -> tuple[np.ndarray, list[dict], dict]:
    exe = need_espeak()
    left: list[tuple[int, np.ndarray]] = []
    right: list[tuple[int, np.ndarray]] = []
    events: list[dict] = [{"at": 0.0, "event": "call_started", "line": LINE, "caller": CALLER_NUMBER}]
    info: dict = {}
    t = LEAD_IN_S
    for who, text in DIALOGUE:
        if who == "<payment>":
            start = t
            events.append({"at": round(start - PAYMENT_LEAD_S, 3), "event": "payment_started"})
            for i, digit in enumerate(CARD_DIGITS):
                if i and i % 4 == 0:
                    t += DTMF_GROUP_GAP_S - DTMF_GAP_S
                right.append((round(t * RATE), dtmf_digit(digit)))
                t += DTMF_TONE_S + DTMF_GAP_S
            last_tone_end = t - DTMF_GAP_S
            events.append({"at": round(last_tone_end + PAYMENT_TAIL_S, 3), "event": "payment_ended"})
            info["card_tones"] = [round(start, 3), round(last_tone_end, 3)]
            t = last_tone_end + PAYMENT_TAIL_S + GAP_S
            continue
        if who == "<transfer>":
            at = t - GAP_S + TRANSFER_AFTER_S
            events.append({"at": round(at, 3), "event": "transferred", "to": DEPARTMENT})
            info["transfer"] = round(at, 3)
            t = at + 0.8
            continue
        voice = AGENT_VOICE if who == "agent" else CALLER_VOICE
        audio = speak(exe, voice, text, tmp)
        (left if who == "agent" else right).append((round(t * RATE), audio))
        t += len(audio) / RATE + GAP_S
    total = round((t - GAP_S + TAIL_S) * RATE)
    out = np.zeros((total, 2), dtype=np.float32)
    for channel, parts in ((0, left), (1, right)):
        for start, audio in parts:
            out[start:start + len(audio), channel] += audio
    speech_only = out[:, 1].copy()
    tones = np.zeros(total, dtype=np.float32)
    for start, audio in right:
        if len(audio) == round(DTMF_TONE_S * RATE):
            tones[start:start + len(audio)] = audio
            speech_only[start:start + len(audio)] -= audio
    out[:, 1] = phone_band(speech_only) + tones
    out += room_tone(total)
    np.clip(out, -1, 1, out=out)
    info["seconds"] = round(total / RATE, 3)
    return out, events, info


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", type=Path, default=REPO / "resources" / "demo")
    args = p.parse_args()
    import soundfile as sf

    sys.path.insert(0, str(REPO))
    from callrec_desktop.core.script import parse_script

    with tempfile.TemporaryDirectory(prefix="callrec-demo-audio-") as tmp:
        audio, events, info = build(Path(tmp))
    text = json.dumps(events, indent=1) + "\n"
    parse_script(text, "demo-call.json")  # the script must be one `callrec record` accepts
    args.out.mkdir(parents=True, exist_ok=True)
    flac = args.out / "demo-call.flac"
    sf.write(flac, audio, RATE, format="FLAC", subtype="PCM_16", compression_level=1.0)
    (args.out / "demo-call.json").write_text(text, encoding="utf-8")
    print(f"wrote {flac} ({flac.stat().st_size / 1e6:.2f} MB, {info['seconds']} s, stereo {RATE} Hz) and "
          f"{args.out / 'demo-call.json'}; card tones {info['card_tones'][0]}-{info['card_tones'][1]} s, "
          f"transfer at {info['transfer']} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
