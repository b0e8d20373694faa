//! The SIP task over real sockets on 127.0.0.1: UDP call flow, TCP framing, and SIPp as an
//! independent caller.

use std::net::SocketAddr;
use std::time::Duration;

use chorus::sip::{
    self, Body, Dial, EndpointConfig, Event, Protocol, SipHandle, TerminationReason, Timers,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};
use tokio::sync::mpsc;
use tokio::time::timeout;

const SDP: &str = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\n";
const WAIT: Duration = Duration::from_secs(5);

fn config() -> EndpointConfig {
    EndpointConfig {
        user_agent: "Chorus-test".into(),
        contact_host: "127.0.0.1".into(),
        udp_port: 0,
        tcp_port: 0,
        timers: Timers::default(),
        limits: chorus::sip::admission::Limits::default(),
        acl: chorus::sip::admission::Acl::default(),
        auth: None,
        registrar: false,
    }
}

fn sdp() -> Body {
    Body {
        content_type: "application/sdp".into(),
        bytes: SDP.as_bytes().to_vec(),
    }
}

async fn start() -> (SipHandle, mpsc::Receiver<Event>, SocketAddr) {
    sip::spawn(
        "127.0.0.1:0".parse().expect("addr"),
        config(),
        chorus::sip::connections::TcpLimits::default(),
    )
    .await
    .expect("bind")
}

fn request(method: &str, branch: &str, to_tag: &str, cseq: u32, via: &str, body: &str) -> String {
    format!(
        "{method} sip:conf@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/{via};branch={branch};rport\r\n\
         Max-Forwards: 70\r\nFrom: <sip:alice@127.0.0.1>;tag=a1\r\nTo: <sip:conf@127.0.0.1>{to_tag}\r\n\
         Call-ID: transport-test\r\nCSeq: {cseq} {method}\r\nContact: <sip:alice@{}>\r\n{}Content-Length: {}\r\n\r\n{body}",
        via.split(' ').nth(1).unwrap_or_default(),
        if body.is_empty() {
            ""
        } else {
            "Content-Type: application/sdp\r\n"
        },
        body.len()
    )
}

async fn recv_text(sock: &UdpSocket) -> String {
    let mut buf = vec![0u8; 65536];
    let n = timeout(WAIT, sock.recv(&mut buf))
        .await
        .expect("reply in time")
        .expect("recv");
    String::from_utf8_lossy(&buf[..n]).into_owned()
}

async fn next_event(events: &mut mpsc::Receiver<Event>) -> Event {
    timeout(WAIT, events.recv())
        .await
        .expect("event in time")
        .expect("task alive")
}

#[tokio::test]
async fn udp_call_answer_ack_and_our_bye() {
    let (handle, mut events, server) = start().await;
    let phone = UdpSocket::bind("127.0.0.1:0").await.expect("bind");
    phone.connect(server).await.expect("connect");
    let via = format!("UDP {}", phone.local_addr().expect("addr"));
    phone
        .send(request("INVITE", "z9hG4bKu1", "", 1, &via, SDP).as_bytes())
        .await
        .expect("send");
    assert!(recv_text(&phone).await.starts_with("SIP/2.0 100 Trying"));
    let Event::Invite { call, body, .. } = next_event(&mut events).await else {
        panic!("expected Invite");
    };
    assert_eq!(body, Some(sdp()));
    handle
        .respond(call, 200, "OK", Some(sdp()))
        .await
        .expect("respond");
    let ok = recv_text(&phone).await;
    assert!(ok.starts_with("SIP/2.0 200 OK"), "{ok}");
    assert!(ok.ends_with(SDP));
    let tag = ok
        .lines()
        .find(|l| l.starts_with("To:"))
        .and_then(|l| l.split(";tag=").nth(1))
        .expect("to-tag");
    let ack = request("ACK", "z9hG4bKu2", &format!(";tag={tag}"), 1, &via, "");
    phone.send(ack.as_bytes()).await.expect("send");
    assert_eq!(
        next_event(&mut events).await,
        Event::Ack { call, body: None }
    );
    handle.bye(call).await.expect("bye");
    let bye = recv_text(&phone).await;
    assert!(bye.starts_with("BYE sip:alice@"), "{bye}");
    let mut reply = bye.replacen(bye.lines().next().unwrap_or_default(), "SIP/2.0 200 OK", 1);
    reply.truncate(reply.find("Content-Length").unwrap_or(reply.len()));
    reply.push_str("Content-Length: 0\r\n\r\n");
    phone.send(reply.as_bytes()).await.expect("send");
    assert_eq!(
        next_event(&mut events).await,
        Event::Terminated {
            call,
            reason: TerminationReason::ByeCompleted(200)
        }
    );
}

