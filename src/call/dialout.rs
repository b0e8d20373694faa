//! Calling out (issue 9, spec §7): the legs a `dial` order places into a conference.
//!
//! A [`DialOrder`] comes from the shell with its endpoints resolved to contacts (a device's
//! registered contacts, a user's devices' contacts, a SIP URI, a number's gateways). The
//! contacts of an endpoint ring at once, or a number's gateways one after the other (the
//! next on 5xx or no answer). Each leg takes an RTP port pair, offers SDP in its INVITE, and
//! on the 200 (the SIP endpoint has sent the ACK) its media enters the conference's worker
//! and it joins with the order's flags, without prompts, lock or member limit. The first
//! answer of an endpoint cancels its other contacts. An endpoint succeeds when the mixer
//! confirms its leg's join (the `add-member` event) and fails with the hangup cause of its
//! last leg, or `timeout` when none answered in time (its legs are cancelled then). Once
//! every endpoint is decided, [`Output::Dialed`] carries the responses. A number whose
//! callflow starts with a bridging node rings that node's branches as an order of its own
//! (`Joining::within`): its first answer joins and wins it, and its outcome (the answered
//! leg, else the deciding cause, see [`Failure::of`]) is the number's.
//!
//! A callflow's bridging node (`super::callflow`) rings through the same orders, with a
//! [`Purpose::Bridge`]: endpoints may start after a delay, give up after their own timeout,
//! take turns (`single`), ring again (`repeats`); the first leg to answer wins the whole
//! order and is bridged to the caller, and a failed order runs the callflow's next node.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use crate::api::service::{ConfRef, EndpointResponse};
use crate::conference::flow::join_decision;
use crate::conference::settings::ConferencesConfig;
use crate::conference::vocabulary::Role;
use crate::media::worker::Command;
use crate::sdp::{Direction, Negotiated, SdpSession};
use crate::sip::{Body, CallId, Dial, NameAddr};

use super::callflow::bridge_room_id;
use super::callflow_node::Failure;
use super::dial_order::{BridgeNode, Contact, DialOrder, Endpoint, MAX_LEGS_PER_ORDER, Plan};
use super::dial_order::{Joining, Leg, LegState, Order, Purpose, Turn};
use super::dial_order::{Ring, quoted};
use super::output::{Output, Ports, SipAction};
use super::plane::{Call, CallPlane, Direction as CallDirection, Party, Stage, is_sdp, sdp_body};

/// The cause of a leg refused for lack of room (ports, the ringing bound).
const CONGESTION: &str = "NORMAL_CIRCUIT_CONGESTION";

/// The causes of a callee refusing the call (busy, declined), as opposed to not reaching it.
const REJECTIONS: [&str; 2] = ["USER_BUSY", "CALL_REJECTED"];

/// How long past its deadline an order waits for the mixer to confirm a leg that answered.
const JOIN_GRACE: Duration = Duration::from_secs(5);

/// What a forwarded callee hears, the key that accepts the call, and how long it has
/// (Kazoo's `ivr-group_confirm` and FreeSWITCH's `group_confirm_key`).
const CONFIRM_PROMPT: &str = "tts://Press 1 to accept the call.";
pub(super) const CONFIRM_KEY: char = '1';
const CONFIRM_TIMEOUT: Duration = Duration::from_secs(10);

impl CallPlane {
    /// Starts ringing `order`'s endpoints; [`Output::Dialed`] with the returned id answers
    /// it (at once when nothing could ring).
    pub fn dial(&mut self, order: DialOrder, now: Instant) -> u64 {
        let from = self.our_from(&order.caller_id_name, &order.caller_id_number);
        let purpose = Purpose::Conference(Box::new(Joining {
            conf: order.conf,
            doc: order.doc,
            config: order.config,
            flags: order.flags,
            within: None,
        }));
        let plan = Plan::once(order.timeout);
        let call_id = order.outbound_call_id;
        self.start_order(purpose, from, order.endpoints, plan, call_id, now)
    }

    /// Starts an order: its first round rings now. Its outcome follows
    /// [`CallPlane::finish_order`].
    pub(super) fn start_order(
        &mut self,
        purpose: Purpose,
        from: String,
        endpoints: Vec<Endpoint>,
        plan: Plan,
        call_id: Option<String>,
        now: Instant,
    ) -> u64 {
        let id = self.new_id();
        let n = endpoints.len();
        self.orders.insert(
            id,
            Order {
                purpose,
                from,
                deadline: now + plan.timeout,
                plan,
                outcomes: endpoints.iter().map(|e| (e.id.clone(), None)).collect(),
                endpoints,
                turns: vec![Turn::Done; n],
                next: vec![VecDeque::new(); n],
            },
        );
        self.start_round(id, call_id, now);
        id
    }

