//! Attacks on SIP admission and connections, against the real `chorus` binary over loopback
//! (sources are told apart by address: all of 127/8 is loopback on Linux). Each test asserts
//! what a legitimate caller and the operator see while and after it runs; see
//! docs/security.md, "SIP admission and connections".

mod support;

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use support::process::{ServerProcess, ServerSetup};
use support::sip_text::Message;
use support::{DialOpts, Phone, Transport};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};

const SECOND: Duration = Duration::from_secs(1);

fn ip(last: u8) -> IpAddr {
    IpAddr::from([127, 0, 0, last])
}

fn from(last: u8) -> DialOpts {
    DialOpts {
        local_ip: Some(ip(last)),
        answer_timeout: 10 * SECOND,
        ..DialOpts::default()
    }
}

/// Waits (polling) until `ok` holds, up to `within`; false if it never did.
async fn eventually(within: Duration, mut ok: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if ok() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    ok()
}

/// A new INVITE with an SDP offer from `local`, which will never be acknowledged.
fn flood_invite(server: SocketAddr, local: SocketAddr, n: usize, run: &str) -> String {
    let sdp = format!(
        "v=0\r\no=- {n} 1 IN IP4 {ip}\r\ns=-\r\nc=IN IP4 {ip}\r\nt=0 0\r\n\
         m=audio {port} RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n",
        ip = local.ip(),
        port = local.port()
    );
    format!(
        "INVITE sip:7100@{server} SIP/2.0\r\n\
         Via: SIP/2.0/UDP {local};branch=z9hG4bK{run}x{n};rport\r\n\
         Max-Forwards: 70\r\nFrom: <sip:flood@{local}>;tag=f{n}\r\nTo: <sip:7100@{server}>\r\n\
         Call-ID: {run}-{n}@flood\r\nCSeq: 1 INVITE\r\nContact: <sip:flood@{local}>\r\n\
         Content-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{sdp}",
        sdp.len()
    )
}

/// Responses the flooder got, by status (each datagram counted, retransmissions too).
type Statuses = Arc<Mutex<HashMap<u16, usize>>>;

/// Sends `count` INVITEs from 127.0.0.1 evenly over `over` and never ACKs any.
async fn invite_flood(server: SocketAddr, count: usize, over: Duration) -> Statuses {
    let socket = Arc::new(UdpSocket::bind("127.0.0.1:0").await.unwrap());
    let statuses: Statuses = Arc::default();
    let (rx, seen) = (socket.clone(), statuses.clone());
    let listener = tokio::spawn(async move {
        let mut buf = vec![0u8; 65536];
        while let Ok(n) = rx.recv(&mut buf).await {
            if let Some(status) = Message::parse(&buf[..n]).ok().and_then(|m| m.status()) {
                *seen.lock().unwrap().entry(status).or_default() += 1;
            }
        }
    });
    let local = socket.local_addr().unwrap();
    let run = support::unique_token();
    let start = tokio::time::Instant::now();
    for n in 0..count {
        tokio::time::sleep_until(start + over.mul_f64(n as f64 / count as f64)).await;
        let invite = flood_invite(server, local, n, &run);
        socket.send_to(invite.as_bytes(), server).await.unwrap();
    }
    // The last answers arrive; then the flooder goes away.
    tokio::time::sleep(SECOND).await;
    listener.abort();
    statuses
}

