//! Listening tests: drive a conference tick by tick and check what each
//! member hears with Goertzel.

use std::time::{Duration, Instant};

use mixer::goertzel;
use mixer::input::PREROLL_MS;
use mixer::mix::KNEE;
use mixer::source::Source;
use mixer::{
    Conference, Event, JoinError, MemberConfig, MemberFlags, MemberId, MemberInput, PlaybackId,
    PlaybackTarget, Profile, Relation,
};

const HEARD: f64 = -20.0;
const SILENT: f64 = -50.0;

fn sine(freq: f64, rate: u32, start: usize, n: usize, amp: f64) -> Vec<i16> {
    (start..start + n)
        .map(|i| (amp * (2.0 * std::f64::consts::PI * freq * i as f64 / rate as f64).sin()) as i16)
        .collect()
}

/// Goertzel level (dB re full scale) through a Hann window, so a strong
/// neighbouring tone does not leak into the measured bin.
fn level_db(s: &[i16], rate: u32, freq: f64) -> f64 {
    let n = s.len() as f64;
    let w: Vec<i16> = s
        .iter()
        .enumerate()
        .map(|(i, x)| {
            (*x as f64 * (1.0 - (2.0 * std::f64::consts::PI * i as f64 / n).cos()) / 2.0) as i16
        })
        .collect();
    goertzel::level_db(&w, rate, freq) + 6.02
}

/// A member pushing a continuous tone, one frame per tick.
struct Talker {
    id: MemberId,
    input: MemberInput,
    freq: f64,
    amp: f64,
    rate: u32,
    frame: usize,
    pos: usize,
}

impl Talker {
    fn push(&mut self) {
        let pcm = sine(self.freq, self.rate, self.pos, self.frame, self.amp);
        self.pos += self.frame;
        self.input.push(&pcm);
    }
}

fn profile(pairs: &[(&str, &str)]) -> Profile {
    let mut p = Profile::page(); // 8 kHz, 20 ms
    for (k, v) in pairs {
        p.set(k, v).unwrap();
    }
    p
}

fn join(c: &mut Conference, cfg: MemberConfig) -> (MemberId, MemberInput) {
    c.add_member(cfg).unwrap()
}

fn talker(c: &mut Conference, freq: f64, amp: f64, cfg: MemberConfig) -> Talker {
    let (id, input) = join(c, cfg);
    let frame = c.profile().frame_len_at(cfg.rate);
    Talker {
        id,
        input,
        freq,
        amp,
        rate: cfg.rate,
        frame,
        pos: 0,
    }
}

fn at(rate: u32) -> MemberConfig {
    MemberConfig {
        rate,
        ..MemberConfig::default()
    }
}

/// Runs `ticks` ticks; returns what each of `listen` heard (concatenated).
fn run(
    c: &mut Conference,
    talkers: &mut [Talker],
    listen: &[MemberId],
    ticks: usize,
) -> Vec<Vec<i16>> {
    let mut heard = vec![Vec::new(); listen.len()];
    let mut now = Instant::now();
    for _ in 0..ticks {
        for t in talkers.iter_mut() {
            t.push();
        }
        let out = c.tick(now);
        for (h, id) in heard.iter_mut().zip(listen) {
            h.extend_from_slice(out.pcm_for(*id).unwrap_or(&[]));
        }
        now += c.profile().interval();
    }
    heard
}

fn events(c: &mut Conference) -> Vec<Event> {
    std::iter::from_fn(|| c.poll_event()).collect()
}

#[test]
fn a_hears_b_and_c_but_not_its_own_tone() {
    let mut c = Conference::new(profile(&[]));
    let mut ts = vec![
        talker(&mut c, 941.0, 8000.0, at(8000)),
        talker(&mut c, 697.0, 8000.0, at(8000)),
        talker(&mut c, 1209.0, 8000.0, at(8000)),
    ];
    let ids: Vec<_> = ts.iter().map(|t| t.id).collect();
    let heard = run(&mut c, &mut ts, &ids, 10);
    let a = &heard[0][800..];
    assert!(level_db(a, 8000, 697.0) > HEARD);
    assert!(level_db(a, 8000, 1209.0) > HEARD);
    assert!(level_db(a, 8000, 941.0) < SILENT);
    assert!(level_db(&heard[1][800..], 8000, 697.0) < SILENT);
    assert!(level_db(&heard[1][800..], 8000, 941.0) > HEARD);
}

