//! Packet loss concealment for codecs without their own (G.711, and G.722 on its 16 kHz
//! PCM), after ITU-T G.711 Appendix I:
//! - output runs 3.75 ms behind the decoder, so the start of a loss can be smoothed into
//!   audio that has not been played yet;
//! - a loss is filled by repeating the last pitch period (found by normalized
//!   cross-correlation over the last 20 ms, 5-15 ms lags), widened to the last two periods
//!   after 10 ms and three after 20 ms so long losses do not buzz, and faded out linearly
//!   from 10 ms to silence at 60 ms;
//! - every seam (the loss start, each wrap of the repeated periods, the widening) is a
//!   quarter-period overlap-add, and the first good frame after a loss is overlap-added
//!   with the continued concealment over a quarter period plus 4 ms per extra 10 ms lost
//!   (at most 10 ms). So there is no step at any frame edge.

use crate::media::pitch;

/// Milliseconds of history kept: enough for three 15 ms periods and the quarter before.
const HISTORY_MS: f32 = 48.75;
/// Output delay: a quarter of the longest period.
const DELAY_MS: f32 = 3.75;
const PITCH_MIN_MS: f32 = 5.0;
const PITCH_MAX_MS: f32 = 15.0;
const CORR_MS: f32 = 20.0;
/// Full level this long into a loss, then a linear fade to silence at `SILENT_MS`.
const HOLD_MS: f32 = 10.0;
const SILENT_MS: f32 = 60.0;

/// Conceals losses in a stream of PCM frames; all audio passes through it.
pub struct Concealer {
    rate: u32,
    /// The last `HISTORY_MS` produced (decoded or concealed), newest last; its last
    /// `delay` samples have not been output yet.
    hist: Vec<i16>,
    delay: usize,
    /// Samples concealed in the current loss (0: not in a loss).
    erased: usize,
    /// Pitch period and the last 3 periods (plus a quarter before) of history.
    period: usize,
    periods: Vec<i16>,
    /// Periods cycled through (1..=3), and the count before the last widening.
    cycle: usize,
    prev_cycle: usize,
    /// Samples left in the overlap-add of a widening.
    widening: usize,
    /// Samples of concealment produced in this loss (the read position in the cycle).
    pos: usize,
    /// `erased` when a later frame first came in sight in this loss (see `bridge`).
    bridged_from: Option<usize>,
}

impl Concealer {
    pub fn new(rate: u32) -> Self {
        Concealer {
            rate,
            hist: vec![0; pitch::samples(rate, HISTORY_MS)],
            delay: pitch::samples(rate, DELAY_MS),
            erased: 0,
            period: 0,
            periods: Vec::new(),
            cycle: 1,
            prev_cycle: 1,
            widening: 0,
            pos: 0,
            bridged_from: None,
        }
    }

    /// Samples by which the output lags the input.
    pub fn delay(&self) -> usize {
        self.delay
    }

    /// Takes a decoded frame (smoothing it in after a loss) and outputs as many samples.
    pub fn good(&mut self, frame: &mut [i16], out: &mut Vec<i16>) {
        if self.erased > 0 {
            let ten_ms = pitch::samples(self.rate, 10.0);
            let extra = self.erased.div_ceil(ten_ms).saturating_sub(1);
            let len = (self.period / 4 + extra * pitch::samples(self.rate, 4.0))
                .min(ten_ms)
                .min(frame.len());
            for (i, s) in frame[..len].iter_mut().enumerate() {
                let w = (i + 1) as f32 / (len + 1) as f32;
                let synth = self.next_sample();
                *s = (synth * (1.0 - w) + *s as f32 * w) as i16;
            }
            self.erased = 0;
        }
        self.produce(frame, out);
    }

    /// Outputs `samples` of concealment.
    pub fn lost(&mut self, samples: usize, out: &mut Vec<i16>) {
        if self.erased == 0 {
            self.start_loss();
        }
        let synth: Vec<i16> = (0..samples).map(|_| self.next_sample() as i16).collect();
        self.produce(&synth, out);
    }

    /// Outputs `samples` of concealment for a gap that `next` (a decoded frame `ahead`
    /// frames on) closes: the past's pitch repeated forward is crossfaded, from where the
    /// gap's end came in sight to that end, into the next frame's first period repeated
    /// backward, so the gap ends in phase with `next` and at its level, not faded out.
    pub fn bridge(&mut self, samples: usize, ahead: usize, next: &[i16], out: &mut Vec<i16>) {
        let (rate, len) = (self.rate, next.len());
        let (min, max) = (
            pitch::samples(rate, PITCH_MIN_MS),
            pitch::samples(rate, PITCH_MAX_MS),
        );
        let w = len
            .saturating_sub(max)
            .min(pitch::samples(rate, CORR_MS) / 2);
        let Some((p, _)) = (w > 0)
            .then(|| pitch::best_lag(next, min..=max.min(len - w), rate, |_| (0, w)))
            .flatten()
        else {
            return self.lost(samples, out);
        };
        if self.erased == 0 {
            self.start_loss();
        }
        let from = *self.bridged_from.get_or_insert(self.erased);
        let end = self.erased + ahead * samples;
        let synth: Vec<i16> = (0..samples)
            .map(|_| {
                let at = self.erased;
                let back = self.next_sample();
                let fwd = next[(p - (end - at) % p) % p] as f32;
                let w = (at - from + 1) as f32 / (end - from + 1) as f32;
                (back * (1.0 - w) + fwd * w) as i16
            })
            .collect();
        if ahead <= 1 {
            self.erased = 0;
        }
        self.produce(&synth, out);
    }

