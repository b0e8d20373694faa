//! The focus claims of one node as a sans-IO state machine: which conferences this node
//! hosts in the shared registry, when each claim is refreshed, and what the registry's
//! answers mean. Feed it requests, registry answers and `now`; drain [`Focus::poll_op`]
//! (for the registry shell) and [`Focus::poll_event`] (for the call plane); wake it at
//! [`Focus::poll_timeout`].
//!
//! A claim is atomic in the registry (set if absent or already ours, with a TTL), so two
//! nodes never both hold one. While this node cannot reach the registry it keeps the
//! rooms it holds (their callers are not disturbed) and retries the refresh; when the
//! registry answers again and names another holder, the claim is lost and the room ends.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use crate::api::service::ConfRef;

/// A registry operation for the shell to carry out, in order, answering each with
/// [`Focus::on_answer`] (releases need no answer).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    /// Hold the conference (or keep holding it) for one TTL, and route its numbers here.
    Claim {
        conf: ConfRef,
        numbers: Vec<String>,
        ttl: Duration,
    },
    /// Drop the conference and its numbers, if still ours.
    Release { conf: ConfRef, numbers: Vec<String> },
}

/// The registry's answer to a claim.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// This node holds it now.
    Ours,
    /// Another node holds it.
    Held(Holder),
    /// The registry could not be reached or failed.
    Unreachable,
}

/// The node holding a conference, and where it takes SIP (its `chorus:route` value,
/// `sip:HOST:PORT`), when the registry has it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Holder {
    pub node: String,
    pub route: Option<String>,
}

impl From<&str> for Holder {
    fn from(node: &str) -> Self {
        Holder {
            node: node.to_owned(),
            route: None,
        }
    }
}

/// What the call plane learns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// This node hosts the conference: its callers may be answered.
    Granted(ConfRef),
    /// Another node hosts it.
    Refused { conf: ConfRef, holder: Holder },
    /// No claim could be made (registry unreachable, or this node's room bound reached).
    Unavailable(ConfRef),
    /// The claim went to another node while held here: the room must end.
    Lost { conf: ConfRef, holder: String },
}

enum State {
    /// The first claim is in flight; `release` when the room was given up meanwhile.
    Claiming { release: bool },
    /// Ours; refreshed at `refresh_at` unless a refresh is in flight.
    Held {
        refresh_at: Instant,
        refreshing: bool,
    },
}

struct Claim {
    numbers: Vec<String>,
    state: State,
}

pub struct Focus {
    ttl: Duration,
    /// Conferences this node may hold (and claim) at once.
    max: usize,
    claims: HashMap<ConfRef, Claim>,
    ops: VecDeque<Op>,
    events: VecDeque<Event>,
}

/// After a failed refresh (registry unreachable), the next try.
const RETRY: Duration = Duration::from_secs(1);

impl Focus {
    pub fn new(ttl: Duration, max: usize) -> Self {
        Focus {
            ttl,
            max,
            claims: HashMap::new(),
            ops: VecDeque::new(),
            events: VecDeque::new(),
        }
    }

    /// The call plane needs the conference (its first caller is routed to it).
    pub fn claim(&mut self, conf: ConfRef, numbers: Vec<String>) {
        let full = self.claims.len() >= self.max;
        match self.claims.get_mut(&conf) {
            Some(Claim {
                state: State::Held { .. },
                ..
            }) => self.events.push_back(Event::Granted(conf)),
            Some(Claim {
                state: State::Claiming { release },
                ..
            }) => *release = false,
            None if full => {
                tracing::warn!(conference = %conf, max = self.max, "focus: room bound reached");
                self.events.push_back(Event::Unavailable(conf));
            }
            None => {
                let ttl = self.ttl;
                self.ops.push_back(Op::Claim {
                    conf: conf.clone(),
                    numbers: numbers.clone(),
                    ttl,
                });
                let state = State::Claiming { release: false };
                self.claims.insert(conf, Claim { numbers, state });
            }
        }
    }

    /// The call plane no longer needs the conference (its last call ended).
    pub fn release(&mut self, conf: &ConfRef) {
        match self.claims.get_mut(conf) {
            Some(Claim {
                state: State::Claiming { release },
                ..
            }) => *release = true,
            Some(Claim {
                state: State::Held { .. },
                ..
            }) => {
                if let Some(c) = self.claims.remove(conf) {
                    let (conf, numbers) = (conf.clone(), c.numbers);
                    self.ops.push_back(Op::Release { conf, numbers });
                }
            }
            None => {}
        }
    }