    /// Every endpoint of the order takes its turn again: at once after its delay, or the
    /// first one only when sequential.
    fn start_round(&mut self, order: u64, call_id: Option<String>, now: Instant) {
        let Some(o) = self.orders.get_mut(&order) else {
            return;
        };
        o.deadline = now + o.plan.timeout;
        for (i, e) in o.endpoints.iter().enumerate() {
            o.outcomes[i].1 = None;
            o.turns[i] = if o.plan.sequential && i > 0 {
                Turn::Waiting
            } else {
                Turn::StartsAt(now + e.delay)
            };
        }
        self.start_due(order, call_id, now);
        self.finish_order(order, now);
    }

    /// Starts the endpoints whose turn has come.
    fn start_due(&mut self, order: u64, mut call_id: Option<String>, now: Instant) {
        let due: Vec<usize> = self.orders.get(&order).map_or(Vec::new(), |o| {
            let due = |t: &Turn| matches!(t, Turn::StartsAt(at) if *at <= now);
            (0..o.turns.len()).filter(|i| due(&o.turns[*i])).collect()
        });
        for i in due {
            self.start_endpoint(order, i, call_id.take(), now);
        }
    }

    /// Rings an endpoint: its contacts at once, or its first gateway.
    fn start_endpoint(&mut self, order: u64, i: usize, call_id: Option<String>, now: Instant) {
        let Some(o) = self.orders.get_mut(&order) else {
            return;
        };
        let endpoint = o.endpoints[i].clone();
        o.turns[i] = Turn::Ringing(endpoint.timeout.map(|t| now + t));
        if let (Some(callflow), Purpose::Conference(j)) = (endpoint.callflow, &o.purpose) {
            // Its callflow's branches ring as an order of their own (see `Joining::within`).
            let purpose = Purpose::Conference(Box::new(Joining {
                within: Some((order, i)),
                ..(**j).clone()
            }));
            // A conference's leg hears the room, not ringback.
            let (
                from,
                BridgeNode {
                    endpoints, plan, ..
                },
            ) = (o.from.clone(), callflow.node);
            self.start_order(purpose, from, endpoints, plan, call_id, now);
            return;
        }
        if endpoint.contacts.is_empty() {
            let cause = match endpoint.ring {
                Ring::Simultaneous => "USER_NOT_REGISTERED",
                Ring::Failover => "NO_ROUTE_DESTINATION",
            };
            return self.leg_outcome(order, i, Err(cause.into()), now);
        }
        let mut contacts = VecDeque::from(endpoint.contacts);
        let now_ringing: Vec<Contact> = match endpoint.ring {
            Ring::Simultaneous => contacts.drain(..).collect(),
            Ring::Failover => contacts.pop_front().into_iter().collect(),
        };
        o.next[i] = contacts;
        let mut call_id = call_id;
        for contact in now_ringing {
            let placed = self.legs.values().filter(|l| l.order == order).count();
            if placed >= MAX_LEGS_PER_ORDER {
                tracing::warn!("dial: too many legs in one order");
                if !self
                    .legs
                    .values()
                    .any(|l| l.order == order && l.endpoint == i)
                {
                    self.leg_outcome(order, i, Err(CONGESTION.into()), now);
                }
                break;
            }
            self.place(order, i, contact, call_id.take(), VecDeque::new(), now);
        }
    }

    /// Places one leg of `order`'s `endpoint`: its port pair first, then the INVITE;
    /// `servers`: the addresses it tries next.
    fn place(
        &mut self,
        order: u64,
        endpoint: usize,
        contact: Contact,
        call_id: Option<String>,
        servers: VecDeque<SocketAddr>,
        now: Instant,
    ) {
        let Some(account) = self.order_account(order) else {
            return;
        };
        let ringing = self
            .legs
            .values()
            .filter(|l| self.order_account(l.order) == Some(account));
        if ringing.count() >= self.settings.max_outbound {
            tracing::warn!(%account, "dial: too many outbound legs");
            return self.leg_outcome(order, endpoint, Err(CONGESTION.into()), now);
        }
        let call = CallId(CallId::APP_BIT | self.new_id());
        let call_id = call_id.unwrap_or_else(|| random_call_id(call));
        let leg = Leg {
            order,
            endpoint,
            contact,
            call_id,
            state: LegState::Ports,
            servers,
        };
        let (server, protocol) = (leg.contact.host.clone(), leg.contact.protocol);
        self.legs.insert(call, leg);
        match server {
            Some(server) => self.push(Output::Resolve {
                call,
                server,
                protocol,
            }),
            None => self.push(Output::AllocatePorts { call }),
        }
    }

