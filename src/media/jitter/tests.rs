//! The jitter buffer on virtual time with realistic arrival traces: speech in talkspurts
//! (noise-like bursts, which time-scale modification leaves alone, between silent pauses)
//! through a raw PCM codec, so every played sample can be traced back to the one sent.

use super::*;
use crate::media::codec::testutil::tone;
use crate::test_rng::Rng;

const RATE: u32 = 8000;
const N: usize = 160;
const MS20: u64 = 20_000;

/// A codec that carries raw 16-bit PCM and conceals with silence; it counts the lost
/// frames it could have rebuilt from the next packet (as Opus does from its FEC).
#[derive(Default)]
struct Raw {
    recovered: usize,
}

impl Decoder for Raw {
    fn decode(&mut self, payload: &[u8], out: &mut Vec<i16>) {
        out.extend(payload.chunks(2).map(|b| i16::from_le_bytes([b[0], b[1]])));
    }

    fn conceal(&mut self, samples: usize, out: &mut Vec<i16>) {
        out.resize(out.len() + samples, 0);
    }

    fn recover(&mut self, _next: &[u8], _ahead: usize, samples: usize, out: &mut Vec<i16>) {
        self.recovered += 1;
        self.conceal(samples, out);
    }
}

/// Talkspurts of 1-2 s of noise-like speech between 0.3-0.8 s pauses; with each sample,
/// the talkspurt it belongs to (0 in a pause).
fn speech(frames: usize, rng: &mut Rng) -> (Vec<i16>, Vec<u32>) {
    let (mut pcm, mut spurt) = (Vec::new(), Vec::new());
    let mut id = 0;
    while pcm.len() < frames * N {
        id += 1;
        for _ in 0..(8000 + rng.below(8000)) {
            pcm.push((rng.next() >> 48) as i16 / 8);
            spurt.push(id);
        }
        let pause = 2400 + rng.below(4000) as usize;
        pcm.resize(pcm.len() + pause, 0);
        spurt.resize(spurt.len() + pause, 0);
    }
    pcm.truncate(frames * N);
    spurt.truncate(frames * N);
    (pcm, spurt)
}

/// Pulls after which a test may ask what the buffer had done so far (`Played::warm`).
const WARMUP: u64 = 100;

/// What a buffer played, the buffer, its decoder, and its stats after `WARMUP` pulls.
struct Played {
    out: Vec<i16>,
    jb: JitterBuffer,
    decoder: Raw,
    warm: JitterStats,
}

/// Plays packets of `pcm` arriving at `arrivals` (us, packet index) through a buffer
/// pulled every 20 ms (at `phase` us past the packet clock).
fn play_all(pcm: &[i16], arrivals: &[(u64, usize)], phase: u64) -> Played {
    let mut jb = JitterBuffer::new(JitterConfig::new(RATE, 20));
    let t0 = Instant::now();
    let mut arrivals = arrivals.to_vec();
    arrivals.sort();
    let mut next = 0;
    let mut out = Vec::new();
    let mut warm = JitterStats::default();
    let mut decoder = Raw::default();
    let pulls = arrivals.last().map_or(0, |a| a.0 / MS20);
    for j in 0..pulls {
        let now_us = j * MS20 + phase;
        while next < arrivals.len() && arrivals[next].0 <= now_us {
            let (at, k) = arrivals[next];
            let payload: Vec<u8> = pcm[k * N..(k + 1) * N]
                .iter()
                .flat_map(|s| s.to_le_bytes())
                .collect();
            let info = PacketInfo {
                seq: k as u16,
                timestamp: (k * N) as u32,
                ssrc: 7,
                marker: k == 0,
                payload: &payload,
            };
            jb.push(t0 + Duration::from_micros(at), info);
            next += 1;
        }
        let now = t0 + Duration::from_micros(now_us);
        match jb.pull(now, N, RATE, &mut decoder) {
            Some(f) => out.extend_from_slice(f),
            None => out.resize(out.len() + N, 0),
        }
        if j + 1 == WARMUP {
            warm = jb.stats();
        }
    }
    Played {
        out,
        jb,
        decoder,
        warm,
    }
}

fn play(pcm: &[i16], arrivals: &[(u64, usize)], phase: u64) -> (Vec<i16>, JitterBuffer) {
    let p = play_all(pcm, arrivals, phase);
    (p.out, p.jb)
}

/// For each played frame of speech: the offset (played index minus sent index) at which
/// it equals what was sent, or `None` when it matches nowhere (concealed or changed).
fn offsets(sent: &[i16], played: &[i16], spurt: &[u32]) -> Vec<(usize, Option<i64>)> {
    let mut last = 0i64;
    let mut found = Vec::new();
    for (f, frame) in played.chunks(N).enumerate() {
        let t = (f * N) as i64;
        if tsm::is_quiet(frame) {
            continue;
        }
        let fits = |o: i64| {
            let s = t - o;
            s >= 0 && (s as usize + N) <= sent.len() && sent[s as usize..s as usize + N] == *frame
        };
        let o = Some(last)
            .filter(|&o| fits(o))
            .or_else(|| (last - 4000..last + 4000).find(|&o| fits(o)));
        if let Some(o) = o {
            last = o;
            let s = (t - o) as usize;
            // Only frames wholly inside one talkspurt say anything about slips.
            if spurt[s] == 0 || spurt[s] != spurt[s + N - 1] {
                continue;
            }
        }
        found.push((f, o));
    }
    found
}

