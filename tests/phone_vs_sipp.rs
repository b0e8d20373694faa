//! The test phone against an independent peer: a SIPp UAS (fixtures/sipp/uas_standin.xml)
//! that echoes RTP. The phone must get answered, hear its own tone back, key DTMF, hold,
//! and hang up, so failures elsewhere can be pinned on the server rather than the phone.

mod support;

use std::net::{SocketAddr, UdpSocket};
use std::process::{Child, Command, Stdio};
use std::time::Duration;
use support::{DialOpts, Direction, Dtmf, Phone};

/// A SIPp UAS on free loopback ports, killed on drop.
struct Uas {
    child: Child,
    sip: SocketAddr,
}

impl Uas {
    fn start() -> Uas {
        let sip = free_port();
        let media = free_port();
        let child = Command::new("sipp")
            .args(["-sf", "fixtures/sipp/uas_standin.xml", "-i", "127.0.0.1", "-mi", "127.0.0.1"])
            .args(["-p", &sip.port().to_string(), "-mp", &media.port().to_string()])
            .args(["-rtp_echo", "-nostdin", "-timeout", "60s"])
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

fn free_port() -> SocketAddr {
    UdpSocket::bind("127.0.0.1:0").unwrap().local_addr().unwrap()
}

#[tokio::test]
async fn phone_hears_its_tone_echoed_and_keys_dtmf() {
    let uas = Uas::start();
    let opts = DialOpts { pin: Some("12#".into()), pin_dtmf: Dtmf::Info, ..DialOpts::default() };
    let mut phone = Phone::dial(uas.sip, "1000", opts).await.expect("answered");
    assert_eq!(phone.answer().status(), Some(200));

    phone.send_tone(697.0, Duration::from_millis(600)).await;
    assert!(phone.hear_level(697.0, Duration::from_millis(300)) > -20.0);
    assert!(phone.hear_level(1209.0, Duration::from_millis(300)) < -40.0);

    phone.send_dtmf_rfc4733('5').await.expect("telephone-event negotiated");
    assert_eq!(phone.send_info_dtmf('#').await.unwrap(), 200);

    assert_eq!(phone.hold().await.unwrap(), Direction::SendRecv);
    assert_eq!(phone.hangup().await.unwrap(), 200);
}
