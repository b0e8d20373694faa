//! Random control and input sequences never panic and keep the output
//! well-formed: one route per hearing member, each mix a full frame.

use std::time::{Duration, Instant};

use mixer::profile::RATES;
use mixer::source::Source;
use mixer::{
    Conference, MemberConfig, MemberFlags, MemberId, MemberInput, PlaybackId, PlaybackTarget,
    Profile, Relation,
};

struct Lcg(u64);

impl Lcg {
    fn next(&mut self, n: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 33) % n.max(1)
    }
}

struct Noise(u64, usize);

impl Source for Noise {
    fn fill(&mut self, out: &mut [i16]) -> usize {
        let n = out.len().min(self.1);
        for s in &mut out[..n] {
            self.0 = self.0.wrapping_mul(6364136223846793005).wrapping_add(1);
            *s = (self.0 >> 48) as i16;
        }
        self.1 -= n;
        n
    }
}

#[test]
fn random_operations_never_panic() {
    let mut rng = Lcg(7);
    for round in 0..6 {
        let mut p = Profile::default();
        p.set("rate", &RATES[round % RATES.len()].to_string())
            .unwrap();
        p.set("interval", &(10 * (1 + rng.next(12))).to_string())
            .unwrap();
        p.set("max-members", "12").unwrap();
        p.set("energy-level", &rng.next(1801).to_string()).unwrap();
        let mut c = Conference::new(p);
        let mut members: Vec<(MemberId, MemberInput, u32)> = Vec::new();
        let mut now = Instant::now();
        for _ in 0..400 {
            let pick = |rng: &mut Lcg, n: usize| rng.next(n as u64) as usize;
            match rng.next(12) {
                0 | 1 => {
                    let rate = RATES[pick(&mut rng, RATES.len())];
                    let cfg = MemberConfig {
                        rate,
                        talk_volume: rng.next(9) as i8 - 4,
                        listen_volume: rng.next(9) as i8 - 4,
                        ..MemberConfig::default()
                    };
                    if let Ok((id, input)) = c.add_member(cfg) {
                        members.push((id, input, rate));
                    }
                }
                2 if !members.is_empty() => {
                    let (id, ..) = members.swap_remove(pick(&mut rng, members.len()));
                    c.remove_member(id).unwrap();
                }
                3 if !members.is_empty() => {
                    let id = members[pick(&mut rng, members.len())].0;
                    let flags = MemberFlags {
                        speak: rng.next(2) == 0,
                        hear: rng.next(2) == 0,
                        moderator: false,
                    };
                    c.set_flags(id, flags).unwrap();
                }
                4 if !members.is_empty() => {
                    let a = members[pick(&mut rng, members.len())].0;
                    let b = members[pick(&mut rng, members.len())].0;
                    let rel = Relation {
                        hear: rng.next(2) == 0,
                        speak: rng.next(2) == 0,
                    };
                    c.relate(a, b, rel).unwrap();
                }
                5 => {
                    let target = match members.first() {
                        Some((id, ..)) if rng.next(2) == 0 => PlaybackTarget::Member(*id),
                        _ => PlaybackTarget::All,
                    };
                    let src = Noise(rng.next(1000), rng.next(20_000) as usize);
                    let _ = c.play(PlaybackId(rng.next(4)), target, Box::new(src));
                }
                6 => {
                    let _ = c.stop_playback(PlaybackId(rng.next(4)));
                }
                _ => {
                    for (_, input, rate) in &mut members {
                        let len = pick(&mut rng, (*rate as usize) / 20);
                        let amp = rng.next(32768) as i16;
                        input.push(&vec![amp; len]);
                    }
                    let hearing: Vec<MemberId> = members
                        .iter()
                        .filter(|(id, ..)| c.member_flags(*id).is_some_and(|f| f.hear))
                        .map(|(id, ..)| *id)
                        .collect();
                    let profile = c.profile().clone();
                    let out = c.tick(now);
                    // Every hearing member gets a mix; a deaf one only with its own playback.
                    for id in &hearing {
                        assert!(out.routes().iter().any(|r| r.member == *id));
                    }
                    for r in out.routes() {
                        let rate = members.iter().find(|m| m.0 == r.member).unwrap().2;
                        let mix = &out.mixes()[r.mix];
                        assert_eq!(mix.rate, rate);
                        assert_eq!(mix.pcm.len(), profile.frame_len_at(rate));
                    }
                    now += Duration::from_millis(10);
                }
            }
            while c.poll_event().is_some() {}
        }
    }
}