    /// The shell's answer to [`Output::Resolve`]: the server's addresses in the order they
    /// are tried (the leg takes its port pair for the first), or why there is none (the
    /// leg fails over to the next gateway as on a 5xx).
    pub fn handle_resolved(
        &mut self,
        call: CallId,
        addrs: Result<Vec<SocketAddr>, String>,
        now: Instant,
    ) {
        let Some(leg) = self.legs.get_mut(&call) else {
            return;
        };
        let first = addrs.and_then(|addrs| {
            let mut addrs = VecDeque::from(addrs);
            let first = addrs.pop_front().ok_or("no address")?;
            Ok((first, addrs))
        });
        match first {
            Ok((first, rest)) => {
                leg.contact.addr = first;
                leg.contact.host = None;
                leg.servers = rest;
                self.push(Output::AllocatePorts { call });
            }
            Err(why) => {
                tracing::warn!(to = %leg.contact.uri, "dial: gateway not resolved: {why}");
                self.leg_failed(call, "NO_ROUTE_DESTINATION", true, now);
            }
        }
    }

    /// The account whose legs an order places: a bridge's are the SIP callers' account.
    fn order_account(&self, order: u64) -> Option<&str> {
        self.orders.get(&order).map(|o| match &o.purpose {
            Purpose::Conference(j) => j.conf.account.as_str(),
            Purpose::Bridge { caller } => self.account_ref(*caller),
            Purpose::Relay { room } => room.account.as_str(),
        })
    }

    /// Our From presenting caller id `name` / `number`.
    fn our_from(&self, name: &str, number: &str) -> String {
        format!("{} <sip:{number}@{}>", quoted(name), self.settings.host)
    }

    /// Whether `call` is a leg still being placed.
    pub(super) fn is_leg(&self, call: CallId) -> bool {
        self.legs.contains_key(&call)
    }

    /// A leg's port pair: the INVITE goes out with our offer.
    pub(super) fn leg_ports(&mut self, call: CallId, ports: Ports, now: Instant) {
        let local = match ports {
            Ok(local) => local,
            Err(e) => {
                tracing::warn!(%call, error = %e, "dial: no RTP port");
                return self.leg_failed(call, CONGESTION, true, now);
            }
        };
        let Some(leg) = self.legs.get(&call) else {
            return;
        };
        let from = match &leg.contact.caller_id {
            Some((name, number)) => self.our_from(name, number),
            None => match self.orders.get(&leg.order) {
                Some(o) => o.from.clone(),
                None => return,
            },
        };
        let Some(leg) = self.legs.get_mut(&call) else {
            return;
        };
        let mut sdp = SdpSession::new(self.settings.policy.clone(), local, random_u64());
        let offer = sdp.offer(Direction::SendRecv);
        leg.state = LegState::Ringing(Box::new(sdp));
        tracing::info!(call = %leg.call_id, to = %leg.contact.uri, "dialing");
        let dial = Dial {
            target: leg.contact.uri.clone(),
            to_addr: leg.contact.addr,
            protocol: leg.contact.protocol,
            from,
            to: None,
            headers: Vec::new(),
            body: Some(sdp_body(offer)),
            call: Some(call),
            call_id: Some(leg.call_id.clone()),
            auth: leg.contact.auth.clone(),
        };
        self.sip(SipAction::Invite(Box::new(dial)));
    }

    /// The callee answered: media up, and the leg joins its conference (its endpoint's
    /// other legs cancelled), or is bridged to the caller (every other leg cancelled).
    pub(super) fn on_dial_answered(&mut self, call: CallId, body: Option<Body>, now: Instant) {
        let Some(leg) = self.legs.get_mut(&call) else {
            // A leg given up (timeout, a sibling answered) whose 200 crossed our CANCEL.
            self.sip(SipAction::Bye { call });
            return;
        };
        let answer = body
            .filter(is_sdp)
            .map(|b| String::from_utf8_lossy(&b.bytes).into_owned());
        let accepted = match &mut leg.state {
            LegState::Ringing(sdp) => answer.map(|a| sdp.accept_answer(&a)),
            // A 200 without SDP after early media: the 183's stands.
            LegState::Early(e) => {
                Some(answer.map_or(Ok(e.neg.clone()), |a| e.sdp.accept_answer(&a)))
            }
            _ => return,
        };
        let neg = match accepted {
            Some(Ok(neg)) => neg,
            other => {
                tracing::info!(call = %leg.call_id, error = ?other.map(|r| r.err()), "dial: unusable SDP answer");
                self.sip(SipAction::Bye { call });
                return self.leg_failed(call, "INCOMPATIBLE_DESTINATION", false, now);
            }
        };
        let (order, endpoint, source) = (leg.order, leg.endpoint, leg.contact.addr.ip());
        let (sip_call_id, from) = (leg.call_id.clone(), callee(&leg.contact.uri));
        let confirm = leg.contact.confirm;
        let (sdp, up_on) = match std::mem::replace(&mut leg.state, LegState::Joining) {
            LegState::Early(e) => {
                // Its media is up since the 183: the 200 may move it, and it may now send.
                if e.neg != neg {
                    self.update_on(e.worker, call, &neg, source);
                }
                self.command_to(e.worker, Command::Confirm { call: call.0 });
                (e.sdp, Some(e.worker))
            }
            LegState::Ringing(sdp) => (*sdp, None),
            _ => return,
        };
        let party = Party {
            account: self.order_account(order).unwrap_or_default().to_string(),
            direction: CallDirection::Outbound,
            sip_call_id,
            from,
            source,
            vars: Vec::new(),
        };
        if confirm {
            return self.ask_confirm(call, party, sdp, neg, now);
        }
        self.leg_up(call, (order, endpoint), (party, sdp), &neg, up_on, now);
    }

