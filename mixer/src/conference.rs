//! A conference: its members and playbacks, and the per-tick N-1 mix.
//!
//! The mix rate is Asterisk's `internal_sample_rate=auto`: the highest
//! member rate, capped by the profile's `rate`, re-decided on every join
//! and leave. G.711 phones in Kazoo's 48 kHz profile then mix at 8 kHz
//! with no resampling at all, which was a third of the server's CPU.
//!
//! Each tick: read every speaking member's frame and run its gate; sum the
//! audible ones and conference playback into a wide accumulator; then give
//! each hearing member a mix. Members who contribute nothing, block no
//! talker and have no playback of their own share one mix per (rate,
//! listen volume); the others get a private mix. Comfort noise replaces
//! silence for anyone who would hear no one.

use std::collections::VecDeque;
use std::fmt;
use std::time::Instant;

use crate::comfort_noise::ComfortNoise;
use crate::events::{Event, PlaybackId, PlaybackTarget};
use crate::gate::Transition;
use crate::input::MemberInput;
use crate::member::{JoinError, Member, MemberConfig, MemberFlags, MemberId, Relation, clamp_step};
use crate::mix;
use crate::output::TickOutput;
use crate::profile::{Profile, ProfileError, check_energy_level};
use crate::resample::{self, Resampler};
use crate::source::Source;

/// A control call named something that is not there or a bad value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ControlError {
    UnknownMember(MemberId),
    UnknownPlayback(PlaybackId),
    Invalid(ProfileError),
}

