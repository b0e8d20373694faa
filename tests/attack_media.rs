//! The media rows of the attack suite (issue 11), against a real server over loopback:
//! an attacker cannot take a paused phone's leg or a fresh one, an INVITE cannot aim the
//! server's RTP at a victim, port exhaustion answers 503 at once and recovers, and a
//! dist-dtmf member's event flood neither silences the others nor stalls the server.
//! Limits and rules: docs/security.md, "Media (RTP)".

mod support;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use chorus::config::Config;
use chorus::media::codec::CodecKind;
use chorus::server::Running;
use serde_json::json;
use support::dialog::{Dialog, Transport};
use support::rtp::Packet;
use support::sip_text::Message;
use support::transport::Link;
use support::{DialOpts, Direction, Phone};
use tokio::net::UdpSocket;
use tokio::sync::mpsc;

const SECOND: Duration = Duration::from_secs(1);
const HEARD_DB: f64 = -30.0;
const SILENT_DB: f64 = -50.0;
/// The attacker's tone: never to be heard by anyone. Far from the phones' tones, their
/// harmonics and the server's own tones (entry and beep tones use 440 Hz and 523 Hz).
const ATTACK_HZ: f64 = 2600.0;
/// Frequencies either side of `ATTACK_HZ` where a leaked packet of it reads about 25 dB
/// lower (its 20 ms burst's spectrum), while the broadband clicks of concealment on a busy
/// machine read about the same as at `ATTACK_HZ` (up to -48 dB seen in CI).
const NEIGHBOURS_HZ: [f64; 2] = [2300.0, 2900.0];
/// How far above its neighbours the attacker's tone must stand to be heard.
const STANDS_OUT_DB: f64 = 10.0;
/// Windows the attacker's tone is looked for in: one 20 ms packet of it reads about -38 dB
/// in one, well above `SILENT_DB`.
const WINDOW: Duration = Duration::from_millis(500);

async fn server(edit: impl FnOnce(&mut Config)) -> Running {
    let mut config = support::server_config();
    edit(&mut config);
    chorus::server::start(config).await.expect("server starts")
}

/// Half-overlapping `window`s of what `phone` heard since `since`, as (rate, samples).
fn windows(
    phone: &Phone,
    since: Instant,
    window: Duration,
) -> impl Iterator<Item = (u32, Vec<i16>)> {
    let heard = phone.heard();
    let starts = std::iter::successors(Some(since), move |&at| Some(at + window / 2));
    starts
        .take_while(|&at| at < Instant::now())
        .map(move |at| heard.between(at, at + window))
        .filter(|(_, pcm)| !pcm.is_empty())
}

/// A window where `phone` heard the attacker: its tone above `SILENT_DB` and standing out
/// from its neighbours, described for the failure message.
fn heard_attacker(phone: &Phone, since: Instant) -> Option<String> {
    windows(phone, since, WINDOW).find_map(|(rate, pcm)| {
        let level = mixer::goertzel::level_db(&pcm, rate, ATTACK_HZ);
        let around = NEIGHBOURS_HZ
            .map(|f| mixer::goertzel::level_db(&pcm, rate, f))
            .into_iter()
            .fold(f64::NEG_INFINITY, f64::max);
        (level >= SILENT_DB && level - around >= STANDS_OUT_DB)
            .then(|| format!("{level:.1} dB, {around:.1} dB around it"))
    })
}

/// The longest time without received audio since `since`.
fn longest_gap(phone: &Phone, since: Instant) -> Duration {
    let heard = phone.heard();
    let arrivals = heard.chunks.iter().map(|c| c.at).filter(|&at| at >= since);
    let mut last = since;
    let mut longest = Duration::ZERO;
    for at in arrivals.chain([Instant::now()]) {
        longest = longest.max(at - last);
        last = at;
    }
    longest
}

/// A UDP socket that counts what it receives.
struct Counter {
    socket: Arc<UdpSocket>,
    received: Arc<AtomicU64>,
    task: tokio::task::JoinHandle<()>,
}

