//! One tick's result: the distinct mixes and which member gets which, so
//! the server encodes each distinct mix once per codec group.

use crate::member::MemberId;

/// One distinct output mix: a frame of PCM at `rate`.
#[derive(Debug, Clone, Default)]
pub struct Mix {
    pub rate: u32,
    /// `Some(listen volume)` for the mix every non-talker at this rate and volume hears,
    /// tick after tick (so one stateful encoder can follow it); `None` for a private mix.
    pub shared: Option<i8>,
    pub pcm: Vec<i16>,
}

/// A hearing member and the index of the mix it gets (at its own rate).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Route {
    pub member: MemberId,
    pub mix: usize,
}

/// The output of one tick. Buffers are reused from tick to tick.
#[derive(Debug, Default)]
pub struct TickOutput {
    mixes: Vec<Mix>,
    active: usize,
    routes: Vec<Route>,
}

impl TickOutput {
    /// The distinct mixes of this tick.
    pub fn mixes(&self) -> &[Mix] {
        &self.mixes[..self.active]
    }

    /// One route per hearing member (deaf members have none).
    pub fn routes(&self) -> &[Route] {
        &self.routes
    }

    /// The PCM `member` gets this tick, if it hears.
    pub fn pcm_for(&self, member: MemberId) -> Option<&[i16]> {
        let r = self.routes.iter().find(|r| r.member == member)?;
        Some(&self.mixes[r.mix].pcm)
    }

    pub(crate) fn reset(&mut self) {
        self.active = 0;
        self.routes.clear();
    }

    /// A mix buffer at `rate`; returns its index. The buffer keeps its last
    /// contents (callers overwrite or clear it), so a slot reused at the
    /// same length costs no zeroing.
    pub(crate) fn alloc(&mut self, rate: u32, shared: Option<i8>) -> usize {
        if self.active == self.mixes.len() {
            self.mixes.push(Mix::default());
        }
        let m = &mut self.mixes[self.active];
        m.rate = rate;
        m.shared = shared;
        self.active += 1;
        self.active - 1
    }

    pub(crate) fn pcm_mut(&mut self, mix: usize) -> &mut Vec<i16> {
        &mut self.mixes[mix].pcm
    }

    pub(crate) fn route(&mut self, member: MemberId, mix: usize) {
        self.routes.push(Route { member, mix });
    }
}
