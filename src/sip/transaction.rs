//! Transaction state machines (RFC 3261 §17, with RFC 6026's Accepted state for 2xx): they only
//! decide when to retransmit, absorb or give up; the endpoint owns matching and routing.

use std::time::{Duration, Instant};

/// RFC 3261 timer base values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timers {
    pub t1: Duration,
    pub t2: Duration,
    pub t4: Duration,
}

impl Default for Timers {
    fn default() -> Self {
        Self {
            t1: Duration::from_millis(500),
            t2: Duration::from_secs(4),
            t4: Duration::from_secs(5),
        }
    }
}

impl Timers {
    /// 64*T1: timers B, F, H, J and L.
    pub fn timeout(&self) -> Duration {
        self.t1 * 64
    }
}

/// What a transaction wants when its timer fires.
#[derive(Debug, PartialEq, Eq)]
pub enum Fire {
    Nothing,
    Retransmit(Vec<u8>),
    /// Timer H / F / B: the peer never completed the exchange.
    TimedOut,
    /// Absorption window over: forget the transaction.
    Finished,
}

/// Retransmission schedule: doubles from T1, capped at T2 (timers A, E, G and the 2xx resend).
#[derive(Debug, Clone)]
struct Backoff {
    at: Instant,
    interval: Duration,
}

impl Backoff {
    fn start(now: Instant, t: &Timers) -> Self {
        Self {
            at: now + t.t1,
            interval: t.t1,
        }
    }

    fn advance(&mut self, t: &Timers) {
        self.interval = (self.interval * 2).min(t.t2);
        self.at += self.interval;
    }
}

#[derive(Debug, Clone)]
enum ServerState {
    /// Request received, no final response yet.
    Proceeding,
    /// Final response sent, resending it until ACK (INVITE) or absorbing (non-INVITE).
    Completed {
        resend: Option<Backoff>,
        until: Instant,
    },
    /// INVITE final response acknowledged: absorb ACK retransmissions until `until` (timer I).
    Confirmed { until: Instant },
}

/// A server transaction; `last` is the response a retransmitted request gets again.
#[derive(Debug, Clone)]
pub struct ServerTx {
    pub invite: bool,
    reliable: bool,
    state: ServerState,
    last: Option<(u16, Vec<u8>)>,
}

impl ServerTx {
    pub fn new(invite: bool, reliable: bool) -> Self {
        Self {
            invite,
            reliable,
            state: ServerState::Proceeding,
            last: None,
        }
    }

    pub fn last_response(&self) -> Option<&[u8]> {
        self.last.as_ref().map(|(_, b)| b.as_slice())
    }

    pub fn final_status(&self) -> Option<u16> {
        match self.state {
            ServerState::Proceeding => None,
            _ => self.last.as_ref().map(|(s, _)| *s),
        }
    }

    /// Records a response the TU sends. Returns false if a final one was already sent.
    pub fn respond(&mut self, now: Instant, t: &Timers, status: u16, bytes: Vec<u8>) -> bool {
        if !matches!(self.state, ServerState::Proceeding) {
            return false;
        }
        self.last = Some((status, bytes));
        if status < 200 {
            return true;
        }
        // 2xx to INVITE is resent end to end even over TCP (§13.3.1.4); non-2xx only on UDP.
        let resend = self.invite && (status < 300 || !self.reliable);
        let linger = if self.invite || !self.reliable {
            t.timeout()
        } else {
            Duration::ZERO
        };
        self.state = ServerState::Completed {
            resend: resend.then(|| Backoff::start(now, t)),
            until: now + linger,
        };
        true
    }

    /// An ACK for the final response: stop resending. Returns true for the first one.
    pub fn ack(&mut self, now: Instant, t: &Timers) -> bool {
        if !matches!(self.state, ServerState::Completed { .. }) || !self.invite {
            return false;
        }
        let linger = if self.reliable { Duration::ZERO } else { t.t4 };
        self.state = ServerState::Confirmed {
            until: now + linger,
        };
        true
    }

    pub fn next_timeout(&self) -> Option<Instant> {
        match &self.state {
            ServerState::Proceeding => None,
            ServerState::Completed { resend, until } => {
                Some(resend.as_ref().map_or(*until, |r| r.at.min(*until)))
            }
            ServerState::Confirmed { until } => Some(*until),
        }
    }

    pub fn fire(&mut self, now: Instant, t: &Timers) -> Fire {
        let invite = self.invite;
        match &mut self.state {
            ServerState::Proceeding => Fire::Nothing,
            ServerState::Completed { until, .. } if now >= *until => {
                if invite {
                    Fire::TimedOut
                } else {
                    Fire::Finished
                }
            }
            ServerState::Completed {
                resend: Some(r), ..
            } if now >= r.at => {
                r.advance(t);
                self.last
                    .as_ref()
                    .map_or(Fire::Nothing, |(_, b)| Fire::Retransmit(b.clone()))
            }
            ServerState::Completed { .. } => Fire::Nothing,
            ServerState::Confirmed { until } if now >= *until => Fire::Finished,
            ServerState::Confirmed { .. } => Fire::Nothing,
        }
    }
}