    /// The registry's answer to the [`Op::Claim`] of `conf` (a first claim or a refresh).
    pub fn on_answer(&mut self, conf: &ConfRef, answer: Answer, now: Instant) {
        let interval = self.refresh_interval();
        let Some(claim) = self.claims.get_mut(conf) else {
            // Released while its refresh was in flight: the release follows it.
            return;
        };
        let conf = conf.clone();
        match (&mut claim.state, answer) {
            (State::Claiming { release: true }, Answer::Ours) => {
                let numbers = std::mem::take(&mut claim.numbers);
                self.claims.remove(&conf);
                self.ops.push_back(Op::Release { conf, numbers });
            }
            (State::Claiming { release }, answer) => {
                let release = *release;
                if answer == Answer::Ours {
                    claim.state = State::Held {
                        refresh_at: now + interval,
                        refreshing: false,
                    };
                    return self.events.push_back(Event::Granted(conf));
                }
                self.claims.remove(&conf);
                if release {
                    return;
                }
                self.events.push_back(match answer {
                    Answer::Held(holder) => Event::Refused { conf, holder },
                    _ => Event::Unavailable(conf),
                });
            }
            (
                State::Held {
                    refresh_at,
                    refreshing,
                },
                answer,
            ) => {
                *refreshing = false;
                match answer {
                    Answer::Ours => *refresh_at = now + interval,
                    Answer::Unreachable => {
                        tracing::warn!(conference = %conf, "focus registry unreachable: keeping the room, retrying");
                        *refresh_at = now + RETRY;
                    }
                    Answer::Held(holder) => {
                        self.claims.remove(&conf);
                        let holder = holder.node;
                        self.events.push_back(Event::Lost { conf, holder });
                    }
                }
            }
        }
    }

    /// Refreshes a third of a TTL apart: two may fail before the claim would lapse.
    fn refresh_interval(&self) -> Duration {
        self.ttl / 3
    }

    pub fn poll_timeout(&self) -> Option<Instant> {
        self.claims
            .values()
            .filter_map(|c| match c.state {
                State::Held {
                    refresh_at,
                    refreshing: false,
                } => Some(refresh_at),
                _ => None,
            })
            .min()
    }

    /// Refreshes the claims that are due.
    pub fn handle_timeout(&mut self, now: Instant) {
        for (conf, claim) in &mut self.claims {
            if let State::Held {
                refresh_at,
                refreshing,
            } = &mut claim.state
                && !*refreshing
                && *refresh_at <= now
            {
                *refreshing = true;
                self.ops.push_back(Op::Claim {
                    conf: conf.clone(),
                    numbers: claim.numbers.clone(),
                    ttl: self.ttl,
                });
            }
        }
    }

