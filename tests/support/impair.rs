//! A network between a sender and the server, replayed exactly from a seed: which packets
//! are lost and when each of the others is sent (random or bursty loss, jitter that
//! reorders, a softphone sending in bursts from its own clock, clock drift).

use std::time::Duration;

/// One network condition.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Condition {
    pub name: &'static str,
    /// Share of packets lost, in percent.
    pub loss_percent: f64,
    /// Packets lost in a row once a loss starts.
    pub burst: u32,
    /// Each packet is delayed by a uniform 0..jitter_ms (so packets reorder past one ptime).
    pub jitter_ms: u32,
    /// The sender flushes what it has every 10-60 ms instead of sending each packet on time.
    pub softphone: bool,
    /// The sender's clock runs fast (+) or slow (-) by this many parts per million.
    pub drift_ppm: i32,
}

impl Condition {
    pub const CLEAN: Condition = Condition {
        name: "clean",
        loss_percent: 0.0,
        burst: 1,
        jitter_ms: 0,
        softphone: false,
        drift_ppm: 0,
    };
}

/// The conditions of the quality table.
pub const CONDITIONS: [Condition; 7] = [
    Condition::CLEAN,
    Condition {
        name: "softphone bursts",
        softphone: true,
        ..Condition::CLEAN
    },
    Condition {
        name: "drift +0.1 %",
        drift_ppm: 1000,
        ..Condition::CLEAN
    },
    Condition {
        name: "drift -0.1 %",
        drift_ppm: -1000,
        ..Condition::CLEAN
    },
    Condition {
        name: "5 % loss, 40 ms jitter",
        loss_percent: 5.0,
        jitter_ms: 40,
        ..Condition::CLEAN
    },
    Condition {
        name: "3 % loss in bursts of 3, 60 ms jitter",
        loss_percent: 3.0,
        burst: 3,
        jitter_ms: 60,
        ..Condition::CLEAN
    },
    // Loss alone: the least delay has no packet to spare for the one after a loss, so this
    // is where holding one more after a loss (Opus FEC, G.711 bridging) shows.
    Condition {
        name: "5 % loss, no jitter",
        loss_percent: 5.0,
        ..Condition::CLEAN
    },
];

/// xorshift64: the same seed gives the same network.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    /// Uniform in [0, 1).
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// When each of `packets` packets of `ptime` is sent, as (offset from the start, packet
/// index), in sending order; lost packets are left out.
pub fn schedule(
    c: &Condition,
    packets: usize,
    ptime: Duration,
    seed: u64,
) -> Vec<(Duration, usize)> {
    let mut rng = Rng(seed | 1);
    let p = c.loss_percent / 100.0;
    let burst = c.burst.max(1);
    // A burst starts after a good packet with probability q, so that the lost share is p.
    let q = if p > 0.0 {
        p / (burst as f64 * (1.0 - p))
    } else {
        0.0
    };
    let clock = 1.0 / (1.0 + c.drift_ppm as f64 / 1e6);
    let mut next_flush = 0.0;
    let mut lose = 0;
    let mut out = Vec::with_capacity(packets);
    for k in 0..packets {
        if lose == 0 && rng.unit() < q {
            lose = burst;
        }
        let jitter = rng.unit() * c.jitter_ms as f64 / 1000.0;
        if lose > 0 {
            lose -= 1;
            continue;
        }
        let mut at = k as f64 * ptime.as_secs_f64() * clock;
        if c.softphone {
            while next_flush < at {
                next_flush += 0.010 + rng.unit() * 0.050;
            }
            at = next_flush;
        }
        out.push((Duration::from_secs_f64(at + jitter), k));
    }
    out.sort_by_key(|&(at, k)| (at, k));
    out
}