impl Counter {
    async fn bind(addr: SocketAddr) -> std::io::Result<Counter> {
        let socket = Arc::new(UdpSocket::bind(addr).await?);
        let received = Arc::new(AtomicU64::new(0));
        let (s, r) = (socket.clone(), received.clone());
        let task = tokio::spawn(async move {
            let mut buf = [0u8; 2048];
            while s.recv_from(&mut buf).await.is_ok() {
                r.fetch_add(1, Ordering::Relaxed);
            }
        });
        Ok(Counter {
            socket,
            received,
            task,
        })
    }

    fn addr(&self) -> SocketAddr {
        self.socket.local_addr().unwrap()
    }

    fn received(&self) -> u64 {
        self.received.load(Ordering::Relaxed)
    }
}

impl Drop for Counter {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// An attacker's RTP: a 440 Hz tone in PCMU, one well-formed stream (its own SSRC and
/// consecutive sequence numbers) to each target, one packet per target every 20 ms, until
/// `stop`.
async fn attack(socket: Arc<UdpSocket>, targets: Vec<SocketAddr>, stop: Arc<AtomicBool>) {
    let mut encoder = support::codec::encoder(CodecKind::Pcmu);
    let tone = support::phone::tone(ATTACK_HZ, SECOND, 8000);
    let mut tick = tokio::time::interval(Duration::from_millis(20));
    let mut n: u16 = 0;
    while !stop.load(Ordering::Relaxed) {
        tick.tick().await;
        let at = usize::from(n % 50) * 160;
        let mut payload = Vec::new();
        encoder.encode(&tone[at..at + 160], &mut payload);
        for (i, &to) in targets.iter().enumerate() {
            let mut packet = Vec::new();
            Packet {
                marker: n == 0,
                pt: 0,
                seq: n,
                ts: u32::from(n) * 160,
                ssrc: 0xBAD0_0000 + i as u32,
                payload: &payload,
            }
            .write(&mut packet);
            let _ = socket.send_to(&packet, to).await;
        }
        n = n.wrapping_add(1);
    }
}

/// Runs [`attack`] in the background until the guard drops.
struct Attack {
    stop: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<()>,
}

impl Attack {
    fn start(from: &Counter, targets: Vec<SocketAddr>) -> Attack {
        let stop = Arc::new(AtomicBool::new(false));
        let task = tokio::spawn(attack(from.socket.clone(), targets, stop.clone()));
        Attack { stop, task }
    }