    pub fn poll_op(&mut self) -> Option<Op> {
        self.ops.pop_front()
    }

    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// The conferences held now.
    pub fn held(&self) -> usize {
        let held = |c: &&Claim| matches!(c.state, State::Held { .. });
        self.claims.values().filter(held).count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TTL: Duration = Duration::from_secs(9);

    fn conf(id: &str) -> ConfRef {
        ConfRef {
            account: "a".into(),
            id: id.into(),
        }
    }

    fn claim_op(f: &mut Focus) -> ConfRef {
        match f.poll_op() {
            Some(Op::Claim { conf, .. }) => conf,
            other => panic!("expected a claim, got {other:?}"),
        }
    }

    #[test]
    fn a_granted_claim_is_refreshed_every_third_of_its_ttl_until_released() {
        let t0 = Instant::now();
        let mut f = Focus::new(TTL, 10);
        f.claim(conf("r1"), vec!["r1".into()]);
        assert_eq!(claim_op(&mut f), conf("r1"));
        assert_eq!(f.poll_op(), None, "one claim in flight");
        f.on_answer(&conf("r1"), Answer::Ours, t0);
        assert_eq!(f.poll_event(), Some(Event::Granted(conf("r1"))));
        assert_eq!(f.poll_timeout(), Some(t0 + TTL / 3));
        f.handle_timeout(t0 + TTL / 3 - Duration::from_millis(1));
        assert_eq!(f.poll_op(), None, "not due yet");
        f.handle_timeout(t0 + TTL / 3);
        assert_eq!(claim_op(&mut f), conf("r1"));
        assert_eq!(
            f.poll_timeout(),
            None,
            "no second refresh while one is in flight"
        );
        f.on_answer(&conf("r1"), Answer::Ours, t0 + TTL / 3);
        assert_eq!(f.poll_timeout(), Some(t0 + TTL * 2 / 3));
        f.claim(conf("r1"), vec![]);
        assert_eq!(
            f.poll_event(),
            Some(Event::Granted(conf("r1"))),
            "held: granted at once"
        );
        assert_eq!(f.poll_op(), None);
        f.release(&conf("r1"));
        assert_eq!(
            f.poll_op(),
            Some(Op::Release {
                conf: conf("r1"),
                numbers: vec!["r1".into()]
            })
        );
        assert_eq!(f.poll_timeout(), None);
        assert_eq!(f.held(), 0);
    }

    #[test]
    fn another_holder_refuses_and_an_unreachable_registry_is_unavailable() {
        let t0 = Instant::now();
        let mut f = Focus::new(TTL, 10);
        f.claim(conf("r1"), vec![]);
        f.claim(conf("r2"), vec![]);
        claim_op(&mut f);
        claim_op(&mut f);
        f.on_answer(&conf("r1"), Answer::Held("node2".into()), t0);
        f.on_answer(&conf("r2"), Answer::Unreachable, t0);
        let refused = Event::Refused {
            conf: conf("r1"),
            holder: "node2".into(),
        };
        assert_eq!(f.poll_event(), Some(refused));
        assert_eq!(f.poll_event(), Some(Event::Unavailable(conf("r2"))));
        assert_eq!(f.held(), 0, "nothing kept after a refusal");
        f.claim(conf("r2"), vec![]);
        assert_eq!(claim_op(&mut f), conf("r2"), "a later caller tries again");
    }

    #[test]
    fn an_unreachable_registry_keeps_held_rooms_and_a_new_holder_takes_them() {
        let t0 = Instant::now();
        let mut f = Focus::new(TTL, 10);
        f.claim(conf("r1"), vec![]);
        claim_op(&mut f);
        f.on_answer(&conf("r1"), Answer::Ours, t0);
        f.poll_event();
        let t1 = t0 + TTL / 3;
        f.handle_timeout(t1);
        claim_op(&mut f);
        f.on_answer(&conf("r1"), Answer::Unreachable, t1);
        assert_eq!(f.poll_event(), None, "the room stays");
        assert_eq!(f.poll_timeout(), Some(t1 + RETRY), "retried soon");
        f.handle_timeout(t1 + RETRY);
        claim_op(&mut f);
        f.on_answer(&conf("r1"), Answer::Held("node3".into()), t1 + RETRY);
        let lost = Event::Lost {
            conf: conf("r1"),
            holder: "node3".into(),
        };
        assert_eq!(f.poll_event(), Some(lost));
        assert_eq!(f.poll_op(), None, "nothing to release: it is not ours");
        assert_eq!(f.held(), 0);
    }

    #[test]
    fn a_room_given_up_while_claiming_is_released_once_granted() {
        let t0 = Instant::now();
        let mut f = Focus::new(TTL, 10);
        f.claim(conf("r1"), vec!["7".into()]);
        claim_op(&mut f);
        f.release(&conf("r1"));
        f.on_answer(&conf("r1"), Answer::Ours, t0);
        assert_eq!(f.poll_event(), None, "no caller waits for it");
        assert!(matches!(f.poll_op(), Some(Op::Release { numbers, .. }) if numbers == ["7"]));
        // A refresh answer after a release is ignored.
        f.on_answer(&conf("r1"), Answer::Ours, t0);
        assert_eq!(f.poll_timeout(), None);
    }

    #[test]
    fn claims_stop_at_the_room_bound() {
        let t0 = Instant::now();
        let mut f = Focus::new(TTL, 2);
        for id in ["r1", "r2", "r3"] {
            f.claim(conf(id), vec![]);
        }
        assert_eq!(f.poll_event(), Some(Event::Unavailable(conf("r3"))));
        claim_op(&mut f);
        claim_op(&mut f);
        assert_eq!(f.poll_op(), None, "the third never reached the registry");
        f.on_answer(&conf("r1"), Answer::Ours, t0);
        f.release(&conf("r1"));
        f.claim(conf("r3"), vec![]);
        f.poll_op();
        assert_eq!(claim_op(&mut f), conf("r3"), "room again after a release");
    }
}