/// 3,000 INVITEs in 10 s from one source, never ACKed, while a caller from another address
/// dials in: the caller is answered within a second each time, the flooder gets 503s but far
/// fewer than its INVITEs (the server is no amplifier), and once the unacknowledged calls time
/// out (64*T1, T1 = 100 ms here) the server's descriptors and heap are back near where they
/// started (heap: resident anonymous memory, which excludes the binary's own pages).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invite_flood_leaves_other_callers_answered_and_resources_return() {
    let mut server = ServerProcess::start(ServerSetup {
        sip_keys: "timer_t1_ms = 100",
        rtp_ports: "43000-43999",
        ..ServerSetup::default()
    });
    // One call first, so what a first call allocates once is in the baseline.
    let mut warm = Phone::dial(server.sip, "7101", from(2)).await.unwrap();
    warm.hangup().await.unwrap();
    tokio::time::sleep(SECOND).await;
    let (rss0, anon0, fds0) = (server.rss_kib(), server.anon_kib(), server.fds());

    let flood = tokio::spawn(invite_flood(server.sip, 3000, 10 * SECOND));
    let mut answer_times = Vec::new();
    let (mut peak_anon, mut peak_fds) = (anon0, fds0);
    for _ in 0..3 {
        tokio::time::sleep(2 * SECOND).await;
        peak_anon = peak_anon.max(server.anon_kib());
        peak_fds = peak_fds.max(server.fds());
        let t = Instant::now();
        let mut caller = Phone::dial(server.sip, "7101", from(2)).await.unwrap();
        answer_times.push(t.elapsed());
        caller.hangup().await.unwrap();
    }
    let statuses = flood.await.unwrap().lock().unwrap().clone();
    assert!(
        answer_times.iter().all(|t| *t < SECOND),
        "answered within a second during the flood: {answer_times:?}"
    );
    let refused = statuses.get(&503).copied().unwrap_or(0);
    assert!(refused > 0, "the flooder was refused: {statuses:?}");
    // The refusal budget: a burst of 50, then 20 a second, over the 11 s of the flood.
    assert!(
        refused <= 50 + 20 * 12,
        "at most the refusal budget: {statuses:?}"
    );
    assert!(
        peak_fds < fds0 + 2 * 150,
        "the unacknowledged cap (100) bounds the RTP sockets taken: {peak_fds}"
    );

    let fds_back = eventually(30 * SECOND, || server.fds() <= fds0 + 4).await;
    // The heap trimmer samples every 2 s. Before admission control and the trimmer the same
    // flood kept some 35 MB; what stays now is a plateau of 3-5 MiB that later floods reuse.
    let heap_back = eventually(15 * SECOND, || server.anon_kib() <= anon0 + 6144).await;
    let (rss1, anon1, fds1) = (server.rss_kib(), server.anon_kib(), server.fds());
    eprintln!(
        "INVITE flood: responses {statuses:?}; caller answered in {answer_times:?}; \
         RSS {rss0} -> {rss1} KiB; heap (RssAnon) {anon0} -> peak {peak_anon} -> {anon1} KiB; \
         fds {fds0} -> peak {peak_fds} -> {fds1}"
    );
    assert!(fds_back, "descriptors back to {fds0} + 4: {fds1}");
    assert!(
        heap_back,
        "heap back within 6 MiB of {anon0} KiB: {anon1} KiB"
    );
    assert!(server.alive());
}

/// What became of a TCP connection that sent OPTIONS.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Fate {
    Answered,
    /// The server closed it without an answer (refused at a cap, or by the ACL).
    Closed,
    /// Nothing within the wait (never accepted: it sits in the listen backlog).
    Silent,
}

fn options(server: SocketAddr, local: SocketAddr) -> String {
    format!(
        "OPTIONS sip:{server} SIP/2.0\r\nVia: SIP/2.0/TCP {local};branch={}\r\n\
         From: <sip:probe@{local}>;tag=t\r\nTo: <sip:{server}>\r\nCall-ID: {}\r\n\
         CSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n",
        support::branch(),
        support::unique_token()
    )
}

/// Connects from `local_ip`, sends OPTIONS and waits up to `wait` for what happens; the
/// connection is returned open.
async fn tcp_options(server: SocketAddr, local_ip: IpAddr, wait: Duration) -> (TcpStream, Fate) {
    let mut stream = support::transport::connect_from(local_ip, server)
        .await
        .expect("the kernel completes the handshake");
    let local = stream.local_addr().unwrap();
    if stream
        .write_all(options(server, local).as_bytes())
        .await
        .is_err()
    {
        return (stream, Fate::Closed);
    }
    let mut buf = [0u8; 2048];
    let fate = match tokio::time::timeout(wait, stream.read(&mut buf)).await {
        Err(_) => Fate::Silent,
        Ok(Ok(n)) if n > 0 && buf.starts_with(b"SIP/2.0 200") => Fate::Answered,
        Ok(_) => Fate::Closed,
    };
    (stream, fate)
}

/// Opens `n` connections from `local_ip` one after another; returns them and their fates.
async fn open_many(
    server: SocketAddr,
    local_ip: IpAddr,
    n: usize,
) -> (Vec<TcpStream>, HashMap<Fate, usize>) {
    let mut streams = Vec::new();
    let mut fates = HashMap::new();
    for _ in 0..n {
        let (stream, fate) = tcp_options(server, local_ip, 5 * SECOND).await;
        *fates.entry(fate).or_default() += 1;
        streams.push(stream);
    }
    (streams, fates)
}