/// Within each talkspurt the delay never moved (after `warmup` frames); returns the delay
/// (in samples) of each talkspurt in turn, repeats merged, and the speech frames played that
/// match nowhere in what was sent (concealed or altered).
fn speech_delays(
    sent: &[i16],
    played: &[i16],
    spurt: &[u32],
    warmup: usize,
) -> (Vec<i64>, Vec<usize>) {
    let offs = offsets(sent, played, spurt);
    let (mut delays, mut altered) = (Vec::new(), Vec::new());
    let mut prev: Option<(u32, i64)> = None;
    for &(f, o) in offs.iter().filter(|(f, _)| *f >= warmup) {
        let Some(o) = o else {
            altered.push(f);
            continue;
        };
        let id = spurt[((f * N) as i64 - o) as usize];
        if let Some((pid, po)) = prev
            && pid == id
        {
            assert_eq!(po, o, "the delay moved inside talkspurt {id} at frame {f}");
        }
        prev = Some((id, o));
        if delays.last() != Some(&o) {
            delays.push(o);
        }
    }
    (delays, altered)
}

/// As `speech_delays`, and no speech frame was concealed or altered.
fn assert_clean_speech(sent: &[i16], played: &[i16], spurt: &[u32], warmup: usize) -> Vec<i64> {
    let (delays, altered) = speech_delays(sent, played, spurt, warmup);
    assert!(
        altered.is_empty(),
        "speech frames concealed or altered: {altered:?}"
    );
    delays
}

/// A perfectly timed sender whose packets `lost` never arrive.
fn steady(frames: usize, lost: &[usize]) -> Vec<(u64, usize)> {
    (0..frames)
        .filter(|k| !lost.contains(k))
        .map(|k| (k as u64 * MS20, k))
        .collect()
}

/// The first frame from `from` on wholly inside a talkspurt.
fn speech_frame(spurt: &[u32], from: usize) -> usize {
    (from..)
        .find(|&k| spurt[k * N] != 0 && spurt[k * N + N - 1] == spurt[k * N])
        .expect("speech ahead")
}

#[test]
fn a_steady_stream_plays_at_one_delay_forever() {
    let frames = 30_000; // ten minutes
    let (pcm, spurt) = speech(frames, &mut Rng(11));
    for phase in [1_000, 7_000, 19_500] {
        let arrivals = steady(frames, &[]);
        let Played { out, jb, warm, .. } = play_all(&pcm, &arrivals, phase);
        let delays = assert_clean_speech(&pcm, &out, &spurt, WARMUP as usize);
        assert_eq!(delays.len(), 1, "phase {phase}: {delays:?}");
        let s = jb.stats();
        assert_eq!((s.lost, s.late, s.underruns, s.stretched), (0, 0, 0, 0));
        // The delay was set when the first packet came; ten minutes moved it not once,
        // not even in the pauses.
        assert_eq!((s.grown, s.shrunk), (warm.grown, warm.shrunk), "{phase}");
        assert_eq!(s.target, warm.target, "{phase}");
        assert!(s.delay <= Duration::from_millis(25), "{s:?}");
    }
}

#[test]
fn a_bursty_softphone_never_moves_the_delay_in_speech() {
    let frames = 9_000; // three minutes
    let (pcm, spurt) = speech(frames, &mut Rng(12));
    let mut rng = Rng(13);
    // The phone's sound clock hands over 1-3 packets at a time, and the scheduler adds
    // up to 2 ms; each packet leaves at the first hand-over after it is ready.
    let mut arrivals = Vec::new();
    let mut flush = 0u64;
    for k in 0..frames {
        let ready = k as u64 * MS20;
        while flush < ready {
            flush += MS20 * (1 + rng.below(3));
        }
        arrivals.push((flush + rng.below(2_000), k));
    }
    let (out, jb) = play(&pcm, &arrivals, 5_000);
    // The first 2 s learn the rhythm; from then on speech is untouched.
    assert_clean_speech(&pcm, &out, &spurt, WARMUP as usize);
    let s = jb.stats();
    // Packets were late only while the rhythm was being learnt (speech is clean after).
    assert!(s.late <= 20 && s.stretched == 0, "{s:?}");
    assert!(s.target <= Duration::from_millis(50), "{s:?}");
}

/// A steady sender whose clock runs `ppm` parts per million slow (+) or fast (-).
fn drifted(frames: usize, ppm: i64) -> Vec<(u64, usize)> {
    (0..frames)
        .map(|k| {
            (
                (k as i64 * MS20 as i64 * (1_000_000 + ppm) / 1_000_000) as u64,
                k,
            )
        })
        .collect()
}

