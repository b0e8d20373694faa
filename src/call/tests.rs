//! The call plane on a virtual clock: no sockets, no store, no sleeps. A harness plays the
//! shell: it answers store requests from an in-memory list of documents, grants (or
//! refuses) port pairs, finishes prompts as soon as they are asked for, and records what
//! the plane sends to SIP, the workers and the API.

use std::net::SocketAddr;
use std::time::{Duration, Instant, SystemTime};

use mixer::MemberId;
use serde_json::{Value, json};

use super::output::{Caller, MediaCommand, Output, SipAction, StoreAnswer, StoreQuery};
use super::{CallPlane, Settings};
use crate::api::events::EventName;
use crate::api::service::{
    ConfRef, EndpointResponse, ParticipantAction, ServiceError, Target as Who,
};
use crate::cluster::focus::Event as FocusEvent;
use crate::cluster::registry::Request as FocusRequest;
use crate::conference::document::ConferenceDoc;
use crate::conference::settings::ConferencesConfig;
use crate::media::codec::CodecOptions;
use crate::media::leg::{LegConfig, LegLimits};
use crate::media::worker::{Command, Report};
use crate::sdp::MediaPolicy;
use crate::sip::{Body, CallId, Event, NameAddr};

pub(super) const ACCOUNT: &str = "acct";

pub(super) struct Harness {
    pub(super) plane: CallPlane,
    pub(super) now: Instant,
    docs: Vec<(String, ConferenceDoc)>,
    ports_free: bool,
    /// Store requests are left unanswered (to cancel during routing).
    store_down: bool,
    pub(super) sip: Vec<SipAction>,
    pub(super) media: Vec<&'static str>,
    pub(super) played: Vec<Vec<String>>,
    /// What plays on after them (hold music, ringback), per playback.
    pub(super) looping: Vec<Option<String>>,
    /// The calls port pairs were bound for, in turn.
    pub(super) allocated: Vec<CallId>,
    /// The `tts://` voice of each playback.
    pub(super) voices: Vec<Option<String>>,
    /// Hooks fetched, and the media their next answers carry (then none).
    pub(super) hooks_fetched: Vec<(CallId, String)>,
    pub(super) hook_answers: std::collections::VecDeque<Vec<String>>,
    /// The store's kept `play_name` media for the caller.
    kept_name: Option<String>,
    /// Relate commands sent: (a, b, a hears b, b hears a).
    relations: Vec<(u64, u64, bool, bool)>,
    pub(super) events: Vec<EventName>,
    /// The legs calls entered the lobby with.
    legs: Vec<LegConfig>,
    pub(super) released: Vec<CallId>,
    /// Answers to dial orders, by order.
    pub(super) dialed: Vec<(u64, Vec<EndpointResponse>)>,
    /// Requests to the focus registry (cluster).
    focus: Vec<FocusRequest>,
    /// Resolved callflows by number, as the shell's store answer carries them.
    pub(super) callflows: std::collections::HashMap<String, super::callflow_node::Node>,
    /// Where DNS locates `srv.test` (its SRV targets' addresses, in order).
    pub(super) srv_servers: Vec<SocketAddr>,
}

impl Harness {
    pub(super) fn new(docs: Vec<(&str, Value)>) -> Self {
        let settings = Settings {
            account: ACCOUNT.into(),
            realms: Default::default(),
            adhoc: false,
            service_number: None,
            workers: 1,
            policy: MediaPolicy::default(),
            limits: LegLimits::default(),
            opus_complexity: CodecOptions::default().opus_complexity,
            host: "127.0.0.1".into(),
            recordings: "/nonexistent".into(),
            max_outbound: 4,
            cluster: false,
        };
        let now = Instant::now();
        let docs = docs
            .into_iter()
            .map(|(id, v)| (id.to_string(), doc(v)))
            .collect();
        Harness {
            plane: CallPlane::new(settings, now, SystemTime::UNIX_EPOCH),
            now,
            docs,
            ports_free: true,
            store_down: false,
            sip: Vec::new(),
            media: Vec::new(),
            played: Vec::new(),
            looping: Vec::new(),
            allocated: Vec::new(),
            voices: Vec::new(),
            hooks_fetched: Vec::new(),
            hook_answers: Default::default(),
            events: Vec::new(),
            legs: Vec::new(),
            released: Vec::new(),
            kept_name: None,
            relations: Vec::new(),
            dialed: Vec::new(),
            focus: Vec::new(),
            callflows: Default::default(),
            srv_servers: Vec::new(),
        }
    }