    /// What answered leg `call` of `(order, endpoint)` does: joins its conference, or is
    /// bridged to its caller. `up_on`: the worker its media is already up on (a callee
    /// that confirmed with a key, or whose early media the caller heard).
    fn leg_up(
        &mut self,
        call: CallId,
        (order, endpoint): (u64, usize),
        (party, sdp): (Party, SdpSession),
        neg: &Negotiated,
        up_on: Option<usize>,
        now: Instant,
    ) {
        let (conf, doc, config, flags) = match self.orders.get(&order).map(|o| &o.purpose) {
            Some(Purpose::Conference(j)) if j.within.is_some() => {
                let joining = (j.conf.clone(), j.doc.clone(), j.config.clone(), j.flags);
                // A callflow's branches: the first answer wins them all.
                self.expire(order, "LOSE_RACE", now);
                joining
            }
            Some(Purpose::Conference(j)) => {
                (j.conf.clone(), j.doc.clone(), j.config.clone(), j.flags)
            }
            Some(Purpose::Bridge { caller }) => {
                let caller = *caller;
                // The first answer wins the whole order.
                self.legs.remove(&call);
                self.leg_outcome(order, endpoint, Ok(party.sip_call_id.clone()), now);
                self.expire(order, "LOSE_RACE", now);
                return self.bridge(caller, call, (party, sdp), neg, up_on, now);
            }
            Some(Purpose::Relay { room }) => {
                let room = room.clone();
                let config = ConferencesConfig::default();
                self.leg_call(call, (party, sdp), neg, up_on, &room, config);
                return self.join_room(call, &room, now);
            }
            None => return,
        };
        self.cancel_siblings(order, endpoint, call);
        if flags.join_existing && !self.conferences.contains_key(&conf) {
            tracing::info!(conference = %conf, "dial: join_existing, and the conference is not running");
            self.leg_failed(call, "NO_ROUTE_DESTINATION", false, now);
            self.sip(SipAction::Bye { call });
            // A confirmed leg's media is up: it goes too.
            return self.end(call, "not joined", now);
        }
        self.leg_call(call, (party, sdp), neg, up_on, &conf, config);
        let role = if flags.moderator {
            Role::Moderator
        } else {
            Role::Member
        };
        let mut decision = join_decision(&conf.id, &doc, role, Vec::new(), Vec::new(), None);
        decision.flags.mute = flags.mute;
        decision.flags.deaf = flags.deaf;
        decision.flags.moderator = flags.moderator;
        decision.flags.dist_dtmf = flags.distribute_dtmf;
        decision.flags.nomoh = flags.disable_moh;
        self.join(call, conf, decision, now);
    }

    /// The answered leg's call: its media starts now on the worker of `conf` (its
    /// conference or bridge room) unless it is already up on worker `up_on`.
    pub(super) fn leg_call(
        &mut self,
        call: CallId,
        (party, sdp): (Party, SdpSession),
        neg: &Negotiated,
        up_on: Option<usize>,
        conf: &ConfRef,
        config: ConferencesConfig,
    ) {
        let worker = up_on.unwrap_or_else(|| self.worker_of(&conf.id));
        let mut c = Call::answered_leg(party, sdp, worker, conf.clone(), config);
        c.rate = self.settings.codec_options().pcm_rate(neg.codec);
        self.calls.insert(call, c);
        if up_on.is_none() {
            self.start_media(call, neg);
            self.command(call, Command::Confirm { call: call.0 });
        }
    }

    /// A callee that must confirm: its media goes where the leg will (so it need not
    /// move), it hears the request, and has [`CONFIRM_TIMEOUT`] to press [`CONFIRM_KEY`];
    /// the other legs ring on meanwhile.
    fn ask_confirm(
        &mut self,
        call: CallId,
        party: Party,
        sdp: SdpSession,
        neg: Negotiated,
        now: Instant,
    ) {
        let Some(leg) = self.legs.get_mut(&call) else {
            return;
        };
        tracing::info!(call = %party.sip_call_id, "dial: waiting for the callee's key");
        leg.state = LegState::Confirming(now + CONFIRM_TIMEOUT, Box::new(neg.clone()));
        let order = leg.order;
        let room = match self.orders.get(&order).map(|o| &o.purpose) {
            Some(Purpose::Conference(j)) => j.conf.id.clone(),
            Some(Purpose::Relay { room }) => room.id.clone(),
            Some(Purpose::Bridge { .. }) => bridge_room_id(call),
            None => return,
        };
        let worker = self.worker_of(&room);
        let mut c = Call::answered_leg(party, sdp, worker, ConfRef::default(), Default::default());
        c.stage = Stage::Confirming;
        self.calls.insert(call, c);
        self.start_media(call, &neg);
        self.command(call, Command::Confirm { call: call.0 });
        self.play_prompt(call, vec![CONFIRM_PROMPT.to_string()]);
    }