/// A non-INVITE client transaction (timers E, F, K).
#[derive(Debug, Clone)]
pub struct ClientTx {
    request: Vec<u8>,
    resend: Option<Backoff>,
    deadline: Instant,
    completed: bool,
}

impl ClientTx {
    /// Starts after the request has been sent once.
    pub fn new(now: Instant, t: &Timers, reliable: bool, request: Vec<u8>) -> Self {
        Self {
            request,
            resend: (!reliable).then(|| Backoff::start(now, t)),
            deadline: now + t.timeout(),
            completed: false,
        }
    }

    /// A response arrived. Returns its status if it is the first final one.
    pub fn on_response(&mut self, now: Instant, t: &Timers, status: u16) -> Option<u16> {
        if self.completed {
            return None;
        }
        if status < 200 {
            // Proceeding: keep resending, but at T2 (§17.1.2.2).
            if let Some(r) = &mut self.resend {
                r.interval = t.t2;
            }
            return None;
        }
        self.completed = true;
        // Timer K absorbs response retransmissions on UDP.
        self.deadline = now
            + if self.resend.is_some() {
                t.t4
            } else {
                Duration::ZERO
            };
        self.resend = None;
        Some(status)
    }

    pub fn next_timeout(&self) -> Option<Instant> {
        Some(
            self.resend
                .as_ref()
                .map_or(self.deadline, |r| r.at.min(self.deadline)),
        )
    }

    pub fn fire(&mut self, now: Instant, t: &Timers) -> Fire {
        if now >= self.deadline {
            return if self.completed {
                Fire::Finished
            } else {
                Fire::TimedOut
            };
        }
        match &mut self.resend {
            Some(r) if now >= r.at => {
                r.advance(t);
                Fire::Retransmit(self.request.clone())
            }
            _ => Fire::Nothing,
        }
    }
}

/// What an INVITE client transaction tells its TU about a response.
#[derive(Debug, PartialEq, Eq)]
pub enum InviteReply {
    /// A provisional response.
    Provisional(u16),
    /// The first 2xx: the TU builds the dialog and ACKs.
    Answered,
    /// A retransmitted 2xx: the TU ACKs again (§13.2.2.4).
    AnsweredAgain,
    /// The first non-2xx final: the transaction ACKs it itself from now on.
    Rejected(u16),
    /// A retransmitted non-2xx final: resend the stored ACK.
    RejectedAgain,
    /// Anything after the final response that needs no action.
    Ignored,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum InviteState {
    Calling,
    Proceeding,
    /// 2xx received: absorb its retransmissions until timer M (RFC 6026).
    Accepted,
    /// Non-2xx received and ACKed: timer D.
    Completed,
}

/// An INVITE client transaction (timers A, B, D and RFC 6026's M).
#[derive(Debug, Clone)]
pub struct ClientInviteTx {
    request: Vec<u8>,
    state: InviteState,
    /// Timer A doubles without the T2 cap (§17.1.1.2).
    resend: Option<Backoff>,
    deadline: Option<Instant>,
    /// Once our CANCEL is out: when to stop waiting for a final response (§9.1).
    give_up: Option<Instant>,
    reliable: bool,
}

impl ClientInviteTx {
    pub fn new(now: Instant, t: &Timers, reliable: bool, request: Vec<u8>) -> Self {
        Self {
            request,
            state: InviteState::Calling,
            resend: (!reliable).then(|| Backoff::start(now, t)),
            deadline: Some(now + t.timeout()),
            give_up: None,
            reliable,
        }
    }

    pub fn proceeding(&self) -> bool {
        self.state == InviteState::Proceeding
    }

    /// Our CANCEL went out: without a final response within 64*T1 the INVITE times out,
    /// however long the callee keeps sending provisionals (§9.1).
    pub fn cancel_sent(&mut self, now: Instant, t: &Timers) {
        self.give_up = Some(now + t.timeout());
    }

    fn waiting(&self) -> bool {
        matches!(self.state, InviteState::Calling | InviteState::Proceeding)
    }

    pub fn on_response(&mut self, now: Instant, t: &Timers, status: u16) -> InviteReply {
        use InviteState::*;
        match (self.state, status) {
            (Calling | Proceeding, 100..=199) => {
                self.state = Proceeding;
                self.resend = None;
                self.deadline = None;
                InviteReply::Provisional(status)
            }
            (Calling | Proceeding, 200..=299) => {
                self.state = Accepted;
                self.resend = None;
                self.deadline = Some(now + t.timeout());
                InviteReply::Answered
            }
            (Calling | Proceeding, _) => {
                self.state = Completed;
                self.resend = None;
                // Timer D: at least 32 s on UDP, which 64*T1 is with default timers.
                let linger = if self.reliable {
                    Duration::ZERO
                } else {
                    t.timeout()
                };
                self.deadline = Some(now + linger);
                InviteReply::Rejected(status)
            }
            (Accepted, 200..=299) => InviteReply::AnsweredAgain,
            (Completed, 300..) => InviteReply::RejectedAgain,
            _ => InviteReply::Ignored,
        }
    }

