#!/usr/bin/env python3
"""A PJSUA2 (PJSIP) phone registers with Chorus as a device (digest auth) and waits to be
dialed; a second PJSUA2 account calls the conference first and plays a tone into it.
Prints "ready" once the phone is registered and the room call is up; whoever runs this
then dials the phone into the conference through the API. The phone auto-answers, both
play their tone and record what they hear; prints, as JSON, the level of both tones in
each recording.

Usage: pjsua_dialed.py --server 127.0.0.1:5060 --number 7300 --user alice
       --password secret --tone-room A.wav --tone-phone B.wav --out DIR [--seconds 4]
"""
import argparse
import json
import os
import sys
import time

import pjsua2 as pj

from pjsua_calls import confirmed, goertzel_db, read_wav


class Phone(pj.Account):
    """Registers, and answers the first call it gets with 200."""

    def __init__(self):
        super().__init__()
        self.registered = False
        self.call = None

    def onRegState(self, prm):
        self.registered = prm.code == 200 and self.getInfo().regIsActive

    def onIncomingCall(self, prm):
        self.call = pj.Call(self, prm.callId)
        op = pj.CallOpParam()
        op.statusCode = 200
        self.call.answer(op)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--server", required=True)
    ap.add_argument("--number", required=True)
    ap.add_argument("--user", required=True)
    ap.add_argument("--password", required=True)
    ap.add_argument("--tone-room", required=True)
    ap.add_argument("--tone-phone", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--seconds", type=float, default=4.0)
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
        ep.codecSetPriority(c.codecId, 255 if c.codecId.startswith("PCMU/8000") else 0)

    def poll_until(done, seconds):
        end = time.time() + seconds
        while not done() and time.time() < end:
            ep.libHandleEvents(20)
        return done()

    pcfg = pj.AccountConfig()
    pcfg.idUri = "sip:%s@127.0.0.1" % args.user
    pcfg.regConfig.registrarUri = "sip:%s" % args.server
    pcfg.sipConfig.authCreds.append(pj.AuthCredInfo("digest", "*", args.user, 0, args.password))
    pcfg.mediaConfig.transportConfig.boundAddress = "127.0.0.1"
    phone = Phone()
    phone.create(pcfg)

    rcfg = pj.AccountConfig()
    rcfg.idUri = "sip:room@127.0.0.1"
    rcfg.mediaConfig.transportConfig.boundAddress = "127.0.0.1"
    room_acc = pj.Account()
    room_acc.create(rcfg)
    room = pj.Call(room_acc)
    room.makeCall("sip:%s@%s" % (args.number, args.server), pj.CallOpParam(True))

    result = {
        "registered": poll_until(lambda: phone.registered, 10),
        "room": poll_until(lambda: confirmed(room), 10),
    }
    print("ready", flush=True)
    result["answered"] = poll_until(lambda: phone.call is not None and confirmed(phone.call), 40)
    recorders, players = [], []  # kept alive: pjsua2 stops a destroyed player or recorder
    if result["answered"] and result["room"]:
        for name, call, tone in (("room", room, args.tone_room), ("phone", phone.call, args.tone_phone)):
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
        poll_until(lambda: False, args.seconds)
        for call in (room, phone.call):
            call.hangup(pj.CallOpParam(True))
        poll_until(lambda: False, 1.0)
    paths = [(name, path) for name, _, path in recorders]
    # The recorders write their WAV headers when destroyed, which libDestroy does.
    ep.libDestroy()
    for name, path in paths:
        rate, pcm = read_wav(path)
        tail = pcm[len(pcm) // 2:]  # the second half: well after the call settled
        result[name] = {str(int(f)): goertzel_db(tail, rate, f) for f in (697.0, 1209.0)}
    print(json.dumps(result), flush=True)
    sys.stdout.flush()
    # pjsua2's Python objects must not be collected after libDestroy (it asserts).
    os._exit(0)


if __name__ == "__main__":
    main()
