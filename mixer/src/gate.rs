//! Talk detection and the mix gate, FreeSWITCH-compatible.
//!
//! The talking state follows mod_conference exactly: a frame is "hot" when its
//! score (mean |x|) exceeds the energy level; talking starts on a hot frame
//! whose excess is >= 400 or on the 5th net hot frame (hangunder), and stops
//! after 40 net cold frames (hangover). Start/stop events follow that state.
//!
//! Unlike FreeSWITCH, audio does not wait for the talking state to reach the
//! mix: every hot frame is mixed at once (so the hangunder frames are not
//! cut), and the conference delays each talker by a short pre-roll so the
//! quiet attack just before the first hot frame is mixed too (see
//! [`crate::input`]). A lone click therefore passes for one frame instead of
//! being swallowed; hangover still only applies once talking has started.

/// Excess over the energy level that starts talking at once.
pub const DIFF_LEVEL: u32 = 400;
/// Hot frames that start talking when the excess is small.
pub const HANGUNDER: u32 = 5;
/// Cold frames that stop talking.
pub const HANGOVER: u32 = 40;

/// What one frame did to the gate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transition {
    None,
    StartedTalking,
    StoppedTalking,
}

/// Per-member talk state.
#[derive(Debug, Default, Clone)]
pub struct Gate {
    talking: bool,
    hangunder_hits: u32,
    hangover_hits: u32,
    audible: bool,
    was_audible: bool,
    score: u32,
}

impl Gate {
    /// Feeds one frame's score against `level` (0 = no gate).
    pub fn update(&mut self, score: u32, level: u32) -> Transition {
        self.score = score;
        self.was_audible = self.audible;
        let hot = score > level;
        let mut t = Transition::None;
        if hot {
            self.hangover_hits = self.hangover_hits.saturating_sub(1);
            self.hangunder_hits += 1;
            if score - level >= DIFF_LEVEL || self.hangunder_hits >= HANGUNDER {
                self.hangover_hits = 0;
                self.hangunder_hits = 0;
                if !self.talking {
                    self.talking = true;
                    t = Transition::StartedTalking;
                }
            }
        } else {
            self.hangunder_hits = self.hangunder_hits.saturating_sub(1);
            if self.talking {
                self.hangover_hits += 1;
                if self.hangover_hits >= HANGOVER {
                    self.hangover_hits = 0;
                    self.hangunder_hits = 0;
                    self.talking = false;
                    t = Transition::StoppedTalking;
                }
            }
        }
        self.audible = level == 0 || hot || self.talking;
        t
    }

    /// Whether the (pre-roll delayed) frame ending now belongs in the mix:
    /// it straddles the previous frame and this one, so either being audible
    /// counts.
    pub fn mix_open(&self) -> bool {
        self.audible || self.was_audible
    }

    /// FreeSWITCH's talking flag.
    pub fn talking(&self) -> bool {
        self.talking
    }

    /// The last frame's score (mean |x|), the member's current energy.
    pub fn score(&self) -> u32 {
        self.score
    }

    /// Forgets everything (mute, leave); returns whether talking was on.
    pub fn reset(&mut self) -> bool {
        let was = self.talking;
        *self = Gate::default();
        was
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(g: &mut Gate, scores: &[u32], level: u32) -> Vec<Transition> {
        scores.iter().map(|s| g.update(*s, level)).collect()
    }

    #[test]
    fn small_excess_starts_on_fifth_hot_frame() {
        let mut g = Gate::default();
        let t = run(&mut g, &[300; 5], 200);
        assert_eq!(t[..4], [Transition::None; 4]);
        assert_eq!(t[4], Transition::StartedTalking);
    }

    #[test]
    fn big_excess_starts_at_once_and_hangover_stops_after_40() {
        let mut g = Gate::default();
        assert_eq!(g.update(700, 200), Transition::StartedTalking);
        let t = run(&mut g, &[0; 40], 200);
        assert_eq!(t[..39], [Transition::None; 39]);
        assert_eq!(t[39], Transition::StoppedTalking);
        assert!(!g.talking());
    }

    #[test]
    fn hot_frames_are_mixed_before_talking_starts() {
        let mut g = Gate::default();
        g.update(250, 200);
        assert!(!g.talking() && g.mix_open());
        g.update(0, 200);
        assert!(g.mix_open(), "the tail of the hot frame still flows");
        g.update(0, 200);
        assert!(!g.mix_open());
    }

    #[test]
    fn level_zero_mixes_everything() {
        let mut g = Gate::default();
        g.update(0, 0);
        assert!(g.mix_open());
    }
}