#[tokio::test]
async fn tcp_messages_are_framed_and_bad_framing_closes_the_connection() {
    let (_handle, _events, server) = start().await;
    let mut tcp = TcpStream::connect(server).await.expect("connect");
    let via = format!("TCP {}", tcp.local_addr().expect("addr"));
    let options = request("OPTIONS", "z9hG4bKt1", "", 1, &via, "");
    let (a, b) = options.split_at(40);
    tcp.write_all(b"\r\n\r\n").await.expect("keep-alive");
    tcp.write_all(a.as_bytes()).await.expect("write");
    tokio::time::sleep(Duration::from_millis(50)).await;
    tcp.write_all(b.as_bytes()).await.expect("write");
    let mut buf = vec![0u8; 4096];
    let n = timeout(WAIT, tcp.read(&mut buf))
        .await
        .expect("in time")
        .expect("read");
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("SIP/2.0 200 OK\r\n"));
    tcp.write_all(b"OPTIONS sip:conf@127.0.0.1 SIP/2.0\r\nContent-Length: -1\r\n\r\n")
        .await
        .expect("write");
    let n = timeout(WAIT, tcp.read(&mut buf))
        .await
        .expect("closed in time")
        .expect("read");
    assert_eq!(n, 0, "connection must be closed after a bad Content-Length");
}

/// SIPp's built-in caller (INVITE with SDP, ACK, BYE) against the server over `transport`
/// (`u1` UDP, `t1` one TCP connection), the test acting as the application answering calls.
async fn sipp_uac_calls_complete(transport: &str) {
    let (handle, mut events, server) = start().await;
    let app = tokio::spawn(async move {
        let mut byes = 0;
        while let Ok(Some(event)) = timeout(Duration::from_secs(20), events.recv()).await {
            match event {
                Event::Invite { call, .. } => {
                    handle
                        .respond(call, 180, "Ringing", None)
                        .await
                        .expect("180");
                    handle
                        .respond(call, 200, "OK", Some(sdp()))
                        .await
                        .expect("200");
                }
                Event::Bye { .. } => byes += 1,
                _ => {}
            }
            if byes == 3 {
                break;
            }
        }
        byes
    });
    let status = tokio::process::Command::new("sipp")
        .args([
            "-sn", "uac", "-s", "conf", "-m", "3", "-l", "3", "-r", "10", "-t", transport,
        ])
        .args([
            "-i",
            "127.0.0.1",
            "-nostdin",
            "-timeout",
            "20s",
            "-timeout_error",
        ])
        .arg(server.to_string())
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .status()
        .await
        .expect("sipp runs (apt-get install sip-tester)");
    assert!(
        status.success(),
        "sipp over {transport} reported failed calls: {status}"
    );
    assert_eq!(app.await.expect("app task"), 3);
}

#[tokio::test]
async fn sipp_uac_calls_complete_over_udp() {
    sipp_uac_calls_complete("u1").await;
}

#[tokio::test]
async fn sipp_uac_calls_complete_over_tcp() {
    sipp_uac_calls_complete("t1").await;
}

fn dial(to_addr: SocketAddr, protocol: Protocol) -> Dial {
    Dial {
        target: format!("sip:service@{to_addr}"),
        to_addr,
        protocol,
        from: "<sip:conf@127.0.0.1>".into(),
        to: None,
        headers: vec![],
        body: Some(sdp()),
        call: None,
        call_id: None,
        auth: None,
    }
}