    /// A key from a callee asked to confirm: 1 bridges it, others are ignored.
    pub(super) fn on_confirm_digit(&mut self, call: CallId, digit: char, now: Instant) {
        if digit != CONFIRM_KEY {
            return;
        }
        let Some(leg) = self.legs.get_mut(&call) else {
            return;
        };
        let LegState::Confirming(_, neg) = std::mem::replace(&mut leg.state, LegState::Joining)
        else {
            return;
        };
        let (order, endpoint) = (leg.order, leg.endpoint);
        let Some(c) = self.calls.remove(&call) else {
            return;
        };
        tracing::info!(call = %c.party.sip_call_id, "dial: the callee confirmed");
        let up_on = Some(c.worker);
        self.leg_up(call, (order, endpoint), (c.party, c.sdp), &neg, up_on, now);
    }

    /// A leg we placed rings (180, or 183 with SDP): a callflow's caller hears ringback,
    /// or the callee's own early media (`super::callee_early`).
    pub(super) fn on_dial_progress(&mut self, call: CallId, status: u16, body: Option<Body>) {
        let order = self.legs.get(&call).map(|l| l.order);
        let purpose = order.and_then(|o| self.orders.get(&o)).map(|o| &o.purpose);
        if let (Some(Purpose::Bridge { caller }), 180..=183) = (purpose, status) {
            let caller = *caller;
            self.branch_rings(caller);
            if let Some(body) = body.filter(is_sdp) {
                self.branch_early_media(call, caller, &body);
            }
        }
    }

    /// The mixer took a dialed leg in (not an early one into its caller's lobby): its
    /// endpoint succeeded.
    pub(super) fn on_dial_joined(&mut self, call: CallId, now: Instant) {
        let joining = self.legs.get(&call);
        if !joining.is_some_and(|l| matches!(l.state, LegState::Joining)) {
            return;
        }
        if let Some(leg) = self.legs.remove(&call) {
            self.leg_outcome(leg.order, leg.endpoint, Ok(leg.call_id), now);
        }
    }

    /// A final failure of our INVITE (487 after our CANCEL, 408 when nobody answered).
    pub(super) fn on_dial_rejected(&mut self, call: CallId, status: u16, now: Instant) {
        tracing::info!(%call, status, "dial: rejected");
        // RFC 3263 §4.3: a timeout or 503 from one server tries the next of the same name.
        if matches!(status, 408 | 503) && self.next_server(call, now) {
            return;
        }
        let fail_over = status == 408 || (500..600).contains(&status);
        self.leg_failed(call, hangup_cause(status), fail_over, now);
    }

    /// Retries leg `call` at the next address of its server, if it has one left: a new leg
    /// of the same endpoint (a new INVITE transaction and Call-ID).
    pub(super) fn next_server(&mut self, call: CallId, now: Instant) -> bool {
        let Some(next) = self.legs.get_mut(&call).and_then(|l| l.servers.pop_front()) else {
            return false;
        };
        let Some(leg) = self.drop_leg(call) else {
            return false;
        };
        tracing::info!(to = %leg.contact.uri, %next, "dial: trying the server's next address");
        let contact = Contact {
            addr: next,
            ..leg.contact
        };
        self.place(leg.order, leg.endpoint, contact, None, leg.servers, now);
        true
    }

    /// A leg that will not join: its port pair goes, the next gateway rings if `fail_over`
    /// and there is one, and its endpoint fails once it has no other leg left.
    pub(super) fn leg_failed(&mut self, call: CallId, cause: &str, fail_over: bool, now: Instant) {
        let Some(leg) = self.drop_leg(call) else {
            return;
        };
        self.silence_early_leg(call, &leg);
        let (order, endpoint) = (leg.order, leg.endpoint);
        let next = self
            .orders
            .get_mut(&order)
            .and_then(|o| o.next.get_mut(endpoint))
            .and_then(|queue| {
                if fail_over {
                    queue.pop_front()
                } else {
                    queue.clear();
                    None
                }
            });
        if let Some(contact) = next {
            tracing::info!(cause, to = %contact.uri, "dial: failing over");
            return self.place(order, endpoint, contact, None, VecDeque::new(), now);
        }
        let others = self
            .legs
            .values()
            .any(|l| l.order == order && l.endpoint == endpoint);
        if !others {
            self.leg_outcome(order, endpoint, Err(cause.to_string()), now);
        }
    }