#[test]
fn a_deaf_member_gets_nothing() {
    let mut c = Conference::new(profile(&[]));
    let mut ts = vec![talker(&mut c, 697.0, 8000.0, at(8000))];
    let deaf = MemberConfig {
        flags: MemberFlags {
            hear: false,
            ..MemberFlags::default()
        },
        ..at(8000)
    };
    let (d, _in) = join(&mut c, deaf);
    let (l, _in2) = join(&mut c, at(8000));
    run(&mut c, &mut ts, &[], 3);
    let out = c.tick(Instant::now());
    assert!(out.pcm_for(d).is_none());
    assert!(out.routes().iter().all(|r| r.member != d));
    assert!(out.pcm_for(l).is_some());
}

#[test]
fn a_deaf_member_hears_only_what_plays_to_it() {
    let mut c = Conference::new(profile(&[]));
    let mut ts = vec![talker(&mut c, 697.0, 8000.0, at(8000))];
    let deaf = MemberConfig {
        flags: MemberFlags {
            hear: false,
            ..MemberFlags::default()
        },
        ..at(8000)
    };
    let (d, _in) = join(&mut c, deaf);
    c.play(
        PlaybackId(1),
        PlaybackTarget::Member(d),
        tone(1209.0, 8000, 10_000),
    )
    .unwrap();
    let heard = run(&mut c, &mut ts, &[d], 10);
    assert!(level_db(&heard[0], 8000, 1209.0) > HEARD, "its prompt");
    assert!(level_db(&heard[0], 8000, 697.0) < SILENT, "not the talker");
}

#[test]
fn a_muted_member_is_not_heard() {
    let mut c = Conference::new(profile(&[]));
    let muted = MemberConfig {
        flags: MemberFlags {
            speak: false,
            ..MemberFlags::default()
        },
        ..at(8000)
    };
    let mut ts = vec![talker(&mut c, 697.0, 8000.0, muted)];
    let (l, _in) = join(&mut c, at(8000));
    let heard = run(&mut c, &mut ts, &[l], 10);
    assert!(level_db(&heard[0], 8000, 697.0) < SILENT);
    assert!(events(&mut c).is_empty());
    // Unmuting makes the same member heard.
    let id = ts[0].id;
    c.set_flags(id, MemberFlags::default()).unwrap();
    let heard = run(&mut c, &mut ts, &[l], 10);
    assert!(level_db(&heard[0][800..], 8000, 697.0) > HEARD);
}

#[test]
fn a_signal_below_energy_level_is_gated() {
    // Mean |x| of a sine is 0.637 * amplitude.
    let mut c = Conference::new(profile(&[("energy-level", "500")]));
    let mut ts = vec![
        talker(&mut c, 697.0, 700.0, at(8000)),  // score ~446: gated
        talker(&mut c, 1209.0, 900.0, at(8000)), // score ~573: heard
    ];
    let (l, _in) = join(&mut c, at(8000));
    let heard = run(&mut c, &mut ts, &[l], 10);
    assert!(level_db(&heard[0][800..], 8000, 697.0) < SILENT);
    assert!(level_db(&heard[0][800..], 8000, 1209.0) > -40.0);
    assert!((440..=450).contains(&c.member_energy(ts[0].id).unwrap()));
}