impl fmt::Display for ControlError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ControlError::UnknownMember(m) => write!(f, "no member {}", m.0),
            ControlError::UnknownPlayback(p) => write!(f, "no playback {}", p.0),
            ControlError::Invalid(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for ControlError {}

struct Playback {
    id: PlaybackId,
    target: PlaybackTarget,
    /// Profile rate to mix rate, built on first use after each rate switch.
    rs: Option<Resampler>,
    source: Box<dyn Source>,
    done: bool,
}

/// The shared mix converted to one member rate, once per tick.
struct SharedRate {
    rate: u32,
    rs: Option<Resampler>,
    pcm: Vec<i16>,
    ready: bool,
}

/// One conference's mixer. Clock-free: time enters through [`Conference::tick`].
pub struct Conference {
    profile: Profile,
    mix_rate: u32,
    /// Samples per frame at the mix rate.
    frame: usize,
    members: Vec<Member>,
    next_member: u32,
    playbacks: Vec<Playback>,
    events: VecDeque<Event>,
    /// Members mixed this tick, with their index in `members`.
    contributors: Vec<(MemberId, usize)>,
    acc: Vec<i32>,
    tmp: Vec<i32>,
    pcm: Vec<i16>,
    /// One playback frame at the profile rate.
    src: Vec<i16>,
    noise: ComfortNoise,
    noise_buf: Vec<i16>,
    noise_ready: bool,
    base: Vec<i16>,
    base_ready: bool,
    shared: Vec<SharedRate>,
    shared_mixes: Vec<(u32, i8, usize)>,
    output: TickOutput,
    last_tick: Option<Instant>,
}

impl Conference {
    pub fn new(profile: Profile) -> Conference {
        let n = profile.frame_len();
        Conference {
            mix_rate: profile.rate(),
            frame: n,
            members: Vec::new(),
            next_member: 1,
            playbacks: Vec::new(),
            events: VecDeque::new(),
            contributors: Vec::new(),
            acc: vec![0; n],
            tmp: vec![0; n],
            pcm: vec![0; n],
            src: vec![0; n],
            noise: ComfortNoise::new(profile.rate() ^ 0x9e37_79b9),
            noise_buf: vec![0; n],
            noise_ready: false,
            base: vec![0; n],
            base_ready: false,
            shared: Vec::new(),
            shared_mixes: Vec::new(),
            output: TickOutput::default(),
            last_tick: None,
            profile,
        }
    }

    pub fn profile(&self) -> &Profile {
        &self.profile
    }

    /// The rate the conference mixes at now (see the module docs).
    pub fn mix_rate(&self) -> u32 {
        self.mix_rate
    }

    pub fn member_count(&self) -> usize {
        self.members.len()
    }

    /// No members and no playback: nothing to tick.
    pub fn is_idle(&self) -> bool {
        self.members.is_empty() && self.playbacks.is_empty()
    }

    /// The `now` of the last tick.
    pub fn last_tick(&self) -> Option<Instant> {
        self.last_tick
    }

    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// Adds a member; `JoinError::Full` when `max-members` is reached.
    pub fn add_member(&mut self, cfg: MemberConfig) -> Result<(MemberId, MemberInput), JoinError> {
        if let Some(max) = self.profile.max_members()
            && self.members.len() >= max as usize
        {
            return Err(JoinError::Full { max });
        }
        let id = MemberId(self.next_member);
        let mix_rate = self.wanted_rate(Some(cfg.rate));
        let (member, input) = Member::new(id, &cfg, &self.profile, mix_rate)?;
        self.next_member = self.next_member.wrapping_add(1);
        self.set_mix_rate(mix_rate);
        if !self.shared.iter().any(|s| s.rate == cfg.rate) {
            self.shared.push(SharedRate {
                rate: cfg.rate,
                rs: resample::converter(mix_rate, cfg.rate, self.frame),
                pcm: Vec::with_capacity(self.profile.frame_len_at(cfg.rate)),
                ready: false,
            });
        }
        self.members.push(member);
        Ok((id, input))
    }

    /// Removes a member; a talker gets its final stop-talking and its own
    /// playbacks end.
    pub fn remove_member(&mut self, id: MemberId) -> Result<(), ControlError> {
        let i = self.index(id)?;
        let mut m = self.members.remove(i);
        stop_talking(&mut m, &mut self.events);
        for other in &mut self.members {
            other.nohear.retain(|b| *b != id);
        }
        self.end_playbacks(|p| p.target == PlaybackTarget::Member(id));
        self.set_mix_rate(self.wanted_rate(None));
        Ok(())
    }

    /// Sets speak/hear/moderator; muting a talker ends its talking.
    pub fn set_flags(&mut self, id: MemberId, flags: MemberFlags) -> Result<(), ControlError> {
        let i = self.index(id)?;
        let m = &mut self.members[i];
        if !flags.speak {
            m.ingress.drain();
            stop_talking(m, &mut self.events);
        }
        m.flags = flags;
        Ok(())
    }

    pub fn member_flags(&self, id: MemberId) -> Option<MemberFlags> {
        self.member(id).map(|m| m.flags)
    }

    /// FreeSWITCH `relate`: whether `a` hears `b` and `b` hears `a`.
    pub fn relate(&mut self, a: MemberId, b: MemberId, rel: Relation) -> Result<(), ControlError> {
        let (ia, ib) = (self.index(a)?, self.index(b)?);
        if a == b {
            return Ok(());
        }
        set_blocked(&mut self.members[ia].nohear, b, !rel.hear);
        set_blocked(&mut self.members[ib].nohear, a, !rel.speak);
        Ok(())
    }

    /// Overrides (or with `None`, restores) the member's energy level.
    pub fn set_energy_level(
        &mut self,
        id: MemberId,
        level: Option<u32>,
    ) -> Result<(), ControlError> {
        if let Some(l) = level {
            check_energy_level(l).ok_or_else(|| {
                ControlError::Invalid(ProfileError {
                    key: "energy-level".into(),
                    value: l.to_string(),
                    allowed: "0 to 1800",
                })
            })?;
        }
        let i = self.index(id)?;
        self.members[i].energy_level = level;
        Ok(())
    }

    /// The energy level in force for the member.
    pub fn energy_level(&self, id: MemberId) -> Option<u32> {
        self.member(id)
            .map(|m| m.energy_level.unwrap_or(self.profile.energy_level()))
    }

    /// Talk volume step, -4..=4 (clamped).
    pub fn set_talk_volume(&mut self, id: MemberId, step: i8) -> Result<(), ControlError> {
        let i = self.index(id)?;
        self.members[i].talk_volume = clamp_step(step);
        Ok(())
    }

    /// Listen volume step, -4..=4 (clamped).
    pub fn set_listen_volume(&mut self, id: MemberId, step: i8) -> Result<(), ControlError> {
        let i = self.index(id)?;
        self.members[i].listen_volume = clamp_step(step);
        Ok(())
    }

    /// The member's current energy (mean |x| of its last frame).
    pub fn member_energy(&self, id: MemberId) -> Option<u32> {
        self.member(id).map(|m| m.gate.score())
    }

    pub fn member_talking(&self, id: MemberId) -> Option<bool> {
        self.member(id).map(|m| m.gate.talking())
    }

    /// Starts a playback of `source`, which must produce PCM at the
    /// profile's `rate` (open sounds at `profile().rate()`): the mix rate
    /// changes as members come and go, so the conference converts playback
    /// to it. A source that should loop loops itself; a short fill ends it
    /// with `PlaybackDone`.
    pub fn play(
        &mut self,
        id: PlaybackId,
        target: PlaybackTarget,
        source: Box<dyn Source>,
    ) -> Result<(), ControlError> {
        if let PlaybackTarget::Member(m) = target {
            self.index(m)?;
        }
        self.playbacks.push(Playback {
            id,
            target,
            rs: None,
            source,
            done: false,
        });
        Ok(())
    }

    /// Stops every playback with this id (each reports `PlaybackDone`).
    pub fn stop_playback(&mut self, id: PlaybackId) -> Result<(), ControlError> {
        match self.end_playbacks(|p| p.id == id) {
            0 => Err(ControlError::UnknownPlayback(id)),
            _ => Ok(()),
        }
    }

    /// Mixes one frame. `now` is the frame's due time; no clock is read.
    pub fn tick(&mut self, now: Instant) -> &TickOutput {
        let mut out = std::mem::take(&mut self.output);
        self.tick_into(now, &mut out);
        self.output = out;
        &self.output
    }

    /// [`Conference::tick`] into a caller-owned output (the scheduler's).
    pub fn tick_into(&mut self, now: Instant, out: &mut TickOutput) {
        self.last_tick = Some(now);
        out.reset();
        self.noise_ready = false;
        self.base_ready = false;
        self.shared_mixes.clear();
        for s in &mut self.shared {
            s.ready = false;
        }
        self.acc.fill(0);
        self.read_inputs();
        let conference_playback = self.run_playbacks();
        let audible = !self.contributors.is_empty() || conference_playback;
        for i in 0..self.members.len() {
            let m = &self.members[i];
            if m.flags.hear {
                self.route(i, audible, conference_playback, out);
            } else if m.has_playback {
                // A deaf member still hears what is played to it alone (its deaf prompt,
                // hold music while it waits).
                let id = m.id;
                let mix = self.private_mix(i, Heard::OwnPlayback, out);
                out.route(id, mix);
            }
        }
        self.advance_inputs();
    }

    /// The mix rate for the members, plus one joining at `joining`.
    fn wanted_rate(&self, joining: Option<u32>) -> u32 {
        let ceiling = self.profile.rate();
        let highest = self.members.iter().map(|m| m.rate).chain(joining).max();
        highest.map_or(ceiling, |r| r.min(ceiling))
    }

    /// Switches the mix to `rate`: resizes the mix-rate buffers and rebuilds
    /// every conversion to or from the mix rate (between ticks, so nothing
    /// in flight is lost).
    fn set_mix_rate(&mut self, rate: u32) {
        if rate == self.mix_rate {
            return;
        }
        let n = self.profile.frame_len_at(rate);
        self.mix_rate = rate;
        self.frame = n;
        self.acc.resize(n, 0);
        self.tmp.resize(n, 0);
        for buf in [&mut self.pcm, &mut self.noise_buf, &mut self.base] {
            buf.resize(n, 0);
        }
        for m in &mut self.members {
            m.set_mix_rate(rate, &self.profile);
        }
        for s in &mut self.shared {
            s.rs = resample::converter(rate, s.rate, n);
        }
        for p in &mut self.playbacks {
            p.rs = None;
        }
    }

    fn member(&self, id: MemberId) -> Option<&Member> {
        self.members.iter().find(|m| m.id == id)
    }

    fn index(&self, id: MemberId) -> Result<usize, ControlError> {
        self.members
            .iter()
            .position(|m| m.id == id)
            .ok_or(ControlError::UnknownMember(id))
    }

    /// Removes matching playbacks with a `stopped` done event; returns how many.
    fn end_playbacks(&mut self, matches: impl Fn(&Playback) -> bool) -> usize {
        let before = self.playbacks.len();
        let events = &mut self.events;
        self.playbacks.retain(|p| {
            let end = matches(p);
            if end {
                events.push_back(Event::PlaybackDone {
                    id: p.id,
                    target: p.target,
                    stopped: true,
                });
            }
            !end
        });
        before - self.playbacks.len()
    }

    /// Pulls each speaking member's frame, runs its gate, and sums the
    /// mix-rate contribution of those whose gate is open into `acc`.
    fn read_inputs(&mut self) {
        self.contributors.clear();
        let n = self.frame;
        for (i, m) in self.members.iter_mut().enumerate() {
            m.contributing = false;
            m.has_playback = false;
            if !m.flags.speak {
                m.ingress.drain();
                continue;
            }
            let (transition, score) = m.run_gate(self.profile.energy_level());
            let member = m.id;
            match transition {
                Transition::StartedTalking => self.events.push_back(Event::StartTalking {
                    member,
                    energy: score,
                }),
                Transition::StoppedTalking => self.events.push_back(Event::StopTalking {
                    member,
                    energy: score,
                }),
                Transition::None => {}
            }
            if m.gate.mix_open() {
                m.take_frame(n);
                // Summed now, while the frame is still in cache.
                for (at, run) in m.own() {
                    mix::add(&mut self.acc[at..], run);
                }
                m.contributing = true;
                self.contributors.push((m.id, i));
            }
        }
    }

    /// Consumes this tick's input, which stayed in the rings while the
    /// mixes read it in place.
    fn advance_inputs(&mut self) {
        for m in &mut self.members {
            if m.flags.speak {
                m.ingress.advance();
            }
        }
    }

    /// Pulls one frame from each playback; returns whether any conference
    /// playback was mixed into the accumulator.
    fn run_playbacks(&mut self) -> bool {
        let (from, to) = (self.profile.rate(), self.mix_rate);
        let n = self.src.len();
        let mut conference_wide = false;
        for p in &mut self.playbacks {
            let got = p.source.fill(&mut self.src).min(n);
            // A short last frame is padded so the resampler flushes its tail.
            self.src[got..].fill(0);
            self.pcm.clear();
            let rs = (from != to).then(|| p.rs.get_or_insert_with(|| Resampler::new(from, to, n)));
            resample::convert(rs, &self.src, &mut self.pcm);
            let pcm = &self.pcm;
            match p.target {
                PlaybackTarget::All => {
                    mix::add(&mut self.acc, pcm);
                    conference_wide = true;
                }
                PlaybackTarget::Member(id) => {
                    if let Some(m) = self.members.iter_mut().find(|m| m.id == id) {
                        if !m.has_playback {
                            m.playback.fill(0);
                            m.has_playback = true;
                        }
                        mix::add(&mut m.playback, pcm);
                    }
                }
            }
            if got < n {
                p.done = true;
                self.events.push_back(Event::PlaybackDone {
                    id: p.id,
                    target: p.target,
                    stopped: false,
                });
            }
        }
        self.playbacks.retain(|p| !p.done);
        conference_wide
    }

    fn ensure_noise(&mut self) {
        if !self.noise_ready {
            self.noise
                .fill(self.profile.comfort_noise(), &mut self.noise_buf);
            self.noise_ready = true;
        }
    }

    /// Gives hearing member `i` its mix for this tick.
    fn route(&mut self, i: usize, audible: bool, conference_playback: bool, out: &mut TickOutput) {
        let m = &self.members[i];
        let blocked = m
            .nohear
            .iter()
            .filter(|b| self.contributors.iter().any(|(c, _)| c == *b))
            .count();
        let id = m.id;
        let mix = if !m.contributing && blocked == 0 && !m.has_playback {
            self.shared_mix(m.rate, m.listen_volume, audible, out)
        } else {
            let heard = (self.contributors.len() + conference_playback as usize)
                .saturating_sub(m.contributing as usize + blocked);
            let heard = if heard > 0 {
                Heard::Others
            } else {
                Heard::NoOne
            };
            self.private_mix(i, heard, out)
        };
        out.route(id, mix);
    }

    /// The mix shared by non-contributors at `rate` and listen volume `vol`.
    fn shared_mix(&mut self, rate: u32, vol: i8, audible: bool, out: &mut TickOutput) -> usize {
        if let Some(&(_, _, idx)) = self.shared_mixes.iter().find(|k| (k.0, k.1) == (rate, vol)) {
            return idx;
        }
        if !self.base_ready {
            if audible {
                mix::limit(&self.acc, &mut self.base);
            } else {
                self.ensure_noise();
                self.base.copy_from_slice(&self.noise_buf);
            }
            self.base_ready = true;
        }
        let idx = out.alloc(rate, Some(vol));
        let dst = out.pcm_mut(idx);
        dst.clear();
        if let Some(s) = self.shared.iter_mut().find(|s| s.rate == rate) {
            if !s.ready {
                s.pcm.clear();
                resample::convert(s.rs.as_mut(), &self.base, &mut s.pcm);
                s.ready = true;
            }
            if vol == 0 {
                dst.extend_from_slice(&s.pcm);
            } else {
                dst.resize(s.pcm.len(), 0);
                mix::limit_scaled(&s.pcm, mix::volume_gain(vol), dst);
            }
        }
        self.shared_mixes.push((rate, vol, idx));
        idx
    }

    /// A mix for member `i` alone: N-1, minus talkers it does not hear,
    /// plus its own playback; comfort noise when it hears no one.
    fn private_mix(&mut self, i: usize, heard: Heard, out: &mut TickOutput) -> usize {
        let m = &self.members[i];
        let plain_n_minus_1 = m.contributing
            && heard == Heard::Others
            && m.nohear.is_empty()
            && !m.has_playback
            && m.listen_volume == 0
            && m.rs_out.is_none();
        let idx = out.alloc(m.rate, None);
        if plain_n_minus_1 {
            let dst = out.pcm_mut(idx);
            dst.resize(self.frame, 0);
            mix::limit_minus_runs(&self.acc, m.own(), dst);
            return idx;
        }
        if heard == Heard::NoOne {
            self.ensure_noise();
        }
        let m = &self.members[i];
        match heard {
            Heard::Others => {
                self.tmp.copy_from_slice(&self.acc);
                for &(c, ci) in &self.contributors {
                    if c == m.id || m.nohear.contains(&c) {
                        for (at, run) in self.members[ci].own() {
                            mix::sub(&mut self.tmp[at..], run);
                        }
                    }
                }
            }
            Heard::NoOne => {
                self.tmp.fill(0);
                mix::add(&mut self.tmp, &self.noise_buf);
            }
            Heard::OwnPlayback => self.tmp.fill(0),
        }
        if m.has_playback {
            mix::add(&mut self.tmp, &m.playback);
        }
        if m.listen_volume != 0 {
            mix::scale(&mut self.tmp, mix::volume_gain(m.listen_volume));
        }
        mix::limit(&self.tmp, &mut self.pcm);
        let dst = out.pcm_mut(idx);
        dst.clear();
        resample::convert(self.members[i].rs_out.as_mut(), &self.pcm, dst);
        idx
    }
}

/// What a private mix carries besides the member's own playback.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Heard {
    /// The conference, less the member itself and those it does not hear.
    Others,
    /// Nobody is audible to it: comfort noise.
    NoOne,
    /// It is deaf: only what plays to it alone.
    OwnPlayback,
}

fn set_blocked(list: &mut Vec<MemberId>, who: MemberId, blocked: bool) {
    list.retain(|b| *b != who);
    if blocked {
        list.push(who);
    }
}

/// Ends a member's talking with a final stop-talking event.
fn stop_talking(m: &mut Member, events: &mut VecDeque<Event>) {
    if m.gate.talking() {
        events.push_back(Event::StopTalking {
            member: m.id,
            energy: m.gate.score(),
        });
    }
    m.gate.reset();
}
