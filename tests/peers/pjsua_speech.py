#!/usr/bin/env python3
"""Two PJSUA2 (PJSIP) phones in one Chorus conference: a listener dials first and records
what it hears; a talker then dials and plays a speech WAV once. Both hang up after
`--seconds` of speech. The conference bridge runs at the WAV's rate, so with PCMU at 8 kHz
nothing is resampled on either phone.

Usage: pjsua_speech.py --server 127.0.0.1:5060 --number 7300 --speech speech-8k.wav
       --out heard.wav [--seconds 14] [--codec PCMU/8000]
"""
import argparse
import os
import time
import wave

import pjsua2 as pj

from pjsua_calls import confirmed


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--server", required=True)
    ap.add_argument("--number", required=True)
    ap.add_argument("--speech", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--seconds", type=float, default=14.0)
    ap.add_argument("--codec", default="PCMU/8000")
    args = ap.parse_args()
    with wave.open(args.speech, "rb") as w:
        rate = w.getframerate()

    ep = pj.Endpoint()
    ep.libCreate()
    cfg = pj.EpConfig()
    cfg.logConfig.level = int(os.environ.get("PJ_LOG", "1"))
    cfg.logConfig.consoleLevel = int(os.environ.get("PJ_LOG", "1"))
    cfg.uaConfig.threadCnt = 0
    cfg.uaConfig.mainThreadOnly = True
    cfg.medConfig.clockRate = rate
    cfg.medConfig.sndClockRate = rate
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

    def poll_until(done, seconds):
        end = time.time() + seconds
        while not done() and time.time() < end:
            ep.libHandleEvents(20)

    def dial():
        call = pj.Call(acc)
        call.makeCall("sip:%s@%s" % (args.number, args.server), pj.CallOpParam(True))
        poll_until(lambda: confirmed(call), 10)
        if not confirmed(call):
            raise SystemExit("call to %s not answered" % args.number)
        return call

    listener = dial()
    recorder = pj.AudioMediaRecorder()
    recorder.createRecorder(args.out)
    listener.getAudioMedia(-1).startTransmit(recorder)
    poll_until(lambda: False, 0.5)
    talker = dial()
    player = pj.AudioMediaPlayer()
    player.createPlayer(args.speech, pj.PJMEDIA_FILE_NO_LOOP)
    player.startTransmit(talker.getAudioMedia(-1))
    poll_until(lambda: False, args.seconds)
    for call in (talker, listener):
        call.hangup(pj.CallOpParam(True))
    poll_until(lambda: False, 0.5)
    # The recorder writes its WAV header when destroyed, which libDestroy does.
    ep.libDestroy()
    print(args.out, flush=True)
    # pjsua2's Python objects must not be collected after libDestroy (it asserts).
    os._exit(0)


if __name__ == "__main__":
    main()