#[test]
fn speech_onset_survives_the_gate() {
    // 8 kHz, 20 ms frames; energy-level 200; a soft attack (score ~130,
    // below the level) for one frame, then speech at score ~320: excess
    // 120 < 400, so FreeSWITCH would cut the first 4 hot frames.
    let mut c = Conference::new(profile(&[("energy-level", "200")]));
    let (b, mut input) = join(&mut c, at(8000));
    let (l, _in) = join(&mut c, at(8000));
    let mut sent = vec![0i16; 160 * 3];
    sent.extend(sine(697.0, 8000, 0, 160, 200.0));
    sent.extend(sine(697.0, 8000, 160, 160 * 6, 500.0));
    let mut heard = Vec::new();
    let mut talk_at = None;
    let now = Instant::now();
    for (k, frame) in sent.chunks(160).enumerate() {
        input.push(frame);
        heard.extend_from_slice(c.tick(now).pcm_for(l).unwrap());
        if events(&mut c)
            .iter()
            .any(|e| matches!(e, Event::StartTalking { member, .. } if *member == b))
        {
            talk_at.get_or_insert(k);
        }
    }
    assert_eq!(
        talk_at,
        Some(8),
        "start-talking follows FreeSWITCH hangunder"
    );
    let d = (8000 * PREROLL_MS / 1000) as usize;
    let attack = 160 * 3;
    // From the last pre-roll of the attack on, the listener hears exactly
    // what was sent, delayed by the pre-roll.
    assert_eq!(
        &heard[attack + 160..],
        &sent[attack + 160 - d..sent.len() - d]
    );
}

#[test]
fn ten_full_scale_talkers_never_wrap() {
    let mut c = Conference::new(profile(&[]));
    let mut ts: Vec<_> = (0..10)
        .map(|_| talker(&mut c, 697.0, 32767.0, at(8000)))
        .collect();
    let (l, _in) = join(&mut c, at(8000));
    let listen = [l, ts[0].id];
    let heard = run(&mut c, &mut ts, &listen, 6);
    let d = (8000 * PREROLL_MS / 1000) as usize;
    let one = sine(697.0, 8000, 0, 160 * 6, 32767.0);
    for (h, n) in heard.iter().zip([10i32, 9]) {
        for (i, y) in h.iter().enumerate().skip(160 + d) {
            let sum = n * one[i - d] as i32;
            let y = *y as i32;
            assert_eq!(sum.signum(), y.signum(), "wrapped at {i}: {sum} -> {y}");
            assert!(
                y.abs() >= sum.abs().min(KNEE),
                "lost level at {i}: {sum} -> {y}"
            );
        }
        assert!(level_db(&h[320..], 8000, 697.0) > -3.0);
    }
}

#[test]
fn a_talkers_n_minus_1_is_not_distorted_when_others_clip() {
    let mut c = Conference::new(profile(&[("energy-level", "0")]));
    let mut ts = vec![
        talker(&mut c, 697.0, 19660.0, at(8000)),
        talker(&mut c, 1209.0, 19660.0, at(8000)),
        talker(&mut c, 941.0, 1600.0, at(8000)),
    ];
    let (x, _in) = join(&mut c, at(8000));
    let l1 = ts[0].id;
    let heard = run(&mut c, &mut ts, &[l1, x], 10);
    let d = (8000 * PREROLL_MS / 1000) as usize;
    let b = sine(1209.0, 8000, 0, 1600, 19660.0);
    let q = sine(941.0, 8000, 0, 1600, 1600.0);
    let expect: Vec<i16> = (0..1600 - d).map(|i| b[i] + q[i]).collect();
    assert_eq!(&heard[0][d..], &expect[..], "L1 hears L2 + Q exactly");
    let full_clipped = heard[1].iter().any(|s| s.unsigned_abs() > KNEE as u16);
    assert!(full_clipped, "the full mix did go into the limiter");
}

#[test]
fn comfort_noise_level_follows_the_profile() {
    let rms =
        |s: &[i16]| (s.iter().map(|x| (*x as f64).powi(2)).sum::<f64>() / s.len() as f64).sqrt();
    for (cn, expect) in [("100", 189.18), ("1000", 18.918), ("0", 0.0)] {
        let mut c = Conference::new(profile(&[("comfort-noise", cn)]));
        let (l, _in) = join(&mut c, at(8000));
        let (l2, _in2) = join(&mut c, at(8000));
        let heard = run(&mut c, &mut [], &[l, l2], 25);
        let got = rms(&heard[0]);
        assert!(
            (got - expect).abs() <= expect * 0.15,
            "cn {cn}: rms {got}, expected {expect}"
        );
        assert_eq!(heard[0], heard[1], "idle listeners share one noise mix");
    }
}

