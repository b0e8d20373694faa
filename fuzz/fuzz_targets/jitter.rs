//! The jitter buffer (`media::jitter`) on a virtual clock: arbitrary arrivals (reordered,
//! duplicated, jumping, from two SSRCs, with RFC 4733 fillers) and pops. It never panics,
//! never plays a packet twice or one it was not given, and keeps its delay target within
//! its bounds. Thin on purpose: only `new`, `push`, `push_filler`, `stats` and, in `play`,
//! `pull` with a decoder that names the packets it is given.
#![no_main]

use std::time::{Duration, Instant};

use arbitrary::Arbitrary;
use chorus::media::codec::Decoder;
use chorus::media::jitter::{JitterBuffer, JitterConfig, PacketInfo};
use libfuzzer_sys::fuzz_target;

#[derive(Arbitrary, Debug)]
struct Input {
    clock: u8,
    ptime: u8,
    min_delay_ms: u8,
    extra_delay_ms: u8,
    ops: Vec<Op>,
}

#[derive(Arbitrary, Debug)]
enum Op {
    /// The next packet of the stream, moved by small deltas (reorder, loss, duplicates).
    Next {
        after_ms: u8,
        seq_delta: i8,
        ts_delta: i16,
        other_ssrc: bool,
        marker: bool,
        len: u8,
    },
    /// Any header at all.
    Jump {
        after_ms: u16,
        seq: u16,
        timestamp: u32,
        ssrc: u32,
    },
    Filler {
        after_ms: u8,
        seq_delta: i8,
    },
    Pop {
        after_ms: u8,
    },
}

fuzz_target!(|input: Input| {
    let clock = [8000, 16000, 48000][usize::from(input.clock % 3)];
    let ptime = [20, 10, 30, 40, 60][usize::from(input.ptime % 5)];
    let mut cfg = JitterConfig::new(clock, ptime);
    cfg.min_delay = Duration::from_millis(u64::from(input.min_delay_ms));
    cfg.max_delay = cfg.min_delay + Duration::from_millis(u64::from(input.extra_delay_ms) * 4);
    let mut jb = JitterBuffer::new(cfg);
    let mut now = Instant::now();
    let (mut seq, mut ts, mut ssrc) = (1000u16, 5000u32, 7u32);
    let mut pushed = 0u32;
    let mut played = std::collections::HashSet::new();
    let mut decoder = Names::default();
    let rate = clock;
    let frame = (clock * ptime / 1000) as usize;
    for op in input.ops {
        match op {
            Op::Next {
                after_ms,
                seq_delta,
                ts_delta,
                other_ssrc,
                marker,
                len,
            } => {
                now += Duration::from_millis(u64::from(after_ms));
                seq = seq.wrapping_add(seq_delta as u16);
                let step = clock * ptime / 1000;
                ts = ts.wrapping_add(step).wrapping_add(ts_delta as u32);
                let s = if other_ssrc { ssrc ^ 1 } else { ssrc };
                push(&mut jb, now, &mut pushed, seq, ts, s, marker, len);
            }
            Op::Jump {
                after_ms,
                seq: s,
                timestamp,
                ssrc: x,
            } => {
                now += Duration::from_millis(u64::from(after_ms));
                (seq, ts, ssrc) = (s, timestamp, x);
                push(&mut jb, now, &mut pushed, seq, ts, ssrc, false, 160);
            }
            Op::Filler {
                after_ms,
                seq_delta,
            } => {
                now += Duration::from_millis(u64::from(after_ms));
                jb.push_filler(now, seq.wrapping_add(seq_delta as u16), ssrc);
            }
            Op::Pop { after_ms } => {
                now += Duration::from_millis(u64::from(after_ms));
                if let Some(pcm) = jb.pull(now, frame, rate, &mut decoder) {
                    assert_eq!(pcm.len(), frame);
                }
                for id in decoder.decoded.drain(..) {
                    assert!(id < pushed, "played packet {id} of {pushed}");
                    assert!(played.insert(id), "packet {id} played twice");
                }
            }
        }
        let target = jb.stats().target;
        assert!(target <= cfg.max_delay.max(cfg.ptime), "target {target:?}");
    }
});

/// A decoder that records which packet (by the index in its payload) it decoded.
#[derive(Default)]
struct Names {
    decoded: Vec<u32>,
}

impl Decoder for Names {
    fn decode(&mut self, payload: &[u8], out: &mut Vec<i16>) {
        self.decoded
            .push(u32::from_le_bytes(payload[..4].try_into().unwrap()));
        out.resize(out.len() + payload.len() - 4, 0);
    }

    fn conceal(&mut self, samples: usize, out: &mut Vec<i16>) {
        out.resize(out.len() + samples, 0);
    }
}

/// Pushes a packet whose payload names it (its index), padded to `len` bytes.
#[allow(clippy::too_many_arguments)]
fn push(
    jb: &mut JitterBuffer,
    now: Instant,
    pushed: &mut u32,
    seq: u16,
    timestamp: u32,
    ssrc: u32,
    marker: bool,
    len: u8,
) {
    let mut payload = pushed.to_le_bytes().to_vec();
    payload.resize(4 + usize::from(len), 0xD5);
    *pushed += 1;
    jb.push(
        now,
        PacketInfo {
            seq,
            timestamp,
            ssrc,
            marker,
            payload: &payload,
        },
    );
}