    /// A node of a cluster: conferences are hosted under their focus claim.
    fn clustered(docs: Vec<(&str, Value)>) -> Self {
        let mut h = Harness::new(docs);
        h.plane.settings.cluster = true;
        h
    }

    fn focus_event(&mut self, event: FocusEvent) {
        self.plane.handle_focus(event, self.now);
        self.run();
    }

    /// Carries out every output, as the shell would.
    pub(super) fn run(&mut self) {
        while let Some(output) = self.plane.poll_output() {
            match output {
                Output::Sip(action) => self.sip.push(action),
                Output::Media { command, .. } => self.media_command(command),
                Output::Store(request) if !self.store_down => {
                    let answer = self.answer(request.query);
                    self.plane
                        .handle_store_answer(request.id, Ok(answer), self.now);
                }
                Output::Store(_) => {}
                // `gateway.invalid` does not resolve; `srv.test` has the servers of
                // `srv_servers`; other names are 127.0.0.1 (at 5060 without a port).
                Output::Resolve { call, server, .. } => {
                    let port = server.port.unwrap_or(5060);
                    let addrs = match server.name.as_str() {
                        "gateway.invalid" => Err(format!("{}: no such name", server.name)),
                        "srv.test" => Ok(self.srv_servers.clone()),
                        _ => Ok(vec![SocketAddr::from(([127, 0, 0, 1], port))]),
                    };
                    self.plane.handle_resolved(call, addrs, self.now);
                }
                Output::AllocatePorts { call } => {
                    self.allocated.push(call);
                    let ports = match self.ports_free {
                        true => Ok(SocketAddr::from(([127, 0, 0, 1], 40000))),
                        false => Err("no free port pair".to_string()),
                    };
                    self.plane.handle_ports(call, ports, self.now);
                }
                Output::SaveName { call, .. } => {
                    let path = Some("/names/caller.wav".to_string());
                    self.plane.handle_name_saved(call, path, self.now);
                }
                Output::Event(e) => self.events.push(e.name),
                Output::Released { call, .. } => self.released.push(call),
                Output::Dialed { order, responses } => self.dialed.push((order, responses)),
                Output::Focus(request) => self.focus.push(request),
                Output::FetchHook { call, url, body } => {
                    assert_eq!(body["callSid"], format!("sip-{}", call.0));
                    self.hooks_fetched.push((call, url));
                    let media = self.hook_answers.pop_front().unwrap_or_default();
                    self.plane.handle_hook(call, media, self.now);
                }
                Output::Prefetch { .. } | Output::Hook { .. } => {}
            }
        }
    }

    fn media_command(&mut self, command: MediaCommand) {
        match command {
            MediaCommand::Lobby { leg, .. } => {
                self.media.push("lobby");
                self.legs.push(*leg);
            }
            MediaCommand::Play { id, sound, .. } => {
                self.voices.push(sound.voice);
                self.played.push(sound.media);
                self.looping.push(sound.looping.clone());
                // Prompts end at once; hold music plays on.
                if sound.looping.is_none() {
                    let done = Report::PlaybackDone { id, stopped: false };
                    self.plane.handle_report(done, self.now);
                }
            }
            MediaCommand::Do(Command::Relate { a, b, hear, speak }) => {
                self.relations.push((a, b, hear, speak));
            }
            MediaCommand::Do(c) => self.media.push(command_name(&c)),
        }
    }

    fn answer(&self, query: StoreQuery) -> StoreAnswer {
        let found = |number: &str| {
            self.docs
                .iter()
                .filter(|(_, d)| d.all_numbers().contains(&number))
                .cloned()
                .collect()
        };
        match query {
            StoreQuery::Route { number, caller } => StoreAnswer::Route {
                config: ConferencesConfig::default(),
                found: found(&number),
                name: self.kept_name.clone().filter(|_| caller.is_some()),
                callflow: self.callflows.get(&number).cloned().map(Box::new),
            },
            StoreQuery::FindByNumber { number } => StoreAnswer::Found(found(&number)),
        }
    }

