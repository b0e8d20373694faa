//! The sans-IO SIP endpoint fed arbitrary datagrams and TCP streams from four peers on a
//! virtual clock, with an application that answers every call (SDP answer or 488), re-INVITE
//! and dials one call out. It must never panic, and once the application has hung up every
//! call and the clock has run past every timer, the endpoint must hold no transaction, no
//! call and no memory beyond its empty tables: whatever a peer sends, state does not pile up.
//!
//! Input: the record format of `chorus_fuzz::records`. Flag bit 0 sends the record over the
//! peer's TCP connection (through a `Framer`, as the transport does), bit 1 then closes it.
//! In a record, `@TAG@` is replaced by the To tag of our latest response, `@BRANCH@` and
//! `@CALLID@` by the Via branch and Call-ID of our latest request, so inputs can reach
//! confirmed dialogs and answer our requests.
#![no_main]

use std::alloc::{GlobalAlloc, Layout, System};
use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::sync::Once;
use std::sync::atomic::{AtomicIsize, Ordering};
use std::time::{Duration, Instant};

use chorus::sdp::{Direction, MediaPolicy, SdpSession};
use chorus::sip::message::{NameAddr, Via};
use chorus::sip::parse::{Framing, StartLine, parse};
use chorus::sip::{
    Body, CallId, ConnId, Dial, DialAuth, Endpoint, EndpointConfig, Event, Framer, Protocol,
    SipError, Timers, Transport,
};
use chorus_fuzz::records;
use libfuzzer_sys::fuzz_target;

/// Counts live heap blocks, to see what the endpoint keeps after a session.
struct Counting;

static LIVE_BLOCKS: AtomicIsize = AtomicIsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE_BLOCKS.fetch_add(1, Ordering::Relaxed);
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE_BLOCKS.fetch_sub(1, Ordering::Relaxed);
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        LIVE_BLOCKS.fetch_add(1, Ordering::Relaxed);
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

fn live_blocks() -> isize {
    LIVE_BLOCKS.load(Ordering::Relaxed)
}

/// Heap blocks an idle endpoint may keep beyond a fresh one: one per table or queue it has
/// grown (they keep their capacity; eight today), never its entries.
const IDLE_MAX_BLOCKS: isize = 16;
/// Virtual time after the last input for every timer to have run out (timer B/F/H/J are
/// 64*T1 = 32 s; a BYE sent at the end may take another 32 s).
const DRAIN: Duration = Duration::from_secs(600);

const PEERS: [&str; 4] = [
    "127.0.0.1:5070",
    "127.0.0.1:5080",
    "[::1]:5070",
    "198.51.100.7:5060",
];

fuzz_target!(|data: &[u8]| {
    static WARM_UP: Once = Once::new();
    // Lazily built statics (in std and dependencies) are not the endpoint's to count.
    WARM_UP.call_once(|| session(WARM_UP_SESSION.as_bytes()));
    session(data);
});

const WARM_UP_SESSION: &str = "\0INVITE sip:1000@127.0.0.1 SIP/2.0\r\n\
Via: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bKwarm;rport\r\nFrom: <sip:a@127.0.0.1>;tag=1\r\n\
To: <sip:1000@127.0.0.1>\r\nCall-ID: warm\r\nCSeq: 1 INVITE\r\nContact: <sip:a@127.0.0.1:5070>\r\n\
Content-Type: application/sdp\r\n\r\nv=0\r\no=- 1 1 IN IP4 127.0.0.1\r\n\
s=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\n";

fn session(data: &[u8]) {
    let mut ep = Endpoint::new(EndpointConfig {
        user_agent: "Chorus-fuzz".into(),
        contact_host: "127.0.0.1".into(),
        udp_port: 5060,
        tcp_port: 5060,
        timers: Timers::default(),
        limits: Default::default(),
        acl: Default::default(),
        auth: None,
        // REGISTER answered 405 here: the registrar has its own unit tests.
        registrar: false,
    });
    let baseline = live_blocks();
    let now = round(&mut ep, Instant::now(), data);
    let first = live_blocks() - baseline;
    assert!(
        first <= IDLE_MAX_BLOCKS,
        "an idle endpoint kept {first} heap blocks"
    );
    // Tables keep their (one) allocation whatever their capacity: an identical second
    // session leaves exactly as many blocks, unless entries leak.
    round(&mut ep, now, data);
    let second = live_blocks() - baseline;
    assert_eq!(
        second, first,
        "the same session again left more heap blocks"
    );
}