#[test]
fn resampling_keeps_a_tones_frequency() {
    let mut c = Conference::new(Profile::default()); // 48 kHz
    let mut ts = vec![
        talker(&mut c, 697.0, 8000.0, at(8000)),
        talker(&mut c, 1209.0, 8000.0, at(48000)),
    ];
    let listen = [ts[0].id, ts[1].id];
    let heard = run(&mut c, &mut ts, &listen, 10);
    assert_eq!(heard[0].len(), 1600);
    assert_eq!(heard[1].len(), 9600);
    assert!(level_db(&heard[0][400..], 8000, 1209.0) > HEARD);
    assert!(level_db(&heard[0][400..], 8000, 697.0) < -40.0);
    assert!(level_db(&heard[1][2400..], 48000, 697.0) > HEARD);
    assert!(level_db(&heard[1][2400..], 48000, 1209.0) < -40.0);
}

#[test]
fn relate_works() {
    let mut c = Conference::new(profile(&[]));
    let mut ts = vec![
        talker(&mut c, 941.0, 8000.0, at(8000)),
        talker(&mut c, 697.0, 8000.0, at(8000)),
        talker(&mut c, 1209.0, 8000.0, at(8000)),
    ];
    let (a, b, cc) = (ts[0].id, ts[1].id, ts[2].id);
    let (l, _in) = join(&mut c, at(8000));
    c.relate(
        a,
        b,
        Relation {
            hear: false,
            speak: true,
        },
    )
    .unwrap();
    c.relate(
        a,
        cc,
        Relation {
            hear: true,
            speak: false,
        },
    )
    .unwrap();
    c.relate(
        l,
        b,
        Relation {
            hear: false,
            speak: true,
        },
    )
    .unwrap();
    let heard = run(&mut c, &mut ts, &[a, b, cc, l], 10);
    let lvl = |h: &Vec<i16>, f| level_db(&h[800..], 8000, f);
    assert!(lvl(&heard[0], 697.0) < SILENT && lvl(&heard[0], 1209.0) > HEARD);
    assert!(lvl(&heard[1], 941.0) > HEARD, "B still hears A");
    assert!(lvl(&heard[2], 941.0) < SILENT && lvl(&heard[2], 697.0) > HEARD);
    assert!(lvl(&heard[3], 697.0) < SILENT && lvl(&heard[3], 941.0) > HEARD);
    c.relate(
        a,
        b,
        Relation {
            hear: true,
            speak: true,
        },
    )
    .unwrap();
    let heard = run(&mut c, &mut ts, &[a], 10);
    assert!(lvl(&heard[0], 697.0) > HEARD, "relation cleared");
}

#[test]
fn max_members_holds() {
    let mut c = Conference::new(profile(&[("max-members", "2")]));
    let (a, _ia) = join(&mut c, at(8000));
    join(&mut c, at(8000));
    assert_eq!(
        c.add_member(at(8000)).err(),
        Some(JoinError::Full { max: 2 })
    );
    assert_eq!(c.member_count(), 2);
    c.remove_member(a).unwrap();
    assert!(c.add_member(at(8000)).is_ok());
    assert_eq!(
        c.add_member(at(22050)).err(),
        Some(JoinError::Full { max: 2 })
    );
}

#[test]
fn invalid_member_config_is_rejected() {
    let mut c = Conference::new(profile(&[]));
    assert_eq!(
        c.add_member(at(22050)).err(),
        Some(JoinError::InvalidRate(22050))
    );
    let loud = MemberConfig {
        energy_level: Some(5000),
        ..at(8000)
    };
    assert!(matches!(
        c.add_member(loud),
        Err(JoinError::InvalidEnergyLevel(_))
    ));
    assert!(c.set_energy_level(MemberId(99), Some(10)).is_err());
}

