//! Workers driven over real UDP on 127.0.0.1 by tiny G.711 RTP peers that listen with
//! Goertzel filters. Every wait is bounded.

use std::net::{SocketAddr, UdpSocket};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use mixer::goertzel::level_db;
use mixer::{ConferenceId, MemberFlags, Profile};
use tokio::sync::mpsc::UnboundedReceiver;

use super::*;
use crate::media::codec::{CodecOptions, Decoder, Encoder};
use crate::media::dtmf::digit_packets;
use crate::media::rtp::{RtpHeader, RtpPacket};

const RATE: u32 = 8000;
const PTIME: Duration = Duration::from_millis(20);
const DTMF_PT: u8 = 101;
/// A tone through the mixer is well above this; one that is not there stays well below.
const HEARD_DB: f64 = -30.0;
const SILENT_DB: f64 = -50.0;
const WAIT: Duration = Duration::from_secs(5);

/// A phone's media: sends a tone (or silence) every 20 ms, decodes what comes back.
struct Peer {
    sock: UdpSocket,
    server: SocketAddr,
    ssrc: u32,
    seq: u16,
    sent: u32,
    tone: Option<f64>,
    codec: CodecKind,
    pt: u8,
    /// Samples sent so far: the tone's phase.
    samples: usize,
    enc: Box<dyn Encoder>,
    dec: Box<dyn Decoder>,
    heard: Vec<i16>,
}

impl Peer {
    /// A peer and the server side of its call (sockets and leg) for a Lobby or Join.
    fn new(call: CallKey) -> (Peer, Lobby) {
        let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
        sock.set_nonblocking(true).unwrap();
        let sockets = RtpSockets::unpooled(
            std::net::UdpSocket::bind("127.0.0.1:0").unwrap(),
            std::net::UdpSocket::bind("127.0.0.1:0").unwrap(),
        );
        let server = sockets.rtp.local_addr().unwrap();
        let mut leg = LegConfig::new(
            CodecKind::Pcmu,
            0,
            20,
            sock.local_addr().unwrap(),
            call as u32,
        );
        leg.dtmf_payload_type = Some(DTMF_PT);
        let peer = Peer {
            sock,
            server,
            ssrc: 0x5000 + call as u32,
            seq: 1,
            sent: 0,
            tone: None,
            codec: CodecKind::Pcmu,
            pt: 0,
            samples: 0,
            enc: CodecKind::Pcmu.encoder(CodecOptions::default()).unwrap(),
            dec: CodecKind::Pcmu.decoder(CodecOptions::default()).unwrap(),
            heard: Vec::new(),
        };
        let lobby = Lobby {
            call,
            sockets,
            rtcp_mux: true,
            leg,
        };
        (peer, lobby)
    }

    /// After a re-INVITE to another codec.
    fn switch(&mut self, codec: CodecKind, pt: u8) {
        (self.codec, self.pt) = (codec, pt);
        self.enc = codec.encoder(CodecOptions::default()).unwrap();
        self.dec = codec.decoder(CodecOptions::default()).unwrap();
        self.heard.clear();
    }

    fn timestamp(&self) -> u32 {
        self.sent * self.codec.rtp_ticks(20)
    }

    fn send(&mut self, pt: u8, marker: bool, payload: &[u8]) {
        let mut pkt = Vec::new();
        let ts = self.timestamp();
        RtpHeader::simple(pt, self.seq, ts, self.ssrc, marker).write(&mut pkt);
        pkt.extend_from_slice(payload);
        self.seq = self.seq.wrapping_add(1);
        let _ = self.sock.send_to(&pkt, self.server);
    }

