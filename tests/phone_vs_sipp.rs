//! The test phone against an independent peer: SIPp UAS scenarios from fixtures/sipp. The
//! phone must get answered, hear its own tone echoed, key DTMF, hold, hang up, be rejected,
//! cancel and be hung up on, so failures elsewhere can be pinned on the server, not the phone.

mod support;

use std::net::{SocketAddr, TcpListener, UdpSocket};
use std::process::{Child, Command, Stdio};
use std::time::Duration;
use support::{CallError, DialOpts, Direction, Dtmf, Phone, Transport};

/// A SIPp UAS running one scenario on free loopback ports, killed on drop.
struct Uas {
    child: Child,
    sip: SocketAddr,
}

impl Uas {
    fn start(scenario: &str, transport: Transport) -> Uas {
        let sip = match transport {
            Transport::Udp => UdpSocket::bind("127.0.0.1:0")
                .unwrap()
                .local_addr()
                .unwrap(),
            Transport::Tcp => TcpListener::bind("127.0.0.1:0")
                .unwrap()
                .local_addr()
                .unwrap(),
        };
        let media = UdpSocket::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        let mode = if transport == Transport::Tcp {
            "t1"
        } else {
            "u1"
        };
        let child = Command::new("sipp")
            .args(["-sf", &format!("fixtures/sipp/{scenario}"), "-t", mode])
            .args([
                "-i",
                "127.0.0.1",
                "-mi",
                "127.0.0.1",
                "-p",
                &sip.port().to_string(),
            ])
            .args([
                "-mp",
                &media.port().to_string(),
                "-rtp_echo",
                "-nostdin",
                "-timeout",
                "60s",
            ])
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("sipp not found: bash scripts/install-deps --test");
        std::thread::sleep(Duration::from_millis(300));
        Uas { child, sip }
    }
}

impl Drop for Uas {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test]
async fn phone_hears_its_tone_echoed_and_keys_dtmf() {
    let uas = Uas::start("uas_standin.xml", Transport::Udp);
    let opts = DialOpts {
        pin: Some("12#".into()),
        pin_dtmf: Dtmf::Info,
        ..DialOpts::default()
    };
    let mut phone = Phone::dial(uas.sip, "1000", opts).await.expect("answered");
    assert_eq!(phone.answer().status(), Some(200));

    phone.send_tone(697.0, Duration::from_millis(600)).await;
    assert!(phone.hear_level(697.0, Duration::from_millis(300)) > -20.0);
    assert!(phone.hear_level(1209.0, Duration::from_millis(300)) < -40.0);

    phone
        .send_dtmf_rfc4733('5')
        .await
        .expect("telephone-event negotiated");
    assert_eq!(phone.send_info_dtmf('#').await.unwrap(), 200);

    // The stand-in answers every offer with plain sendrecv SDP.
    assert_eq!(phone.hold().await.unwrap(), Direction::SendRecv);
    assert_eq!(phone.hangup().await.unwrap(), 200);
}

#[tokio::test]
async fn late_offer_over_tcp_gets_media_both_ways() {
    let uas = Uas::start("uas_standin.xml", Transport::Tcp);
    let opts = DialOpts {
        transport: Transport::Tcp,
        late_offer: true,
        pin: Some("4#".into()),
        ..DialOpts::default()
    };
    let mut phone = Phone::dial(uas.sip, "1001", opts).await.expect("answered");
    phone.send_tone(1209.0, Duration::from_millis(600)).await;
    assert!(
        phone
            .wait_hear(
                1209.0,
                -20.0,
                Duration::from_millis(300),
                Duration::from_secs(1)
            )
            .await
    );
    assert_eq!(phone.hangup().await.unwrap(), 200);
}

#[tokio::test]
async fn rejection_reports_status_and_warning() {
    let uas = Uas::start("uas_reject.xml", Transport::Udp);
    match Phone::dial(uas.sip, "1000", DialOpts::default()).await {
        Err(CallError::Rejected(response)) => {
            assert_eq!(response.status(), Some(488));
            assert!(response.header("Warning").unwrap().starts_with("304 "));
        }
        Err(other) => panic!("expected a 488, got {other}"),
        Ok(_) => panic!("expected a 488, the call was answered"),
    }
}

#[tokio::test]
async fn cancel_while_ringing_ends_with_487() {
    let uas = Uas::start("uas_ring_cancel.xml", Transport::Udp);
    let mut calling = Phone::call(uas.sip, "1000", DialOpts::default())
        .await
        .unwrap();
    assert_eq!(
        calling
            .wait_provisional(Duration::from_secs(2))
            .await
            .unwrap(),
        180
    );
    assert_eq!(calling.cancel().await.unwrap(), 487);
}

#[tokio::test]
async fn phone_answers_options_and_server_bye() {
    let uas = Uas::start("uas_hangup.xml", Transport::Udp);
    let phone = Phone::dial(uas.sip, "1000", DialOpts::default())
        .await
        .expect("answered");
    assert!(phone.wait_bye(Duration::from_secs(5)).await);
    let methods: Vec<String> = phone
        .server_requests()
        .iter()
        .filter_map(|r| r.method().map(str::to_string))
        .collect();
    assert_eq!(methods, ["OPTIONS", "BYE"]);
}

#[tokio::test]
async fn concurrent_phones_each_hear_only_their_own_tone() {
    let uas = Uas::start("uas_standin.xml", Transport::Udp);
    let freqs = [697.0, 1209.0, 1633.0];
    let dial = || Phone::dial(uas.sip, "1000", DialOpts::default());
    let (a, b, c) = tokio::join!(dial(), dial(), dial());
    let mut phones = [a.unwrap(), b.unwrap(), c.unwrap()];
    let talk = Duration::from_millis(600);
    tokio::join!(
        phones[0].send_tone(freqs[0], talk),
        phones[1].send_tone(freqs[1], talk),
        phones[2].send_tone(freqs[2], talk)
    );
    for (i, phone) in phones.iter().enumerate() {
        for (j, &freq) in freqs.iter().enumerate() {
            let level = phone.hear_level(freq, Duration::from_millis(300));
            assert_eq!(
                level > -20.0,
                i == j,
                "phone {i} hears {freq} Hz at {level:.1} dB"
            );
        }
    }
    for phone in &mut phones {
        assert_eq!(phone.hangup().await.unwrap(), 200);
    }
}
