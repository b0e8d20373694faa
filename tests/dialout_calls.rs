//! Dial-out over loopback (issue 9): a PJSUA2 phone registers as a device with digest
//! auth, the API's `dial` action calls it into a conference where another PJSUA2 call
//! plays a tone; the phone hears the room and the room hears the phone. Bad `dial`
//! arguments get Kazoo errors naming the field. A callflow number rings a ring group of
//! two registered phones: the first to answer is bridged to the caller, the other is
//! cancelled. A callflow caller hears ringback, or the callee's own early media. A
//! device's call forward shows the caller's number and is bridged only once its callee
//! presses 1 (hung up after 10 s without).

mod support;

use std::net::{Ipv4Addr, SocketAddr};
use std::process::Stdio;
use std::time::Duration;

use chorus::config::{DEFAULT_ACCOUNT, PortRange};
use chorus::media::codec::CodecKind;
use serde_json::{Value, json};
use support::dns::{Data, DnsServer};
use support::media::{Media, Session};
use support::pjsua::{driver, ready, result_of};

const TOKEN: &str = "test-token";

/// PUTs a document and returns it as created (201).
async fn create(base: std::net::SocketAddr, path: &str, body: Value) -> Value {
    let (status, created) = api(base, "PUT", path, body).await;
    assert_eq!(status, 201, "{created}");
    created
}

