//! PJSUA2 (PJSIP 2.15), an independent SIP phone stack, places two calls into one conference
//! through tests/peers/pjsua_calls.py: each phone plays its own tone and records what it
//! hears; each must hear the other's tone and not its own, with G.711 and with G.722.

mod support;

use chorus::config::PortRange;
use support::pjsua::pjsua_call;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pjsua_phones_hear_each_other_not_themselves() {
    let mut config = support::server_config();
    config.rtp.ports = PortRange(48000..=48999);
    let srv = chorus::server::start(config).await.unwrap();
    for (number, codec, rate) in [("7200", "PCMU/8000", "8k"), ("7201", "G722/16000", "16k")] {
        let sip = srv.sip;
        let heard = tokio::task::spawn_blocking(move || pjsua_call(sip, number, codec, rate))
            .await
            .unwrap();
        assert_eq!(
            heard["answered"],
            serde_json::json!([true, true]),
            "{codec}: {heard}"
        );
        let level = |phone: &str, freq: &str| heard[phone][freq].as_f64().unwrap();
        assert!(level("a", "1209") > -30.0, "{codec}: A hears B: {heard}");
        assert!(level("b", "697") > -30.0, "{codec}: B hears A: {heard}");
        assert!(
            level("a", "697") < -50.0,
            "{codec}: A does not hear itself: {heard}"
        );
        assert!(
            level("b", "1209") < -50.0,
            "{codec}: B does not hear itself: {heard}"
        );
    }
    srv.stop().await;
}