    async fn stop(self) {
        self.stop.store(true, Ordering::Relaxed);
        let _ = self.task.await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paused_phone_keeps_its_leg_against_an_attacker() {
    let srv = server(|_| {}).await;
    let mut a = Phone::dial(srv.sip, "7301", DialOpts::default())
        .await
        .unwrap();
    let mut b = Phone::dial(srv.sip, "7301", DialOpts::default())
        .await
        .unwrap();
    let a_port = a.session().unwrap().remote;
    // A is heard, then pauses 1.5 s while the attacker streams to A's server port.
    a.send_tone(697.0, SECOND).await;
    let attacker = Counter::bind("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let since = Instant::now();
    a.pause_media(true);
    let attack = Attack::start(&attacker, vec![a_port]);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    a.pause_media(false);
    // The attacker goes on while both talk again.
    tokio::join!(
        a.send_tone(697.0, 2 * SECOND),
        b.send_tone(1209.0, 2 * SECOND)
    );
    attack.stop().await;
    assert_eq!(attacker.received(), 0, "the attacker got the room's audio");
    if let Some(heard) = heard_attacker(&b, since) {
        panic!("B heard the attacker: {heard}");
    }
    assert!(a.hear_level(1209.0, SECOND) > HEARD_DB, "A hears B again");
    assert!(b.hear_level(697.0, SECOND) > HEARD_DB, "B hears A again");
    // The operator sees the attack: about 175 packets in 3.5 s, each dropped and counted.
    let foreign = support::Metrics::read(srv.api)
        .await
        .value("chorus_rtp_packets_foreign_total");
    assert!(foreign >= 100.0, "foreign packets counted: {foreign}");
    a.hangup().await.unwrap();
    b.hangup().await.unwrap();
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_attacker_spraying_the_port_range_takes_no_fresh_leg() {
    let range = support::free_port_range(20);
    let ports = range.clone();
    let srv = server(|c| c.rtp.ports = chorus::config::PortRange(ports)).await;
    let attacker = Counter::bind("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let targets = range
        .clone()
        .map(|p| SocketAddr::from(([127, 0, 0, 1], p)))
        .collect();
    let since = Instant::now();
    let attack = Attack::start(&attacker, targets);
    tokio::time::sleep(SECOND / 2).await;
    let mut a = Phone::dial(srv.sip, "7302", DialOpts::default())
        .await
        .unwrap();
    let mut b = Phone::dial(srv.sip, "7302", DialOpts::default())
        .await
        .unwrap();
    for p in [&a, &b] {
        let port = p.session().unwrap().remote.port();
        assert!(range.contains(&port), "the attack covers port {port}");
    }
    tokio::join!(
        a.send_tone(697.0, 2 * SECOND),
        b.send_tone(1209.0, 2 * SECOND)
    );
    attack.stop().await;
    assert!(a.hear_level(1209.0, SECOND) > HEARD_DB, "A hears B");
    assert!(b.hear_level(697.0, SECOND) > HEARD_DB, "B hears A");
    for (name, p) in [("A", &a), ("B", &b)] {
        if let Some(heard) = heard_attacker(p, since) {
            panic!("{name} heard the attacker: {heard}");
        }
    }
    assert_eq!(attacker.received(), 0, "the attacker got a leg's audio");
    a.hangup().await.unwrap();
    b.hangup().await.unwrap();
    srv.stop().await;
}

/// An RTP and RTCP pair of sockets (even and odd port) standing for a victim's host.
async fn victim() -> (Counter, Counter) {
    for _ in 0..100 {
        let rtp = Counter::bind("127.0.0.1:0".parse().unwrap()).await.unwrap();
        let mut next = rtp.addr();
        if next.port() % 2 == 1 {
            continue;
        }
        next.set_port(next.port() + 1);
        if let Ok(rtcp) = Counter::bind(next).await {
            return (rtp, rtcp);
        }
    }
    panic!("no free even/odd port pair");
}

/// An INVITE whose SDP names `media` (not the sender), sent until its 200 arrives; returns
/// the dialog, the INVITE's CSeq and the 200. The sender never sends RTP.
async fn invite_naming(
    server: SocketAddr,
    number: &str,
    media: SocketAddr,
) -> (Arc<Link>, Dialog, u32, mpsc::UnboundedReceiver<Message>) {
    let (link, mut incoming, _reader) = Link::open(server, Transport::Udp).await.unwrap();
    let mut dialog = Dialog::new(link.local, server, number, "attacker", Transport::Udp);
    let sdp = support::sdp_text::offer(media, &[CodecKind::Pcmu], Direction::SendRecv, 1);
    let invite = dialog.request("INVITE", Some(("application/sdp", &sdp)));
    link.send(&invite.text).await.unwrap();
    let deadline = Instant::now() + 10 * SECOND;
    loop {
        assert!(Instant::now() < deadline, "no 200 to the INVITE");
        match tokio::time::timeout(SECOND / 2, incoming.recv()).await {
            Ok(Some(m)) if m.status() == Some(200) => {
                dialog.establish(&m);
                return (link, dialog, invite.cseq, incoming);
            }
            Ok(Some(_)) => {}
            Ok(None) => panic!("SIP link closed"),
            Err(_) => link.send(&invite.text).await.unwrap(),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invite_naming_a_victim_sends_it_next_to_nothing() {
    let config = support::server_config();
    let (service, handful) = (
        config.conferences.service_number.clone(),
        config.rtp.send_before_peer_packets,
    );
    let srv = chorus::server::start(config).await.expect("server starts");
    // The service number prompts for a conference number from the ACK on: there is
    // always something to send.
    // Never ACKed: the victim gets nothing at all (the 200 is retransmitted meanwhile).
    let (rtp, rtcp) = victim().await;
    let _call = invite_naming(srv.sip, &service, rtp.addr()).await;
    tokio::time::sleep(3 * SECOND).await;
    assert_eq!((rtp.received(), rtcp.received()), (0, 0), "before any ACK");
    // ACKed, but the victim of course never sends: a handful of packets, then nothing.
    let (rtp, rtcp) = victim().await;
    let (link, dialog, cseq, _incoming) = invite_naming(srv.sip, &service, rtp.addr()).await;
    link.send(&dialog.ack_2xx(cseq, None).text).await.unwrap();
    tokio::time::sleep(3 * SECOND).await;
    let sent = rtp.received();
    assert_eq!(
        sent,
        u64::from(handful),
        "RTP packets to the victim after the ACK"
    );
    assert_eq!(rtcp.received(), 0, "no RTCP to a peer never heard");
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_exhausted_port_range_answers_503_at_once_and_recovers() {
    let range = support::free_port_range(2);
    let srv = server(|c| c.rtp.ports = chorus::config::PortRange(range)).await;
    let mut a = Phone::dial(srv.sip, "7305", DialOpts::default())
        .await
        .unwrap();
    let mut b = Phone::dial(srv.sip, "7305", DialOpts::default())
        .await
        .unwrap();
    let refused = Phone::dial(srv.sip, "7305", DialOpts::default()).await;
    let Err(err) = refused else {
        panic!("a third call got a port of two pairs");
    };
    assert_eq!(err.status(), Some(503), "{err}");
    let support::CallError::Rejected(response) = &err else {
        unreachable!()
    };
    let retry = response.header("Retry-After").unwrap_or_default();
    assert!(
        retry.trim().parse::<u32>().is_ok_and(|s| s > 0),
        "Retry-After {retry:?}"
    );
    a.hangup().await.unwrap();
    b.hangup().await.unwrap();
    // The pairs come back once the calls' media has ended.
    let deadline = Instant::now() + 10 * SECOND;
    let mut c = loop {
        match Phone::dial(srv.sip, "7305", DialOpts::default()).await {
            Ok(c) => break c,
            Err(e) if e.status() == Some(503) && Instant::now() < deadline => {
                tokio::time::sleep(SECOND / 10).await;
            }
            Err(e) => panic!("no call after the others ended: {e}"),
        }
    };
    c.hangup().await.unwrap();
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dist_dtmf_flood_neither_silences_the_others_nor_stalls_the_server() {
    let doc = json!({"name": "flood", "play_welcome": false, "play_entry_tone": false,
        "member": {"numbers": ["5107"], "join_muted": false, "distribute_dtmf": true},
        "moderator": {"numbers": ["5108"], "join_muted": false}});
    let config = support::seeded_config(&[("flood", doc)]);
    let srv = chorus::server::start(config).await.expect("server starts");
    let flooder = Phone::dial(srv.sip, "5107", DialOpts::default())
        .await
        .unwrap();
    let talker = Phone::dial(srv.sip, "5108", DialOpts::default())
        .await
        .unwrap();
    let listener = Phone::dial(srv.sip, "5108", DialOpts::default())
        .await
        .unwrap();
    let flood_then_check = async {
        tokio::time::sleep(SECOND).await;
        assert!(listener.hear_level(1209.0, SECOND / 2) > HEARD_DB, "before");
        // 5,000 keys in one second.
        let flood = Instant::now();
        flooder.flood_dtmf(5000, 100).await.unwrap();
        let back = listener
            .wait_hear(1209.0, HEARD_DB, SECOND / 2, 5 * SECOND)
            .await;
        assert!(back, "the listener hears the talker again after the flood");
        tokio::time::sleep(2 * SECOND).await;
        // Relayed keys replace the listener's audio one short digit at a time (the whole
        // queue drains in under a second), never for the flood's 700 s.
        let gap = longest_gap(&listener, flood);
        assert!(
            gap < 3 * SECOND / 2,
            "the listener got no audio for {gap:?}"
        );
        // The server still answers a new caller, who hears the talker.
        let late = Phone::dial(srv.sip, "5108", DialOpts::default())
            .await
            .unwrap();
        assert!(
            late.wait_hear(1209.0, HEARD_DB, SECOND / 2, 5 * SECOND)
                .await,
            "a caller after the flood hears the talker"
        );
    };
    tokio::select! {
        () = talker.send_tone(1209.0, 60 * SECOND) => panic!("the checks outlasted the talker"),
        () = flood_then_check => {}
    }
    let keys = listener.heard().dtmf.len();
    assert!((1..=40).contains(&keys), "{keys} of 5,000 keys relayed");
    let dropped = support::Metrics::read(srv.api)
        .await
        .value("chorus_dtmf_dropped_total");
    assert!(dropped >= 100.0, "DTMF drops counted: {dropped}");
    srv.stop().await;
}