/// SIPp's built-in callee (180, 200, waits for our BYE) answering a call we place over
/// `protocol` (SIPp's `-t u1` or `t1`).
async fn dial_out_to_sipp_uas(protocol: Protocol) {
    let (handle, mut events, _server) = start().await;
    let port = {
        let probe = UdpSocket::bind("127.0.0.1:0").await.expect("bind");
        probe.local_addr().expect("addr").port()
    };
    let sipp_transport = match protocol {
        Protocol::Udp => "u1",
        Protocol::Tcp => "t1",
    };
    let mut sipp = tokio::process::Command::new("sipp")
        .args([
            "-sn",
            "uas",
            "-i",
            "127.0.0.1",
            "-p",
            &port.to_string(),
            "-m",
            "1",
            "-t",
            sipp_transport,
        ])
        .args(["-nostdin", "-timeout", "20s", "-timeout_error"])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("sipp runs (apt-get install sip-tester)");
    tokio::time::sleep(Duration::from_millis(500)).await;
    let to_addr: SocketAddr = format!("127.0.0.1:{port}").parse().expect("addr");
    let call = handle
        .invite(dial(to_addr, protocol))
        .await
        .expect("invite");
    loop {
        match next_event(&mut events).await {
            Event::Progress { call: c, .. } => assert_eq!(c, call),
            Event::Answered { call: c, .. } => {
                assert_eq!(c, call);
                break;
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    handle.bye(call).await.expect("bye");
    assert_eq!(
        next_event(&mut events).await,
        Event::Terminated {
            call,
            reason: TerminationReason::ByeCompleted(200)
        }
    );
    let status = timeout(Duration::from_secs(20), sipp.wait())
        .await
        .expect("sipp ends")
        .expect("wait");
    assert!(
        status.success(),
        "sipp uas reported a failed call: {status}"
    );
}

#[tokio::test]
async fn dial_out_to_sipp_uas_over_udp() {
    dial_out_to_sipp_uas(Protocol::Udp).await;
}

#[tokio::test]
async fn dial_out_to_sipp_uas_over_tcp() {
    dial_out_to_sipp_uas(Protocol::Tcp).await;
}

/// A callee whose TCP port refuses: the call ends at once instead of ringing out Timer B.
#[tokio::test]
async fn a_tcp_dial_out_to_a_closed_port_ends_the_call() {
    let (handle, mut events, _server) = start().await;
    let to_addr = {
        let probe = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        probe.local_addr().expect("addr")
    };
    let call = handle
        .invite(dial(to_addr, Protocol::Tcp))
        .await
        .expect("invite");
    assert_eq!(
        next_event(&mut events).await,
        Event::Terminated {
            call,
            reason: TerminationReason::TransportClosed
        }
    );
}

/// A stalled application (nobody takes events) while a peer streams INVITEs over TCP: the
/// transport holds at most `MAX_PENDING` events and stops reading, so the peer's writes stall
/// instead of the server's memory growing; once the application reads again every INVITE
/// arrives, none lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_application_stops_tcp_input_at_the_event_bound_and_loses_nothing() {
    // 8 KiB each, so they overflow the kernel's socket buffers (some MB) soon after the
    // transport's own queues (some 6,000 messages).
    const INVITES: usize = 8_000;
    let lifted = chorus::sip::admission::Rate {
        rate: 1e9,
        burst: 1e9,
    };
    let mut config = config();
    config.limits = chorus::sip::admission::Limits {
        invite_per_source: lifted,
        invite_global: lifted,
        unacked_per_source: u32::MAX,
        unacked_global: u32::MAX,
        calls_per_source: u32::MAX,
        transactions_per_source: u32::MAX,
        transactions_global: u32::MAX,
        ..Default::default()
    };
    let addr = "127.0.0.1:0".parse().expect("addr");
    let tcp_limits = chorus::sip::connections::TcpLimits::default();
    let (_handle, mut events, server) = sip::spawn(addr, config, tcp_limits).await.expect("bind");
    let tcp = TcpStream::connect(server).await.expect("connect");
    let via = format!("TCP {}", tcp.local_addr().expect("addr"));
    let (mut read, mut write) = tcp.into_split();
    // Responses are read and dropped, so only the server's input can stall the writer.
    tokio::spawn(async move {
        let mut buf = vec![0u8; 65536];
        while read.read(&mut buf).await.is_ok_and(|n| n > 0) {}
    });
    let pad = format!("X-Pad: {}\r\nContact:", "p".repeat(8192));
    let writer = tokio::spawn(async move {
        for n in 0..INVITES {
            let invite = request("INVITE", &format!("z9hG4bKs{n}"), "", 1, &via, SDP)
                .replace("transport-test", &format!("stall-{n}"))
                .replacen("Contact:", &pad, 1);
            write.write_all(invite.as_bytes()).await.expect("write");
        }
        write
    });
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(
        !writer.is_finished(),
        "the server stopped reading: the peer cannot push {INVITES} INVITEs"
    );
    let mut invites = 0;
    while invites < INVITES {
        match timeout(Duration::from_secs(30), events.recv()).await {
            Ok(Some(Event::Invite { .. })) => invites += 1,
            Ok(Some(_)) => {}
            other => panic!("after {invites} INVITEs: {other:?}"),
        }
    }
    assert!(writer.await.is_ok());
}
