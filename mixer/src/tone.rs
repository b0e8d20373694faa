//! FreeSWITCH `tone_stream://` strings, generated as they play.
//!
//! Semantics follow libteletone (`teletone_run`, `teletone_mux_tones`) and
//! mod_tone_stream, so Kazoo and jambonz tone strings sound as they do there:
//! `;`-separated settings `v=` (dB, -63..0, else ignored), `d=`/`w=` default
//! on/off ms, `>=`/`<=` ms per decay step (down/up), `+=` dB per step,
//! `l=` repeats of each following tone (-1 forever), `L=` passes over the
//! whole string (the first positive one counts), a `;loops=N` suffix replaying
//! the result N times (-1 forever); tones `%(on,off,f1[,f2..])` and the DTMF
//! names `0-9*#A-D`, optionally `X(on,off)`. Each tone restarts at phase 0 and
//! at the `v=` volume. Unlike FreeSWITCH, which renders the whole string into
//! memory first, samples are made on demand: `loops=-1`, `l=-1` and long
//! cadences cost nothing, and an untrusted string cannot exhaust memory.
//! Also unlike it, anything malformed or unknown is rejected, not skipped.

use crate::source::Source;

/// Longest accepted string: bounds the number of segments kept.
const MAX_SPEC: usize = 4096;
/// Longest single tone or gap (10 minutes).
const MAX_MS: f64 = 600_000.0;
/// teletone's TELETONE_MAX_TONES.
const MAX_FREQS: usize = 18;
const MAX_FREQ: f64 = 20_000.0;
const VOL_MIN: f32 = -63.0;
const VOL_MAX: f32 = 0.0;
/// teletone's 0 dB reference: u-law's 3.14 dBm0 full-scale sine plus 3.02 dB
/// (3.14 is a level, not pi).
const DBM0_MAX_POWER: f32 = 6.16;

/// Why a tone string was refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ToneError {
    #[error("tone string longer than {MAX_SPEC} bytes")]
    TooLong,
    #[error("bad tone token `{token}`: {reason}")]
    BadToken { token: String, reason: &'static str },
    #[error("tone string `{0}` plays no sound")]
    Silent(String),
}

fn bad(token: &str, reason: &'static str) -> ToneError {
    ToneError::BadToken {
        token: token.to_string(),
        reason,
    }
}

/// One parsed token, executed against `State` once per pass.
#[derive(Debug)]
enum Op {
    Volume(f32),
    Duration(u32),
    Wait(u32),
    Decay {
        step_ms: u32,
        dir: f32,
    },
    DecayFactor(f32),
    ToneLoops(i32),
    ScriptLoops(i32),
    Tone {
        freqs: Vec<f64>,
        on_ms: Option<u32>,
        off_ms: Option<u32>,
    },
}

/// teletone's session settings; they carry over between `L=` passes.
#[derive(Debug, Clone)]
struct State {
    volume: f32,
    duration_ms: u32,
    wait_ms: u32,
    decay: Decay,
    loops: i32,
}

