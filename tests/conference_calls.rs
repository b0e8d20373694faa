//! Phones dial the real server over loopback and listen: each hears the others and not
//! itself, across codecs and transports; hold, hang-ups from either side, RTP timeout,
//! late offer and codec rejection behave as a phone user expects.

mod support;

use std::time::Duration;

use chorus::config::{CodecName, Config};
use chorus::media::codec::CodecKind;
use chorus::server::Running;
use support::{CallError, DialOpts, Direction, Phone, Transport};

/// A talker's tone through the mixer is well above this.
const HEARD_DB: f64 = -30.0;
/// A phone's own tone coming back must stay far below it.
const SILENT_DB: f64 = -50.0;
const SECOND: Duration = Duration::from_secs(1);

async fn server(edit: impl FnOnce(&mut Config)) -> Running {
    let mut config = support::server_config();
    edit(&mut config);
    chorus::server::start(config).await.expect("server starts")
}

fn opts(codec: CodecKind) -> DialOpts {
    DialOpts {
        codecs: vec![codec],
        ..DialOpts::default()
    }
}

/// `listener` hears `freq` over the last second.
fn hears(listener: &Phone, freq: f64) -> bool {
    listener.hear_level(freq, SECOND) > HEARD_DB
}

/// `listener` hears nothing of `freq` over the last second.
fn silent(listener: &Phone, freq: f64) -> bool {
    listener.hear_level(freq, SECOND) < SILENT_DB
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_callers_hear_each_other_and_not_themselves() {
    let srv = server(|_| {}).await;
    let mut a = Phone::dial(srv.sip, "7001", DialOpts::default())
        .await
        .unwrap();
    let mut b = Phone::dial(srv.sip, "7001", DialOpts::default())
        .await
        .unwrap();
    tokio::join!(
        a.send_tone(697.0, 2 * SECOND),
        b.send_tone(1209.0, 2 * SECOND)
    );
    assert!(hears(&a, 1209.0), "A hears B");
    assert!(hears(&b, 697.0), "B hears A");
    assert!(silent(&a, 697.0), "A does not hear itself");
    assert!(silent(&b, 1209.0), "B does not hear itself");
    assert_eq!(a.hangup().await.unwrap(), 200);
    assert_eq!(b.hangup().await.unwrap(), 200);
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn g711_g722_and_opus_callers_hear_each_other() {
    let srv = server(|_| {}).await;
    let a = Phone::dial(srv.sip, "7002", opts(CodecKind::Pcmu))
        .await
        .unwrap();
    let b = Phone::dial(srv.sip, "7002", opts(CodecKind::G722))
        .await
        .unwrap();
    let c = Phone::dial(srv.sip, "7002", opts(CodecKind::Opus))
        .await
        .unwrap();
    for (p, codec) in [
        (&a, CodecKind::Pcmu),
        (&b, CodecKind::G722),
        (&c, CodecKind::Opus),
    ] {
        assert_eq!(p.session().unwrap().codec, codec);
    }
    let (fa, fb, fc) = (697.0, 1209.0, 1477.0);
    tokio::join!(
        a.send_tone(fa, 2 * SECOND),
        b.send_tone(fb, 2 * SECOND),
        c.send_tone(fc, 2 * SECOND)
    );
    assert!(hears(&a, fb) && hears(&a, fc), "G.711 hears G.722 and Opus");
    assert!(hears(&b, fa) && hears(&b, fc), "G.722 hears G.711 and Opus");
    assert!(hears(&c, fa) && hears(&c, fb), "Opus hears G.711 and G.722");
    assert!(silent(&a, fa) && silent(&b, fb) && silent(&c, fc));
    srv.stop().await;
}

/// `[rtp] opus_rate = 16000`: Opus legs decode and code 16 kHz PCM; the phones, which
/// code and play 48 kHz, hear each other and a G.711 caller, and not themselves.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn opus_callers_on_16_khz_legs_hear_each_other_and_a_g711_caller() {
    let srv = server(|c| c.rtp.opus_rate = 16000).await;
    let mut phones = Vec::new();
    for codec in [CodecKind::Opus, CodecKind::Opus, CodecKind::Pcmu] {
        phones.push(Phone::dial(srv.sip, "7009", opts(codec)).await.unwrap());
    }
    let tones = [697.0, 1209.0, 1477.0];
    let [a, b, c] = &phones[..] else {
        unreachable!()
    };
    tokio::join!(
        a.send_tone(tones[0], 2 * SECOND),
        b.send_tone(tones[1], 2 * SECOND),
        c.send_tone(tones[2], 2 * SECOND)
    );
    for (i, p) in phones.iter().enumerate() {
        for (j, &freq) in tones.iter().enumerate() {
            let heard = if i == j {
                silent(p, freq)
            } else {
                hears(p, freq)
            };
            assert!(heard, "phone {i}, the tone of phone {j}");
        }
    }
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tcp_and_late_offer_callers_talk() {
    let srv = server(|_| {}).await;
    let tcp = DialOpts {
        transport: Transport::Tcp,
        ..DialOpts::default()
    };
    let late = DialOpts {
        late_offer: true,
        ..DialOpts::default()
    };
    let mut a = Phone::dial(srv.sip, "7003", tcp).await.unwrap();
    let mut b = Phone::dial(srv.sip, "7003", late).await.unwrap();
    tokio::join!(
        a.send_tone(697.0, 2 * SECOND),
        b.send_tone(1209.0, 2 * SECOND)
    );
    assert!(hears(&a, 1209.0), "TCP caller hears the late-offer caller");
    assert!(hears(&b, 697.0), "late-offer caller hears the TCP caller");
    assert_eq!(a.hangup().await.unwrap(), 200);
    assert_eq!(b.hangup().await.unwrap(), 200);
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_held_caller_is_not_heard_until_resumed() {
    let srv = server(|_| {}).await;
    let mut a = Phone::dial(srv.sip, "7004", DialOpts::default())
        .await
        .unwrap();
    let b = Phone::dial(srv.sip, "7004", DialOpts::default())
        .await
        .unwrap();
    a.send_tone(697.0, SECOND + SECOND / 2).await;
    assert!(hears(&b, 697.0), "B hears A before hold");
    assert_eq!(a.hold().await.unwrap(), Direction::RecvOnly);
    a.send_tone(697.0, SECOND + SECOND / 2).await;
    assert!(silent(&b, 697.0), "B does not hear A on hold");
    assert_eq!(a.unhold().await.unwrap(), Direction::SendRecv);
    a.send_tone(697.0, SECOND + SECOND / 2).await;
    assert!(hears(&b, 697.0), "B hears A again after resume");
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_server_hangs_up_on_silence_and_on_shutdown() {
    let srv = server(|c| c.rtp.timeout_secs = 1).await;
    let dead = Phone::dial(srv.sip, "7005", DialOpts::default())
        .await
        .unwrap();
    let alive = Phone::dial(srv.sip, "7005", DialOpts::default())
        .await
        .unwrap();
    dead.stop_media();
    assert!(dead.wait_bye(4 * SECOND).await, "RTP timeout sends BYE");
    assert!(
        !alive.wait_bye(SECOND).await,
        "a caller still sending stays"
    );
    srv.stop().await;
    assert!(alive.wait_bye(SECOND).await, "shutdown hangs up every call");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_common_codec_is_rejected_with_488_and_a_warning() {
    let srv = server(|c| c.rtp.codecs = vec![CodecName::Pcma]).await;
    let err = Phone::dial(srv.sip, "7006", opts(CodecKind::Pcmu))
        .await
        .err()
        .expect("the call is rejected");
    let CallError::Rejected(response) = err else {
        panic!("expected a rejection, got {err:?}");
    };
    assert_eq!(response.status(), Some(488));
    let warning = response.header("Warning").expect("a Warning header");
    assert!(warning.starts_with("305 "), "{warning}");
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_number_is_404_without_adhoc_conferences() {
    let srv = server(|c| c.conferences.adhoc = false).await;
    let err = Phone::dial(srv.sip, "7007", DialOpts::default())
        .await
        .err();
    assert_eq!(err.and_then(|e| e.status()), Some(404));
    srv.stop().await;
}