    pub fn next_timeout(&self) -> Option<Instant> {
        let give_up = self.give_up.filter(|_| self.waiting());
        [self.resend.as_ref().map(|r| r.at), self.deadline, give_up]
            .into_iter()
            .flatten()
            .min()
    }

    pub fn fire(&mut self, now: Instant) -> Fire {
        let given_up = self.waiting() && self.give_up.is_some_and(|g| now >= g);
        if given_up || self.deadline.is_some_and(|d| now >= d) {
            return if self.waiting() {
                Fire::TimedOut
            } else {
                Fire::Finished
            };
        }
        match &mut self.resend {
            Some(r) if now >= r.at => {
                r.interval *= 2;
                r.at += r.interval;
                Fire::Retransmit(self.request.clone())
            }
            _ => Fire::Nothing,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Fires every timer until `end`, returning the offsets (ms) of retransmissions and the end.
    fn run(
        mut next: impl FnMut() -> Option<Instant>,
        mut fire: impl FnMut(Instant) -> Fire,
        t0: Instant,
    ) -> (Vec<u128>, Option<u128>) {
        let mut resends = Vec::new();
        while let Some(at) = next() {
            match fire(at) {
                Fire::Retransmit(_) => resends.push((at - t0).as_millis()),
                Fire::TimedOut | Fire::Finished => return (resends, Some((at - t0).as_millis())),
                Fire::Nothing => {}
            }
        }
        (resends, None)
    }

    #[test]
    fn invite_2xx_backs_off_to_t2_then_times_out_at_64_t1() {
        let (t, t0) = (Timers::default(), Instant::now());
        let mut tx = ServerTx::new(true, false);
        assert!(tx.respond(t0, &t, 200, b"ok".to_vec()));
        let cell = std::cell::RefCell::new(tx);
        let (resends, end) = run(
            || cell.borrow().next_timeout(),
            |at| cell.borrow_mut().fire(at, &t),
            t0,
        );
        assert_eq!(&resends[..6], &[500, 1500, 3500, 7500, 11500, 15500]);
        assert_eq!(end, Some(32000));
    }

    #[test]
    fn ack_stops_resending_and_non_invite_lingers_for_timer_j() {
        let (t, t0) = (Timers::default(), Instant::now());
        let mut tx = ServerTx::new(true, false);
        tx.respond(t0, &t, 486, b"busy".to_vec());
        assert!(tx.ack(t0, &t));
        assert!(!tx.ack(t0, &t));
        assert_eq!(tx.fire(t0 + t.t1, &t), Fire::Nothing);
        assert_eq!(tx.fire(t0 + t.t4, &t), Fire::Finished);
        let mut nit = ServerTx::new(false, false);
        nit.respond(t0, &t, 200, b"ok".to_vec());
        assert_eq!(nit.next_timeout(), Some(t0 + t.timeout()));
        assert!(!nit.respond(t0, &t, 500, Vec::new()));
    }

    #[test]
    fn invite_client_tx_timer_a_is_uncapped_and_b_fires_without_answer() {
        let (t, t0) = (Timers::default(), Instant::now());
        let mut tx = ClientInviteTx::new(t0, &t, false, b"INVITE".to_vec());
        let cell = std::cell::RefCell::new(tx.clone());
        let (resends, end) = run(
            || cell.borrow().next_timeout(),
            |at| cell.borrow_mut().fire(at),
            t0,
        );
        assert_eq!(resends, [500, 1500, 3500, 7500, 15500, 31500]);
        assert_eq!(end, Some(32000));
        assert_eq!(tx.on_response(t0, &t, 180), InviteReply::Provisional(180));
        assert_eq!(tx.next_timeout(), None, "no timer B once proceeding");
        assert_eq!(tx.on_response(t0, &t, 486), InviteReply::Rejected(486));
        assert_eq!(tx.on_response(t0, &t, 486), InviteReply::RejectedAgain);
        assert_eq!(tx.on_response(t0, &t, 180), InviteReply::Ignored);
    }

    #[test]
    fn client_tx_resends_until_final_then_timer_f() {
        let (t, t0) = (Timers::default(), Instant::now());
        let mut tx = ClientTx::new(t0, &t, false, b"BYE".to_vec());
        assert_eq!(tx.fire(t0 + t.t1, &t), Fire::Retransmit(b"BYE".to_vec()));
        assert_eq!(tx.on_response(t0, &t, 200), Some(200));
        assert_eq!(tx.on_response(t0, &t, 200), None);
        let mut lost = ClientTx::new(t0, &t, true, b"BYE".to_vec());
        assert_eq!(lost.next_timeout(), Some(t0 + t.timeout()));
        assert_eq!(lost.fire(t0 + t.timeout(), &t), Fire::TimedOut);
    }
}