/// One session: the records, then the application hangs up every call and the clock runs
/// past every timer. Returns the time it ends at.
fn round(ep: &mut Endpoint, mut now: Instant, data: &[u8]) -> Instant {
    let mut app = App::new(ep, now);
    for r in records(data) {
        now = app.run_timers(ep, now, now + r.after);
        let bytes = app.fill_in(r.bytes);
        let from: SocketAddr = PEERS[r.peer].parse().unwrap();
        if r.flags & 1 == 0 {
            ep.handle_input(now, from, Transport::Udp, &bytes);
        } else {
            app.tcp(ep, now, r.peer, from, &bytes, r.flags & 2 != 0);
        }
        app.serve(ep, now);
    }
    for call in app.live.clone() {
        let _ = ep.bye(now, call);
        app.serve(ep, now);
    }
    now = app.run_timers(ep, now, now + DRAIN);
    assert_eq!(
        ep.poll_timeout(),
        None,
        "a transaction outlived every timer"
    );
    assert!(app.live.is_empty(), "calls never ended: {:?}", app.live);
    for call in &app.seen {
        assert_eq!(
            ep.bye(now, *call),
            Err(SipError::UnknownCall),
            "{call} after hang-up"
        );
    }
    assert!(ep.poll_transmit().is_none() && ep.poll_event().is_none());
    now
}

/// The application side: answers calls, tracks them and learns our tags and branches.
struct App {
    live: BTreeSet<CallId>,
    seen: BTreeSet<CallId>,
    sdp: SdpSession,
    framers: [Option<Framer>; 4],
    tag: String,
    branch: String,
    call_id: String,
}

impl App {
    fn new(ep: &mut Endpoint, now: Instant) -> Self {
        let local = "127.0.0.1:20000".parse().unwrap();
        let mut sdp = SdpSession::new(MediaPolicy::default(), local, 1);
        let offer = sdp.offer(Direction::SendRecv);
        let mut app = App {
            live: BTreeSet::new(),
            seen: BTreeSet::new(),
            sdp,
            framers: Default::default(),
            tag: String::new(),
            branch: String::new(),
            call_id: String::new(),
        };
        let call = ep.invite(
            now,
            Dial {
                target: "sip:bob@127.0.0.1:5070".into(),
                to_addr: PEERS[0].parse().unwrap(),
                protocol: Protocol::Udp,
                from: "<sip:42@127.0.0.1>".into(),
                to: None,
                headers: vec![("X-Fuzz".into(), "1".into())],
                body: Some(sdp_body(offer)),
                call: None,
                call_id: None,
                // A 401/407 the fuzzer sends is answered once with these.
                auth: Some(DialAuth {
                    username: "fuzz".into(),
                    password: "fuzz".into(),
                }),
            },
        );
        app.track(call);
        app.serve(ep, now);
        app
    }

    fn track(&mut self, call: CallId) {
        self.live.insert(call);
        self.seen.insert(call);
    }

    fn fill_in(&self, bytes: &[u8]) -> Vec<u8> {
        let mut out = bytes.to_vec();
        for (hole, value) in [
            ("@TAG@", &self.tag),
            ("@BRANCH@", &self.branch),
            ("@CALLID@", &self.call_id),
        ] {
            out = replace(&out, hole.as_bytes(), value.as_bytes());
        }
        out
    }

    fn tcp(
        &mut self,
        ep: &mut Endpoint,
        now: Instant,
        peer: usize,
        from: SocketAddr,
        bytes: &[u8],
        close: bool,
    ) {
        let conn = ConnId(peer as u64);
        let framer = self.framers[peer].get_or_insert_with(Framer::new);
        framer.push(bytes);
        let mut broken = false;
        loop {
            match framer.next_message() {
                Ok(Some(msg)) => ep.handle_input(now, from, Transport::Tcp(conn), &msg),
                Ok(None) => break,
                Err(_) => {
                    broken = true;
                    break;
                }
            }
        }
        if broken || close {
            self.framers[peer] = None;
            ep.handle_transport_closed(now, conn);
        }
    }

    /// Fires every timer due until `end`, each at its time, as the transport does.
    fn run_timers(&mut self, ep: &mut Endpoint, mut now: Instant, end: Instant) -> Instant {
        let mut steps = 0;
        while let Some(at) = ep.poll_timeout().filter(|at| *at <= end) {
            now = now.max(at);
            ep.handle_timeout(now);
            self.serve(ep, now);
            steps += 1;
            assert!(steps < 100_000, "timers keep firing");
        }
        end
    }