    pub(super) fn sip_event(&mut self, ev: Event) {
        self.plane.handle_sip(ev, self.now);
        self.run();
    }

    pub(super) fn report(&mut self, r: Report) {
        self.plane.handle_report(r, self.now);
        self.run();
    }

    /// An INVITE with an SDP offer to `number`, then its ACK.
    pub(super) fn call(&mut self, n: u64, number: &str) -> CallId {
        let call = CallId(n);
        self.sip_event(invite(call, number));
        self.sip_event(Event::Ack { call, body: None });
        call
    }

    pub(super) fn digits(&mut self, call: CallId, digits: &str) {
        for digit in digits.chars() {
            self.report(Report::Dtmf {
                call: call.0,
                digit,
            });
        }
    }

    /// Moves the virtual clock on, firing every timer due on the way.
    pub(super) fn advance(&mut self, by: Duration) {
        let end = self.now + by;
        while let Some(t) = self.plane.poll_timeout().filter(|&t| t <= end) {
            self.now = self.now.max(t);
            self.plane.handle_timeout(self.now);
            self.run();
        }
        self.now = end;
    }

    /// The worker confirms the join with member id `member`.
    pub(super) fn joined(&mut self, call: CallId, member: u32) {
        self.report(Report::Joined {
            call: call.0,
            member: MemberId(member),
        });
    }

    pub(super) fn statuses(&self) -> Vec<u16> {
        self.sip
            .iter()
            .map(|a| match a {
                SipAction::Respond { status, .. } | SipAction::Reject { status, .. } => *status,
                SipAction::Bye { .. } | SipAction::Invite(_) | SipAction::Cancel { .. } => 0,
            })
            .collect()
    }

    pub(super) fn byes(&self) -> usize {
        self.sip
            .iter()
            .filter(|a| matches!(a, SipAction::Bye { .. }))
            .count()
    }

    pub(super) fn heard(&self, prompt: &str) -> usize {
        self.played
            .iter()
            .filter(|m| m.iter().any(|p| p == prompt))
            .count()
    }
}

pub(super) fn doc(v: Value) -> ConferenceDoc {
    ConferenceDoc::from_map(v.as_object().cloned().unwrap_or_default())
}

pub(super) fn invite(call: CallId, number: &str) -> Event {
    let offer = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
                 m=audio 30000 RTP/AVP 0 101\r\na=rtpmap:0 PCMU/8000\r\n\
                 a=rtpmap:101 telephone-event/8000\r\na=sendrecv\r\n";
    Event::Invite {
        call,
        call_id: format!("sip-{}", call.0),
        from: NameAddr {
            display_name: Some("Alice".into()),
            uri: "sip:alice@127.0.0.1".into(),
            user: Some("alice".into()),
            tag: Some("a".into()),
        },
        to: NameAddr {
            display_name: None,
            uri: format!("sip:{number}@127.0.0.1"),
            user: Some(number.into()),
            tag: None,
        },
        request_uri: format!("sip:{number}@127.0.0.1"),
        request_uri_user: Some(number.into()),
        headers: Vec::new(),
        body: Some(Body {
            content_type: "application/sdp".into(),
            bytes: offer.as_bytes().to_vec(),
        }),
        source: SocketAddr::from(([127, 0, 0, 1], 5060)),
        transport: crate::sip::Transport::Udp,
    }
}

fn command_name(c: &Command) -> &'static str {
    match c {
        Command::Confirm { .. } => "confirm",
        Command::Attach(_) => "attach",
        Command::EarlyMedia { .. } => "early media",
        Command::Leave { .. } => "leave",
        Command::Update { .. } => "update",
        Command::StopPlayback { .. } => "stop playback",
        Command::SetFlags { .. } => "set flags",
        Command::RecordCall { .. } => "record call",
        _ => "other",
    }
}

/// A conference reached at 1000 with no PIN, and one at 2000 with member PIN 1234.
pub(super) fn conferences() -> Vec<(&'static str, Value)> {
    vec![
        (
            "open",
            json!({"name": "open", "conference_numbers": ["1000"], "play_welcome": false}),
        ),
        (
            "pinned",
            json!({"name": "pinned", "conference_numbers": ["2000"], "member": {"pins": ["1234"]}}),
        ),
    ]
}