#[test]
fn silent_listeners_share_one_mix_per_rate_and_talkers_get_their_own() {
    let mut c = Conference::new(Profile::default());
    let mut ts: Vec<_> = [697.0, 941.0, 1209.0]
        .iter()
        .map(|f| talker(&mut c, *f, 8000.0, at(48000)))
        .collect();
    let quiet: Vec<_> = (0..5).map(|_| join(&mut c, at(48000))).collect();
    let narrow: Vec<_> = (0..2).map(|_| join(&mut c, at(16000))).collect();
    run(&mut c, &mut ts, &[], 2);
    for t in &mut ts {
        t.push();
    }
    let out = c.tick(Instant::now());
    assert_eq!(out.routes().len(), 10);
    assert_eq!(out.mixes().len(), 5);
    let mix_of = |id| out.routes().iter().find(|r| r.member == id).unwrap().mix;
    assert!(
        quiet
            .iter()
            .all(|(id, _)| mix_of(*id) == mix_of(quiet[0].0))
    );
    assert!(
        narrow
            .iter()
            .all(|(id, _)| mix_of(*id) == mix_of(narrow[0].0))
    );
    assert_eq!(out.mixes()[mix_of(narrow[0].0)].rate, 16000);
    assert_eq!(out.mixes()[mix_of(narrow[0].0)].pcm.len(), 320);
    let talker_mixes: std::collections::HashSet<_> = ts.iter().map(|t| mix_of(t.id)).collect();
    assert_eq!(talker_mixes.len(), 3);
    // The shared mixes say so (the server keeps one encoder per shared mix).
    assert_eq!(out.mixes()[mix_of(quiet[0].0)].shared, Some(0));
    assert!(
        talker_mixes
            .iter()
            .all(|m| out.mixes()[*m].shared.is_none())
    );
}

#[test]
fn talk_events_carry_energy_and_a_leaving_talker_gets_a_final_stop() {
    let mut c = Conference::new(profile(&[]));
    let mut ts = vec![talker(&mut c, 697.0, 8000.0, at(8000))];
    let (l, _in) = join(&mut c, at(8000));
    let b = ts[0].id;
    run(&mut c, &mut ts, &[l], 2);
    let ev = events(&mut c);
    assert!(
        matches!(ev[..], [Event::StartTalking { member, energy }] if member == b && energy > 4500)
    );
    assert!(c.member_talking(b).unwrap());
    assert!(c.member_energy(b).unwrap() > 4500);
    c.remove_member(b).unwrap();
    assert!(matches!(events(&mut c)[..], [Event::StopTalking { member, .. }] if member == b));
}

#[test]
fn hangover_stops_talking_after_40_quiet_frames() {
    let mut c = Conference::new(profile(&[]));
    let mut ts = vec![talker(&mut c, 697.0, 8000.0, at(8000))];
    run(&mut c, &mut ts, &[], 3);
    events(&mut c);
    ts[0].amp = 0.0;
    run(&mut c, &mut ts, &[], 39);
    assert!(events(&mut c).is_empty());
    run(&mut c, &mut ts, &[], 1);
    assert!(matches!(events(&mut c)[..], [Event::StopTalking { .. }]));
}

/// A test tone source at `rate` (the profile's), `len` samples long.
struct ToneSource {
    freq: f64,
    rate: u32,
    pos: usize,
    len: usize,
}

impl Source for ToneSource {
    fn fill(&mut self, out: &mut [i16]) -> usize {
        let n = out.len().min(self.len - self.pos);
        out[..n].copy_from_slice(&sine(self.freq, self.rate, self.pos, n, 8000.0));
        self.pos += n;
        n
    }
}

fn tone(freq: f64, rate: u32, ms: usize) -> Box<ToneSource> {
    Box::new(ToneSource {
        freq,
        rate,
        pos: 0,
        len: rate as usize * ms / 1000,
    })
}