    /// Forgets a leg that will not join; its port pair goes unless its media is up.
    fn drop_leg(&mut self, call: CallId) -> Option<Leg> {
        let leg = self.legs.remove(&call)?;
        if !self.calls.contains_key(&call) {
            self.push(Output::Released {
                call,
                name_file: None,
            });
        }
        Some(leg)
    }

    /// Cancels the endpoint's other legs: one of them answered.
    fn cancel_siblings(&mut self, order: u64, endpoint: usize, answered: CallId) {
        let siblings: Vec<CallId> = self
            .legs
            .iter()
            .filter(|(c, l)| **c != answered && l.order == order && l.endpoint == endpoint)
            .map(|(c, _)| *c)
            .collect();
        for call in siblings {
            self.give_up(call);
        }
    }

    /// Forgets a leg not answered yet, cancelling its INVITE.
    fn give_up(&mut self, call: CallId) {
        let Some(leg) = self.legs.remove(&call) else {
            return;
        };
        self.silence_early_leg(call, &leg);
        match leg.state {
            LegState::Ringing(_) | LegState::Early(_) => self.sip(SipAction::Cancel { call }),
            // Answered: hung up, its media gone.
            LegState::Confirming(..) => {
                self.sip(SipAction::Bye { call });
                if let Some(c) = self.calls.remove(&call) {
                    self.command_to(c.worker, Command::Leave { call: call.0 });
                }
            }
            LegState::Ports | LegState::Joining => {}
        }
        self.push(Output::Released {
            call,
            name_file: None,
        });
    }

    /// An endpoint is decided; in a sequential order a failure gives the next one its turn.
    fn leg_outcome(
        &mut self,
        order: u64,
        endpoint: usize,
        outcome: Result<String, String>,
        now: Instant,
    ) {
        let Some(o) = self.orders.get_mut(&order) else {
            return;
        };
        let Some(slot) = o.outcomes.get_mut(endpoint) else {
            return;
        };
        if slot.1.is_some() {
            return;
        }
        let failed = outcome.is_err();
        let rejected = matches!(&outcome, Err(c) if REJECTIONS.contains(&c.as_str()));
        slot.1 = Some(outcome);
        o.turns[endpoint] = Turn::Done;
        if rejected && o.plan.fail_on_reject {
            tracing::info!(
                order,
                "a branch rejected the call: the others are cancelled"
            );
            return self.expire(order, "LOSE_RACE", now);
        }
        if failed && o.plan.sequential {
            let waiting = o.turns.iter().position(|t| *t == Turn::Waiting);
            if let Some(i) = waiting {
                o.turns[i] = Turn::StartsAt(now + o.endpoints[i].delay);
                self.start_due(order, None, now);
            }
        }
        self.finish_order(order, now);
    }

    /// Answers an order once every endpoint is decided (a failed round of a ring group
    /// with repeats left rings again).
    fn finish_order(&mut self, order: u64, now: Instant) {
        let Some(o) = self.orders.get_mut(&order) else {
            return;
        };
        if !o.outcomes.iter().all(|(_, r)| r.is_some()) {
            return;
        }
        let answered = o.outcomes.iter().any(|(_, r)| matches!(r, Some(Ok(_))));
        if !answered && o.plan.repeats > 0 {
            o.plan.repeats -= 1;
            tracing::info!(order, "ringing again: every endpoint failed");
            return self.start_round(order, None, now);
        }
        let Some(o) = self.orders.remove(&order) else {
            return;
        };
        let outcomes: Vec<EndpointResponse> = o
            .outcomes
            .into_iter()
            .map(|(endpoint_id, outcome)| EndpointResponse {
                endpoint_id,
                outcome: outcome.unwrap_or_else(|| Err("timeout".into())),
            })
            .collect();
        match o.purpose {
            Purpose::Conference(j) if j.within.is_some() => {
                if let Some((parent, endpoint)) = j.within {
                    let outcome = callflow_outcome(&outcomes);
                    if let Err(cause) = &outcome
                        && self.next_in_callflow(parent, endpoint, cause)
                    {
                        return self.start_endpoint(parent, endpoint, None, now);
                    }
                    self.leg_outcome(parent, endpoint, outcome, now);
                }
            }
            Purpose::Conference(_) => self.push(Output::Dialed {
                order,
                responses: outcomes,
            }),
            Purpose::Bridge { .. } if answered => {}
            Purpose::Bridge { caller } => self.ring_failed(caller, &outcomes, now),
            Purpose::Relay { .. } if answered => {}
            Purpose::Relay { room } => {
                tracing::info!(room = %room, "relay: the focus node did not answer");
                self.close_room(&room, now);
            }
        }
    }