impl Default for State {
    fn default() -> Self {
        State {
            volume: -7.0,
            duration_ms: 2000,
            wait_ms: 500,
            decay: Decay {
                step: 0,
                dir: 0.0,
                factor: 1.0,
            },
            loops: 0,
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Decay {
    /// Samples per volume step.
    step: usize,
    /// -1 fades out, 1 fades in, 0 holds.
    dir: f32,
    /// dB per step.
    factor: f32,
}

/// One tone with its trailing gap, ready to synthesise.
#[derive(Debug)]
struct Segment {
    /// Radians per sample.
    omegas: Vec<f64>,
    on: usize,
    off: usize,
    volume: f32,
    decay: Decay,
    /// `None` repeats forever.
    repeats: Option<u32>,
}

/// A `tone_stream://` string as a playable source.
#[derive(Debug)]
pub struct ToneStream {
    /// The first pass, then the pass repeated for the other `L=` passes
    /// (settings changed late in the string apply from the second pass on).
    passes: [Vec<Segment>; 2],
    script_loops: u32,
    /// Replays of everything (`;loops=`); `None` forever.
    plays: Option<u32>,
    at: Cursor,
    voice: Voice,
    done: bool,
}

#[derive(Debug, Default)]
struct Cursor {
    play: u32,
    pass: u32,
    seg: usize,
    rep: u32,
    sample: usize,
}

impl ToneStream {
    /// Parses `spec` (with or without `tone_stream://`) for output at `rate` Hz.
    pub fn parse(spec: &str, rate: u32) -> Result<ToneStream, ToneError> {
        if spec.len() > MAX_SPEC {
            return Err(ToneError::TooLong);
        }
        let body = spec.strip_prefix("tone_stream://").unwrap_or(spec);
        let (body, plays) = split_loops(body)?;
        let ops = parse_ops(body)?;
        let rate = rate.max(1) as u64;
        let mut state = State::default();
        let mut script_loops = None;
        let first = execute(&ops, &mut state, rate, &mut script_loops);
        let script_loops = script_loops.unwrap_or(1);
        let again = if script_loops > 1 {
            execute(&ops, &mut state, rate, &mut Some(script_loops))
        } else {
            Vec::new()
        };
        let script_loops = if again.is_empty() { 1 } else { script_loops };
        if first.is_empty() && script_loops == 1 {
            return Err(ToneError::Silent(spec.to_string()));
        }
        let mut tone = ToneStream {
            passes: [first, again],
            script_loops,
            plays,
            at: Cursor::default(),
            voice: Voice::default(),
            done: false,
        };
        tone.settle();
        Ok(tone)
    }

    /// Moves past the current segment, honouring every repeat level.
    fn advance(&mut self) {
        let seg = &self.passes[self.pass_index()][self.at.seg];
        self.at.sample = 0;
        self.at.rep += 1;
        if seg.repeats.is_none_or(|r| self.at.rep < r) {
            return;
        }
        self.at.rep = 0;
        self.at.seg += 1;
        self.settle();
    }

    /// Steps over exhausted passes and plays until a segment is found or
    /// everything has played; `parse` guarantees some pass has a segment.
    fn settle(&mut self) {
        while self.at.seg >= self.passes[self.pass_index()].len() {
            self.at.seg = 0;
            self.at.pass += 1;
            if self.at.pass < self.script_loops {
                continue;
            }
            self.at.pass = 0;
            self.at.play += 1;
            if self.plays.is_some_and(|p| self.at.play >= p) {
                self.done = true;
                return;
            }
        }
    }

    fn pass_index(&self) -> usize {
        usize::from(self.at.pass > 0)
    }
}

impl Source for ToneStream {
    fn fill(&mut self, out: &mut [i16]) -> usize {
        let mut n = 0;
        while n < out.len() && !self.done {
            let seg = &self.passes[self.pass_index()][self.at.seg];
            if self.at.sample == 0 {
                self.voice.start(seg);
            }
            let take = (out.len() - n).min(seg.on + seg.off - self.at.sample);
            let tone = take.min(seg.on.saturating_sub(self.at.sample));
            let (sound, gap) = out[n..n + take].split_at_mut(tone);
            for o in sound {
                *o = self.voice.next(seg.decay);
            }
            gap.fill(0);
            n += take;
            self.at.sample += take;
            if self.at.sample == seg.on + seg.off {
                self.advance();
            }
        }
        n
    }
}

/// The oscillators and fading volume of the tone being played.
#[derive(Debug, Default)]
struct Voice {
    oscs: Vec<Osc>,
    volume: f32,
    gain: f64,
    since_step: usize,
}

/// A unit phasor rotated once per sample: four multiplies per output
/// instead of a `sin` call.
#[derive(Debug)]
struct Osc {
    re: f64,
    im: f64,
    cos: f64,
    sin: f64,
}

impl Voice {
    fn start(&mut self, seg: &Segment) {
        self.oscs.clear();
        self.oscs.extend(seg.omegas.iter().map(|w| Osc {
            re: 1.0,
            im: 0.0,
            cos: w.cos(),
            sin: w.sin(),
        }));
        self.since_step = 0;
        self.set_volume(seg.volume);
    }

    /// teletone gives each frequency the full level, then averages them.
    fn set_volume(&mut self, db: f32) {
        self.volume = db;
        let peak = 10f64.powf(f64::from(db - DBM0_MAX_POWER) / 20.0) * 32767.0 * 2f64.sqrt();
        self.gain = peak / self.oscs.len().max(1) as f64;
    }

    fn next(&mut self, decay: Decay) -> i16 {
        if decay.dir != 0.0 {
            self.since_step += 1;
            let db = self.volume + decay.dir * decay.factor;
            // Like teletone: a step that would leave the range is skipped.
            if self.since_step >= decay.step && (VOL_MIN..=VOL_MAX).contains(&db) {
                self.set_volume(db);
                self.since_step = 0;
            }
        }
        let mut sum = 0.0;
        for o in &mut self.oscs {
            sum += o.im;
            (o.re, o.im) = (o.re * o.cos - o.im * o.sin, o.re * o.sin + o.im * o.cos);
        }
        // Round half away from zero without `f64::round`, a libm call on
        // baseline x86-64; the level never exceeds i16.
        let x = sum * self.gain;
        (x + 0.5f64.copysign(x)) as i16
    }
}

/// Splits off mod_tone_stream's `;loops=N` suffix (it drops anything after).
fn split_loops(body: &str) -> Result<(&str, Option<u32>), ToneError> {
    let Some(at) = body.to_ascii_lowercase().find(";loops=") else {
        return Ok((body, Some(1)));
    };
    let value = &body[at + ";loops=".len()..];
    let n: i32 = value
        .trim()
        .parse()
        .map_err(|_| bad(&body[at + 1..], "loops must be an integer"))?;
    Ok((&body[..at], u32::try_from(n).ok().map(|n| n.max(1))))
}

fn parse_ops(body: &str) -> Result<Vec<Op>, ToneError> {
    let mut ops = Vec::new();
    for token in body.split(';').map(str::trim).filter(|t| !t.is_empty()) {
        let mut chars = token.chars();
        match (chars.next(), chars.next()) {
            (Some(key), Some('=')) => {
                ops.extend(setting(key, token[key.len_utf8() + 1..].trim(), token)?);
            }
            _ => tones(token, &mut ops)?,
        }
    }
    Ok(ops)
}

/// A `k=value` token; `None` for settings that are accepted but moot here.
fn setting(key: char, value: &str, token: &str) -> Result<Option<Op>, ToneError> {
    let int = || {
        value
            .parse::<i32>()
            .map_err(|_| bad(token, "expected an integer"))
    };
    let float = || {
        value
            .parse::<f32>()
            .ok()
            .filter(|v| v.is_finite())
            .ok_or_else(|| bad(token, "expected a number"))
    };
    let ms = || millis(value).map_err(|reason| bad(token, reason));
    Ok(Some(match key {
        'v' => Op::Volume(float()?),
        'd' => Op::Duration(ms()?),
        'w' => Op::Wait(ms()?),
        '>' => Op::Decay {
            step_ms: ms()?,
            dir: -1.0,
        },
        '<' => Op::Decay {
            step_ms: ms()?,
            dir: 1.0,
        },
        '+' => Op::DecayFactor(float()?),
        'l' => Op::ToneLoops(int()?),
        'L' => Op::ScriptLoops(int()?),
        // Rate and channels are the caller's to choose; accepted so strings
        // written for FreeSWITCH still parse.
        'r' | 'c' => {
            int()?;
            return Ok(None);
        }
        _ => return Err(bad(token, "unknown setting")),
    }))
}

/// Tone items in one token: `%(on,off,f..)`, `X(on,off)` or bare `X`.
fn tones(token: &str, ops: &mut Vec<Op>) -> Result<(), ToneError> {
    let mut rest = token;
    loop {
        rest = rest.trim_start();
        let Some(name) = rest.chars().next() else {
            return Ok(());
        };
        let after = &rest[name.len_utf8()..];
        match after.strip_prefix('(') {
            Some(args) => {
                let (inner, tail) = args.split_once(')').unwrap_or((args, ""));
                let item = &rest[..rest.len() - tail.len()];
                ops.push(tone_with_args(name, inner).map_err(|reason| bad(item, reason))?);
                rest = tail;
            }
            None => {
                let freqs =
                    dtmf(name).ok_or_else(|| bad(&rest[..name.len_utf8()], "unknown tone name"))?;
                ops.push(Op::Tone {
                    freqs: freqs.to_vec(),
                    on_ms: None,
                    off_ms: None,
                });
                rest = after;
            }
        }
    }
}

fn tone_with_args(name: char, inner: &str) -> Result<Op, &'static str> {
    let args: Vec<&str> = inner.split(',').map(str::trim).collect();
    let freqs = if name == '%' {
        if args.len() < 3 {
            return Err("expected (on_ms,off_ms,freq[,freq..])");
        }
        if args.len() - 2 > MAX_FREQS {
            return Err("more than 18 frequencies");
        }
        let mut freqs = Vec::with_capacity(args.len() - 2);
        for f in &args[2..] {
            freqs.push(frequency(f)?);
        }
        // teletone stops at the first zero frequency.
        let audible = freqs.iter().take_while(|&&f| f > 0.0).count();
        freqs.truncate(audible);
        freqs
    } else {
        if args.len() != 2 {
            return Err("a named tone takes (on_ms,off_ms)");
        }
        dtmf(name).ok_or("unknown tone name")?.to_vec()
    };
    Ok(Op::Tone {
        freqs,
        on_ms: Some(millis(args[0])?),
        off_ms: Some(millis(args[1])?),
    })
}

fn frequency(s: &str) -> Result<f64, &'static str> {
    s.parse::<f64>()
        .ok()
        .filter(|f| (0.0..=MAX_FREQ).contains(f))
        .ok_or("frequency must be a number of Hz, 0..20000")
}

fn millis(s: &str) -> Result<u32, &'static str> {
    s.parse::<f64>()
        .ok()
        .filter(|ms| (0.0..=MAX_MS).contains(ms))
        .map(|ms| ms as u32)
        .ok_or("duration must be 0..600000 ms")
}