#[test]
fn conference_playback_reaches_everyone_and_reports_done() {
    let mut c = Conference::new(profile(&[]));
    let mut ts = vec![talker(&mut c, 697.0, 8000.0, at(8000))];
    let (l, _in) = join(&mut c, at(8000));
    let b = ts[0].id;
    c.play(PlaybackId(7), PlaybackTarget::All, tone(1209.0, 8000, 190))
        .unwrap();
    let heard = run(&mut c, &mut ts, &[b, l], 14);
    assert!(
        level_db(&heard[0][..1440], 8000, 1209.0) > HEARD,
        "the talker hears it"
    );
    assert!(level_db(&heard[1][..1440], 8000, 1209.0) > HEARD);
    assert!(
        level_db(&heard[1][1600..], 8000, 1209.0) < SILENT,
        "it ended"
    );
    let done: Vec<_> = events(&mut c)
        .into_iter()
        .filter(|e| matches!(e, Event::PlaybackDone { .. }))
        .collect();
    assert_eq!(
        done,
        [Event::PlaybackDone {
            id: PlaybackId(7),
            target: PlaybackTarget::All,
            stopped: false
        }]
    );
}

#[test]
fn member_playback_is_private_and_can_be_stopped() {
    let mut c = Conference::new(profile(&[]));
    let mut ts = vec![talker(&mut c, 697.0, 8000.0, at(8000))];
    let (p, _ip) = join(&mut c, at(8000));
    let (q, _iq) = join(&mut c, at(8000));
    let target = PlaybackTarget::Member(p);
    c.play(PlaybackId(1), target, tone(1209.0, 8000, 10_000))
        .unwrap();
    let heard = run(&mut c, &mut ts, &[p, q], 10);
    assert!(level_db(&heard[0], 8000, 1209.0) > HEARD);
    assert!(
        level_db(&heard[0][800..], 8000, 697.0) > HEARD,
        "the conference is still heard"
    );
    assert!(level_db(&heard[1], 8000, 1209.0) < SILENT);
    events(&mut c);
    c.stop_playback(PlaybackId(1)).unwrap();
    assert_eq!(
        events(&mut c),
        [Event::PlaybackDone {
            id: PlaybackId(1),
            target,
            stopped: true
        }]
    );
    assert!(c.stop_playback(PlaybackId(1)).is_err());
    assert!(
        c.play(
            PlaybackId(2),
            PlaybackTarget::Member(MemberId(99)),
            tone(1.0, 8000, 1)
        )
        .is_err()
    );
}

#[test]
fn volume_steps_change_what_is_heard() {
    let mut c = Conference::new(profile(&[("energy-level", "0")]));
    let mut ts = vec![talker(&mut c, 697.0, 8000.0, at(8000))];
    let (l, _in) = join(&mut c, at(8000));
    let (loud, _in2) = join(&mut c, at(8000));
    c.set_listen_volume(loud, 2).unwrap();
    let heard = run(&mut c, &mut ts, &[l, loud], 10);
    let gain = level_db(&heard[1][800..], 8000, 697.0) - level_db(&heard[0][800..], 8000, 697.0);
    assert!(
        (gain - 20.0 * 2.3f64.log10()).abs() < 0.5,
        "listen +2 = x2.3: {gain} dB"
    );
    c.set_talk_volume(ts[0].id, -4).unwrap();
    let heard = run(&mut c, &mut ts, &[l], 10);
    let quiet = level_db(&heard[0][800..], 8000, 697.0)
        - level_db(&sine(697.0, 8000, 0, 800, 8000.0), 8000, 697.0);
    assert!(
        (quiet - 20.0 * 0.2f64.log10()).abs() < 1.0,
        "talk -4 = x0.2: {quiet} dB"
    );
}

#[test]
fn a_missing_frame_is_silence_not_a_stall() {
    let mut c = Conference::new(profile(&[("energy-level", "0")]));
    let (b, mut input) = join(&mut c, at(8000));
    let (l, _in) = join(&mut c, at(8000));
    let now = Instant::now();
    let mut heard = Vec::new();
    for k in 0..6 {
        if k != 2 {
            input.push(&[1000; 160]);
        }
        let out = c.tick(now + Duration::from_millis(20 * k));
        heard.extend_from_slice(out.pcm_for(l).unwrap());
    }
    let _ = b;
    assert_eq!(heard.len(), 6 * 160);
    let d = 80;
    assert!(
        heard[320 + d..480 + d].iter().all(|s| *s == 0),
        "the gap is silence"
    );
    assert!(
        heard[480 + d..].iter().all(|s| *s == 1000),
        "and audio resumes on time"
    );
}