    /// The earliest ring deadline, endpoint start or endpoint timeout.
    pub(super) fn dial_timeout(&self) -> Option<Instant> {
        let turns = self.orders.values().flat_map(|o| {
            o.turns.iter().filter_map(|t| match t {
                Turn::StartsAt(at) | Turn::Ringing(Some(at)) => Some(*at),
                _ => None,
            })
        });
        let deadlines = self.orders.values().map(|o| o.deadline);
        let confirming = self.legs.values().filter_map(|l| match &l.state {
            LegState::Confirming(by, _) => Some(*by),
            _ => None,
        });
        deadlines.chain(turns).chain(confirming).min()
    }

    /// Endpoints still ringing at their order's deadline fail with `timeout`, as do
    /// endpoints past their own timeout; endpoints whose delay is over start ringing.
    pub(super) fn dial_timers(&mut self, now: Instant) {
        let unconfirmed: Vec<CallId> = self
            .legs
            .iter()
            .filter(|(_, l)| matches!(l.state, LegState::Confirming(by, _) if by <= now))
            .map(|(c, _)| *c)
            .collect();
        for call in unconfirmed {
            tracing::info!(%call, "dial: no key from the callee");
            self.leg_failed(call, "NO_ANSWER", false, now);
            self.hang_up(call, now);
        }
        let ids: Vec<u64> = self.orders.keys().copied().collect();
        for order in ids {
            let Some(o) = self.orders.get(&order) else {
                continue;
            };
            if o.deadline <= now {
                self.end_round(order, "timeout", now);
                continue;
            }
            let late = |t: &Turn| matches!(t, Turn::Ringing(Some(at)) if *at <= now);
            let late: Vec<usize> = (0..o.turns.len()).filter(|i| late(&o.turns[*i])).collect();
            for endpoint in late {
                self.give_up_endpoint(order, endpoint, now);
            }
            self.start_due(order, None, now);
        }
    }

    /// An endpoint past its own timeout: its legs are cancelled and it fails.
    fn give_up_endpoint(&mut self, order: u64, endpoint: usize, now: Instant) {
        let ringing: Vec<CallId> = self
            .legs
            .iter()
            .filter(|(_, l)| l.order == order && l.endpoint == endpoint)
            .filter(|(_, l)| !matches!(l.state, LegState::Joining))
            .map(|(c, _)| *c)
            .collect();
        for call in ringing {
            self.give_up(call);
        }
        self.expire_callflow(order, endpoint, "timeout", now);
        if let Some(queue) = self
            .orders
            .get_mut(&order)
            .and_then(|o| o.next.get_mut(endpoint))
        {
            queue.clear();
        }
        self.leg_outcome(order, endpoint, Err("timeout".into()), now);
    }

    /// Shutdown: every ringing leg is cancelled and every order answered.
    pub(super) fn cancel_dials(&mut self, now: Instant) {
        let orders: Vec<u64> = self.orders.keys().copied().collect();
        for order in orders {
            self.expire(order, "NORMAL_CLEARING", now);
        }
    }

    /// Ends the orders placed for a caller who is gone (`placed_for` picks them by their
    /// purpose): their ringing legs are cancelled.
    pub(super) fn abandon_orders(&mut self, placed_for: impl Fn(&Purpose) -> bool, now: Instant) {
        let orders: Vec<u64> = self
            .orders
            .iter()
            .filter(|(_, o)| placed_for(&o.purpose))
            .map(|(id, _)| *id)
            .collect();
        for order in orders {
            self.expire(order, "ORIGINATOR_CANCEL", now);
        }
    }

    /// Ends the order: no round follows (see [`CallPlane::end_round`]).
    pub(super) fn expire(&mut self, order: u64, cause: &str, now: Instant) {
        if let Some(o) = self.orders.get_mut(&order) {
            o.plan.repeats = 0;
        }
        self.end_round(order, cause, now);
    }

    /// Gives up the order's unanswered legs; endpoints not decided yet fail with `cause`.
    /// A leg that answered keeps going: the mixer's confirmation is on its way.
    fn end_round(&mut self, order: u64, cause: &str, now: Instant) {
        let ringing: Vec<CallId> = self
            .legs
            .iter()
            .filter(|(_, l)| l.order == order && !matches!(l.state, LegState::Joining))
            .map(|(c, _)| *c)
            .collect();
        for call in ringing {
            self.give_up(call);
        }
        let mut joining: Vec<usize> = self
            .legs
            .values()
            .filter(|l| l.order == order)
            .map(|l| l.endpoint)
            .collect();
        // An endpoint ringing through its callflow: the branches go, but for one that
        // answered, whose outcome is on its way.
        let endpoints = self.orders.get(&order).map_or(0, |o| o.endpoints.len());
        for i in 0..endpoints {
            let Some(sub) = self.sub_order(order, i) else {
                continue;
            };
            if self.legs.values().any(|l| l.order == sub) {
                joining.push(i);
            }
            self.expire_callflow(order, i, cause, now);
        }
        if let Some(o) = self.orders.get_mut(&order) {
            o.next.iter_mut().for_each(VecDeque::clear);
            o.deadline = now + JOIN_GRACE;
            for (i, (_, outcome)) in o.outcomes.iter_mut().enumerate() {
                if outcome.is_none() && !joining.contains(&i) {
                    *outcome = Some(Err(cause.to_string()));
                    o.turns[i] = Turn::Done;
                }
            }
        }
        self.finish_order(order, now);
    }
}