#[test]
fn an_invite_is_answered_with_sdp_only_after_routing() {
    let mut h = Harness::new(conferences());
    h.plane.handle_sip(invite(CallId(1), "1000"), h.now);
    let Some(Output::Store(request)) = h.plane.poll_output() else {
        panic!("routing asks the store first");
    };
    assert_eq!(
        request.query,
        StoreQuery::Route {
            number: "1000".into(),
            caller: Some(Caller {
                user: "alice".into(),
                host: "127.0.0.1".into()
            }),
        }
    );
    assert!(
        h.plane.poll_output().is_none(),
        "nothing answered before routing"
    );
    let answer = h.answer(request.query.clone());
    h.plane.handle_store_answer(request.id, Ok(answer), h.now);
    h.run();
    let Some(SipAction::Respond {
        status: 200,
        body: Some(body),
        ..
    }) = h.sip.first()
    else {
        panic!("answered 200 with SDP: {:?}", h.sip);
    };
    let sdp = String::from_utf8_lossy(&body.bytes);
    assert!(sdp.contains("m=audio 40000 RTP/AVP 0"), "{sdp}");
    assert_eq!(h.media, ["lobby"]);
    h.sip_event(Event::Ack {
        call: CallId(1),
        body: None,
    });
    assert_eq!(h.media, ["lobby", "confirm", "attach"]);
    h.joined(CallId(1), 7);
    assert_eq!(
        h.events,
        [EventName::ConferenceCreate, EventName::AddMember]
    );
    assert_eq!(h.plane.gauges(), (1, 1));
}

#[test]
fn the_profiles_tts_voice_speaks_what_plays_in_the_room() {
    let mut h = Harness::new(vec![(
        "voiced",
        json!({"name": "voiced", "play_welcome": false, "member": {"numbers": ["3000"]},
               "profile": {"tts-voice": "female/en-US", "alone-sound": "tts://alone"}}),
    )]);
    h.call(1, "3000");
    let alone = h.played.iter().position(|m| m[0] == "tts://alone");
    let voice = alone.map(|i| h.voices[i].as_deref());
    assert_eq!(voice, Some(Some("female/en-US")), "{:?}", h.played);
}

#[test]
fn a_calls_leg_codes_opus_at_the_configured_complexity_and_rate() {
    let mut h = Harness::new(conferences());
    h.plane.settings.opus_complexity = 2;
    h.plane.settings.policy.opus_rate = 16000;
    h.call(1, "1000");
    assert_eq!(h.media.first(), Some(&"lobby"));
    let options = h.legs[0].codec_options;
    assert_eq!((options.opus_complexity, options.opus_rate), (2, 16000));
}

#[test]
fn calls_that_read_the_same_config_share_one_copy() {
    let mut h = Harness::new(conferences());
    let read = |pin_ms: u64| {
        let system = json!({"pin_timeout": pin_ms, "profiles": {"default": {"rate": 8000}}});
        ConferencesConfig::new(system.as_object().cloned().unwrap(), Default::default())
    };
    let (a, b) = (h.plane.share(read(3000)), h.plane.share(read(3000)));
    assert!(a.is_same(&b));
    let c = h.plane.share(read(4000));
    assert!(!c.is_same(&a));
    assert_eq!((a.pin_timeout_ms(), c.pin_timeout_ms()), (3000, 4000));
}

#[test]
fn an_unknown_number_gets_404() {
    let mut h = Harness::new(conferences());
    h.sip_event(invite(CallId(1), "9999"));
    assert_eq!(h.statuses(), [404]);
    assert_eq!(h.released, [CallId(1)]);
    assert!(h.plane.is_idle());
}

#[test]
fn the_right_pin_joins() {
    let mut h = Harness::new(conferences());
    let call = h.call(1, "2000");
    assert_eq!(h.heard("conf-welcome"), 1);
    assert_eq!(h.heard("conf-enter_conf_pin"), 1);
    h.digits(call, "1234#");
    assert!(h.media.contains(&"attach"), "{:?}", h.media);
    h.joined(call, 1);
    assert!(h.events.contains(&EventName::AddMember));
    assert_eq!(h.byes(), 0);
}

