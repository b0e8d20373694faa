//! A callflow as the shell resolves it for the plane (`super::callflow` walks it): the
//! node tree, why a node failed, and where a caller's walk stands.

use crate::api::service::ConfRef;
use crate::conference::flow::{CallflowOptions, FlowSetup, Target};
use crate::conference::settings::ConferencesConfig;

/// Nodes one call may run; a longer walk ends with 500 (documents nest at most
/// `documents::callflow::MAX_DEPTH` deep, so this only bounds a resolver bug or a budget
/// cut, see [`Module::TooLarge`]).
pub const MAX_VISITS: u32 = 32;

/// A callflow node as the shell resolved it.
#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    pub module: Module,
    /// The children by outcome; `_` is the default.
    pub children: Vec<(String, Node)>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Module {
    /// Into a conference (or asking for its number) with the element's options.
    Conference(Box<ConferenceNode>),
    /// Ring endpoints: the first to answer is bridged to the caller.
    Bridge(BridgeNode),
    /// Nothing to run (`skip_module`): straight to the `_` child.
    Skip,
    /// Fails at once (a conference id that is not there).
    Fail(Failure),
    /// Past the resolver's node budget: reaching it ends the call with 500.
    TooLarge,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ConferenceNode {
    pub target: Target,
    pub options: CallflowOptions,
}

pub use super::dial_order::BridgeNode;

/// Why a node failed: the child it looks for, and the caller's answer when there is none.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    Busy,
    NoAnswer,
    /// Nothing to ring: no registration, no route, no such document.
    Unavailable,
    /// Every leg failed otherwise (gateways down, refused).
    Failed,
}

impl Failure {
    pub fn child(self) -> &'static str {
        match self {
            Failure::Busy => "busy",
            Failure::NoAnswer => "no_answer",
            Failure::Unavailable => "unavailable",
            Failure::Failed => "failed",
        }
    }

    pub fn status(self) -> (u16, &'static str) {
        match self {
            Failure::Busy => (486, "Busy Here"),
            Failure::NoAnswer => (480, "Temporarily Unavailable"),
            Failure::Unavailable => (404, "Not Found"),
            Failure::Failed => (503, "Service Unavailable"),
        }
    }

    /// The failure of a ring from its endpoints' hangup causes: busy wins, then no answer,
    /// then nothing to ring; anything else is a failure.
    pub fn of(causes: &[&str]) -> Failure {
        let any = |names: &[&str]| causes.iter().any(|c| names.contains(c));
        if any(&["USER_BUSY"]) {
            Failure::Busy
        } else if any(&["timeout", "NO_USER_RESPONSE", "NO_ANSWER"]) {
            Failure::NoAnswer
        } else if causes.iter().all(|c| {
            [
                "USER_NOT_REGISTERED",
                "NO_ROUTE_DESTINATION",
                "UNALLOCATED_NUMBER",
            ]
            .contains(c)
        }) {
            Failure::Unavailable
        } else {
            Failure::Failed
        }
    }
}

/// Where a caller's callflow stands.
pub(super) struct Walk {
    pub visited: u32,
    /// The children of the node running now.
    pub children: Vec<(String, Node)>,
    /// What the caller hears while branches ring (`super::ringback`).
    pub early: super::early::Early,
    /// The ringback of the bridging node ringing now (a ring group's `ringback`), else
    /// the default tone.
    pub ringback: Option<String>,
    /// That node's `ignore_early_media`: no branch's early media reaches the caller.
    pub ignore_early_media: bool,
    /// What the route lookup gave, for a `conference` node.
    pub config: ConferencesConfig,
    pub name_media: Option<String>,
}

/// What an answered call does once its SDP is settled.
pub(super) enum Next {
    /// The conference flow.
    Flow(Box<FlowSetup>),
    /// Straight into the private room of its bridge.
    Bridge(ConfRef),
}

impl Next {
    /// The `conferences` config the answered call keeps (a bridge's room has none).
    pub fn config(&self) -> ConferencesConfig {
        match self {
            Next::Flow(setup) => setup.config.clone(),
            Next::Bridge(_) => ConferencesConfig::default(),
        }
    }
}