    /// Drains what the endpoint has to send and to say, and acts on its events.
    fn serve(&mut self, ep: &mut Endpoint, now: Instant) {
        loop {
            let mut busy = false;
            while let Some(t) = ep.poll_transmit() {
                busy = true;
                self.learn(&t.bytes);
            }
            while let Some(event) = ep.poll_event() {
                busy = true;
                self.on_event(ep, now, event);
            }
            if !busy {
                return;
            }
        }
    }

    /// Checks what we send and learns our latest To tag (from responses), branch and
    /// Call-ID (from requests).
    fn learn(&mut self, bytes: &[u8]) {
        let msg = parse(bytes, Framing::Datagram).expect("we send whole messages");
        match msg.start {
            // Responses echo the request's Via, From, To, Call-ID and CSeq as received (even
            // a NUL in a 400 about it), but their framing is ours: a TCP peer must find the
            // end of the message where we put it.
            StartLine::Response { .. } => {
                let mut framer = Framer::new();
                framer.push(bytes);
                let framed = framer
                    .next_message()
                    .expect("a response frames on a stream");
                assert_eq!(framed.as_deref(), Some(bytes));
                let to = msg.header("To").and_then(NameAddr::parse);
                if let Some(tag) = to.and_then(|n| n.tag) {
                    self.tag = tag;
                }
            }
            StartLine::Request { .. } => {
                assert_eq!(msg.defect, None, "{}", String::from_utf8_lossy(bytes));
                let via = msg.header("Via").and_then(Via::parse);
                if let Some(branch) = via.and_then(|v| v.branch) {
                    self.branch = branch;
                }
                self.call_id = msg.header("Call-ID").unwrap_or_default().to_string();
            }
            _ => panic!("we sent {}", String::from_utf8_lossy(bytes)),
        }
    }

    fn on_event(&mut self, ep: &mut Endpoint, now: Instant, event: Event) {
        match event {
            Event::Invite { call, body, .. } => {
                self.seen.insert(call);
                let _ = ep.respond(now, call, 180, "Ringing", None);
                // A rejected call is over at once, with no further event.
                match self.answer(body) {
                    Ok(answer) => {
                        if ep.respond(now, call, 200, "OK", Some(answer)).is_ok() {
                            self.live.insert(call);
                        }
                    }
                    Err(warning) => {
                        let _ = ep.reject(now, call, false, 488, "Not Acceptable Here", warning);
                    }
                }
            }
            Event::ReInvite { call, body } => match self.answer(body) {
                Ok(answer) => {
                    let _ = ep.respond_reinvite(now, call, 200, "OK", Some(answer));
                }
                Err(warning) => {
                    let _ = ep.reject(now, call, true, 488, "Not Acceptable Here", warning);
                }
            },
            Event::Bye { call } | Event::Cancelled { call } => {
                self.live.remove(&call);
            }
            Event::Rejected { call, .. } | Event::Terminated { call, .. } => {
                self.live.remove(&call);
            }
            Event::Answered { call, body } => {
                if let Some(b) = body {
                    let _ = self.sdp.accept_answer(&String::from_utf8_lossy(&b.bytes));
                }
                let _ = ep.info(
                    now,
                    call,
                    Body {
                        content_type: "application/dtmf-relay".into(),
                        bytes: b"Signal=1\r\nDuration=100\r\n".to_vec(),
                    },
                );
            }
            Event::Ack { .. }
            | Event::Info { .. }
            | Event::Response { .. }
            | Event::Progress { .. } => {}
        }
    }

    /// Our SDP answer, or the Warning of a 488; without an offer, our offer.
    fn answer(&mut self, body: Option<Body>) -> Result<Body, Vec<(&'static str, String)>> {
        let Some(body) = body else {
            return Ok(sdp_body(self.sdp.offer(Direction::SendRecv)));
        };
        match self.sdp.answer(&String::from_utf8_lossy(&body.bytes)) {
            Ok((_, answer)) => Ok(sdp_body(answer)),
            Err(e) => Err(vec![("Warning", e.warning("127.0.0.1"))]),
        }
    }
}

fn sdp_body(text: String) -> Body {
    Body {
        content_type: "application/sdp".into(),
        bytes: text.into_bytes(),
    }
}

fn replace(hay: &[u8], hole: &[u8], value: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(hay.len());
    let mut rest = hay;
    while let Some(i) = rest.windows(hole.len()).position(|w| w == hole) {
        out.extend_from_slice(&rest[..i]);
        out.extend_from_slice(value);
        rest = &rest[i + hole.len()..];
    }
    out.extend_from_slice(rest);
    out
}
