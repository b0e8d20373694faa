#!/usr/bin/env python3
"""Two PJSUA2 (PJSIP) phones dial one Chorus conference, each plays its own tone WAV and
records what it hears; prints, as JSON, the level of both tones in each recording.

Usage: pjsua_calls.py --server 127.0.0.1:5060 --number 7100 --tone-a A.wav --tone-b B.wav
       --out DIR [--seconds 4] [--codec PCMU/8000]
"""
import argparse
import json
import math
import os
import struct
import time
import wave

import pjsua2 as pj


def goertzel_db(samples, rate, freq):
    """Level of `freq` relative to a full-scale sine, in dB (about -120 for silence)."""
    if not samples:
        return -120.0
    k = 2.0 * math.cos(2.0 * math.pi * freq / rate)
    s1 = s2 = 0.0
    for x in samples:
        s0 = x / 32768.0 + k * s1 - s2
        s2, s1 = s1, s0
    n = len(samples)
    power = (s1 * s1 + s2 * s2 - k * s1 * s2) / (n * n)
    return 10.0 * math.log10(max(power / 0.25, 1e-12))


def read_wav(path):
    with wave.open(path, "rb") as w:
        rate, n = w.getframerate(), w.getnframes()
        data = w.readframes(n)
    return rate, list(struct.unpack("<%dh" % (len(data) // 2), data))


def confirmed(call):
    return call.getInfo().state == pj.PJSIP_INV_STATE_CONFIRMED and call.hasMedia()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--server", required=True)
    ap.add_argument("--number", required=True)
    ap.add_argument("--tone-a", required=True)
    ap.add_argument("--tone-b", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--seconds", type=float, default=4.0)
    ap.add_argument("--codec", default="PCMU/8000")
    args = ap.parse_args()

    ep = pj.Endpoint()
    ep.libCreate()
    cfg = pj.EpConfig()
    cfg.logConfig.level = int(os.environ.get("PJ_LOG", "1"))
    cfg.logConfig.consoleLevel = int(os.environ.get("PJ_LOG", "1"))
    cfg.uaConfig.threadCnt = 0
    cfg.uaConfig.mainThreadOnly = True
    ep.libInit(cfg)
    tcfg = pj.TransportConfig()
    tcfg.port = 0
    tcfg.boundAddress = "127.0.0.1"
    ep.transportCreate(pj.PJSIP_TRANSPORT_UDP, tcfg)
    ep.libStart()
    ep.audDevManager().setNullDev()
    for c in ep.codecEnum2():
        ep.codecSetPriority(c.codecId, 255 if c.codecId.startswith(args.codec) else 0)

    acfg = pj.AccountConfig()
    acfg.idUri = "sip:pjsua@127.0.0.1"
    acfg.mediaConfig.transportConfig.boundAddress = "127.0.0.1"
    acc = pj.Account()
    acc.create(acfg)

    def poll(seconds):
        end = time.time() + seconds
        while time.time() < end:
            ep.libHandleEvents(20)

    calls, players, recorders = [], [], []
    for name, tone in (("a", args.tone_a), ("b", args.tone_b)):
        call = pj.Call(acc)
        call.makeCall("sip:%s@%s" % (args.number, args.server), pj.CallOpParam(True))
        calls.append((name, call, tone))
    deadline = time.time() + 10
    while not all(confirmed(c) for _, c, _ in calls) and time.time() < deadline:
        ep.libHandleEvents(20)
    result = {"answered": [confirmed(c) for _, c, _ in calls]}
    if all(result["answered"]):
        for name, call, tone in calls:
            media = call.getAudioMedia(-1)
            player = pj.AudioMediaPlayer()
            player.createPlayer(tone)  # loops by default
            player.startTransmit(media)
            recorder = pj.AudioMediaRecorder()
            path = os.path.join(args.out, "heard-%s.wav" % name)
            recorder.createRecorder(path)
            media.startTransmit(recorder)
            players.append(player)
            recorders.append((name, recorder, path))
        poll(args.seconds)
        for name, call, _ in calls:
            call.hangup(pj.CallOpParam(True))
        poll(1.0)
    paths = [(name, path) for name, _, path in recorders]
    # The recorders write their WAV headers when destroyed, which libDestroy does.
    ep.libDestroy()
    for name, path in paths:
        rate, pcm = read_wav(path)
        tail = pcm[len(pcm) // 2:]  # the second half: well after the call settled
        result[name] = {str(int(f)): goertzel_db(tail, rate, f) for f in (697.0, 1209.0)}
    print(json.dumps(result), flush=True)
    # pjsua2's Python objects must not be collected after libDestroy (it asserts).
    os._exit(0)


if __name__ == "__main__":
    main()