#[test]
fn muting_a_talker_ends_its_talking() {
    let mut c = Conference::new(profile(&[]));
    let mut ts = vec![talker(&mut c, 697.0, 8000.0, at(8000))];
    let b = ts[0].id;
    run(&mut c, &mut ts, &[], 2);
    events(&mut c);
    let muted = MemberFlags {
        speak: false,
        ..MemberFlags::default()
    };
    c.set_flags(b, muted).unwrap();
    assert!(matches!(events(&mut c)[..], [Event::StopTalking { member, .. }] if member == b));
    assert_eq!(c.member_talking(b), Some(false));
    assert_eq!(c.member_flags(b), Some(muted));
}

#[test]
fn relating_a_member_to_itself_changes_nothing() {
    let mut c = Conference::new(profile(&[]));
    let mut ts = vec![
        talker(&mut c, 697.0, 8000.0, at(8000)),
        talker(&mut c, 1209.0, 8000.0, at(8000)),
    ];
    let a = ts[0].id;
    c.relate(
        a,
        a,
        Relation {
            hear: false,
            speak: false,
        },
    )
    .unwrap();
    let heard = run(&mut c, &mut ts, &[a], 10);
    assert!(level_db(&heard[0][800..], 8000, 1209.0) > HEARD);
    assert!(level_db(&heard[0][800..], 8000, 697.0) < SILENT);
}

#[test]
fn g711_phones_in_a_48khz_profile_mix_at_8khz() {
    let mut c = Conference::new(Profile::default());
    assert_eq!(
        c.mix_rate(),
        48000,
        "an empty conference mixes at the profile rate"
    );
    let mut ts = vec![
        talker(&mut c, 941.0, 8000.0, at(8000)),
        talker(&mut c, 697.0, 8000.0, at(8000)),
    ];
    assert_eq!(c.mix_rate(), 8000);
    let ids: Vec<_> = ts.iter().map(|t| t.id).collect();
    let heard = run(&mut c, &mut ts, &ids, 10);
    assert_eq!(heard[0].len(), 1600);
    assert!(level_db(&heard[0][800..], 8000, 697.0) > HEARD);
    assert!(level_db(&heard[0][800..], 8000, 941.0) < SILENT);
    assert!(level_db(&heard[1][800..], 8000, 941.0) > HEARD);
    assert!(level_db(&heard[1][800..], 8000, 697.0) < SILENT);
}

/// RMS of each 10 ms window of `s`: a dropout shows as a low window.
fn quietest_10ms(s: &[i16], rate: u32) -> f64 {
    s.chunks(rate as usize / 100)
        .map(|w| (w.iter().map(|x| (*x as f64).powi(2)).sum::<f64>() / w.len() as f64).sqrt())
        .fold(f64::MAX, f64::min)
}