/// Log lines containing `text`.
fn log_lines(server: &ServerProcess, text: &str) -> usize {
    server.log().lines().filter(|l| l.contains(text)).count()
}

/// Idle TCP connections up to and past the caps: the excess is refused (per source and in
/// all), another source still calls over TCP and UDP, the log says so in a line or two, and
/// the idle connections are closed once the idle timeout passes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_tcp_connections_are_capped_and_closed_after_the_idle_timeout() {
    let server = ServerProcess::start(ServerSetup {
        rtp_ports: "44000-44099",
        tables: "[sip.tcp]\nmax_connections = 150\nmax_connections_per_source = 100\n\
                 idle_timeout_secs = 8\nheader_timeout_secs = 8\n",
        ..ServerSetup::default()
    });
    let fds0 = server.fds();
    let (mut idle, fates) = open_many(server.sip, ip(3), 120).await;
    assert_eq!(fates.get(&Fate::Answered), Some(&100), "{fates:?}");
    assert_eq!(fates.get(&Fate::Closed), Some(&20), "{fates:?}");

    for transport in [Transport::Tcp, Transport::Udp] {
        let opts = DialOpts {
            transport,
            ..from(5)
        };
        let mut phone = Phone::dial(server.sip, "7102", opts).await.unwrap();
        phone.hangup().await.unwrap();
    }
    tokio::time::sleep(SECOND / 2).await;

    let (more, fates) = open_many(server.sip, ip(4), 80).await;
    idle.extend(more);
    let answered = fates.get(&Fate::Answered).copied().unwrap_or(0);
    assert!(answered <= 50, "150 in all: {fates:?}");
    assert!(
        fates.get(&Fate::Closed).copied().unwrap_or(0) >= 30,
        "{fates:?}"
    );
    let refusal_lines = log_lines(&server, "tcp connections refused");
    assert!(
        (1..=2).contains(&refusal_lines),
        "refusals logged once per 10 s, with a count: {refusal_lines} lines\n{}",
        server.log()
    );

    // Every idle connection is closed by the server after 8 s without traffic.
    let mut buf = [0u8; 64];
    for stream in &mut idle {
        let read = tokio::time::timeout(20 * SECOND, stream.read(&mut buf)).await;
        assert!(
            matches!(read, Ok(Ok(0) | Err(_))),
            "closed by the server: {read:?}"
        );
    }
    drop(idle);
    assert!(
        eventually(10 * SECOND, || server.fds() <= fds0 + 4).await,
        "descriptors back to {fds0}: {}",
        server.fds()
    );
    let (_, fate) = tcp_options(server.sip, ip(3), 5 * SECOND).await;
    assert_eq!(fate, Fate::Answered, "the source may connect again");
    assert!(server.log().lines().count() < 100, "{}", server.log());
}

