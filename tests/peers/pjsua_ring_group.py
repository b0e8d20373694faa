#!/usr/bin/env python3
"""Two PJSUA2 (PJSIP) phones register with Chorus as devices; a third account calls a
callflow number that rings them as a ring group. The first phone answers at once, the
second only rings (180) and should be cancelled. The caller and the answering phone each
play their tone and record what they hear; prints, as JSON, the level of both tones in
each recording and the final status the ringing phone saw.

Usage: pjsua_ring_group.py --server 127.0.0.1:5060 --number 6000
       --answer alice:secret --ring bob:secret --tone-caller A.wav --tone-phone B.wav
       --out DIR [--seconds 4] [--caller-codec PCMU/8000]
"""
import argparse

import pjsua2 as pj

from pjsua_calls import confirmed
from pjsua_dialed import caller, finish, play_and_record, poll_until, register, start_endpoint


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--server", required=True)
    ap.add_argument("--number", required=True)
    ap.add_argument("--answer", required=True, help="user:password of the phone answering")
    ap.add_argument("--ring", required=True, help="user:password of the phone only ringing")
    ap.add_argument("--tone-caller", required=True)
    ap.add_argument("--tone-phone", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--seconds", type=float, default=4.0)
    args = ap.parse_args()

    ep = start_endpoint()
    answering = register(args.server, *args.answer.split(":", 1))
    ringing = register(args.server, *args.ring.split(":", 1), status=180)
    result = {
        "registered": poll_until(ep, lambda: answering.registered and ringing.registered, 10),
    }
    call = pj.Call(caller(ep, "carol"))
    call.makeCall("sip:%s@%s" % (args.number, args.server), pj.CallOpParam(True))
    result["answered"] = poll_until(
        ep, lambda: confirmed(call) and answering.call is not None and confirmed(answering.call), 20)
    # The other phone's INVITE is cancelled once the first answered.
    result["rang"] = ringing.call is not None
    poll_until(ep, lambda: ringing.call is not None and ringing.call.disconnected, 5)
    result["ring_status"] = ringing.call.last_status if ringing.call else 0
    kept, paths = [], []  # kept alive: pjsua2 stops a destroyed player or recorder
    if result["answered"]:
        kept, paths = play_and_record(
            (("caller", call, args.tone_caller), ("phone", answering.call, args.tone_phone)),
            args.out)
        poll_until(ep, lambda: False, args.seconds)
        call.hangup(pj.CallOpParam(True))
        # The phone's call ends with the caller's: Chorus hangs up the bridge.
        result["phone_hung_up"] = poll_until(ep, lambda: answering.call.disconnected, 5)
    finish(ep, result, paths)


if __name__ == "__main__":
    main()