    /// Appends `new` to the history and outputs the samples `delay` behind it.
    fn produce(&mut self, new: &[i16], out: &mut Vec<i16>) {
        let h = self.hist.len();
        self.hist.extend_from_slice(new);
        let end = self.hist.len() - self.delay;
        out.extend_from_slice(&self.hist[end - new.len()..end]);
        self.hist.drain(..self.hist.len() - h);
    }

    fn start_loss(&mut self) {
        let (len, rate) = (self.hist.len(), self.rate);
        let w = pitch::samples(rate, CORR_MS);
        let (min, max) = (
            pitch::samples(rate, PITCH_MIN_MS),
            pitch::samples(rate, PITCH_MAX_MS),
        );
        let p = pitch::best_lag(&self.hist, min..=max, rate, |lag| (len - w - lag, w))
            .map_or(min, |(lag, _)| lag);
        let q = p / 4;
        self.period = p;
        self.periods.clear();
        self.periods
            .extend_from_slice(&self.hist[len - 3 * p - q..]);
        // The unplayed tail of history blends into the period before it, so the repeated
        // period follows it without a step.
        for j in 0..q {
            let w = (j + 1) as f32 / (q + 1) as f32;
            let (a, b) = (self.hist[len - q + j], self.hist[len - p - q + j]);
            self.hist[len - q + j] = (a as f32 * (1.0 - w) + b as f32 * w) as i16;
        }
        self.cycle = 1;
        self.prev_cycle = 1;
        self.widening = 0;
        self.pos = 0;
        self.bridged_from = None;
    }

    /// The next sample of the concealment, faded by how long the loss has lasted.
    fn next_sample(&mut self) -> f32 {
        let ten_ms = pitch::samples(self.rate, HOLD_MS);
        if (self.erased == ten_ms || self.erased == 2 * ten_ms) && self.cycle < 3 {
            self.prev_cycle = self.cycle;
            self.cycle += 1;
            self.widening = self.period / 4;
        }
        let mut v = self.cycled(self.cycle);
        if self.widening > 0 {
            let w = self.widening as f32 / (self.period / 4 + 1) as f32;
            v = self.cycled(self.prev_cycle) * w + v * (1.0 - w);
            self.widening -= 1;
        }
        let silent = pitch::samples(self.rate, SILENT_MS);
        let gain = if self.erased < ten_ms {
            1.0
        } else {
            silent.saturating_sub(self.erased) as f32 / (silent - ten_ms) as f32
        };
        self.pos += 1;
        self.erased += 1;
        v * gain
    }