async fn api(base: std::net::SocketAddr, method: &str, path: &str, body: Value) -> (u16, Value) {
    let url = format!("http://{base}/v2/accounts/{DEFAULT_ACCOUNT}{path}");
    let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
    let r = reqwest::Client::new()
        .request(method, url)
        .header("X-Auth-Token", TOKEN)
        .timeout(Duration::from_secs(60))
        .body(json!({ "data": body }).to_string())
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    (
        status,
        serde_json::from_slice(&r.bytes().await.unwrap()).unwrap(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_registered_pjsua_phone_is_dialed_into_the_room_and_hears_it() {
    let mut config = support::server_config();
    config.rtp.ports = PortRange(47000..=47999);
    let srv = chorus::server::start(config).await.unwrap();
    let device = json!({"name": "desk", "sip": {"username": "alice", "password": "wonderland"}});
    let (_, created) = api(srv.api, "PUT", "/devices", device).await;
    let device_id = created["data"]["id"].as_str().unwrap().to_owned();

    let sip = srv.sip.to_string();
    let args = ["--server", &sip, "--number", "7300"];
    let args = [&args[..], &["--user", "alice", "--password", "wonderland"]].concat();
    let (_script, mut lines) = driver("pjsua_dialed.py", &args, ["--tone-room", "--tone-phone"]);
    assert!(
        ready(&mut lines, Duration::from_secs(30)).await,
        "the phone registered and the room call is up"
    );

    // The room is the ad-hoc conference the other call reached by dialing 7300.
    let dial = json!({"action": "dial", "data": {"endpoints": [device_id], "timeout": 10}});
    let (status, answer) = api(srv.api, "PUT", "/conferences/7300", dial).await;
    assert_eq!(status, 202, "{answer}");
    let response = &answer["data"]["endpoint_responses"][0];
    assert_eq!(response["status"], "success", "{answer}");
    assert_eq!(response["endpoint_id"], device_id.as_str());
    assert!(response["call_id"].as_str().is_some_and(|c| !c.is_empty()));

    let heard = result_of(&mut lines, Duration::from_secs(30)).await;
    eprintln!("tone levels heard (dB): {heard}");
    assert_eq!(heard["registered"], true, "{heard}");
    assert_eq!(heard["answered"], true, "{heard}");
    let level = |who: &str, freq: &str| heard[who][freq].as_f64().unwrap();
    assert!(
        level("phone", "697") > -30.0,
        "the phone hears the room: {heard}"
    );
    assert!(
        level("room", "1209") > -30.0,
        "the room hears the phone: {heard}"
    );
    assert!(level("phone", "1209") < -50.0, "not itself: {heard}");
    assert!(level("room", "697") < -50.0, "not itself: {heard}");
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dial_errors_name_the_endpoint() {
    let srv = chorus::server::start(support::server_config())
        .await
        .unwrap();
    let user = json!({"first_name": "No", "last_name": "Devices"});
    let (_, created) = api(srv.api, "PUT", "/users", user).await;
    let user_id = created["data"]["id"].as_str().unwrap().to_owned();
    let missing = "0123456789abcdef0123456789abcdef";
    let cases = [
        (json!([missing]), "data.endpoints.0", "not_found"),
        (
            json!(["sip:a@127.0.0.1", user_id]),
            "data.endpoints.1",
            "minItems",
        ),
        (
            json!(["sip:a@127.0.0.1;transport=tls"]),
            "data.endpoints.0",
            "format",
        ),
        (json!(["bob"]), "data.endpoints.0", "enum"),
    ];
    for (endpoints, field, rule) in cases {
        let dial = json!({"action": "dial", "data": {"endpoints": endpoints}});
        let (status, answer) = api(srv.api, "PUT", "/conferences/room", dial).await;
        assert_eq!(status, 400, "{answer}");
        assert!(
            answer["data"][field][rule].is_object(),
            "{field} {rule}: {answer}"
        );
    }
    // A device that is not registered is reported, not rung.
    let device = json!({"name": "off", "sip": {"username": "bob", "password": "builder"}});
    let (_, created) = api(srv.api, "PUT", "/devices", device).await;
    let device_id = created["data"]["id"].as_str().unwrap().to_owned();
    let dial = json!({"action": "dial", "data": {"endpoints": [device_id]}});
    let (status, answer) = api(srv.api, "PUT", "/conferences/room", dial).await;
    assert_eq!(status, 400, "nothing to ring at all: {answer}");
    assert!(
        answer["data"]["data.endpoints"]["minItems"].is_object(),
        "{answer}"
    );
    srv.stop().await;
}

/// Whether SIPp ran its scenario to the end (it exits once the call is over).
async fn sipp_passed(mut sipp: std::process::Child) -> bool {
    tokio::task::spawn_blocking(move || sipp.wait().unwrap().success())
        .await
        .unwrap()
}

/// A SIPp UAS on a free loopback port, answering one call with `scenario` over UDP.
fn sipp_uas(scenario: &str, media_port: u16) -> (u16, std::process::Child) {
    sipp_uas_over("u1", scenario, media_port, &[])
}

/// The same over SIPp's `transport` (`u1` UDP, `t1` TCP), with `extra` arguments.
fn sipp_uas_over(
    transport: &str,
    scenario: &str,
    media_port: u16,
    extra: &[&str],
) -> (u16, std::process::Child) {
    let port = free_tcp_port();
    let root = env!("CARGO_MANIFEST_DIR");
    let dir = std::env::temp_dir().join(format!("chorus-uas-{}", support::unique_token()));
    std::fs::create_dir_all(&dir).unwrap();
    // `rtp_stream` paths are relative to where sipp runs.
    std::os::unix::fs::symlink(format!("{root}/fixtures"), dir.join("fixtures")).unwrap();
    let child = std::process::Command::new("sipp")
        .current_dir(&dir)
        .arg("-sf")
        .arg(format!("{root}/fixtures/sipp/{scenario}"))
        .args(["-i", "127.0.0.1", "-p", &port.to_string(), "-m", "1"])
        .args(["-t", transport])
        .args(["-mi", "127.0.0.1", "-mp", &media_port.to_string()])
        .args(["-nostdin", "-timeout", "30s"])
        .args(extra)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("sipp runs (bash scripts/install-deps --test)");
    (port, child)
}

/// A port free for TCP (and, in practice, UDP) that nothing listens on.
fn free_tcp_port() -> u16 {
    let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    probe.local_addr().unwrap().port()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_number_fails_over_to_the_next_gateway_which_demands_digest_auth() {
    let mut config = support::server_config();
    config.rtp.ports = PortRange(46000..=46999);
    let srv = chorus::server::start(config).await.unwrap();
    let (failing, mut first) = sipp_uas("uas_unavailable.xml", 26100);
    let (trunk, mut second) = sipp_uas("uas_trunk_auth.xml", 26200);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let resource = json!({
        "name": "carrier",
        "rules": ["^\\+?(\\d{7,15})$"],
        "gateways": [
            {"server": "127.0.0.1", "port": failing},
            {"server": "127.0.0.1", "port": trunk, "prefix": "9",
             "username": "trunkuser", "password": "trunkpass"},
        ],
    });
    create(srv.api, "/resources", resource).await;

    let dial = json!({"action": "dial", "data": {"endpoints": ["+14155550000"]}});
    let (status, answer) = api(srv.api, "PUT", "/conferences/trunkroom", dial).await;
    assert_eq!(status, 202, "{answer}");
    let response = &answer["data"]["endpoint_responses"][0];
    assert_eq!(response["status"], "success", "{answer}");
    assert_eq!(response["endpoint_id"], "+14155550000");
    let (_, participants) = api(
        srv.api,
        "GET",
        "/conferences/trunkroom/participants",
        json!({}),
    )
    .await;
    assert_eq!(
        participants["data"].as_array().map(Vec::len),
        Some(1),
        "{participants}"
    );

    // Hanging up the trunk's leg ends both SIPp scenarios as passed.
    let kick = json!({"action": "kick"});
    api(srv.api, "PUT", "/conferences/trunkroom/participants", kick).await;
    let passed = tokio::task::spawn_blocking(move || {
        [
            first.wait().unwrap().success(),
            second.wait().unwrap().success(),
        ]
    })
    .await
    .unwrap();
    assert_eq!(
        passed,
        [true, true],
        "503 gateway, then the trunk with auth"
    );
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_callflow_number_rings_a_ring_group_and_bridges_the_first_phone_to_answer() {
    let mut config = support::server_config();
    config.rtp.ports = PortRange(45000..=45999);
    let srv = chorus::server::start(config).await.unwrap();
    let mut ids = Vec::new();
    for (user, password) in [("alice", "wonderland"), ("bob", "builder")] {
        let device = json!({"name": user, "sip": {"username": user, "password": password}});
        let created = create(srv.api, "/devices", device).await;
        ids.push(created["data"]["id"].as_str().unwrap().to_owned());
    }
    let endpoints: Vec<Value> = ids
        .iter()
        .map(|id| json!({"id": id, "endpoint_type": "device"}))
        .collect();
    let callflow = json!({
        "numbers": ["6000"],
        "flow": {"module": "ring_group", "data": {"endpoints": endpoints, "timeout": 20}},
    });
    create(srv.api, "/callflows", callflow).await;

    let sip = srv.sip.to_string();
    let args = ["--server", &sip, "--number", "6000"];
    let args = [
        &args[..],
        &["--answer", "alice:wonderland", "--ring", "bob:builder"],
    ]
    .concat();
    let tones = ["--tone-caller", "--tone-phone"];
    let (_script, mut lines) = driver("pjsua_ring_group.py", &args, tones);
    let heard = result_of(&mut lines, Duration::from_secs(60)).await;
    eprintln!("ring group call (levels in dB): {heard}");
    assert_eq!(heard["registered"], true, "{heard}");
    assert_eq!(heard["answered"], true, "{heard}");
    assert_eq!(heard["rang"], true, "both phones rang: {heard}");
    assert_eq!(
        heard["ring_status"], 487,
        "the other phone is cancelled: {heard}"
    );
    let level = |who: &str, freq: &str| heard[who][freq].as_f64().unwrap();
    assert!(
        level("caller", "1209") > -30.0,
        "the caller hears the phone: {heard}"
    );
    assert!(
        level("phone", "697") > -30.0,
        "the phone hears the caller: {heard}"
    );
    assert!(level("caller", "697") < -50.0, "not itself: {heard}");
    assert!(level("phone", "1209") < -50.0, "not itself: {heard}");
    assert_eq!(
        heard["phone_hung_up"], true,
        "the bridge ends with the caller: {heard}"
    );
    srv.stop().await;
}

/// Dials +14155550000 into `room` through `gateways` (the carrier's list) on a server with
/// RTP ports `rtp` and name servers `dns` (none: the system's): the number must join, and
/// `trunk` (a SIPp UAS) end as passed once the room kicks its leg.
async fn a_trunk_takes_the_number(
    (rtp, dns): (PortRange, &[SocketAddr]),
    gateways: Value,
    trunk: std::process::Child,
    room: &str,
) -> bool {
    let mut config = support::server_config();
    config.rtp.ports = rtp;
    config.sip.dns_servers = dns.to_vec();
    let srv = chorus::server::start(config).await.unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let resource = json!({"name": "carrier", "rules": ["^\\+?(\\d{7,15})$"], "gateways": gateways});
    create(srv.api, "/resources", resource).await;

    let dial = json!({"action": "dial", "data": {"endpoints": ["+14155550000"]}});
    let (status, answer) = api(srv.api, "PUT", &format!("/conferences/{room}"), dial).await;
    assert_eq!(status, 202, "{answer}");
    let response = &answer["data"]["endpoint_responses"][0];
    assert_eq!(response["status"], "success", "{answer}");

    let kick = json!({"action": "kick"});
    api(
        srv.api,
        "PUT",
        &format!("/conferences/{room}/participants"),
        kick,
    )
    .await;
    let passed = sipp_passed(trunk).await;
    srv.stop().await;
    passed
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gateway_named_localhost_is_resolved_after_one_that_does_not_resolve() {
    let (trunk, sipp) = sipp_uas("uas_trunk_auth.xml", 26300);
    let gateways = json!([
        // RFC 6761: `.invalid` never resolves; the next gateway is tried.
        {"server": "gateway.invalid", "port": 5060},
        {"server": "localhost", "port": trunk, "prefix": "9",
         "username": "trunkuser", "password": "trunkpass"},
    ]);
    let rtp = PortRange(47000..=47999);
    let passed = a_trunk_takes_the_number((rtp, &[]), gateways, sipp, "namedroom").await;
    assert!(passed, "the trunk named localhost took the call");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gateway_named_by_srv_rings_its_second_target_after_the_first_answers_503() {
    let (failing, unavailable) = sipp_uas("uas_unavailable.xml", 26800);
    let (trunk, sipp) = sipp_uas("uas_trunk_auth.xml", 26900);
    // The carrier publishes SRV only: the lower priority first, then the one that answers.
    let dns = DnsServer::start(vec![
        (
            "_sip._udp.trunk.test",
            Data::Srv(20, 0, trunk, "trunk.test."),
        ),
        (
            "_sip._udp.trunk.test",
            Data::Srv(10, 0, failing, "trunk.test."),
        ),
        ("trunk.test", Data::A(Ipv4Addr::LOCALHOST)),
    ])
    .await;
    let gateways = json!([{"server": "trunk.test", "prefix": "9",
                           "username": "trunkuser", "password": "trunkpass"}]);
    let rtp = PortRange(support::free_port_range(32));
    let passed = a_trunk_takes_the_number((rtp, &[dns.addr]), gateways, sipp, "srvroom").await;
    assert!(
        sipp_passed(unavailable).await,
        "the priority 10 target got the INVITE and answered 503"
    );
    assert!(passed, "the priority 20 target took the call, with auth");
    assert_eq!(
        dns.asked()[0],
        "SRV _sip._udp.trunk.test",
        "{:?}",
        dns.asked()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gateway_name_without_srv_records_is_rung_at_its_address_on_5060() {
    let dns = DnsServer::start(vec![("pbx.test", Data::A(Ipv4Addr::LOCALHOST))]).await;
    // The gateway the name falls back to: the INVITE is all this test needs to see.
    let gateway = tokio::net::UdpSocket::bind("127.0.0.1:5060")
        .await
        .expect("127.0.0.1:5060 free for this test");
    let mut config = support::server_config();
    config.rtp.ports = PortRange(support::free_port_range(32));
    config.sip.dns_servers = vec![dns.addr];
    let srv = chorus::server::start(config).await.unwrap();
    let resource = json!({"name": "pbx", "rules": ["^\\+?(\\d{7,15})$"],
                          "gateways": [{"server": "pbx.test"}]});
    create(srv.api, "/resources", resource).await;
    let dial = json!({"action": "dial", "data": {"endpoints": ["+14155550000"], "timeout": 3}});
    let api_addr = srv.api;
    let dialed =
        tokio::spawn(async move { api(api_addr, "PUT", "/conferences/pbxroom", dial).await });

    let mut buf = vec![0; 4096];
    let received = tokio::time::timeout(Duration::from_secs(10), gateway.recv_from(&mut buf));
    let (n, _) = received.await.expect("an INVITE at 5060").unwrap();
    let invite = String::from_utf8_lossy(&buf[..n]).into_owned();
    assert!(
        invite.starts_with("INVITE sip:14155550000@pbx.test SIP/2.0\r\n"),
        "{invite}"
    );
    assert_eq!(dns.asked(), ["SRV _sip._udp.pbx.test", "A pbx.test"]);
    let (status, answer) = dialed.await.unwrap();
    assert_eq!(status, 202, "{answer}");
    assert_eq!(
        answer["data"]["endpoint_responses"][0]["status"], "error",
        "nobody answers there: {answer}"
    );
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gateway_name_with_a_port_is_looked_up_by_address_only() {
    let (trunk, sipp) = sipp_uas("uas_trunk_auth.xml", 27000);
    let dns = DnsServer::start(vec![("pbx.test", Data::A(Ipv4Addr::LOCALHOST))]).await;
    let gateways = json!([{"server": "pbx.test", "port": trunk, "prefix": "9",
                           "username": "trunkuser", "password": "trunkpass"}]);
    let rtp = PortRange(support::free_port_range(32));
    let passed = a_trunk_takes_the_number((rtp, &[dns.addr]), gateways, sipp, "portroom").await;
    assert!(passed, "the trunk at the gateway's port took the call");
    assert!(
        dns.asked().iter().all(|q| !q.starts_with("SRV")),
        "an explicit port skips SRV: {:?}",
        dns.asked()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tcp_gateway_that_refuses_fails_over_to_a_tcp_trunk_with_digest_auth() {
    let refusing = free_tcp_port();
    let (trunk, sipp) = sipp_uas_over("t1", "uas_trunk_auth.xml", 26400, &[]);
    let gateways = json!([
        {"server": "127.0.0.1", "port": refusing, "transport": "tcp"},
        {"server": "localhost", "port": trunk, "prefix": "9", "transport": "tcp",
         "username": "trunkuser", "password": "trunkpass"},
    ]);
    let rtp = PortRange(44000..=44999);
    let passed = a_trunk_takes_the_number((rtp, &[]), gateways, sipp, "tcproom").await;
    assert!(
        passed,
        "the TCP trunk took the call, with auth, and saw our BYE"
    );
}

/// A callflow caller on `number`, which goes to a carrier whose gateway is a SIPp callee
/// running `scenario` (its own media on `media_port`), once the callee's 183 reached it.
async fn calling_a_carrier(
    scenario: &str,
    media_port: u16,
    number: &str,
) -> (
    chorus::server::Running,
    std::process::Child,
    support::phone::Calling,
) {
    let mut config = support::server_config();
    config.rtp.ports = PortRange(support::free_port_range(32));
    let srv = chorus::server::start(config).await.unwrap();
    let (callee, sipp) = sipp_uas(scenario, media_port);
    let resource = json!({"name": "carrier", "rules": ["^\\+?(\\d{7,15})$"],
                          "gateways": [{"server": "127.0.0.1", "port": callee}]});
    create(srv.api, "/resources", resource).await;
    let callflow = json!({"numbers": [number],
                          "flow": {"module": "resources", "data": {"to_did": "+14155550100"}}});
    create(srv.api, "/callflows", callflow).await;

    let opts = support::phone::DialOpts::default();
    let mut calling = support::phone::Phone::call(srv.sip, number, opts)
        .await
        .unwrap();
    let mut status = 100;
    while status == 100 {
        status = calling
            .wait_provisional(Duration::from_secs(5))
            .await
            .unwrap();
    }
    assert_eq!(status, 183, "early media once the callee rings");
    (srv, sipp, calling)
}

/// The louder of US ringback's two tones (440 + 480 Hz) over `window`.
fn ringback_level(heard: impl Fn(f64, Duration) -> f64, window: Duration) -> f64 {
    heard(440.0, window).max(heard(480.0, window))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_callflow_caller_hears_ringback_while_the_callee_rings_and_the_callee_once_it_answers() {
    // The callee rings for 4 s, then answers and plays 1209 Hz.
    let (srv, sipp, calling) = calling_a_carrier("uas_ring_answer.xml", 26500, "6100").await;
    // US ringback: 440 + 480 Hz, 2 s on (then 4 s off).
    let window = Duration::from_millis(500);
    let mut ringback = (-120.0, -120.0);
    for _ in 0..75 {
        tokio::time::sleep(Duration::from_millis(20)).await;
        ringback = (
            calling.hear_level(440.0, window),
            calling.hear_level(480.0, window),
        );
        if ringback.0 > -30.0 && ringback.1 > -30.0 {
            break;
        }
    }
    eprintln!(
        "ringback while ringing (dB): 440 Hz {:.1}, 480 Hz {:.1}",
        ringback.0, ringback.1
    );
    assert!(
        ringback.0 > -30.0 && ringback.1 > -30.0,
        "the caller hears ringback: {ringback:?}"
    );

    let mut phone = calling
        .answered()
        .await
        .expect("answered once the callee answers");
    // The ringback would be on again 6-8 s into the ring, 2-4 s after the answer.
    tokio::time::sleep(Duration::from_millis(3500)).await;
    let window = Duration::from_millis(2500);
    let (ring, callee_tone) = (
        ringback_level(|f, w| phone.hear_level(f, w), window),
        phone.hear_level(1209.0, window),
    );
    eprintln!("after the answer (dB): ringback {ring:.1}, the callee's 1209 Hz {callee_tone:.1}");
    assert!(ring < -50.0, "no ringback once answered: {ring}");
    assert!(
        callee_tone > -30.0,
        "the caller hears the callee: {callee_tone}"
    );
    phone.hangup().await.unwrap();
    assert!(sipp_passed(sipp).await, "the callee got our BYE");
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_callflow_caller_hears_the_callees_early_media_instead_of_ringback() {
    // The carrier answers 183 with SDP and plays 697 Hz for 4 s, then 200 with it on.
    let (srv, sipp, calling) = calling_a_carrier("uas_early_media.xml", 26800, "6300").await;
    let window = Duration::from_millis(500);
    for _ in 0..75 {
        if calling.hear_level(697.0, window) > -30.0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // US ringback would be on (440 + 480 Hz) for 2 s of any 6.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let window = Duration::from_millis(1500);
    let early = calling.hear_level(697.0, window);
    let ring = ringback_level(|f, w| calling.hear_level(f, w), window);
    eprintln!("before the answer (dB): the callee's 697 Hz {early:.1}, ringback {ring:.1}");
    assert!(
        early > -30.0,
        "the caller hears the callee's early media: {early}"
    );
    assert!(ring < -50.0, "and no ringback: {ring}");

    let mut phone = calling
        .answered()
        .await
        .expect("answered once the callee answers");
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let window = Duration::from_millis(1000);
    let after = phone.hear_level(697.0, window);
    let ring = ringback_level(|f, w| phone.hear_level(f, w), window);
    eprintln!("after the answer (dB): the callee's 697 Hz {after:.1}, ringback {ring:.1}");
    assert!(after > -30.0, "the callee is still heard: {after}");
    assert!(ring < -50.0, "no ringback: {ring}");
    phone.hangup().await.unwrap();
    assert!(sipp_passed(sipp).await, "the callee got our BYE");
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bridge_carries_audio_both_ways_between_a_wideband_caller_and_a_pcmu_callee() {
    let mut config = support::server_config();
    config.rtp.ports = PortRange(support::free_port_range(32));
    let srv = chorus::server::start(config).await.unwrap();
    for (number, codec, media_port) in [
        ("6201", CodecKind::G722, 26600),
        ("6202", CodecKind::Opus, 26700),
    ] {
        // The callee answers in PCMU and sends back whatever it hears.
        let (callee, sipp) = sipp_uas_over("u1", "uas_standin.xml", media_port, &["-rtp_echo"]);
        let resource = json!({"name": format!("echo{number}"), "rules": [format!("^{number}$")],
                              "gateways": [{"server": "127.0.0.1", "port": callee}]});
        create(srv.api, "/resources", resource).await;
        let callflow = json!({"numbers": [number], "flow": {"module": "resources", "data": {}}});
        create(srv.api, "/callflows", callflow).await;

        let opts = support::phone::DialOpts {
            codecs: vec![codec],
            ..Default::default()
        };
        let mut phone = support::phone::Phone::dial(srv.sip, number, opts)
            .await
            .unwrap();
        assert_eq!(phone.session().map(|s| s.codec), Some(codec));
        // The caller's tone reaches the PCMU callee and comes back from it: a bridge does
        // not play a caller to itself, so what it hears crossed both ways.
        phone.send_tone(697.0, Duration::from_secs(3)).await;
        let heard = phone.hear_level(697.0, Duration::from_millis(1500));
        eprintln!("{codec:?} caller through a PCMU callee: 697 Hz at {heard:.1} dB");
        assert!(
            heard > -30.0,
            "{codec:?}: the caller hears itself through the callee: {heard}"
        );
        phone.hangup().await.unwrap();
        assert!(sipp_passed(sipp).await, "{codec:?}: the callee got our BYE");
    }
    srv.stop().await;
}

/// A forwarded call ringing: the caller's call, the callee's media (this test's own, which
/// SIPp's answer points to), the SIPp callee, and the INVITE it got.
struct Forwarded {
    calling: support::phone::Calling,
    callee: Media,
    sipp: std::process::Child,
    invite: String,
}

/// Calls 6400 from +14155550199: a device forwarding to +14155550400 with
/// `require_keypress` and `keep_caller_id`, reached through a carrier whose gateway is a
/// SIPp callee that answers at once; the callee's media starts once its INVITE is in.
/// `sipp_media`: the SIPp callee's own (unused) media port.
async fn a_forwarded_call(
    api: std::net::SocketAddr,
    sip: std::net::SocketAddr,
    sipp_media: u16,
) -> Forwarded {
    let callee = Media::bind([127, 0, 0, 1].into()).await.unwrap();
    let log = std::env::temp_dir().join(format!("chorus-forward-{}.log", support::unique_token()));
    let rtp = callee.local.port().to_string();
    let trace = ["-key", "callee_rtp", &rtp, "-trace_msg", "-message_file"];
    let args = [&trace[..], &[log.to_str().unwrap()]].concat();
    let (gateway, sipp) = sipp_uas_over("u1", "uas_forward_answer.xml", sipp_media, &args);
    let resource = json!({"name": "carrier", "rules": ["^\\+?(\\d{7,15})$"],
                          "gateways": [{"server": "127.0.0.1", "port": gateway}]});
    create(api, "/resources", resource).await;
    let forward = json!({"enabled": true, "number": "+14155550400",
                         "require_keypress": true, "keep_caller_id": true});
    let device = json!({"name": "desk", "sip": {"username": "desk", "password": "deskpass"},
                        "call_forward": forward});
    let desk = create(api, "/devices", device).await;
    let callflow = json!({"numbers": ["6400"],
                          "flow": {"module": "device", "data": {"id": desk["data"]["id"]}}});
    create(api, "/callflows", callflow).await;

    let opts = support::phone::DialOpts {
        user: "+14155550199".into(),
        answer_timeout: Duration::from_secs(30),
        ..Default::default()
    };
    let calling = support::phone::Phone::call(sip, "6400", opts)
        .await
        .unwrap();
    let mut invite = String::new();
    for _ in 0..250 {
        let logged = std::fs::read_to_string(&log).unwrap_or_default();
        if let Some(at) = logged.find("INVITE sip:") {
            invite = logged[at..]
                .split("\n\n\n")
                .next()
                .unwrap_or_default()
                .to_string();
            if invite.contains("m=audio") {
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Our leg's RTP address: `c=IN IP4 <ip>`, `m=audio <port> ...`.
    let field = |prefix: &str, nth: usize| {
        let line = invite.lines().find(|l| l.starts_with(prefix));
        let value = line.and_then(|l| l.split_whitespace().nth(nth));
        value.unwrap_or_else(|| panic!("{prefix} in the INVITE: {invite}"))
    };
    let remote = format!("{}:{}", field("c=IN", 2), field("m=audio", 1));
    let _ = std::fs::remove_file(&log);
    callee.start(Session {
        remote: remote.parse().unwrap(),
        codec: CodecKind::Pcmu,
        pt: 0,
        event_pt: Some(101),
        event_clock: 8000,
    });
    Forwarded {
        calling,
        callee,
        sipp,
        invite,
    }
}

/// The loudness (dBFS, RMS) of what `media` received over the last `window`.
fn loudness(media: &Media, window: Duration) -> f64 {
    let now = std::time::Instant::now();
    let (_, pcm) = media.heard().between(now - window, now);
    let energy: f64 = pcm.iter().map(|s| f64::from(*s).powi(2)).sum();
    let rms = (energy / pcm.len().max(1) as f64).sqrt();
    20.0 * (rms / 32768.0).max(1e-6).log10()
}

/// Waits up to 8 s for `media` to hear something (the confirm prompt): its loudest level.
async fn hears_the_prompt(media: &Media) -> f64 {
    let mut loudest = -120.0f64;
    for _ in 0..400 {
        loudest = loudest.max(loudness(media, Duration::from_millis(300)));
        if loudest > -45.0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    loudest
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forwarded_callee_hears_the_confirm_prompt_and_is_bridged_once_it_presses_1() {
    let mut config = support::server_config();
    config.rtp.ports = PortRange(support::free_port_range(32));
    let srv = chorus::server::start(config).await.unwrap();
    let f = a_forwarded_call(srv.api, srv.sip, 27000).await;
    let from = f.invite.lines().find(|l| l.starts_with("From:"));
    assert!(
        from.is_some_and(|l| l.contains("sip:+14155550199@")),
        "keep_caller_id: the callee sees the caller's number: {from:?}"
    );
    let prompt = hears_the_prompt(&f.callee).await;
    eprintln!("the forwarded callee hears the confirm prompt at {prompt:.1} dBFS");
    assert!(prompt > -45.0, "\"Press 1 to accept the call.\": {prompt}");

    f.callee.dtmf(support::rtp::dtmf_event('1').unwrap()).await;
    let mut phone = f
        .calling
        .answered()
        .await
        .expect("answered once the callee pressed 1");
    let callee_tone = support::phone::tone(1209.0, Duration::from_secs(2), 8000);
    tokio::join!(
        phone.send_tone(697.0, Duration::from_secs(2)),
        f.callee.play(callee_tone)
    );
    let window = Duration::from_millis(1000);
    let caller_hears = phone.hear_level(1209.0, window);
    let now = std::time::Instant::now();
    let (rate, pcm) = f.callee.heard().between(now - window, now);
    let callee_hears = mixer::goertzel::level_db(&pcm, rate, 697.0);
    eprintln!(
        "bridged (dB): the caller hears 1209 Hz at {caller_hears:.1}, the callee 697 Hz at {callee_hears:.1}"
    );
    assert!(
        caller_hears > -30.0,
        "the caller hears the callee: {caller_hears}"
    );
    assert!(
        callee_hears > -30.0,
        "the callee hears the caller: {callee_hears}"
    );
    phone.hangup().await.unwrap();
    assert!(sipp_passed(f.sipp).await, "the callee got our BYE");
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forwarded_callee_that_presses_nothing_is_hung_up_after_10_s_and_the_caller_refused() {
    let mut config = support::server_config();
    config.rtp.ports = PortRange(support::free_port_range(32));
    let srv = chorus::server::start(config).await.unwrap();
    let f = a_forwarded_call(srv.api, srv.sip, 27100).await;
    let answered_at = std::time::Instant::now();
    assert!(hears_the_prompt(&f.callee).await > -45.0, "the prompt");
    let refused = f.calling.answered().await;
    let waited = answered_at.elapsed();
    let status = match &refused {
        Err(support::phone::CallError::Rejected(response)) => response.status(),
        other => panic!("refused: {:?}", other.as_ref().err()),
    };
    eprintln!("no key: the caller got {status:?} after {waited:?}");
    assert_eq!(status, Some(480), "the device's node found no answer");
    assert!(
        waited >= Duration::from_secs(9) && waited < Duration::from_secs(15),
        "the callee had Kazoo's 10 s to press 1: {waited:?}"
    );
    assert!(sipp_passed(f.sipp).await, "the callee got our BYE");
    srv.stop().await;
}