#[test]
fn a_wideband_member_switches_the_mix_up_and_leaving_switches_it_back() {
    let mut c = Conference::new(Profile::default());
    let mut ts = vec![
        talker(&mut c, 697.0, 8000.0, at(8000)),
        talker(&mut c, 1209.0, 8000.0, at(8000)),
    ];
    let (a, b) = (ts[0].id, ts[1].id);
    let mut heard_a = run(&mut c, &mut ts, &[a], 10).remove(0);
    assert!(level_db(&heard_a[800..], 8000, 1209.0) > HEARD);
    // A 16 kHz phone (1633 Hz) and one sending 6 kHz, which only a
    // wideband mix carries.
    ts.push(talker(&mut c, 1633.0, 8000.0, at(16000)));
    ts.push(talker(&mut c, 6000.0, 8000.0, at(16000)));
    assert_eq!(c.mix_rate(), 16000);
    let (w, x) = (ts[2].id, ts[3].id);
    let heard = run(&mut c, &mut ts, &[a, b, w], 10);
    heard_a.extend_from_slice(&heard[0]);
    assert_eq!(heard[0].len(), 1600, "no samples lost at the switch");
    assert_eq!(heard[2].len(), 3200);
    // Across the switch A keeps hearing B: no silent gap, same tone.
    let across = &heard_a[1200..2000];
    assert!(level_db(across, 8000, 1209.0) > HEARD);
    assert!(level_db(across, 8000, 697.0) < SILENT);
    assert!(quietest_10ms(across, 8000) > 1000.0);
    let (ha, hb, hw) = (&heard[0][800..], &heard[1][800..], &heard[2][1600..]);
    assert!(level_db(ha, 8000, 1209.0) > HEARD && level_db(ha, 8000, 1633.0) > HEARD);
    assert!(level_db(ha, 8000, 697.0) < SILENT);
    assert!(level_db(hb, 8000, 697.0) > HEARD && level_db(hb, 8000, 1633.0) > HEARD);
    for f in [697.0, 1209.0, 6000.0] {
        assert!(level_db(hw, 16000, f) > HEARD, "W hears {f} Hz");
    }
    assert!(level_db(hw, 16000, 1633.0) < SILENT);
    c.remove_member(w).unwrap();
    assert_eq!(c.mix_rate(), 16000, "X still needs it");
    c.remove_member(x).unwrap();
    assert_eq!(c.mix_rate(), 8000);
    ts.truncate(2);
    let heard = run(&mut c, &mut ts, &[a, b], 10);
    assert_eq!(heard[0].len(), 1600);
    assert!(quietest_10ms(&heard[0], 8000) > 1000.0);
    assert!(level_db(&heard[0][800..], 8000, 1209.0) > HEARD);
    assert!(level_db(&heard[0][800..], 8000, 697.0) < SILENT);
    assert!(level_db(&heard[1][800..], 8000, 697.0) > HEARD);
}

#[test]
fn playback_keeps_its_frequency_and_length_across_a_switch() {
    let mut c = Conference::new(Profile::default());
    let (a, _ia) = join(&mut c, at(8000));
    // One second of tone at the profile rate: 50 full ticks whatever the mix
    // rate; the 51st finds it empty.
    c.play(
        PlaybackId(3),
        PlaybackTarget::All,
        tone(1209.0, 48000, 1000),
    )
    .unwrap();
    let before = run(&mut c, &mut [], &[a], 20).remove(0);
    assert_eq!(c.mix_rate(), 8000);
    let (w, _iw) = join(&mut c, at(16000));
    assert_eq!(c.mix_rate(), 16000);
    let after = run(&mut c, &mut [], &[a, w], 30);
    assert!(events(&mut c).is_empty(), "still playing after 50 ticks");
    run(&mut c, &mut [], &[], 1);
    assert!(matches!(events(&mut c)[..], [Event::PlaybackDone { .. }]));
    let across: Vec<i16> = before[2400..]
        .iter()
        .chain(&after[0][..800])
        .copied()
        .collect();
    for h in [&before[400..], &across[..], &after[0][..]] {
        assert!(level_db(h, 8000, 1209.0) > HEARD);
        assert!(level_db(h, 8000, 1000.0) < -40.0 && level_db(h, 8000, 1400.0) < -40.0);
    }
    assert!(quietest_10ms(&across, 8000) > 1000.0);
    assert!(level_db(&after[1][..], 16000, 1209.0) > HEARD);
}

#[test]
fn the_profile_rate_caps_the_mix_rate() {
    let mut c = Conference::new(profile(&[("rate", "16000")]));
    let mut ts = vec![
        talker(&mut c, 697.0, 8000.0, at(8000)),
        talker(&mut c, 1209.0, 8000.0, at(48000)),
    ];
    assert_eq!(c.mix_rate(), 16000);
    let ids: Vec<_> = ts.iter().map(|t| t.id).collect();
    let heard = run(&mut c, &mut ts, &ids, 10);
    assert_eq!(heard[1].len(), 9600, "the 48 kHz member still gets 48 kHz");
    assert!(level_db(&heard[0][800..], 8000, 1209.0) > HEARD);
    assert!(level_db(&heard[1][4800..], 48000, 697.0) > HEARD);
    assert!(level_db(&heard[1][4800..], 48000, 1209.0) < -40.0);
}