impl CallPlane {
    /// Moves `endpoint` of `order` on to its callflow's child for the failure `cause`;
    /// false when there is none.
    fn next_in_callflow(&mut self, order: u64, endpoint: usize, cause: &str) -> bool {
        let flow = self.orders.get_mut(&order).and_then(|o| {
            let e = o.endpoints.get_mut(endpoint)?;
            e.callflow.as_mut()
        });
        let Some(flow) = flow else {
            return false;
        };
        let Some(next) = flow.take_child(Failure::of(&[cause]).child()) else {
            return false;
        };
        tracing::info!(
            order,
            endpoint,
            cause,
            "dial: the number's callflow goes on"
        );
        **flow = next;
        true
    }

    /// Gives up the order ringing `endpoint` of `order` through its callflow, if any: its
    /// callflow stops there.
    fn expire_callflow(&mut self, order: u64, endpoint: usize, cause: &str, now: Instant) {
        let Some(sub) = self.sub_order(order, endpoint) else {
            return;
        };
        let flow = self.orders.get_mut(&order).and_then(|o| {
            let e = o.endpoints.get_mut(endpoint)?;
            e.callflow.as_mut()
        });
        if let Some(flow) = flow {
            flow.children.clear();
        }
        self.expire(sub, cause, now);
    }

    /// The order ringing `endpoint` of `order` through its callflow, if any.
    fn sub_order(&self, order: u64, endpoint: usize) -> Option<u64> {
        self.orders.iter().find_map(|(id, o)| match &o.purpose {
            Purpose::Conference(j) if j.within == Some((order, endpoint)) => Some(*id),
            _ => None,
        })
    }
}

/// A callflow's branches as one endpoint's outcome: the leg that answered, else the cause
/// that decides the callflow's failure (busy, then no answer, ...; see [`Failure::of`]),
/// not counting the branches that lost the race.
fn callflow_outcome(outcomes: &[EndpointResponse]) -> Result<String, String> {
    if let Some(Ok(call_id)) = outcomes.iter().map(|r| &r.outcome).find(|o| o.is_ok()) {
        return Ok(call_id.clone());
    }
    let causes: Vec<&str> = outcomes
        .iter()
        .filter_map(|r| r.outcome.as_ref().err().map(String::as_str))
        .filter(|c| *c != "LOSE_RACE")
        .collect();
    let failure = Failure::of(&causes);
    let cause = causes.iter().find(|c| Failure::of(&[c]) == failure);
    Err(cause.unwrap_or(&"NO_ROUTE_DESTINATION").to_string())
}

/// The callee as the participant shows it: the user and URI we rang.
fn callee(uri: &str) -> NameAddr {
    let user = uri
        .trim_start_matches("sips:")
        .trim_start_matches("sip:")
        .split_once('@')
        .map(|(u, _)| u.to_string());
    NameAddr {
        display_name: None,
        uri: uri.to_string(),
        user,
        tag: None,
    }
}

/// The Q.850 cause name FreeSWITCH (and so Kazoo) reports for a SIP final status
/// (RFC 4497 / FreeSWITCH's `sofia_glue_sip_cause_to_freeswitch`).
pub fn hangup_cause(status: u16) -> &'static str {
    match status {
        404 | 485 | 604 => "UNALLOCATED_NUMBER",
        401 | 402 | 403 | 407 | 603 => "CALL_REJECTED",
        408 | 504 => "RECOVERY_ON_TIMER_EXPIRE",
        410 => "NUMBER_CHANGED",
        480 => "NO_USER_RESPONSE",
        484 => "INVALID_NUMBER_FORMAT",
        486 | 600 => "USER_BUSY",
        487 => "ORIGINATOR_CANCEL",
        488 | 606 => "INCOMPATIBLE_DESTINATION",
        502 => "NETWORK_OUT_OF_ORDER",
        500 | 503 => "NORMAL_TEMPORARY_FAILURE",
        _ => "NORMAL_UNSPECIFIED",
    }
}

/// A Call-ID for a leg: random hex, unique per leg.
fn random_call_id(call: CallId) -> String {
    format!("{:016x}{:08x}", random_u64(), call.0 as u32)
}

fn random_u64() -> u64 {
    super::random::random()
}
