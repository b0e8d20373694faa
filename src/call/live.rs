//! Running conferences as the control plane sees them: who is in, with which role and
//! flags, whether it is locked, who waits for a moderator, and whose hold music plays.
//! The mixing itself lives in a media worker; this is the bookkeeping that decides what
//! to tell it.

use std::collections::HashMap;
use std::time::{Duration, Instant, SystemTime};

use mixer::ConferenceId;

use crate::conference::controls::DigitMatcher;
use crate::conference::document::ConferenceDoc;
use crate::conference::flow::{ConferenceState, JoinFlags};
use crate::conference::profile::ResolvedProfile;
use crate::conference::vocabulary::Role;
use crate::sip::CallId;

pub struct Live {
    pub key: ConferenceId,
    pub worker: usize,
    pub doc: ConferenceDoc,
    pub profile: ResolvedProfile,
    pub locked: bool,
    pub started_at: SystemTime,
    pub members: HashMap<CallId, Member>,
    /// When the last `endconf` member left: everyone is hung up at this time.
    pub ending_at: Option<Instant>,
    /// A callflow's bridge of two calls (`super::callflow`): no events, not in the API,
    /// and it ends when either member leaves.
    pub private: bool,
}

pub struct Member {
    pub flags: JoinFlags,
    /// Not mixed until a moderator arrives (wait_for_moderator).
    pub waiting: bool,
    pub exit_sounds: Vec<String>,
    pub controls: DigitMatcher,
    pub energy_level: Option<u32>,
    pub talk_volume: i8,
    pub listen_volume: i8,
    pub talking: bool,
    pub energy: u32,
    /// The latency the server adds to this member's audio, once its media flows.
    pub latency: Option<Duration>,
    /// The mixer's member id, once the worker reports the join.
    pub member_id: Option<u32>,
    pub joined_at: SystemTime,
    /// The looping hold music playing to this member alone.
    pub moh: Option<u64>,
}

impl Member {
    /// What the mixer should do with this member: waiting members neither speak nor hear.
    pub fn speaks(&self) -> bool {
        !self.flags.mute && !self.waiting
    }

    pub fn hears(&self) -> bool {
        !self.flags.deaf && !self.waiting
    }
}

impl Live {
    pub fn new(
        key: ConferenceId,
        worker: usize,
        doc: ConferenceDoc,
        profile: ResolvedProfile,
        started_at: SystemTime,
    ) -> Self {
        Live {
            key,
            worker,
            doc,
            profile,
            locked: false,
            started_at,
            members: HashMap::new(),
            ending_at: None,
            private: false,
        }
    }

    pub fn moderator_present(&self) -> bool {
        self.members.values().any(|m| m.flags.moderator)
    }

    /// What the caller flow asks before a join.
    pub fn state(&self) -> ConferenceState {
        ConferenceState {
            members: self.members.len() as u32,
            locked: self.locked,
            moderator_present: self.moderator_present(),
            locked_sound: self.sound("locked-sound"),
        }
    }

    /// A profile sound (`alone-sound`, `moh-sound`, ...), when it has one.
    pub fn sound(&self, key: &str) -> Option<String> {
        self.profile.sounds.get(key).cloned()
    }

    /// Whether a member waiting for a moderator must wait: only members do, and only while
    /// no moderator is in.
    pub fn must_wait(&self, role: Role) -> bool {
        self.profile.waits_for_moderator() && role == Role::Member && !self.moderator_present()
    }

    /// The calls still waiting for a moderator.
    pub fn waiting(&self) -> Vec<CallId> {
        self.members
            .iter()
            .filter(|(_, m)| m.waiting)
            .map(|(c, _)| *c)
            .collect()
    }

    /// Whether any member left has the `endconf` flag.
    pub fn has_endconf(&self) -> bool {
        self.members.values().any(|m| m.flags.endconf)
    }
}