#[test]
fn a_wrong_pin_is_asked_again_then_hung_up() {
    let mut h = Harness::new(conferences());
    let call = h.call(1, "2000");
    h.digits(call, "9999#");
    assert_eq!(h.heard("conf-bad_pin"), 1);
    // The second try times out: no digit within the PIN timeout counts as a wrong PIN.
    h.advance(Duration::from_secs(6));
    assert_eq!(h.heard("conf-bad_pin"), 2);
    h.digits(call, "0000#");
    assert_eq!(h.heard("conf-too_many_attempts"), 1);
    assert_eq!(h.byes(), 1);
    assert!(!h.media.contains(&"attach"));
    assert!(h.plane.is_idle());
}

#[test]
fn no_free_port_pair_gets_503_retry_after() {
    let mut h = Harness::new(conferences());
    h.ports_free = false;
    h.sip_event(invite(CallId(1), "1000"));
    let [
        SipAction::Reject {
            status: 503,
            headers,
            ..
        },
    ] = h.sip.as_slice()
    else {
        panic!("503: {:?}", h.sip);
    };
    assert_eq!(headers, &[("Retry-After", "10".to_string())]);
    assert!(h.plane.is_idle());
}

#[test]
fn bye_leaves_the_conference() {
    let mut h = Harness::new(conferences());
    let (a, b) = (h.call(1, "1000"), h.call(2, "1000"));
    h.joined(a, 1);
    h.joined(b, 2);
    assert_eq!(h.plane.gauges(), (1, 2));
    h.sip_event(Event::Bye { call: a });
    assert!(h.media.contains(&"leave"));
    assert_eq!(h.plane.gauges(), (1, 1));
    assert_eq!(h.events.last(), Some(&EventName::DelMember));
    h.sip_event(Event::Bye { call: b });
    assert_eq!(h.events.last(), Some(&EventName::ConferenceDestroy));
    assert_eq!(h.plane.gauges(), (0, 0));
    assert_eq!(h.released, [a, b]);
    assert_eq!(h.byes(), 0, "the caller hung up, not us");
}

#[test]
fn cancel_before_the_answer_answers_nothing() {
    let mut h = Harness::new(conferences());
    h.store_down = true;
    h.sip_event(invite(CallId(1), "1000"));
    h.sip_event(Event::Cancelled { call: CallId(1) });
    assert!(h.plane.is_idle());
    assert_eq!(h.released, [CallId(1)]);
    // The store's late answer finds no call.
    h.plane.handle_store_answer(
        2,
        Ok(h.answer(StoreQuery::Route {
            number: "1000".into(),
            caller: None,
        })),
        h.now,
    );
    h.run();
    assert!(h.sip.is_empty(), "{:?}", h.sip);
    assert!(h.media.is_empty());
}

#[test]
fn an_rtp_timeout_hangs_up() {
    let mut h = Harness::new(conferences());
    let call = h.call(1, "1000");
    h.joined(call, 1);
    h.report(Report::RtpTimeout { call: call.0 });
    assert_eq!(h.byes(), 1);
    assert!(h.media.contains(&"leave"));
    assert_eq!(h.plane.gauges(), (0, 0));
}

#[test]
fn an_api_kick_hangs_up_that_member() {
    let mut h = Harness::new(conferences());
    let (a, b) = (h.call(1, "1000"), h.call(2, "1000"));
    h.joined(a, 1);
    h.joined(b, 2);
    let conf = ConfRef {
        account: ACCOUNT.into(),
        id: "open".into(),
    };
    let kick = |h: &mut Harness, pid| {
        let r = h
            .plane
            .participant_action(&conf, Who::One(pid), ParticipantAction::Kick, h.now);
        h.run();
        r
    };
    assert_eq!(kick(&mut h, 9), Err(ServiceError::NotFound("9".into())));
    assert_eq!(kick(&mut h, 2), Ok(()));
    assert_eq!(h.sip.last(), Some(&SipAction::Bye { call: b }));
    assert_eq!(h.plane.gauges(), (1, 1));
    let live = h.plane.live_state(ACCOUNT, "open").expect("running");
    assert_eq!(live.participants.len(), 1);
    assert_eq!(live.participants[0].call_id, "sip-1");
}