#[test]
fn clock_drift_is_absorbed_in_the_pauses() {
    let frames = 15_000;
    let (pcm, spurt) = speech(frames, &mut Rng(14));
    for ppm in [-1000i64, 1000] {
        let arrivals = drifted(frames, ppm);
        let (out, jb) = play(&pcm, &arrivals, 9_000);
        assert_clean_speech(&pcm, &out, &spurt, WARMUP as usize);
        let s = jb.stats();
        // 0.1 % of five minutes is 300 ms: all of it went in or out in pauses.
        let moved = if ppm > 0 { s.grown } else { s.shrunk };
        assert!(moved >= Duration::from_millis(250), "{ppm}: {s:?}");
        assert!(s.delay <= Duration::from_millis(45), "{ppm}: {s:?}");
        assert_eq!((s.underruns, s.stretched), (0, 0), "{ppm}: {s:?}");
    }
}

#[test]
fn drift_without_pauses_is_absorbed_by_stretching_voiced_speech() {
    let frames = 6_000; // two minutes of one vowel
    let pcm = tone(180.0, RATE, frames * N, 8000.0);
    for ppm in [-1000i64, 1000] {
        let arrivals = drifted(frames, ppm);
        let (out, jb) = play(&pcm, &arrivals, 9_000);
        let s = jb.stats();
        assert!(s.stretched > 0, "{ppm}: {s:?}");
        assert!(s.underruns <= 1, "{ppm}: {s:?}");
        assert!(s.delay <= Duration::from_millis(70), "{ppm}: {s:?}");
        // No step: a 180 Hz sine at 8000 moves at most 1131 per sample.
        let steady = &out[50 * N..out.len() - 20 * N];
        let step = crate::media::codec::testutil::max_step(steady);
        assert!(step <= 1300, "{ppm}: step {step}");
    }
}

#[test]
fn jitter_and_loss_bursts_cost_little_beyond_the_loss() {
    let frames = 9_000;
    let (pcm, _) = speech(frames, &mut Rng(15));
    let mut rng = Rng(16);
    let mut arrivals = Vec::new();
    let mut lose = 0;
    for k in 0..frames {
        if lose == 0 && rng.below(100) == 0 {
            lose = 3;
        }
        let jitter = rng.below(60_000);
        if lose > 0 {
            lose -= 1;
            continue;
        }
        arrivals.push((k as u64 * MS20 + jitter, k));
    }
    let sent = arrivals.len() as u64;
    let (_, jb) = play(&pcm, &arrivals, 3_000);
    let s = jb.stats();
    assert!(s.late * 100 < sent * 2, "late {s:?}");
    let network_loss = frames as u64 - sent;
    assert!(s.lost >= network_loss * 9 / 10, "{s:?}");
    assert!(
        s.target >= Duration::from_millis(50) && s.target <= Duration::from_millis(70),
        "{s:?}"
    );
    assert!(s.delay <= Duration::from_millis(100), "{s:?}");
}

#[test]
fn after_a_loss_the_next_one_finds_the_packet_after_it_buffered() {
    let frames = 1_500;
    let (pcm, spurt) = speech(frames, &mut Rng(17));
    // Two losses in speech 3 s apart (a pause lies between: talkspurts last 1-2 s).
    let first = speech_frame(&spurt, 200);
    let second = speech_frame(&spurt, first + 150);
    assert!(spurt[first * N] != spurt[second * N]);
    let recovered = |lost: &[usize]| {
        let p = play_all(&pcm, &steady(frames, lost), 7_000);
        assert_eq!(p.jb.stats().lost, lost.len() as u64);
        p.decoder.recovered
    };
    // Alone, a loss finds nothing after it: the least delay holds one packet at most.
    assert_eq!(recovered(&[second]), 0);
    // After the first loss the delay holds one packet more, so the second can be rebuilt
    // from the packet after it (Opus FEC, or a G.711 bridge).
    assert_eq!(recovered(&[first, second]), 1);
}

#[test]
fn the_delay_held_after_a_loss_comes_and_goes_in_pauses() {
    let frames = 3_000; // a minute
    let (pcm, spurt) = speech(frames, &mut Rng(18));
    let lost = speech_frame(&spurt, 500);
    for phase in [1_000, 7_000, 19_500] {
        let Played { out, jb, warm, .. } = play_all(&pcm, &steady(frames, &[lost]), phase);
        // The delay never moved inside a talkspurt; only the frame lost was concealed
        // (two played frames when it straddles them).
        let (delays, altered) = speech_delays(&pcm, &out, &spurt, WARMUP as usize);
        assert!(altered.len() <= 2, "{phase}: {altered:?}");
        // One packet more from the pause after the loss; back to the least delay in the
        // first pause after 5 s without loss, and there for good.
        let base = delays[0];
        assert_eq!(delays, [base, base + N as i64, base], "phase {phase}");
        let s = jb.stats();
        let packet = Duration::from_millis(20);
        assert_eq!(s.grown - warm.grown, packet, "{phase}: {s:?}");
        assert_eq!(s.shrunk - warm.shrunk, packet, "{phase}: {s:?}");
        assert_eq!((s.lost, s.stretched), (1, 0), "{phase}: {s:?}");
    }
}