    /// One 20 ms frame of the current tone (or silence), then whatever has come back.
    fn step(&mut self) {
        let rate = self.codec.pcm_rate();
        let pcm: Vec<i16> = (0..self.codec.pcm_samples(20))
            .map(|i| {
                let t = (self.samples + i) as f64 / f64::from(rate);
                self.tone
                    .map_or(0.0, |f| 8000.0 * (2.0 * std::f64::consts::PI * f * t).sin())
                    as i16
            })
            .collect();
        self.samples += pcm.len();
        let mut payload = Vec::new();
        self.enc.encode(&pcm, &mut payload);
        self.send(self.pt, self.sent == 0, &payload);
        self.sent += 1;
        let mut buf = [0u8; 2048];
        while let Ok(n) = self.sock.recv(&mut buf) {
            if let Ok(p) = RtpPacket::parse(&buf[..n])
                && p.payload_type == self.pt
            {
                self.dec.decode(p.payload, &mut self.heard);
            }
        }
    }

    /// Sends one RFC 4733 digit in place of a few audio frames.
    fn dtmf(&mut self, digit: char) {
        let ts = self.timestamp();
        for p in digit_packets(digit, RATE, 20, 100).unwrap() {
            let mut pkt = Vec::new();
            RtpHeader::simple(DTMF_PT, self.seq, ts, self.ssrc, p.marker).write(&mut pkt);
            pkt.extend_from_slice(&p.payload);
            self.seq = self.seq.wrapping_add(1);
            let _ = self.sock.send_to(&pkt, self.server);
        }
    }

    /// The level of `freq` in the last `window` heard.
    fn level(&self, freq: f64, window: Duration) -> f64 {
        let rate = self.codec.pcm_rate();
        let n = (window.as_millis() as usize * rate as usize / 1000).min(self.heard.len());
        if n == 0 {
            return f64::NEG_INFINITY;
        }
        level_db(&self.heard[self.heard.len() - n..], rate, freq)
    }
}

/// Runs the peers in real time for `d`.
fn run(peers: &mut [&mut Peer], d: Duration) {
    let start = Instant::now();
    let mut next = start;
    while next < start + d {
        for p in peers.iter_mut() {
            p.step();
        }
        next += PTIME;
        std::thread::sleep(next.saturating_duration_since(Instant::now()));
    }
}