    /// The sample at the read position when cycling through the last `k` periods; the
    /// last quarter period of the cycle blends into what precedes the cycle's start.
    fn cycled(&self, k: usize) -> f32 {
        let (p, q) = (self.period, self.period / 4);
        let start = q + (3 - k) * p;
        let off = self.pos % (k * p);
        let v = self.periods[start + off] as f32;
        match off.checked_sub(k * p - q) {
            Some(j) => {
                let w = (j + 1) as f32 / (q + 1) as f32;
                v * (1.0 - w) + self.periods[start - q + j] as f32 * w
            }
            None => v,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::codec::testutil::{max_step, snr_db, tone};
    use mixer::goertzel::level_db;

    /// A steady vowel at 8 kHz: (frequency, peak) of its partials.
    const VOWEL: [(f64, f64); 4] = [
        (140.0, 6000.0),
        (280.0, 3500.0),
        (420.0, 2000.0),
        (700.0, 900.0),
    ];

    fn vowel(n: usize) -> Vec<i16> {
        let mut x = vec![0i16; n];
        for (f, amp) in VOWEL {
            let t = tone(f, 8000, n, amp);
            x.iter_mut().zip(t).for_each(|(a, b)| *a += b);
        }
        x
    }

    #[test]
    fn good_frames_pass_unchanged_behind_the_delay() {
        let mut c = Concealer::new(8000);
        let x = tone(440.0, 8000, 480, 8000.0);
        let mut out = Vec::new();
        for f in x.chunks(160) {
            c.good(&mut f.to_vec(), &mut out);
        }
        let d = c.delay();
        assert_eq!(d, 30);
        assert!(out[..d].iter().all(|&s| s == 0));
        assert_eq!(&out[d..], &x[..480 - d]);
    }

    #[test]
    fn a_gap_the_next_frame_closes_is_bridged_in_phase() {
        let x = tone(210.0, 8000, 160 * 10, 8000.0);
        let mut c = Concealer::new(8000);
        let mut out = Vec::new();
        for (i, f) in x.chunks(160).enumerate() {
            match i {
                4 => c.bridge(160, 1, &x[800..960], &mut out),
                _ => c.good(&mut f.to_vec(), &mut out),
            }
        }
        let limit = (std::f64::consts::TAU * 210.0 / 8000.0 * 8000.0 * 1.3) as i32;
        assert!(max_step(&out) <= limit, "{} > {limit}", max_step(&out));
        // The bridge is the tone itself.
        let d = c.delay();
        assert!(level_db(&out[640 + d..800 + d], 8000, 210.0) > -14.0);
    }

    #[test]
    fn a_gap_of_three_frames_with_the_next_in_sight_keeps_its_level_and_phase() {
        let x = tone(210.0, 8000, 160 * 10, 8000.0);
        let mut c = Concealer::new(8000);
        let mut out = Vec::new();
        for (i, f) in x.chunks(160).enumerate() {
            match i {
                4..=6 => c.bridge(160, 7 - i, &x[1120..1280], &mut out),
                _ => c.good(&mut f.to_vec(), &mut out),
            }
        }
        let limit = (std::f64::consts::TAU * 210.0 / 8000.0 * 8000.0 * 1.3) as i32;
        assert!(max_step(&out) <= limit, "{} > {limit}", max_step(&out));
        // Concealment alone would be fading to silence in the last frame of the gap.
        let d = c.delay();
        assert!(level_db(&out[960 + d..1120 + d], 8000, 210.0) > -14.0);
    }

    #[test]
    fn a_loss_continues_the_pitch_without_clicks_then_fades() {
        for rate in [8000u32, 16000] {
            let n = rate as usize / 50;
            let x = tone(200.0, rate, n * 20, 8000.0);
            let mut c = Concealer::new(rate);
            let mut out = Vec::new();
            for (i, f) in x.chunks(n).enumerate() {
                match i {
                    5 => c.lost(n, &mut out),
                    10..=14 => c.lost(n, &mut out),
                    _ => c.good(&mut f.to_vec(), &mut out),
                }
            }
            // A 200 Hz sine at 8000 peak steps at most 2*pi*200/rate*8000 per sample.
            let limit = (std::f64::consts::TAU * 200.0 / rate as f64 * 8000.0 * 1.3) as i32;
            assert!(
                max_step(&out) <= limit,
                "{rate}: {} > {limit}",
                max_step(&out)
            );
            // The single lost frame sounds like the tone...
            let lost = &out[5 * n..6 * n];
            assert!(level_db(lost, rate, 200.0) > -20.0, "{rate}");
            // ...and after 60 ms of loss the concealment is silent.
            let late = &out[10 * n + n * 3 + c.delay()..14 * n];
            assert!(late.iter().all(|&s| s == 0), "{rate}");
        }
    }

    #[test]
    fn a_lost_vowel_frame_is_closer_to_the_original_than_silence_or_a_repeat() {
        let x = vowel(160 * 20);
        let lost = 10;
        let mut c = Concealer::new(8000);
        let mut out = Vec::new();
        for (i, f) in x.chunks(160).enumerate() {
            match i {
                _ if i == lost => c.lost(160, &mut out),
                _ => c.good(&mut f.to_vec(), &mut out),
            }
        }
        let d = c.delay();
        // Scored over the lost frame and the good one after it (the overlap-add).
        let span = lost * 160..(lost + 2) * 160;
        let concealed = snr_db(&x[span.clone()], &out[span.start + d..span.end + d]);
        let mut silence = x.clone();
        silence[lost * 160..(lost + 1) * 160].fill(0);
        let mut repeat = x.clone();
        repeat.copy_within((lost - 1) * 160..lost * 160, lost * 160);
        let silence = snr_db(&x[span.clone()], &silence[span.clone()]);
        let repeat = snr_db(&x[span.clone()], &repeat[span]);
        assert!(
            concealed > silence + 6.0 && concealed > repeat + 6.0,
            "concealed {concealed:.1} dB, silence {silence:.1} dB, repeat {repeat:.1} dB"
        );
        // ...and without a click at either edge of the lost frame.
        let slope: f64 = VOWEL
            .iter()
            .map(|(f, a)| std::f64::consts::TAU * f / 8000.0 * a)
            .sum();
        let limit = (slope * 1.3) as i32;
        assert!(max_step(&out) <= limit, "{} > {limit}", max_step(&out));
    }
}