fn dtmf(name: char) -> Option<[f64; 2]> {
    const ROWS: [f64; 4] = [697.0, 770.0, 859.0, 941.0];
    const COLS: [f64; 4] = [1209.0, 1336.0, 1477.0, 1633.0];
    let (r, c) = match name {
        '1' => (0, 0),
        '2' => (0, 1),
        '3' => (0, 2),
        'A' => (0, 3),
        '4' => (1, 0),
        '5' => (1, 1),
        '6' => (1, 2),
        'B' => (1, 3),
        '7' => (2, 0),
        '8' => (2, 1),
        '9' => (2, 2),
        'C' => (2, 3),
        '*' => (3, 0),
        '0' => (3, 1),
        '#' => (3, 2),
        'D' => (3, 3),
        _ => return None,
    };
    Some([ROWS[r], COLS[c]])
}

/// Runs one pass of the string from `state`, as teletone would.
fn execute(ops: &[Op], st: &mut State, rate: u64, script_loops: &mut Option<u32>) -> Vec<Segment> {
    let samples = |ms: u32| (ms as u64 * rate / 1000) as usize;
    let mut segments = Vec::new();
    for op in ops {
        match op {
            Op::Volume(v) if (VOL_MIN..=VOL_MAX).contains(v) => st.volume = *v,
            Op::Volume(_) => {}
            Op::Duration(ms) => st.duration_ms = *ms,
            Op::Wait(ms) => st.wait_ms = *ms,
            Op::Decay { step_ms, dir } => {
                st.decay.step = samples(*step_ms);
                st.decay.dir = *dir;
            }
            Op::DecayFactor(f) => st.decay.factor = *f,
            Op::ToneLoops(n) => st.loops = *n,
            Op::ScriptLoops(n) => {
                if script_loops.is_none() && *n > 0 {
                    *script_loops = Some(*n as u32);
                }
            }
            // An empty frequency list is ignored outright, gap and all.
            Op::Tone { freqs, .. } if freqs.is_empty() => {}
            Op::Tone {
                freqs,
                on_ms,
                off_ms,
            } => {
                let repeats = u32::try_from(st.loops).ok().map(|n| n.max(1));
                st.loops = st.loops.min(0);
                let seg = Segment {
                    omegas: freqs
                        .iter()
                        .map(|f| 2.0 * std::f64::consts::PI * f / rate as f64)
                        .collect(),
                    on: samples(on_ms.unwrap_or(st.duration_ms)),
                    off: samples(off_ms.unwrap_or(st.wait_ms)),
                    volume: st.volume,
                    decay: st.decay,
                    repeats,
                };
                if seg.on + seg.off > 0 {
                    segments.push(seg);
                }
            }
        }
    }
    segments
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::goertzel::level_db;

    const ENTRY: &str =
        "tone_stream://v=-7;>=2;+=.1;%(300,0,523,659);v=-7;>=3;+=.1;%(800,0,659,783)";
    const EXIT: &str =
        "tone_stream://v=-7;>=2;+=.1;%(300,0,523,440);v=-7;>=3;+=.1;%(800,0,349,440)";
    const BEEP: &str = "tone_stream://v=-7;%(100,0,941.0,1477.0);v=-7;>=2;+=.1;%(1400,0,350,440)";

    /// Plays `spec` in 20 ms frames until it ends (or `max_ms` passes).
    fn render(spec: &str, rate: u32, max_ms: usize) -> Vec<i16> {
        let mut tone = ToneStream::parse(spec, rate).unwrap();
        let mut out = Vec::new();
        let mut frame = vec![0; rate as usize / 50];
        while out.len() < max_ms * rate as usize / 1000 {
            let n = tone.fill(&mut frame);
            out.extend_from_slice(&frame[..n]);
            if n < frame.len() {
                break;
            }
        }
        out
    }

    fn ms(pcm: &[i16], rate: u32, from: usize, to: usize) -> &[i16] {
        let r = rate as usize / 1000;
        &pcm[from * r..to * r]
    }

    /// Asserts `window` carries each of `on` and none of `off`.
    fn assert_tones(window: &[i16], rate: u32, on: &[f64], off: &[f64]) {
        for &f in on {
            let l = level_db(window, rate, f);
            assert!(l > -30.0, "{f} Hz missing ({l} dB)");
        }
        for &f in off {
            let l = level_db(window, rate, f);
            assert!(l < -45.0, "{f} Hz present ({l} dB)");
        }
    }

    #[test]
    fn kazoo_entry_tone_is_two_chords() {
        for rate in [8000, 16000, 48000] {
            let pcm = render(ENTRY, rate, 5000);
            assert_eq!(pcm.len(), 1100 * rate as usize / 1000);
            assert_tones(ms(&pcm, rate, 0, 300), rate, &[523.0, 659.0], &[783.0]);
            assert_tones(ms(&pcm, rate, 300, 1100), rate, &[659.0, 783.0], &[523.0]);
        }
    }

    #[test]
    fn kazoo_exit_tone_is_two_chords() {
        let pcm = render(EXIT, 8000, 5000);
        assert_eq!(pcm.len(), 8800);
        assert_tones(ms(&pcm, 8000, 0, 300), 8000, &[523.0, 440.0], &[349.0]);
        assert_tones(ms(&pcm, 8000, 300, 1100), 8000, &[349.0, 440.0], &[523.0]);
    }

    #[test]
    fn jambonz_beep_is_dtmf_hash_then_dial_tone() {
        let pcm = render(BEEP, 16000, 5000);
        assert_eq!(pcm.len(), 1500 * 16);
        assert_tones(ms(&pcm, 16000, 0, 100), 16000, &[941.0, 1477.0], &[350.0]);
        // The dial tone fades 0.1 dB per 2 ms until teletone's -63 dB floor.
        assert_tones(ms(&pcm, 16000, 100, 400), 16000, &[350.0, 440.0], &[941.0]);
        let tail = level_db(ms(&pcm, 16000, 1000, 1500), 16000, 440.0);
        assert!((-75.0..-60.0).contains(&tail), "{tail} dB");
    }

    #[test]
    fn decay_fades_each_chord_from_the_set_volume() {
        let pcm = render(ENTRY, 8000, 5000);
        // 0.1 dB every 2 ms: about 12.5 dB between these two windows...
        let early = level_db(ms(&pcm, 8000, 0, 50), 8000, 523.0);
        let late = level_db(ms(&pcm, 8000, 250, 300), 8000, 523.0);
        assert!((early - late - 12.5).abs() < 1.5, "{early} -> {late}");
        // ...and the second chord starts loud again.
        let restart = level_db(ms(&pcm, 8000, 300, 350), 8000, 659.0);
        assert!((restart - early).abs() < 1.5, "{early} vs {restart}");
    }

    #[test]
    fn volume_matches_teletone_levels() {
        // -7 dB in teletone is a peak of 10190, i.e. -10.15 dBFS.
        let pcm = render("%(500,0,1000)", 8000, 1000);
        assert!((level_db(&pcm, 8000, 1000.0) + 10.15).abs() < 0.2);
        let quiet = render("v=-20;%(500,0,1000)", 8000, 1000);
        assert!((level_db(&quiet, 8000, 1000.0) + 23.15).abs() < 0.2);
        // Out of range volumes are ignored, as in teletone.
        assert_eq!(render("v=5;%(500,0,1000)", 8000, 1000), pcm);
    }

    #[test]
    fn play_name_beep_is_440_hz_on_500_off_100() {
        let pcm = render("tone_stream://%(500,100,440)", 8000, 5000);
        assert_eq!(pcm.len(), 4800);
        assert_tones(ms(&pcm, 8000, 0, 500), 8000, &[440.0], &[880.0]);
        assert!(ms(&pcm, 8000, 500, 600).iter().all(|&s| s == 0));
    }

    #[test]
    fn cadence_alternates_tone_and_silence() {
        let pcm = render("%(200,300,425);loops=3", 8000, 10_000);
        assert_eq!(pcm.len(), 3 * 500 * 8);
        for k in 0..3 {
            let t = k * 500;
            assert_tones(ms(&pcm, 8000, t, t + 200), 8000, &[425.0], &[]);
            assert!(ms(&pcm, 8000, t + 200, t + 500).iter().all(|&s| s == 0));
        }
    }

    #[test]
    fn loop_counts_follow_freeswitch() {
        let len = |spec| render(spec, 8000, 60_000).len() / 8;
        assert_eq!(len("%(100,0,440)"), 100);
        assert_eq!(len("%(100,0,440);loops=0"), 100);
        assert_eq!(len("%(100,0,440);LOOPS=4"), 400);
        // l= repeats only the next tone.
        assert_eq!(len("l=3;%(100,50,440);%(100,0,480)"), 550);
        // L= repeats the string; only the first positive L counts.
        assert_eq!(len("L=3;%(100,0,440);L=7"), 300);
        assert_eq!(len("L=-1;%(100,0,440)"), 100);
        // Defaults: d=2000, w=500; w= and d= change them.
        assert_eq!(len("1"), 2500);
        assert_eq!(len("d=100;w=0;12"), 200);
        assert_eq!(len("1(100,50)#"), 2650);
    }

    #[test]
    fn settings_carry_into_later_passes() {
        let pcm = render("L=2;%(200,0,440);v=-27", 8000, 5000);
        let first = level_db(ms(&pcm, 8000, 0, 200), 8000, 440.0);
        let second = level_db(ms(&pcm, 8000, 200, 400), 8000, 440.0);
        assert!((first - second - 20.0).abs() < 0.5, "{first} {second}");
    }

    #[test]
    fn infinite_loops_never_end() {
        for spec in ["%(100,100,440);loops=-1", "l=-1;%(50,0,440)"] {
            assert_eq!(render(spec, 8000, 30_000).len(), 30 * 8000, "{spec}");
        }
    }

    #[test]
    fn dtmf_names_play_their_pairs() {
        let pcm = render("#(200,0)", 8000, 1000);
        assert_tones(&pcm, 8000, &[941.0, 1477.0], &[697.0, 1209.0]);
        let pcm = render("5(200,0)", 8000, 1000);
        assert_tones(&pcm, 8000, &[770.0, 1336.0], &[941.0, 1477.0]);
    }

    #[test]
    fn whitespace_and_zero_frequencies_are_tolerated() {
        assert_eq!(render("%(1000, 0, 640)", 8000, 5000).len(), 8000);
        // teletone stops the list at a zero and skips an empty tone entirely.
        let pcm = render("%(100,0,440,0,1000);%(100,100,0)", 8000, 5000);
        assert_eq!(pcm.len(), 800);
        assert_tones(&pcm, 8000, &[440.0], &[1000.0]);
    }

    #[test]
    fn invalid_strings_are_rejected_naming_the_token() {
        for (spec, token) in [
            ("%(100)", "%(100)"),
            ("%(100,0)", "%(100,0)"),
            ("%(100,0,abc)", "%(100,0,abc)"),
            ("%(100,0,-5)", "%(100,0,-5)"),
            ("%(100,0,30000)", "%(100,0,30000)"),
            ("%(99999999,0,440)", "%(99999999,0,440)"),
            ("%(-1,0,440)", "%(-1,0,440)"),
            ("1(100)", "1(100)"),
            ("x", "x"),
            ("path=/etc/passwd", "p"),
            ("v=loud;%(100,0,440)", "v=loud"),
            ("q=1;%(100,0,440)", "q=1"),
            ("l=1.5;%(100,0,440)", "l=1.5"),
            ("%(100,0,440);loops=many", "loops=many"),
            ("%(100,0,440);%", "%"),
        ] {
            let err = ToneStream::parse(spec, 8000).unwrap_err();
            assert!(
                matches!(&err, ToneError::BadToken { token: t, .. } if t == token),
                "{spec}: {err}"
            );
            assert!(err.to_string().contains(token));
        }
        let freqs = vec!["440"; 19].join(",");
        assert!(ToneStream::parse(&format!("%(100,0,{freqs})"), 8000).is_err());
        assert_eq!(
            ToneStream::parse(&"1".repeat(5000), 8000).unwrap_err(),
            ToneError::TooLong
        );
        for silent in [
            "",
            "tone_stream://",
            "v=-7",
            "%(0,0,440)",
            "%(0,0,440);loops=-1",
        ] {
            assert!(matches!(
                ToneStream::parse(silent, 8000),
                Err(ToneError::Silent(_))
            ));
        }
    }

    #[test]
    fn arbitrary_input_never_panics() {
        let alphabet: Vec<char> = "%(),;=0123456789.-+<>vdwlLrc#*ABx \u{e9}".chars().collect();
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        let mut frame = [0i16; 160];
        for _ in 0..3000 {
            let len = (seed >> 59) as usize;
            let spec: String = (0..len)
                .map(|_| {
                    seed ^= seed << 13;
                    seed ^= seed >> 7;
                    seed ^= seed << 17;
                    alphabet[(seed % alphabet.len() as u64) as usize]
                })
                .collect();
            if let Ok(mut tone) = ToneStream::parse(&spec, 8000) {
                for _ in 0..3 {
                    tone.fill(&mut frame);
                }
            }
        }
    }
}