struct Worker {
    handle: WorkerHandle,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for Worker {
    fn drop(&mut self) {
        self.handle.send(Command::Shutdown);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The backend the suite asks for (`CHORUS_MEDIA_IO`), io_uring when allowed otherwise.
fn io_mode() -> IoMode {
    IoMode::from_env_or(IoMode::Auto).unwrap()
}

fn worker(index: usize) -> (Worker, UnboundedReceiver<Report>) {
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let (handle, thread) = spawn(
        index,
        Duration::from_secs(30),
        io_mode(),
        tx,
        Default::default(),
    )
    .unwrap();
    let w = Worker {
        handle,
        thread: Some(thread),
    };
    (w, rx)
}

/// Waits (bounded) for the first report `pick` accepts, skipping others.
fn expect<T>(rx: &mut UnboundedReceiver<Report>, mut pick: impl FnMut(Report) -> Option<T>) -> T {
    let deadline = Instant::now() + WAIT;
    while Instant::now() < deadline {
        match rx.try_recv() {
            Ok(r) => {
                if let Some(t) = pick(r) {
                    return t;
                }
            }
            Err(_) => std::thread::sleep(Duration::from_millis(5)),
        }
    }
    panic!("report not seen within {WAIT:?}");
}

fn tone(spec_ms: u32, freq: u32, rate: u32) -> Box<dyn mixer::source::Source> {
    mixer::sound::open(&format!("tone_stream://%({spec_ms},0,{freq})"), rate).unwrap()
}

fn to_conference(call: CallKey, conference: u64) -> Box<Attach> {
    Box::new(Attach {
        call,
        conference: ConferenceId(conference),
        profile: Profile::default(),
        flags: MemberFlags::default(),
        energy_level: None,
    })
}

fn attach(call: CallKey, conference: u64) -> Command {
    Command::Attach(to_conference(call, conference))
}

/// New call media whose ACK has arrived.
fn open(w: &Worker, lobby: Lobby) {
    let call = lobby.call;
    w.handle.send(Command::Lobby(Box::new(lobby)));
    w.handle.send(Command::Confirm { call });
}

/// Two callers in conference 1 of `w`, talking 697 Hz and 1209 Hz.
fn two_in_conference(w: &Worker, rx: &mut UnboundedReceiver<Report>) -> (Peer, Peer) {
    let (mut a, la) = Peer::new(1);
    let (mut b, lb) = Peer::new(2);
    a.tone = Some(697.0);
    b.tone = Some(1209.0);
    join(w, rx, la);
    join(w, rx, lb);
    (a, b)
}

/// Opens `lobby`'s call and seats it in conference 1.
fn join(w: &Worker, rx: &mut UnboundedReceiver<Report>, lobby: Lobby) {
    let call = lobby.call;
    open(w, lobby);
    w.handle.send(attach(call, 1));
    expect(rx, |r| {
        matches!(r, Report::Joined { call: c, .. } if c == call).then_some(())
    });
}

fn snapshot(w: &Worker, conference: u64) -> Vec<MemberState> {
    let (tx, reply) = crossbeam_channel::bounded(1);
    w.handle.send(Command::Snapshot {
        conference: ConferenceId(conference),
        reply: tx,
    });
    reply.recv_timeout(WAIT).unwrap()
}

#[test]
fn lobby_plays_to_the_caller_and_reports_dtmf() {
    let (w, mut rx) = worker(0);
    let (mut p, lobby) = Peer::new(7);
    open(&w, lobby);
    w.handle.send(Command::Play {
        target: Target::Call(7),
        id: 70,
        sound: tone(5000, 440, RATE),
    });
    run(&mut [&mut p], Duration::from_millis(800));
    assert!(p.level(440.0, Duration::from_millis(500)) > HEARD_DB);
    p.dtmf('5');
    let digit = expect(&mut rx, |r| match r {
        Report::Dtmf { call: 7, digit } => Some(digit),
        _ => None,
    });
    assert_eq!(digit, '5');
    w.handle.send(Command::StopPlayback { id: 70 });
    let stopped = expect(&mut rx, |r| match r {
        Report::PlaybackDone { id: 70, stopped } => Some(stopped),
        _ => None,
    });
    assert!(stopped);
    run(&mut [&mut p], Duration::from_millis(400));
    assert!(p.level(440.0, Duration::from_millis(200)) < SILENT_DB);
    // A short prompt ends by itself.
    w.handle.send(Command::Play {
        target: Target::Call(7),
        id: 71,
        sound: tone(100, 440, RATE),
    });
    let stopped = expect(&mut rx, |r| match r {
        Report::PlaybackDone { id: 71, stopped } => Some(stopped),
        _ => None,
    });
    assert!(!stopped);
}

#[test]
fn the_lobby_listens_at_once_and_speaks_from_the_ack() {
    let (w, mut rx) = worker(0);
    let (mut p, lobby) = Peer::new(8);
    w.handle.send(Command::Lobby(Box::new(lobby)));
    w.handle.send(Command::Play {
        target: Target::Call(8),
        id: 80,
        sound: tone(5000, 440, RATE),
    });
    // Before the ACK: the phone's keys are heard, nothing reaches the phone.
    run(&mut [&mut p], Duration::from_millis(300));
    p.dtmf('7');
    let digit = expect(&mut rx, |r| match r {
        Report::Dtmf { call: 8, digit } => Some(digit),
        _ => None,
    });
    assert_eq!(digit, '7');
    run(&mut [&mut p], Duration::from_millis(300));
    assert!(
        p.heard.is_empty(),
        "{} samples before the ACK",
        p.heard.len()
    );
    w.handle.send(Command::Confirm { call: 8 });
    run(&mut [&mut p], Duration::from_millis(600));
    assert!(p.level(440.0, Duration::from_millis(300)) > HEARD_DB);
}

#[test]
fn a_callees_early_media_is_heard_in_its_callers_lobby_one_way() {
    let (w, mut rx) = worker(0);
    let (mut caller, lobby) = Peer::new(10);
    let (mut callee, callee_lobby) = Peer::new(11);
    caller.tone = Some(697.0);
    callee.tone = Some(1209.0);
    open(&w, lobby);
    open(&w, callee_lobby);
    w.handle.send(Command::EarlyMedia {
        callee: 11,
        caller: 10,
    });
    expect(&mut rx, |r| {
        matches!(r, Report::Joined { call: 11, .. }).then_some(())
    });
    run(&mut [&mut caller, &mut callee], Duration::from_millis(1000));
    let window = Duration::from_millis(500);
    assert!(
        caller.level(1209.0, window) > HEARD_DB,
        "the caller hears it"
    );
    assert!(
        callee.level(697.0, window) < SILENT_DB,
        "the callee hears nothing before the answer"
    );
    // The callee gone, the caller's lobby carries on: a prompt still reaches it.
    w.handle.send(Command::Leave { call: 11 });
    w.handle.send(Command::Play {
        target: Target::Call(10),
        id: 100,
        sound: tone(5000, 440, RATE),
    });
    run(&mut [&mut caller], Duration::from_millis(800));
    assert!(caller.level(440.0, window) > HEARD_DB);
    assert!(caller.level(1209.0, window) < SILENT_DB);
}

#[test]
fn a_burst_beyond_the_read_budget_is_read_to_its_end() {
    let (w, mut rx) = worker(0);
    let (mut p, lobby) = Peer::new(9);
    open(&w, lobby);
    run(&mut [&mut p], Duration::from_millis(200));
    // Junk from another port, more than one read's worth, then a key; then nothing more
    // arrives to wake the socket again.
    let junk = UdpSocket::bind("127.0.0.1:0").unwrap();
    for i in 0..150u16 {
        junk.send_to(&i.to_be_bytes(), p.server).unwrap();
    }
    p.dtmf('9');
    expect(&mut rx, |r| {
        matches!(
            r,
            Report::Dtmf {
                call: 9,
                digit: '9'
            }
        )
        .then_some(())
    });
}

#[test]
fn attached_callers_hear_each_other_until_muted() {
    let (w, mut rx) = worker(0);
    let (mut a, mut b) = two_in_conference(&w, &mut rx);
    run(&mut [&mut a, &mut b], Duration::from_millis(1200));
    let second = Duration::from_millis(600);
    assert!(a.level(1209.0, second) > HEARD_DB, "A hears B");
    assert!(b.level(697.0, second) > HEARD_DB, "B hears A");
    assert!(a.level(697.0, second) < SILENT_DB, "A does not hear itself");
    w.handle.send(Command::SetFlags {
        call: 1,
        speak: false,
        hear: true,
    });
    run(&mut [&mut a, &mut b], Duration::from_millis(800));
    assert!(b.level(697.0, second) < SILENT_DB, "muted A is not heard");
    assert!(a.level(1209.0, second) > HEARD_DB, "muted A still hears B");
    let members = snapshot(&w, 1);
    assert_eq!(members.len(), 2);
    let ma = &members[0];
    assert_eq!(
        (ma.call, ma.speak, ma.hear, ma.held),
        (1, false, true, false)
    );
    assert!(members[1].talking && members[1].energy > members[1].energy_level);
    // The delay the server adds is reported: at least the mixer's pre-roll, at most the
    // jitter buffer's bound on top.
    let delay = members[1].latency;
    assert!(delay >= Duration::from_millis(10) && delay <= Duration::from_millis(250));
    // Hold silences both ways; unmuting while held changes nothing until resume.
    let leg = LegConfig::new(CodecKind::Pcmu, 0, 20, b.sock.local_addr().unwrap(), 2);
    w.handle.send(Command::Update {
        call: 2,
        leg: Box::new(leg),
        held: true,
    });
    w.handle.send(Command::SetFlags {
        call: 2,
        speak: true,
        hear: true,
    });
    w.handle.send(Command::SetFlags {
        call: 1,
        speak: true,
        hear: true,
    });
    run(&mut [&mut a, &mut b], Duration::from_millis(800));
    assert!(a.level(1209.0, second) < SILENT_DB, "held B is not heard");
    assert!(snapshot(&w, 1)[1].held);
    w.handle.send(Command::Leave { call: 2 });
    expect(&mut rx, |r| {
        matches!(r, Report::Left { call: 2, conference } if conference == ConferenceId(1))
            .then_some(())
    });
    assert_eq!(snapshot(&w, 1).len(), 1);
}

#[test]
fn a_codec_change_to_another_rate_keeps_the_pitch() {
    let (w, mut rx) = worker(0);
    let (mut a, mut b) = two_in_conference(&w, &mut rx);
    let leg = LegConfig::new(CodecKind::G722, 9, 20, b.sock.local_addr().unwrap(), 2);
    w.handle.send(Command::Update {
        call: 2,
        leg: Box::new(leg),
        held: false,
    });
    b.switch(CodecKind::G722, 9);
    run(&mut [&mut a, &mut b], Duration::from_millis(1200));
    let window = Duration::from_millis(600);
    assert!(a.level(1209.0, window) > HEARD_DB, "A hears B at its pitch");
    assert!(b.level(697.0, window) > HEARD_DB, "B hears A at its pitch");
}

/// The level of everything but `freq` in the last `window` heard (distortion and noise),
/// on the scale of `Peer::level`.
fn residual_db(p: &Peer, freq: f64, window: Duration) -> f64 {
    let n = (window.as_millis() as usize * p.codec.pcm_rate() as usize / 1000).min(p.heard.len());
    let tail = &p.heard[p.heard.len() - n..];
    let mean_square = tail.iter().map(|&s| f64::from(s).powi(2)).sum::<f64>() / n as f64;
    let total = mean_square / (f64::from(i16::MAX).powi(2) / 2.0);
    let tone = 10f64.powf(p.level(freq, window) / 10.0);
    10.0 * (total - tone).max(1e-12).log10()
}

/// Opus keeps state from frame to frame, so the listeners sharing one encode must share
/// one encoder per mix: two groups at different listen volumes each hear the talker clean,
/// not packets from an encoder fed both groups' mixes in turn.
#[test]
fn opus_listeners_at_two_listen_volumes_each_hear_a_clean_tone() {
    let (w, mut rx) = worker(0);
    let (mut talker, lobby) = Peer::new(1);
    talker.tone = Some(697.0);
    join(&w, &mut rx, lobby);
    let mut listeners = Vec::new();
    for call in 2..=5 {
        let (mut p, mut l) = Peer::new(call);
        l.leg = LegConfig::new(CodecKind::Opus, 111, 20, l.leg.remote_rtp, call as u32);
        p.switch(CodecKind::Opus, 111);
        join(&w, &mut rx, l);
        listeners.push(p);
    }
    for call in [4, 5] {
        w.handle.send(Command::SetVolume {
            call,
            talk: None,
            listen: Some(-3),
        });
    }
    let mut peers: Vec<&mut Peer> = std::iter::once(&mut talker)
        .chain(listeners.iter_mut())
        .collect();
    run(&mut peers, Duration::from_millis(1500));
    let window = Duration::from_millis(800);
    for p in &listeners {
        let (tone, rest) = (p.level(697.0, window), residual_db(p, 697.0, window));
        assert!(
            tone > HEARD_DB && rest < tone - 20.0,
            "tone {tone:.1} dB, the rest {rest:.1} dB"
        );
    }
}

/// `[rtp] opus_rate = 16000`: an Opus talker decoded at 16 kHz is heard clean by an Opus
/// listener coded from 16 kHz and by a G.711 one, in a room whose profile mixes up to 48 kHz.
#[test]
fn opus_legs_at_16_khz_talk_and_listen_beside_a_g711_phone() {
    let (w, mut rx) = worker(0);
    let opus_16k = |p: &mut Peer, l: &mut Lobby, call: CallKey| {
        l.leg = LegConfig::new(CodecKind::Opus, 111, 20, l.leg.remote_rtp, call as u32);
        l.leg.codec_options.opus_rate = 16000;
        p.switch(CodecKind::Opus, 111);
    };
    let (mut talker, mut lobby) = Peer::new(1);
    opus_16k(&mut talker, &mut lobby, 1);
    talker.tone = Some(697.0);
    join(&w, &mut rx, lobby);
    let (mut opus, mut lobby) = Peer::new(2);
    opus_16k(&mut opus, &mut lobby, 2);
    join(&w, &mut rx, lobby);
    let (mut g711, lobby) = Peer::new(3);
    join(&w, &mut rx, lobby);
    run(
        &mut [&mut talker, &mut opus, &mut g711],
        Duration::from_millis(1500),
    );
    let window = Duration::from_millis(800);
    for p in [&opus, &g711] {
        let (tone, rest) = (p.level(697.0, window), residual_db(p, 697.0, window));
        assert!(
            tone > HEARD_DB && rest < tone - 20.0,
            "{:?}: tone {tone:.1} dB, the rest {rest:.1} dB",
            p.codec
        );
    }
}

/// How often this process's thread called `name` has gone to sleep and woken.
fn wakeups(name: &str) -> u64 {
    for task in std::fs::read_dir("/proc/self/task").unwrap().flatten() {
        let comm = std::fs::read_to_string(task.path().join("comm")).unwrap_or_default();
        if comm.trim() == name {
            let status = std::fs::read_to_string(task.path().join("status")).unwrap();
            let line = status
                .lines()
                .find(|l| l.starts_with("voluntary_ctxt_switches"));
            return line
                .unwrap()
                .split_whitespace()
                .last()
                .unwrap()
                .parse()
                .unwrap();
        }
    }
    panic!("no thread {name}");
}

/// A worker with no calls sleeps until it is given one; with a call it wakes for its
/// housekeeping (twice a second), and once the call is gone it sleeps again.
#[test]
fn a_worker_without_calls_does_not_wake() {
    let (w, _rx) = worker(91);
    let woken = || {
        let before = wakeups("media-91");
        std::thread::sleep(Duration::from_millis(1600));
        wakeups("media-91") - before
    };
    assert!(woken() <= 1, "idle");
    let (_peer, lobby) = Peer::new(9);
    open(&w, lobby);
    assert!(woken() >= 3, "with a call");
    w.handle.send(Command::Leave { call: 9 });
    std::thread::sleep(Duration::from_millis(100));
    assert!(woken() <= 1, "idle again");
}

#[test]
fn member_playback_reaches_one_member_and_conference_playback_all() {
    let (w, mut rx) = worker(0);
    let (mut a, mut b) = two_in_conference(&w, &mut rx);
    (a.tone, b.tone) = (None, None);
    let conf_rate = Profile::default().rate();
    w.handle.send(Command::Play {
        target: Target::Call(1),
        id: 1,
        sound: tone(5000, 440, conf_rate),
    });
    w.handle.send(Command::Play {
        target: Target::Conference(ConferenceId(1)),
        id: 2,
        sound: tone(5000, 1000, conf_rate),
    });
    run(&mut [&mut a, &mut b], Duration::from_millis(1000));
    let window = Duration::from_millis(600);
    assert!(a.level(440.0, window) > HEARD_DB, "A hears its playback");
    assert!(b.level(440.0, window) < SILENT_DB, "B does not hear A's");
    assert!(
        a.level(1000.0, window) > HEARD_DB,
        "A hears the conference's"
    );
    assert!(
        b.level(1000.0, window) > HEARD_DB,
        "B hears the conference's"
    );
    // The last call out ends the conference playback.
    w.handle.send(Command::Leave { call: 1 });
    w.handle.send(Command::Leave { call: 2 });
    let mut done = Vec::new();
    while done.len() < 2 {
        done.push(expect(&mut rx, |r| match r {
            Report::PlaybackDone { id, stopped: true } => Some(id),
            _ => None,
        }));
    }
    done.sort();
    assert_eq!(done, [1, 2]);
}

#[test]
fn record_call_returns_the_callers_tone_until_a_digit() {
    let (w, mut rx) = worker(0);
    let (mut p, lobby) = Peer::new(3);
    p.tone = Some(770.0);
    open(&w, lobby);
    w.handle.send(Command::RecordCall {
        call: 3,
        max: Duration::from_secs(10),
        id: 30,
    });
    run(&mut [&mut p], Duration::from_millis(800));
    p.dtmf('#');
    let (rate, pcm) = expect(&mut rx, |r| match r {
        Report::Recorded {
            id: 30,
            call: 3,
            rate,
            pcm,
        } => Some((rate, pcm)),
        _ => None,
    });
    assert_eq!(rate, RATE);
    assert!(pcm.len() >= 4000 && pcm.len() < 10 * 8000, "{}", pcm.len());
    let tail = &pcm[pcm.len() - 3200..];
    assert!(level_db(tail, rate, 770.0) > HEARD_DB);
    assert!(level_db(tail, rate, 1209.0) < SILENT_DB);
}

#[test]
fn record_conference_writes_the_talkers_to_a_wav() {
    let (w, mut rx) = worker(0);
    let (mut a, mut b) = two_in_conference(&w, &mut rx);
    let path: PathBuf = std::env::temp_dir().join(format!("chorus-rec-{}.wav", std::process::id()));
    w.handle.send(Command::RecordConference {
        conference: ConferenceId(1),
        path: path.clone(),
        id: 9,
    });
    run(&mut [&mut a, &mut b], Duration::from_millis(1200));
    w.handle.send(Command::StopRecording { id: 9 });
    let seconds = expect(&mut rx, |r| match r {
        Report::RecordingDone { id: 9, seconds, .. } => Some(seconds),
        _ => None,
    });
    assert!((0.8..2.0).contains(&seconds), "{seconds}");
    let rate = Profile::default().rate();
    let pcm = mixer::wav::Pcm::load(&path, rate).unwrap();
    std::fs::remove_file(&path).unwrap();
    let tail = &pcm.samples()[pcm.samples().len() - rate as usize / 2..];
    assert!(level_db(tail, rate, 697.0) > HEARD_DB);
    assert!(level_db(tail, rate, 1209.0) > HEARD_DB);
    assert!(snapshot(&w, 1).len() == 2, "the recorder is not a member");
}

#[test]
fn a_call_migrates_between_workers_and_keeps_talking() {
    let (w1, mut rx1) = worker(1);
    let (w2, mut rx2) = worker(2);
    let (mut a, la) = Peer::new(1);
    let (mut b, lb) = Peer::new(2);
    (a.tone, b.tone) = (Some(697.0), Some(1209.0));
    open(&w1, la);
    open(&w2, lb);
    w2.handle.send(attach(2, 5));
    w1.handle.send(Command::Play {
        target: Target::Call(1),
        id: 1,
        sound: tone(5000, 440, RATE),
    });
    run(&mut [&mut a, &mut b], Duration::from_millis(400));
    w1.handle.send(Command::Detach { call: 1 });
    let lobby_prompt = expect(&mut rx1, |r| match r {
        Report::PlaybackDone { id: 1, stopped } => Some(stopped),
        _ => None,
    });
    assert!(lobby_prompt, "leaving the lobby cuts its prompt");
    let session = expect(&mut rx1, |r| match r {
        Report::Detached { call: 1, session } => Some(session),
        _ => None,
    });
    w2.handle.send(Command::Adopt {
        session,
        attach: to_conference(1, 5),
    });
    expect(&mut rx2, |r| {
        matches!(r, Report::Joined { call: 1, .. }).then_some(())
    });
    run(&mut [&mut a, &mut b], Duration::from_millis(1200));
    let window = Duration::from_millis(600);
    assert!(a.level(1209.0, window) > HEARD_DB, "A hears B after moving");
    assert!(b.level(697.0, window) > HEARD_DB, "B hears A after moving");
    assert!(
        a.level(440.0, window) < SILENT_DB,
        "the lobby prompt stayed behind"
    );
}
