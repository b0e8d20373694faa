#!/usr/bin/env python3
"""A PJSUA2 (PJSIP) phone registers with Chorus as a device (digest auth) and waits to be
dialed; a second PJSUA2 account calls the conference first and plays a tone into it.
Prints "ready" once the phone is registered and the room call is up; whoever runs this
then dials the phone into the conference through the API. The phone auto-answers, both
play their tone and record what they hear; prints, as JSON, the level of both tones in
each recording.

Usage: pjsua_dialed.py --server 127.0.0.1:5060 --number 7300 --user alice
       --password secret --tone-room A.wav --tone-phone B.wav --out DIR [--seconds 4]
       [--registrar HOST:PORT]   (where the phone registers; default: --server)
"""
import argparse
import json
import os
import sys
import time

import pjsua2 as pj

from pjsua_calls import confirmed, goertzel_db, read_wav


class Watched(pj.Call):
    """A call that remembers its last state and status (its info is gone once it ends)."""

    def __init__(self, acc, call_id):
        super().__init__(acc, call_id)
        self.disconnected = False
        self.last_status = 0

    def onCallState(self, prm):
        info = self.getInfo()
        self.last_status = info.lastStatusCode
        self.disconnected = info.state == pj.PJSIP_INV_STATE_DISCONNECTED


class Phone(pj.Account):
    """Registers, and answers the first call it gets with `status` (200, or 180 to only
    ring)."""

    def __init__(self, status=200):
        super().__init__()
        self.registered = False
        self.call = None
        self.status = status

    def onRegState(self, prm):
        self.registered = prm.code == 200 and self.getInfo().regIsActive

    def onIncomingCall(self, prm):
        self.call = Watched(self, prm.callId)
        op = pj.CallOpParam()
        op.statusCode = self.status
        self.call.answer(op)


def start_endpoint(codec="PCMU/8000"):
    """A PJSUA2 endpoint on a loopback UDP port, no sound device, only `codec`."""
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
        ep.codecSetPriority(c.codecId, 255 if c.codecId.startswith(codec) else 0)
    return ep


def poll_until(ep, done, seconds):
    end = time.time() + seconds
    while not done() and time.time() < end:
        ep.libHandleEvents(20)
    return done()


def register(server, user, password, status=200):
    """A phone registering as device `user` with digest auth."""
    pcfg = pj.AccountConfig()
    pcfg.idUri = "sip:%s@127.0.0.1" % user
    pcfg.regConfig.registrarUri = "sip:%s" % server
    pcfg.sipConfig.authCreds.append(pj.AuthCredInfo("digest", "*", user, 0, password))
    pcfg.mediaConfig.transportConfig.boundAddress = "127.0.0.1"
    phone = Phone(status)
    phone.create(pcfg)
    return phone


def caller(ep, name):
    """An unregistered account for placing calls."""
    cfg = pj.AccountConfig()
    cfg.idUri = "sip:%s@127.0.0.1" % name
    cfg.mediaConfig.transportConfig.boundAddress = "127.0.0.1"
    acc = pj.Account()
    acc.create(cfg)
    return acc


def play_and_record(calls, out):
    """Each (name, call, tone) plays its tone into the call and records what it hears to
    OUT/heard-NAME.wav; returns what must stay alive, and the recordings."""
    kept, paths = [], []
    for name, call, tone in calls:
        media = call.getAudioMedia(-1)
        player = pj.AudioMediaPlayer()
        player.createPlayer(tone)  # loops by default
        player.startTransmit(media)
        recorder = pj.AudioMediaRecorder()
        path = os.path.join(out, "heard-%s.wav" % name)
        recorder.createRecorder(path)
        media.startTransmit(recorder)
        kept.extend([player, recorder])
        paths.append((name, path))
    return kept, paths


def levels(paths):
    """The level of both tones in the second half of each recording (read after
    libDestroy, which writes the WAV headers)."""
    result = {}
    for name, path in paths:
        rate, pcm = read_wav(path)
        tail = pcm[len(pcm) // 2:]  # the second half: well after the call settled
        result[name] = {str(int(f)): goertzel_db(tail, rate, f) for f in (697.0, 1209.0)}
    return result


def finish(ep, result, paths):
    """Stops PJSIP, prints the result with the recordings' tone levels, and exits."""
    ep.libDestroy()
    result.update(levels(paths))
    print(json.dumps(result), flush=True)
    sys.stdout.flush()
    # pjsua2's Python objects must not be collected after libDestroy (it asserts).
    os._exit(0)


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
    ap.add_argument("--registrar")
    args = ap.parse_args()

    ep = start_endpoint()
    phone = register(args.registrar or args.server, args.user, args.password)
    room = pj.Call(caller(ep, "room"))
    room.makeCall("sip:%s@%s" % (args.number, args.server), pj.CallOpParam(True))

    result = {
        "registered": poll_until(ep, lambda: phone.registered, 10),
        "room": poll_until(ep, lambda: confirmed(room), 10),
    }
    print("ready", flush=True)
    result["answered"] = poll_until(
        ep, lambda: phone.call is not None and confirmed(phone.call), 40)
    kept, paths = [], []  # kept alive: pjsua2 stops a destroyed player or recorder
    if result["answered"] and result["room"]:
        kept, paths = play_and_record(
            (("room", room, args.tone_room), ("phone", phone.call, args.tone_phone)), args.out)
        poll_until(ep, lambda: False, args.seconds)
        for call in (room, phone.call):
            call.hangup(pj.CallOpParam(True))
        poll_until(ep, lambda: False, 1.0)
    finish(ep, result, paths)


if __name__ == "__main__":
    main()