#[test]
fn a_callers_kept_name_is_announced_without_recording_again() {
    let named = json!({"name": "named", "conference_numbers": ["3000"],
        "play_welcome": false, "play_name": true});
    let mut h = Harness::new(vec![("named", named)]);
    h.kept_name = Some("kept-name-media".into());
    let a = h.call(1, "3000");
    h.joined(a, 1);
    let b = h.call(2, "3000");
    h.joined(b, 2);
    assert!(!h.media.contains(&"record call"), "{:?}", h.media);
    let announced = h.played.iter().flatten().any(|m| m == "kept-name-media");
    assert!(announced, "the kept name is announced: {:?}", h.played);
}

#[test]
fn callers_are_named_by_their_from_uri_and_anonymous_ones_are_not() {
    let caller = |uri| Caller::from_uri(uri).map(|c| format!("{}@{}", c.user, c.host));
    assert_eq!(
        caller("sip:alice@Example.com:5070;transport=tcp").as_deref(),
        Some("alice@example.com")
    );
    assert_eq!(caller("sips:bob@[::1]:5061").as_deref(), Some("bob@::1"));
    assert_eq!(caller("sip:anonymous@anonymous.invalid"), None);
    assert_eq!(caller("sip:example.com"), None);
    assert_eq!(caller("tel:+15551234"), None);
}

#[test]
fn the_others_are_hung_up_end_conference_duration_after_the_last_endconf_member_leaves() {
    let doc = json!({"name": "ends", "play_welcome": false, "end_conference_duration": 10,
        "member": {"numbers": ["4000"]},
        "moderator": {"numbers": ["4001"], "end_conference_on_exit": true}});
    let mut h = Harness::new(vec![("ends", doc)]);
    let (a, b) = (h.call(1, "4001"), h.call(2, "4000"));
    h.joined(a, 1);
    h.joined(b, 2);
    h.sip_event(Event::Bye { call: a });
    h.advance(Duration::from_secs(9));
    assert_eq!(h.byes(), 0, "B stays through the grace time");
    assert_eq!(h.plane.gauges(), (1, 1));
    h.advance(Duration::from_secs(2));
    assert_eq!(h.byes(), 1, "then B is hung up");
    assert_eq!(h.sip.last(), Some(&SipAction::Bye { call: b }));
}

#[test]
fn a_speak_only_to_member_is_heard_only_by_the_tagged_ones() {
    let doc = json!({"name": "coached", "play_welcome": false,
        "member": {"numbers": ["5000"], "speak_only_to": "coach"},
        "moderator": {"numbers": ["5001"], "member_tag": "coach"}});
    let mut h = Harness::new(vec![("coached", doc)]);
    let a = h.call(1, "5000");
    h.joined(a, 1);
    let coach = h.call(2, "5001");
    h.joined(coach, 2);
    assert!(h.relations.is_empty(), "the coach and A hear each other");
    let b = h.call(3, "5000");
    h.joined(b, 3);
    assert_eq!(
        h.relations,
        [(3, 1, false, false)],
        "the two untagged members do not hear each other; the coach hears both"
    );
}

fn open_conf() -> ConfRef {
    ConfRef {
        account: ACCOUNT.into(),
        id: "open".into(),
    }
}

#[test]
fn in_a_cluster_callers_are_answered_once_the_claim_is_granted_and_the_last_releases_it() {
    let mut h = Harness::clustered(conferences());
    h.sip_event(invite(CallId(1), "1000"));
    h.sip_event(invite(CallId(2), "1000"));
    assert_eq!(h.statuses(), [] as [u16; 0], "no answer before the claim");
    let claim = FocusRequest::Claim {
        conf: open_conf(),
        numbers: vec!["1000".into()],
    };
    assert_eq!(h.focus, [claim], "one claim for both callers");
    h.focus_event(FocusEvent::Granted(open_conf()));
    assert_eq!(h.statuses(), [200, 200]);
    for call in [CallId(1), CallId(2)] {
        h.sip_event(Event::Ack { call, body: None });
    }
    h.sip_event(Event::Bye { call: CallId(1) });
    assert_eq!(h.focus.len(), 1, "still needed by the second caller");
    h.sip_event(Event::Bye { call: CallId(2) });
    assert_eq!(h.focus[1], FocusRequest::Release(open_conf()));
    h.sip_event(invite(CallId(3), "1000"));
    assert!(
        matches!(h.focus[2], FocusRequest::Claim { .. }),
        "claimed again"
    );
}

