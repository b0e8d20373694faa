#!/usr/bin/env python3
"""Scores what a listener heard against the speech that was sent, with ITU-T P.862 (PESQ).

Usage: pesq_score.py REF.wav DEG.wav [--from 1.5] [--to 10.5]

Both WAVs are mono 16-bit at one rate: 8 kHz is scored narrowband (MOS-LQO), 16 kHz
wideband. The recording is aligned to the reference first (50 ms log-energy envelopes at the
best lag, then sample cross-correlation), and only the reference's [from, to) seconds are
scored, so join tones over the first words do not count. Delay slips are found by aligning
0.5 s blocks of speech (no pause in them) on their own: a block whose best lag differs by
1 ms or more from the block of speech right before it is a slip. Prints one JSON line: mos, lag_ms, slips, slip_at (seconds) and
block_lags_ms.
"""
import argparse
import json
import wave

import numpy as np
from pesq import pesq

ENVELOPE = 0.05  # seconds per envelope frame
BLOCK = 0.5  # seconds per slip-detection block
BLOCK_SEARCH = 0.04  # how far a block's lag may stray from the global one (seconds)


def read(path):
    with wave.open(path, "rb") as w:
        assert w.getnchannels() == 1 and w.getsampwidth() == 2, path
        rate = w.getframerate()
        pcm = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2").astype(np.float64)
    return rate, pcm


def envelope(x, n):
    frames = len(x) // n
    e = (x[: frames * n].reshape(frames, n) ** 2).sum(axis=1)
    e = np.log10(e + 1.0)
    return e - e.mean()


def coarse_lag(ref, deg, rate):
    """Lag (samples, deg behind ref) of the best envelope match."""
    n = int(rate * ENVELOPE)
    er, ed = envelope(ref, n), envelope(deg, n)
    if len(ed) < len(er):
        ed = np.concatenate([ed, np.zeros(len(er) - len(ed))])
    corr = np.correlate(ed, er, mode="valid")
    return int(np.argmax(corr)) * n


def fine_lag(ref, deg, start, end, guess, span):
    """Sample lag near `guess` that best matches ref[start:end] inside deg."""
    seg = ref[start:end]
    best, best_lag = None, guess
    for lag in range(max(guess - span, -start), guess + span + 1):
        a, b = start + lag, end + lag
        if b > len(deg):
            break
        c = float(np.dot(seg, deg[a:b]))
        if best is None or c > best:
            best, best_lag = c, lag
    return best_lag


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("ref")
    ap.add_argument("deg")
    ap.add_argument("--from", dest="start", type=float, default=1.5)
    ap.add_argument("--to", dest="end", type=float, default=10.5)
    args = ap.parse_args()
    rate, ref = read(args.ref)
    deg_rate, deg = read(args.deg)
    assert rate == deg_rate and rate in (8000, 16000), (rate, deg_rate)
    start, end = int(args.start * rate), int(min(args.end * rate, len(ref)))
    lag = coarse_lag(ref, deg, rate)
    lag = fine_lag(ref, deg, start, end, lag, int(rate * 2 * ENVELOPE))
    seg_ref = ref[start:end]
    seg_deg = deg[start + lag : end + lag]
    if len(seg_deg) < len(seg_ref):
        seg_deg = np.concatenate([seg_deg, np.zeros(len(seg_ref) - len(seg_deg))])
    mode = "nb" if rate == 8000 else "wb"
    mos = pesq(rate, seg_ref.astype(np.int16), seg_deg.astype(np.int16), mode)
    # Slips: each block of speech aligned on its own; a change between two neighbouring
    # blocks of speech (no pause between them, where a delay change is free) is a slip.
    block, span = int(BLOCK * rate), int(BLOCK_SEARCH * rate)
    sub = int(rate * ENVELOPE)
    floor = np.sqrt(np.mean(seg_ref**2)) / 8
    lags = []
    for s in range(start, end - block + 1, block):
        parts = ref[s : s + block].reshape(-1, sub)
        if np.mean(np.sqrt(np.mean(parts**2, axis=1)) > floor) >= 0.9:
            lags.append((s, fine_lag(ref, deg, s, s + block, lag, span)))
    slip_at = [
        round(t / rate, 2)
        for (s, a), (t, b) in zip(lags, lags[1:])
        if t - s == block and abs(b - a) * 1000 >= rate
    ]
    print(
        json.dumps(
            {
                "mos": round(float(mos), 3),
                "lag_ms": round(lag * 1000 / rate, 2),
                "slips": len(slip_at),
                "slip_at": slip_at,
                "block_lags_ms": [
                    (round(s / rate, 2), round(b * 1000 / rate, 2)) for s, b in lags
                ],
            }
        ),
        flush=True,
    )


if __name__ == "__main__":
    main()