fn low_descriptor_limit(command: &mut std::process::Command) {
    use std::os::unix::process::CommandExt;
    // SAFETY: only setrlimit runs between fork and exec.
    unsafe {
        command.pre_exec(|| {
            let limit = libc::rlimit {
                rlim_cur: 64,
                rlim_max: 64,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &limit) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

/// A server whose descriptor limit (64) runs out under TCP connections: accept fails with
/// EMFILE, and instead of spinning and logging each failure it backs off and logs a line per
/// 10 s; when the connections go, it accepts again and answers calls.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn running_out_of_descriptors_backs_off_and_recovers() {
    let mut server = ServerProcess::start(ServerSetup {
        rtp_ports: "44100-44109",
        command: Some(low_descriptor_limit),
        ..ServerSetup::default()
    });
    let fds0 = server.fds();
    let attempts = (0..80).map(|_| tcp_options(server.sip, ip(6), 3 * SECOND));
    let results = futures_util::future::join_all(attempts).await;
    let count = |fate| results.iter().filter(|(_, f)| *f == fate).count();
    assert!(count(Fate::Answered) > 0, "some fit under the limit");
    assert!(count(Fate::Silent) > 0, "the rest wait in the backlog");
    tokio::time::sleep(2 * SECOND).await;
    let failure_lines = log_lines(&server, "tcp accept");
    assert!(
        (1..=2).contains(&failure_lines),
        "EMFILE logged once per 10 s: {failure_lines} lines\n{}",
        server.log()
    );
    assert!(server.alive());

    drop(results);
    assert!(
        eventually(15 * SECOND, || server.fds() <= fds0 + 4).await,
        "descriptors back to {fds0}: {}",
        server.fds()
    );
    let mut phone = Phone::dial(server.sip, "7104", from(6)).await.unwrap();
    phone.hangup().await.unwrap();
}

/// Slowloris: connections trickling a header, some fresh and some after a whole message,
/// are each closed at the header timeout (2 s here) counted from the message's first byte.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slowloris_connections_are_closed_at_the_header_timeout() {
    let server = ServerProcess::start(ServerSetup {
        rtp_ports: "44200-44209",
        tables: "[sip.tcp]\nheader_timeout_secs = 2\nidle_timeout_secs = 60\n",
        ..ServerSetup::default()
    });
    let sip = server.sip;
    let trickle = |after_message: bool| async move {
        let (stream, fate) = if after_message {
            tcp_options(sip, ip(7), 5 * SECOND).await
        } else {
            let stream = support::transport::connect_from(ip(7), sip).await.unwrap();
            (stream, Fate::Answered)
        };
        assert_eq!(fate, Fate::Answered);
        let (mut read, mut write) = stream.into_split();
        let start = Instant::now();
        let writer = tokio::spawn(async move {
            let mut line = b"OPTIONS sip:x SIP/2.0\r\n".to_vec();
            while start.elapsed() < 15 * SECOND && write.write_all(&line).await.is_ok() {
                line = b"X-Slow: y\r\n".to_vec();
                tokio::time::sleep(Duration::from_millis(300)).await;
            }
        });
        let mut buf = [0u8; 64];
        let read = tokio::time::timeout(15 * SECOND, read.read(&mut buf)).await;
        writer.abort();
        assert!(matches!(read, Ok(Ok(0) | Err(_))), "closed: {read:?}");
        start.elapsed()
    };
    let connections = (0..20).map(|i| trickle(i % 2 == 1));
    let closed_after = futures_util::future::join_all(connections).await;
    assert!(
        closed_after
            .iter()
            .all(|t| (SECOND * 3 / 2..8 * SECOND).contains(t)),
        "each closed about 2 s after its first byte: {closed_after:?}"
    );
    let lines = log_lines(&server, "tcp connections closed");
    assert!((1..=2).contains(&lines), "{}", server.log());
}

/// OPTIONS whose response is about 15 KiB: the request carries a stack of 120 Vias, which
/// every response copies.
fn fat_options(server: SocketAddr, local: SocketAddr) -> String {
    let vias: String = (0..120)
        .map(|i| {
            format!(
                "Via: SIP/2.0/TCP 192.0.2.{}:5060;branch=z9hG4bK{:0>70}\r\n",
                i % 250,
                i
            )
        })
        .collect();
    options(server, local).replacen("From:", &format!("{vias}From:"), 1)
}

/// A peer that sends requests over TCP and never reads the answers: the server closes it
/// once its queue of answers passes the cap (or, if it stalls below the cap, at the header
/// timeout), its memory stays bounded, and everyone else is answered meanwhile.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tcp_peer_that_never_reads_is_cut_off_and_costs_a_bounded_queue() {
    let mut server = ServerProcess::start(ServerSetup {
        rtp_ports: "44300-44309",
        tables: "[sip.tcp]\nheader_timeout_secs = 2\n",
        ..ServerSetup::default()
    });
    let (anon0, fds0) = (server.anon_kib(), server.fds());
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    socket.bind(SocketAddr::new(ip(8), 0)).unwrap();
    let mut stream = socket.connect(server.sip).await.unwrap();
    let (sip, local) = (server.sip, stream.local_addr().unwrap());
    let writer = tokio::spawn(async move {
        let start = Instant::now();
        let mut sent = 0usize;
        // 2,000 requests would ask for 30 MB of answers.
        for _ in 0..2000 {
            let request = fat_options(sip, local);
            let write = tokio::time::timeout(20 * SECOND, stream.write_all(request.as_bytes()));
            match write.await {
                Ok(Ok(())) => sent += request.len(),
                Ok(Err(_)) => return (sent, start.elapsed(), true),
                Err(_) => break,
            }
        }
        (sent, start.elapsed(), false)
    });
    let caller = tokio::spawn(async move {
        let mut phone = Phone::dial(sip, "7105", from(9)).await.unwrap();
        phone.hangup().await.unwrap();
    });
    let mut peak_anon = anon0;
    while !writer.is_finished() {
        peak_anon = peak_anon.max(server.anon_kib());
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    caller.await.unwrap();
    let (sent, took, cut_off) = writer.await.unwrap();
    eprintln!(
        "non-reading peer: wrote {sent} bytes in {took:?}, cut off: {cut_off}; \
         heap (RssAnon) {anon0} -> peak {peak_anon} KiB"
    );
    assert!(
        cut_off,
        "the server closed the connection ({sent} bytes written in {took:?})"
    );
    assert!(
        took < 30 * SECOND,
        "closed within the header timeout of the stall: {took:?}"
    );
    // The queue is at most 1 MiB; the transactions of the requests read before the cut (each
    // keeping its 15 KiB answer) come on top: about 8 MiB measured, where the 2,000 requests
    // read in full would hold some 60 MiB.
    assert!(
        peak_anon < anon0 + 32 * 1024,
        "heap {anon0} -> {peak_anon} KiB while answers piled up"
    );
    let back = eventually(30 * SECOND, || server.fds() <= fds0 + 2).await;
    let open = std::fs::read_dir(format!("/proc/{}/fd", server.pid())).unwrap();
    let open: Vec<_> = open
        .filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
        .collect();
    assert!(back, "descriptors back to {fds0} + 2: {open:?}");
    assert!(server.alive());
}

const AUTH: &str = "[[sip.dial_in_auth]]\naccount = \"c0ffee00c0ffee00c0ffee00c0ffee00\"\n\
                    username = \"dialin\"\npassword = \"secret\"\n";

/// Runs a SIPp scenario for one call with these credentials; true if the call succeeded.
fn sipp_call(server: SocketAddr, scenario: &str, password: &str) -> bool {
    let media = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let media_port = media.local_addr().unwrap().port().to_string();
    drop(media);
    let args = ["-s", "7103", "-au", "dialin", "-ap", password];
    let media = ["-mi", "127.0.0.1", "-mp", &media_port];
    support::sipp::run(server, scenario, &[&args[..], &media[..]].concat())
}

/// Digest authentication on: a call without credentials is challenged (401 with an MD5 and
/// a SHA-256 challenge); SIPp with the right password is answered, with a wrong one gets 403.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dial_in_auth_challenges_admits_and_refuses() {
    let server = ServerProcess::start(ServerSetup {
        rtp_ports: "44300-44399",
        tables: AUTH,
        ..ServerSetup::default()
    });
    let err = Phone::dial(server.sip, "7103", from(10))
        .await
        .err()
        .unwrap();
    assert_eq!(err.status(), Some(401), "{err}");
    let support::CallError::Rejected(response) = err else {
        unreachable!()
    };
    let challenges: Vec<&str> = response
        .headers
        .iter()
        .filter(|(name, _)| name == "WWW-Authenticate")
        .map(|(_, value)| value.as_str())
        .collect();
    assert_eq!(challenges.len(), 2, "{response:?}");
    assert!(challenges[0].contains("algorithm=MD5") && challenges[0].contains("realm=\"chorus\""));
    assert!(challenges[1].contains("algorithm=SHA-256"));

    let sip = server.sip;
    let (right, wrong) = tokio::task::spawn_blocking(move || {
        (
            sipp_call(sip, "uac_auth.xml", "secret"),
            sipp_call(sip, "uac_auth_refused.xml", "wrong"),
        )
    })
    .await
    .unwrap();
    assert!(right, "SIPp with the right password is answered");
    assert!(wrong, "SIPp with a wrong password gets 403");
}

/// The ACL: a denied source gets 403 over UDP and its TCP connections are closed at once;
/// another source is answered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_acl_refuses_a_denied_source() {
    let server = ServerProcess::start(ServerSetup {
        rtp_ports: "44400-44499",
        tables: "[sip.acl]\ndeny = [\"127.0.0.8/32\"]\n",
        ..ServerSetup::default()
    });
    let err = Phone::dial(server.sip, "7105", from(8))
        .await
        .err()
        .unwrap();
    assert_eq!(err.status(), Some(403), "{err}");
    let (_, fate) = tcp_options(server.sip, ip(8), 5 * SECOND).await;
    assert_eq!(fate, Fate::Closed);
    let mut phone = Phone::dial(server.sip, "7105", from(9)).await.unwrap();
    phone.hangup().await.unwrap();
}