#[test]
fn in_a_cluster_a_room_hosted_elsewhere_or_unclaimable_is_refused_with_503() {
    let mut h = Harness::clustered(conferences());
    h.sip_event(invite(CallId(1), "1000"));
    let holder = "node2".into();
    h.focus_event(FocusEvent::Refused {
        conf: open_conf(),
        holder,
    });
    h.sip_event(invite(CallId(2), "1000"));
    h.focus_event(FocusEvent::Unavailable(open_conf()));
    let retry: Vec<_> = h
        .sip
        .iter()
        .filter_map(|a| match a {
            SipAction::Reject {
                status: 503,
                headers,
                ..
            } => Some(headers.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(
        retry,
        [
            vec![("Retry-After", "1".to_string())],
            vec![("Retry-After", "5".to_string())]
        ]
    );
    assert_eq!(h.released, [CallId(1), CallId(2)]);
    assert_eq!(
        h.focus.len(),
        2,
        "a claim each, no release of what was never held"
    );
    assert!(h.plane.is_idle());
}

#[test]
fn in_a_cluster_the_service_numbers_caller_joins_once_the_conference_is_claimed_here() {
    let mut h = Harness::clustered(conferences());
    h.plane.settings.service_number = Some("1999".into());
    let first = h.call(1, "1999");
    h.digits(first, "1000#");
    let claim = FocusRequest::Claim {
        conf: open_conf(),
        numbers: vec!["1000".into()],
    };
    assert_eq!(h.focus, [claim], "the conference's numbers route here");
    assert!(h.events.is_empty(), "nobody joins before the claim");
    let second = h.call(2, "1999");
    h.digits(second, "1000#");
    assert_eq!(h.focus.len(), 1, "one claim for both callers");
    h.focus_event(FocusEvent::Granted(open_conf()));
    assert_eq!(h.plane.gauges(), (1, 2), "both joined");
    for call in [first, second] {
        h.sip_event(Event::Bye { call });
    }
    assert_eq!(h.focus[1], FocusRequest::Release(open_conf()));
}

/// A service-number caller who entered conference 1000, which node2 hosts.
fn refused_to_node2(h: &mut Harness, route: Option<&str>) -> CallId {
    refused_to_node2_at(h, route, "1000", "open")
}

/// A service-number caller who keyed `number`, conference `id`'s, which node2 hosts.
fn refused_to_node2_at(h: &mut Harness, route: Option<&str>, number: &str, id: &str) -> CallId {
    h.plane.settings.service_number = Some("1999".into());
    let call = h.call(1, "1999");
    h.digits(call, &format!("{number}#"));
    let holder = crate::cluster::focus::Holder {
        node: "node2".into(),
        route: route.map(String::from),
    };
    let conf = ConfRef {
        account: ACCOUNT.into(),
        id: id.into(),
    };
    h.focus_event(FocusEvent::Refused { conf, holder });
    call
}

#[test]
fn in_a_cluster_the_service_number_asks_for_the_pin_only_where_the_conference_is_hosted() {
    // Hosted elsewhere: the caller is brought there before any PIN prompt here.
    let mut h = Harness::clustered(conferences());
    refused_to_node2_at(&mut h, Some("sip:127.0.0.1:5082"), "2000", "pinned");
    let [invite] = h.invites().try_into().expect("one INVITE to the focus");
    assert_eq!(invite.target, "sip:2000@127.0.0.1:5082");
    assert_eq!(h.heard("conf-enter_conf_pin"), 0, "the focus asks for it");
    // Hosted here: the claim is granted, then the PIN is asked and the caller joins.
    let mut h = Harness::clustered(conferences());
    h.plane.settings.service_number = Some("1999".into());
    let call = h.call(1, "1999");
    h.digits(call, "2000#");
    assert_eq!(h.heard("conf-enter_conf_pin"), 0, "not before the claim");
    let pinned = ConfRef {
        account: ACCOUNT.into(),
        id: "pinned".into(),
    };
    h.focus_event(FocusEvent::Granted(pinned));
    assert_eq!(h.heard("conf-enter_conf_pin"), 1);
    h.digits(call, "1234#");
    h.joined(call, 1);
    assert_eq!(h.plane.gauges(), (1, 1));
    assert!(h.invites().is_empty());
}

#[test]
fn in_a_cluster_the_service_numbers_caller_is_brought_to_the_focus_node() {
    let mut h = Harness::clustered(conferences());
    let caller = refused_to_node2(&mut h, Some("sip:127.0.0.1:5082"));
    let [invite] = h.invites().try_into().expect("one INVITE to the focus");
    assert_eq!(invite.target, "sip:1000@127.0.0.1:5082");
    assert_eq!(invite.to_addr, SocketAddr::from(([127, 0, 0, 1], 5082)));
    let leg = invite.call.expect("the plane chose the handle");
    h.answer_leg(leg);
    h.joined(caller, 1);
    h.joined(leg, 2);
    assert_eq!(h.byes(), 0);
    assert_eq!(
        h.plane.gauges(),
        (0, 0),
        "a private room: no conference shown"
    );
    assert!(h.events.is_empty(), "no events of a private room");
    // The focus side hangs up: the caller's call ends with it.
    h.sip_event(Event::Bye { call: leg });
    assert_eq!(h.byes(), 1);
    h.sip_event(Event::Bye { call: caller });
    assert_eq!(h.focus.len(), 1, "no release of what was never held");
    assert!(h.plane.is_idle());
}

#[test]
fn in_a_cluster_a_relayed_caller_who_hangs_up_cancels_the_leg_still_ringing_at_the_focus() {
    let mut h = Harness::clustered(conferences());
    let caller = refused_to_node2(&mut h, Some("sip:127.0.0.1:5082"));
    let [invite] = h.invites().try_into().expect("one INVITE to the focus");
    let leg = invite.call.expect("the plane chose the handle");
    h.joined(caller, 1);
    h.sip_event(Event::Progress {
        call: leg,
        status: 180,
        body: None,
    });
    h.advance(Duration::from_secs(2));
    h.sip_event(Event::Bye { call: caller });
    assert_eq!(h.cancels(), [leg], "the focus node stops ringing");
    assert_eq!(h.released, [leg, caller]);
    assert!(h.plane.is_idle());
    // Past the relay's ring time nothing else is sent: no late BYE, no second CANCEL.
    let sent = h.sip.len();
    h.advance(Duration::from_secs(30));
    assert_eq!(h.sip.len(), sent);
    assert_eq!(h.plane.poll_timeout(), None, "no order left ringing");
}

#[test]
fn in_a_cluster_the_service_numbers_caller_is_hung_up_when_the_focus_is_unreachable() {
    for route in [None, Some("sip:not-an-address")] {
        let mut h = Harness::clustered(conferences());
        let call = refused_to_node2(&mut h, route);
        assert!(h.invites().is_empty(), "{route:?}");
        assert_eq!(h.byes(), 1, "{route:?}");
        h.sip_event(Event::Bye { call });
        assert_eq!(h.released, [call]);
        assert!(h.plane.is_idle());
    }
}

#[test]
fn in_a_cluster_a_lost_claim_ends_the_room_with_byes() {
    let mut h = Harness::clustered(conferences());
    h.sip_event(invite(CallId(1), "1000"));
    h.focus_event(FocusEvent::Granted(open_conf()));
    h.sip_event(Event::Ack {
        call: CallId(1),
        body: None,
    });
    h.joined(CallId(1), 1);
    assert_eq!(h.plane.gauges(), (1, 1));
    let holder = "node3".to_string();
    h.focus_event(FocusEvent::Lost {
        conf: open_conf(),
        holder,
    });
    assert_eq!(h.byes(), 1);
    assert_eq!(h.plane.gauges(), (0, 0));
    assert_eq!(
        h.focus.len(),
        1,
        "nothing to release: another node holds it"
    );
}
