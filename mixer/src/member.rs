//! Conference members: how they join (config, flags, volumes, relations)
//! and the per-member state the mixer keeps.

use std::fmt;

use crate::gate::{Gate, Transition};
use crate::input::{self, Ingress, MemberInput};
use crate::mix::{self, Runs};
use crate::profile::{Profile, ProfileError, RATES};
use crate::resample::{self, Resampler};

/// A member's id, unique within its conference for its lifetime.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MemberId(pub u32);

/// FreeSWITCH's speak (not muted), hear (not deaf) and moderator flags.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MemberFlags {
    pub speak: bool,
    pub hear: bool,
    pub moderator: bool,
}

impl Default for MemberFlags {
    fn default() -> Self {
        MemberFlags {
            speak: true,
            hear: true,
            moderator: false,
        }
    }
}

/// How a member joins.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MemberConfig {
    /// The member's PCM rate (in and out), one of [`RATES`].
    pub rate: u32,
    pub flags: MemberFlags,
    /// Overrides the profile's `energy-level` for this member.
    pub energy_level: Option<u32>,
    /// FreeSWITCH volume steps, -4..=4 (clamped).
    pub talk_volume: i8,
    pub listen_volume: i8,
}

impl Default for MemberConfig {
    fn default() -> Self {
        MemberConfig {
            rate: 48000,
            flags: MemberFlags::default(),
            energy_level: None,
            talk_volume: 0,
            listen_volume: 0,
        }
    }
}

/// A per-pair relation (FreeSWITCH `relate`), seen from member A to B.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Relation {
    /// A hears B.
    pub hear: bool,
    /// B hears A.
    pub speak: bool,
}

/// Why a member could not join.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JoinError {
    /// The conference holds `max-members` already.
    Full { max: u32 },
    /// The member's rate is not one of [`RATES`].
    InvalidRate(u32),
    /// The energy-level override is out of range.
    InvalidEnergyLevel(ProfileError),
}

impl fmt::Display for JoinError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            JoinError::Full { max } => write!(f, "conference is full ({max} members)"),
            JoinError::InvalidRate(r) => write!(f, "unsupported member rate {r} Hz"),
            JoinError::InvalidEnergyLevel(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for JoinError {}

/// Clamps a volume step to FreeSWITCH's -4..=4.
pub fn clamp_step(step: i8) -> i8 {
    step.clamp(-4, 4)
}

/// The mixer's state for one member.
pub(crate) struct Member {
    pub id: MemberId,
    pub flags: MemberFlags,
    pub rate: u32,
    pub energy_level: Option<u32>,
    pub talk_volume: i8,
    pub listen_volume: i8,
    pub ingress: Ingress,
    pub gate: Gate,
    /// This tick's frame at the member's rate (used when resampling in).
    pub pcm_in: Vec<i16>,
    /// This tick's contribution at the mix rate when not mixed in place.
    pub own: Vec<i16>,
    pub contributing: bool,
    pub rs_in: Option<Resampler>,
    pub rs_out: Option<Resampler>,
    /// Talkers this member does not hear.
    pub nohear: Vec<MemberId>,
    /// Member playback summed this tick (mix rate).
    pub playback: Vec<i32>,
    pub has_playback: bool,
}

impl Member {
    /// A member joining a conference that mixes at `mix_rate`.
    pub fn new(
        id: MemberId,
        cfg: &MemberConfig,
        profile: &Profile,
        mix_rate: u32,
    ) -> Result<(Member, MemberInput), JoinError> {
        if !RATES.contains(&cfg.rate) {
            return Err(JoinError::InvalidRate(cfg.rate));
        }
        if let Some(level) = cfg.energy_level {
            crate::profile::check_energy_level(level).ok_or_else(|| {
                JoinError::InvalidEnergyLevel(ProfileError {
                    key: "energy-level".into(),
                    value: level.to_string(),
                    allowed: "0 to 1800",
                })
            })?;
        }
        let m = profile.frame_len_at(cfg.rate);
        let (tx, ingress) = input::channel(m, cfg.rate);
        let mut member = Member {
            id,
            flags: cfg.flags,
            rate: cfg.rate,
            energy_level: cfg.energy_level,
            talk_volume: clamp_step(cfg.talk_volume),
            listen_volume: clamp_step(cfg.listen_volume),
            ingress,
            gate: Gate::default(),
            pcm_in: vec![0; m],
            own: Vec::new(),
            contributing: false,
            rs_in: None,
            rs_out: None,
            nohear: Vec::new(),
            playback: Vec::new(),
            has_playback: false,
        };
        member.set_mix_rate(mix_rate, profile);
        Ok((member, tx))
    }

    /// Rebuilds the conversions to and from a new mix rate. The ingress
    /// stays at the member's rate, so nothing queued or pre-rolled is lost;
    /// only the fresh filters' history (2 ms at 8 kHz) starts from silence.
    pub fn set_mix_rate(&mut self, mix_rate: u32, profile: &Profile) {
        let n = profile.frame_len_at(mix_rate);
        let m = profile.frame_len_at(self.rate);
        self.rs_in = resample::converter(self.rate, mix_rate, m);
        self.rs_out = resample::converter(mix_rate, self.rate, n);
        self.own.reserve(n);
        self.playback.resize(n, 0);
    }

    /// Scores this tick's input (after talk volume, as FreeSWITCH does) and
    /// runs the gate against the member's level or `default_level`.
    pub fn run_gate(&mut self, default_level: u32) -> (Transition, u32) {
        let gain = mix::volume_gain(self.talk_volume);
        let score = (self.ingress.begin() as f32 * gain) as u32;
        let level = self.energy_level.unwrap_or(default_level);
        (self.gate.update(score, level), score)
    }

    /// Whether this tick's frame is mixed straight from the ring: it is at
    /// the mix rate with no talk volume to apply, and copying it out would
    /// only add memory traffic (1000 talkers at 48 kHz: 4 MB a tick).
    fn in_place(&self) -> bool {
        self.rs_in.is_none() && self.talk_volume == 0
    }

    /// Puts this tick's frame (pre-rolled, talk volume applied) into `own`
    /// at the mix rate, `n` samples, unless it is mixed in place.
    pub fn take_frame(&mut self, n: usize) {
        if self.in_place() {
            return;
        }
        let frame = match self.rs_in {
            Some(_) => &mut self.pcm_in,
            None => {
                self.own.resize(n, 0);
                &mut self.own
            }
        };
        self.ingress.emit(frame);
        if self.talk_volume != 0 {
            mix::scale_pcm(frame, mix::volume_gain(self.talk_volume));
        }
        if let Some(rs) = &mut self.rs_in {
            self.own.clear();
            rs.process(&self.pcm_in, &mut self.own);
        }
    }

    /// This tick's contribution at the mix rate, valid until the ingress
    /// advances.
    pub fn own(&self) -> Runs<'_> {
        if self.in_place() {
            self.ingress.frame()
        } else {
            [(0, &self.own), (self.own.len(), &[])]
        }
    }
}
