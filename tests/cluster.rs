//! Three Chorus nodes behind Kamailio with the Redis focus registry, started by
//! scripts/cluster: 60 SIPp callers and 24 test phones dial twelve rooms through Kamailio; each room
//! lives on exactly one node (the registry, `scripts/cluster status` and the nodes' APIs
//! agree) and its callers hear each other, as two PJSUA2 phones do. A node killed the hard way takes only its own
//! rooms down: calls on the other nodes keep their audio, and once its claims lapse, new
//! callers of its rooms land on a live node and hear each other. A node that does not
//! host a room serves its state and mutes its members through the focus node, and its
//! WebSocket shows that room's events (the event bus), each once. The service number opens
//! a room on the node it reaches, where its number's callers then land, and another node's
//! service number brings its caller there over SIP. Without Redis, hosted
//! rooms keep their audio and their node's WebSocket clients their events, and new rooms are
//! refused with 503; with Redis back, the nodes reconnect (registry and event bus) without a
//! restart; a node whose claim another takes ends that room with BYEs. The nodes share
//! PostgreSQL: a conference made through one node's API is dialed on another, and a device
//! registered on one node is dialed (API `dial`) into a room another node hosts.
//!
//! Skipped, with a message saying so, only when the packages (kamailio, redis-server,
//! sipp) cannot be installed (`bash scripts/install-deps --cluster` needs root and apt).

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use support::{CallError, DialOpts, Phone};
use tokio_tungstenite::tungstenite::Message;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");
const ACCOUNT: &str = "c0ffee00c0ffee00c0ffee00c0ffee00";
const KAMAILIO: &str = "127.0.0.1:5070";
const REDIS_PORT: &str = "6391";
/// Short, so a dead node's rooms reopen elsewhere within the test.
const CLAIM_TTL_SECS: u64 = 4;
const ROOMS: [&str; 12] = [
    "7101", "7102", "7103", "7104", "7105", "7106", "7107", "7108", "7109", "7110", "7111", "7112",
];
const SIPP_CALLS_PER_ROOM: usize = 5;
/// A talker's tone through the mixer is well above this.
const HEARD_DB: f64 = -30.0;
const SECOND: Duration = Duration::from_secs(1);

/// A cluster started by scripts/cluster in a directory of its own; stopped when dropped.
struct Cluster {
    dir: PathBuf,
}

/// One `node ...` line of `scripts/cluster status`.
#[derive(Debug)]
struct NodeLine {
    name: String,
    pid: String,
    sip: SocketAddr,
    api: SocketAddr,
    rooms: BTreeSet<String>,
}

impl Cluster {
    /// Installs the packages and starts 3 nodes; `None` (after saying why) when the
    /// packages cannot be installed.
    fn up() -> Option<Cluster> {
        let install = Command::new("bash")
            .arg(format!("{ROOT}/scripts/install-deps"))
            .arg("--cluster")
            .output()
            .expect("bash runs");
        let have = |tool: &str| {
            Command::new("sh")
                .args(["-c", &format!("command -v {tool}")])
                .stdout(Stdio::null())
                .status()
                .is_ok_and(|s| s.success())
        };
        if !install.status.success()
            || !["kamailio", "redis-server", "sipp"].iter().all(|t| have(t))
        {
            eprintln!(
                "SKIPPED tests/cluster.rs: the cluster packages (kamailio, kamailio-redis-modules, redis-server, sip-tester) cannot be installed here: {}",
                String::from_utf8_lossy(&install.stderr)
            );
            return None;
        }
        let dir = std::env::temp_dir().join(format!("chorus-cluster-{}", support::unique_token()));
        let cluster = Cluster { dir };
        let up = cluster.script(&["up", "--nodes", "3", "--bin", env!("CARGO_BIN_EXE_chorus")]);
        assert!(up.0, "scripts/cluster up failed:\n{}", up.1);
        Some(cluster)
    }

    /// Runs scripts/cluster; whether it succeeded, and its output.
    fn script(&self, args: &[&str]) -> (bool, String) {
        let out = Command::new("bash")
            .arg(format!("{ROOT}/scripts/cluster"))
            .args(args)
            .env("CHORUS_CLUSTER_DIR", &self.dir)
            .env("CHORUS_CLUSTER_REDIS_PORT", REDIS_PORT)
            .env("CHORUS_CLUSTER_CLAIM_TTL", CLAIM_TTL_SECS.to_string())
            .output()
            .expect("bash runs");
        let text = String::from_utf8_lossy(&out.stdout).into_owned()
            + &String::from_utf8_lossy(&out.stderr);
        (out.status.success(), text)
    }

    fn status(&self) -> Vec<NodeLine> {
        let (ok, text) = self.script(&["status"]);
        assert!(ok, "status: {text}");
        text.lines()
            .filter(|l| l.starts_with("node "))
            .map(|l| match l.split_whitespace().collect::<Vec<_>>()[..] {
                [
                    "node",
                    name,
                    "pid",
                    pid,
                    "sip",
                    sip,
                    "api",
                    api,
                    "rooms",
                    rooms,
                ] => NodeLine {
                    name: name.into(),
                    pid: pid.into(),
                    sip: sip.parse().unwrap(),
                    api: api.parse().unwrap(),
                    rooms: rooms
                        .split(',')
                        .filter(|r| *r != "-")
                        .map(String::from)
                        .collect(),
                },
                _ => panic!("status line not in the documented form: {l:?}"),
            })
            .collect()
    }

    /// The node holding a room's focus claim, from the registry itself.
    fn focus_of(&self, room: &str) -> Option<String> {
        let out = Command::new("redis-cli")
            .args([
                "-p",
                REDIS_PORT,
                "GET",
                &format!("chorus:focus:{ACCOUNT}:{room}"),
            ])
            .output()
            .expect("redis-cli runs");
        let v = String::from_utf8_lossy(&out.stdout).trim().to_string();
        (!v.is_empty()).then_some(v)
    }

    fn log(&self, node: &str) -> String {
        std::fs::read_to_string(self.dir.join(node).join("log")).unwrap_or_default()
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = self.script(&["down"]);
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A room as one node itself sees it (`X-Chorus-Forwarded`: not sent on to the focus):
/// its participants and `_read_only.focus`.
async fn room_on(api: SocketAddr, room: &str) -> (usize, Option<String>) {
    let url = format!("http://{api}/v2/accounts/{ACCOUNT}/conferences/{room}");
    let reply = reqwest::Client::new()
        .get(url)
        .header("X-Auth-Token", "chorus-demo-token")
        .header("X-Chorus-Forwarded", "test")
        .send()
        .await;
    let Ok(reply) = reply else {
        return (0, None);
    };
    let text = reply.text().await.unwrap_or_default();
    let body: Value = serde_json::from_str(&text).unwrap_or_default();
    let ro = &body["data"]["_read_only"];
    let n = ro["participants"].as_array().map_or(0, Vec::len);
    (n, ro["focus"].as_str().map(String::from))
}

/// The nodes share PostgreSQL: a conference created through one node's API is read through
/// another's, and callers of its number on that other node join it (its id, not an ad-hoc
/// room of the number) and hear each other.
async fn conference_made_on_one_node_is_dialed_on_another(api: &BTreeMap<String, SocketAddr>) {
    let mut nodes = api.iter();
    let (maker, maker_api) = nodes.next().unwrap();
    let (dialed, dialed_api) = nodes.next().unwrap();
    let http = reqwest::Client::new();
    let doc =
        r#"{"data":{"name":"shared","conference_numbers":["7150"],"member":{"join_muted":false}}}"#;
    let created = http
        .put(format!(
            "http://{maker_api}/v2/accounts/{ACCOUNT}/conferences"
        ))
        .header("X-Auth-Token", "chorus-demo-token")
        .body(doc)
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201, "created through {maker}");
    let created: Value = serde_json::from_str(&created.text().await.unwrap()).unwrap();
    let id = created["data"]["id"].as_str().unwrap().to_owned();
    let read = http
        .get(format!(
            "http://{dialed_api}/v2/accounts/{ACCOUNT}/conferences/{id}"
        ))
        .header("X-Auth-Token", "chorus-demo-token")
        .header("X-Chorus-Forwarded", "test")
        .send()
        .await
        .unwrap();
    let read: Value = serde_json::from_str(&read.text().await.unwrap()).unwrap();
    assert_eq!(
        read["data"]["name"], "shared",
        "read through {dialed}: {read}"
    );
    // Node i's SIP port is its API port - 3000 (508i and 808i, scripts/cluster).
    let sip = SocketAddr::new(dialed_api.ip(), dialed_api.port() - 3000);
    let a = Phone::dial(sip, "7150", DialOpts::default()).await.unwrap();
    let b = Phone::dial(sip, "7150", DialOpts::default()).await.unwrap();
    talk("7150", &a, &b).await;
    let (n, focus) = room_on(*dialed_api, &id).await;
    assert_eq!(
        (n, focus.as_deref()),
        (2, Some(dialed.as_str())),
        "conference {id} made on {maker}, dialed on {dialed}"
    );
    eprintln!("conference {id} made through {maker}'s API, dialed and heard on {dialed}");
    for mut phone in [a, b] {
        phone.hangup().await.unwrap();
    }
}

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// A WebSocket on the node at `api`, subscribed to `room`'s events.
async fn watch(api: SocketAddr, room: &str) -> Ws {
    let (mut ws, _) = tokio_tungstenite::connect_async(format!("ws://{api}/ws"))
        .await
        .unwrap();
    let sub = json!({"action": "subscribe", "auth_token": "chorus-demo-token",
        "data": {"account_id": ACCOUNT, "binding": format!("conference.event.{room}.*")}});
    ws.send(Message::text(sub.to_string())).await.unwrap();
    let reply = next_json(&mut ws, 5 * SECOND).await.expect("a reply");
    assert_eq!(reply["status"], "success", "{reply}");
    ws
}

async fn next_json(ws: &mut Ws, within: Duration) -> Option<Value> {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        match tokio::time::timeout_at(deadline, ws.next()).await.ok()? {
            Some(Ok(Message::Text(t))) => return serde_json::from_str(&t).ok(),
            Some(Ok(_)) => continue,
            other => panic!("websocket ended: {other:?}"),
        }
    }
}

/// The events `ws` received until none came for a second (at most 10 s), each checked
/// to be delivered once (its `msg_id`).
async fn events_on(ws: &mut Ws) -> Vec<Value> {
    let deadline = Instant::now() + 10 * SECOND;
    let mut events = Vec::new();
    while let Some(event) = next_json(ws, SECOND).await {
        assert_eq!(event["action"], "event", "{event}");
        events.push(event);
        if Instant::now() > deadline {
            break;
        }
    }
    let ids: BTreeSet<String> = events
        .iter()
        .map(|e| e["data"]["msg_id"].to_string())
        .collect();
    assert_eq!(ids.len(), events.len(), "each event once: {events:#?}");
    events
}

/// The `add-member` of the caller `number` among `events`.
fn joined<'a>(events: &'a [Value], number: &str) -> Option<&'a Value> {
    events
        .iter()
        .find(|e| e["name"] == "add-member" && e["data"]["caller_id_number"] == number)
        .map(|e| &e["data"])
}

/// Two PJSUA2 (PJSIP) phones dial a fresh room through Kamailio: each hears the other's
/// tone and not its own.
async fn pjsua_phones_hear_each_other_through_kamailio() {
    let kamailio = KAMAILIO.parse().unwrap();
    let call = move || support::pjsua::pjsua_call(kamailio, "7160", "PCMU/8000", "8k");
    let heard = tokio::task::spawn_blocking(call).await.unwrap();
    assert_eq!(heard["answered"], json!([true, true]), "{heard}");
    let level = |phone: &str, freq: &str| heard[phone][freq].as_f64().unwrap();
    assert!(level("a", "1209") > HEARD_DB, "A hears B: {heard}");
    assert!(level("b", "697") > HEARD_DB, "B hears A: {heard}");
    assert!(level("a", "697") < -50.0, "A does not hear itself: {heard}");
    assert!(
        level("b", "1209") < -50.0,
        "B does not hear itself: {heard}"
    );
    eprintln!("PJSUA2 phones through Kamailio (levels in dB): {heard}");
}

/// A device registered on one node is dialed into a room another node hosts: a test
/// phone opens room 7170 through Kamailio (its host is then known), a PJSUA2 phone
/// registers as the device directly with another node, A, while a second PJSUA2 call
/// reaches the room through Kamailio and plays a tone. The API `dial` sent to A goes to
/// the room's host, which finds the binding in the shared store and calls the phone: the
/// phone hears the room's tone and the room hears the phone's.
async fn device_registered_on_one_node_is_dialed_into_a_room_on_another(
    cluster: &Cluster,
    nodes: &[NodeLine],
) {
    let kamailio: SocketAddr = KAMAILIO.parse().unwrap();
    let mut opener = Phone::dial(kamailio, "7170", DialOpts::default())
        .await
        .expect("7170 through Kamailio");
    let host = cluster.focus_of("7170").expect("7170 is claimed");
    let a = nodes.iter().find(|n| n.name != host).unwrap();
    let http = reqwest::Client::new();
    let device =
        json!({"data": {"name": "desk", "sip": {"username": "alice", "password": "wonderland"}}});
    let created = http
        .put(format!("http://{}/v2/accounts/{ACCOUNT}/devices", a.api))
        .header("X-Auth-Token", "chorus-demo-token")
        .body(device.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201, "device created through {}", a.name);
    let created: Value = serde_json::from_str(&created.text().await.unwrap()).unwrap();
    let device_id = created["data"]["id"].as_str().unwrap().to_owned();

    let (registrar, server) = (a.sip.to_string(), KAMAILIO.to_string());
    let args = [
        "--server",
        &server,
        "--registrar",
        &registrar,
        "--number",
        "7170",
    ];
    let args = [&args[..], &["--user", "alice", "--password", "wonderland"]].concat();
    let tones = ["--tone-room", "--tone-phone"];
    let (_script, mut lines) = support::pjsua::driver("pjsua_dialed.py", &args, tones);
    assert!(
        support::pjsua::ready(&mut lines, 30 * SECOND).await,
        "the phone registered with {} and the room call is up",
        a.name
    );
    // The room call joins once its entry prompts are over.
    let host_api = nodes.iter().find(|n| n.name == host).unwrap().api;
    let deadline = Instant::now() + 10 * SECOND;
    while room_on(host_api, "7170").await.0 < 2 {
        assert!(
            Instant::now() < deadline,
            "the room call never joined 7170 on {host}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }

    let dial = json!({"action": "dial", "data": {"endpoints": [device_id], "timeout": 10}});
    let answer = http
        .put(format!(
            "http://{}/v2/accounts/{ACCOUNT}/conferences/7170",
            a.api
        ))
        .header("X-Auth-Token", "chorus-demo-token")
        .body(dial.to_string())
        .send()
        .await
        .unwrap();
    let status = answer.status();
    let answer: Value = serde_json::from_str(&answer.text().await.unwrap()).unwrap();
    assert_eq!(status, 202, "dial through {}: {answer}", a.name);
    assert_eq!(
        answer["node"],
        host.as_str(),
        "the room's host dials: {answer}"
    );
    let response = &answer["data"]["endpoint_responses"][0];
    assert_eq!(response["status"], "success", "{answer}");
    assert_eq!(response["endpoint_id"], device_id.as_str());

    let heard = support::pjsua::result_of(&mut lines, 30 * SECOND).await;
    assert_eq!(heard["registered"], true, "{heard}");
    assert_eq!(heard["answered"], true, "{heard}");
    let level = |who: &str, freq: &str| heard[who][freq].as_f64().unwrap();
    assert!(
        level("phone", "697") > HEARD_DB,
        "the phone hears the room: {heard}"
    );
    assert!(
        level("room", "1209") > HEARD_DB,
        "the room hears the phone: {heard}"
    );
    assert!(level("phone", "1209") < -50.0, "not itself: {heard}");
    assert!(level("room", "697") < -50.0, "not itself: {heard}");
    eprintln!(
        "a device registered on {} was dialed into 7170 on {host} (levels in dB): {heard}",
        a.name
    );
    opener.hangup().await.unwrap();
}

/// SIPp, stopped when dropped (also when an assertion fails).
struct Sipp(Child);

impl Drop for Sipp {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// SIPp callers through Kamailio, `SIPP_CALLS_PER_ROOM` in each room, talking a 697 Hz
/// tone until killed.
fn start_sipp(work: &std::path::Path) -> Sipp {
    std::fs::create_dir_all(work).unwrap();
    std::os::unix::fs::symlink(format!("{ROOT}/fixtures"), work.join("fixtures")).unwrap();
    let mut csv = String::from("SEQUENTIAL\n");
    for i in 0..ROOMS.len() * SIPP_CALLS_PER_ROOM {
        csv += &format!("{};\n", ROOMS[i % ROOMS.len()]);
    }
    std::fs::write(work.join("numbers.csv"), csv).unwrap();
    let media_port = std::net::UdpSocket::bind("127.0.0.1:0")
        .and_then(|s| s.local_addr())
        .unwrap()
        .port();
    let calls = (ROOMS.len() * SIPP_CALLS_PER_ROOM).to_string();
    Command::new("sipp")
        .current_dir(work)
        .args([
            "-sf",
            "fixtures/sipp/uac_conference.xml",
            "-inf",
            "numbers.csv",
        ])
        .args(["-i", "127.0.0.1", "-mi", "127.0.0.1", "-p", "0"])
        .args(["-mp", &media_port.to_string(), "-nostdin"])
        .args(["-m", &calls, "-l", &calls, "-r", "12", "-d", "120000"])
        .args(["-timeout", "150s", KAMAILIO])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map(Sipp)
        .expect("sipp starts")
}

/// Two phones dial `room` through Kamailio; each hears the other's tone.
async fn pair_hears_each_other(room: &str) -> (Phone, Phone) {
    let kamailio: SocketAddr = KAMAILIO.parse().unwrap();
    let opts = DialOpts {
        answer_timeout: Duration::from_secs(15),
        ..DialOpts::default()
    };
    let user = |who: &str| DialOpts {
        user: format!("{who}{room}"),
        ..opts.clone()
    };
    let a = Phone::dial(kamailio, room, user("a")).await;
    let b = Phone::dial(kamailio, room, user("b")).await;
    let (a, b) = (
        a.unwrap_or_else(|e| panic!("phone A into {room}: {e:?}")),
        b.unwrap_or_else(|e| panic!("phone B into {room}: {e:?}")),
    );
    talk(room, &a, &b).await;
    (a, b)
}

/// A and B talk at once; each must hear the other.
async fn talk(room: &str, a: &Phone, b: &Phone) {
    tokio::join!(
        a.send_tone(1209.0, 2 * SECOND),
        b.send_tone(1477.0, 2 * SECOND)
    );
    let (heard_b, heard_a) = (a.hear_level(1477.0, SECOND), b.hear_level(1209.0, SECOND));
    assert!(
        heard_b > HEARD_DB,
        "room {room}: A hears B at {heard_b:.1} dB"
    );
    assert!(
        heard_a > HEARD_DB,
        "room {room}: B hears A at {heard_a:.1} dB"
    );
    eprintln!("room {room}: A hears B at {heard_b:.1} dB, B hears A at {heard_a:.1} dB");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rooms_live_on_one_node_each_and_a_dead_nodes_rooms_reopen_on_a_live_one() {
    let Some(cluster) = Cluster::up() else {
        return;
    };
    let nodes = cluster.status();
    assert_eq!(nodes.len(), 3, "{nodes:?}");
    let api: BTreeMap<String, SocketAddr> = nodes.iter().map(|n| (n.name.clone(), n.api)).collect();

    // SIPp: 60 calls into 12 rooms through Kamailio; wait until every one is a member.
    let sipp_dir = cluster.dir.join("sipp");
    let mut sipp = start_sipp(&sipp_dir);
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut placement: BTreeMap<&str, Vec<(String, usize)>>;
    loop {
        placement = BTreeMap::new();
        for room in ROOMS {
            for (name, addr) in &api {
                let (n, _) = room_on(*addr, room).await;
                if n > 0 {
                    placement.entry(room).or_default().push((name.clone(), n));
                }
            }
        }
        let members: usize = placement.values().flatten().map(|(_, n)| n).sum();
        if members == ROOMS.len() * SIPP_CALLS_PER_ROOM {
            break;
        }
        assert!(
            Instant::now() < deadline && sipp.0.try_wait().unwrap().is_none(),
            "SIPp calls did not all join: {placement:?}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }

    // Each room on exactly one node, the one the registry, the status and the API name.
    let status = cluster.status();
    let mut host = BTreeMap::new();
    for room in ROOMS {
        let on = &placement[room];
        assert_eq!(on.len(), 1, "room {room} on one node only: {on:?}");
        let (node, n) = &on[0];
        assert_eq!(*n, SIPP_CALLS_PER_ROOM, "room {room}");
        assert_eq!(
            cluster.focus_of(room).as_deref(),
            Some(node.as_str()),
            "registry: {room}"
        );
        let line = status.iter().find(|l| &l.name == node).unwrap();
        assert!(
            line.rooms.contains(room),
            "status lists {room} on {node}: {line:?}"
        );
        let (_, focus) = room_on(api[node], room).await;
        assert_eq!(
            focus.as_deref(),
            Some(node.as_str()),
            "_read_only.focus of {room}"
        );
        host.insert(room, node.clone());
    }
    let used: BTreeSet<&String> = host.values().collect();
    assert!(used.len() >= 2, "the rooms spread over nodes: {host:?}");

    // A WebSocket on a node that does not host ROOMS[1] and one on its host watch it.
    let watched = ROOMS[1];
    let other = api.keys().find(|n| **n != host[watched]).unwrap().clone();
    let mut ws_other = watch(api[&other], watched).await;
    let mut ws_host = watch(api[&host[watched]], watched).await;

    // Two phones per room, through Kamailio, hear each other.
    let pairs = futures_util::future::join_all(ROOMS.map(pair_hears_each_other)).await;

    // Both WebSockets show the phones joining ROOMS[1], once each, with the host as focus.
    let (seen_other, seen_host) = tokio::join!(events_on(&mut ws_other), events_on(&mut ws_host));
    for phone in ["a", "b"] {
        let number = format!("{phone}{watched}");
        let data = joined(&seen_other, &number)
            .unwrap_or_else(|| panic!("{other} shows {number} joining: {seen_other:#?}"));
        for (key, want) in [
            ("focus", &host[watched]),
            ("conference_node", &host[watched]),
            ("conference_id", &watched.to_string()),
            ("account_id", &ACCOUNT.to_string()),
        ] {
            assert_eq!(data[key], want.as_str(), "{key} in {data}");
        }
        assert!(data["participant_id"].is_u64(), "{data}");
        assert_eq!(
            joined(&seen_host, &number).map(|d| &d["msg_id"]),
            Some(&data["msg_id"]),
            "the host's WebSocket shows the same event"
        );
    }
    eprintln!(
        "room {watched} on {}: {} events on {other}'s WebSocket, {} on its host's",
        host[watched],
        seen_other.len(),
        seen_host.len()
    );
    for room in ROOMS {
        let (n, _) = room_on(api[&host[room]], room).await;
        assert_eq!(
            n,
            SIPP_CALLS_PER_ROOM + 2,
            "the phones joined {room} on its host"
        );
    }

    conference_made_on_one_node_is_dialed_on_another(&api).await;
    pjsua_phones_hear_each_other_through_kamailio().await;
    device_registered_on_one_node_is_dialed_into_a_room_on_another(&cluster, &nodes).await;

    // A node that does not host a room serves its state and mutes its members: the request
    // goes to the focus node (`node` in the answer names it), the phones hear the effect.
    let room = watched;
    let url = format!(
        "http://{}/v2/accounts/{ACCOUNT}/conferences/{room}",
        api[&other]
    );
    let http = reqwest::Client::new();
    let state: Value = serde_json::from_str(
        &http
            .get(&url)
            .header("X-Auth-Token", "chorus-demo-token")
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap(),
    )
    .unwrap();
    assert_eq!(
        state["node"],
        host[room].as_str(),
        "served by the focus: {state}"
    );
    assert_eq!(state["data"]["_read_only"]["focus"], host[room].as_str());
    let participants = state["data"]["_read_only"]["participants"]
        .as_array()
        .unwrap();
    assert_eq!(participants.len(), SIPP_CALLS_PER_ROOM + 2);
    let phone_a = participants
        .iter()
        .find(|p| p["caller_id_number"] == format!("a{room}"))
        .expect("phone A listed")["participant_id"]
        .clone();
    let act = |action: &str| {
        http.put(format!("{url}/participants/{phone_a}"))
            .header("X-Auth-Token", "chorus-demo-token")
            .body(format!(r#"{{"data":{{"action":"{action}"}}}}"#))
            .send()
    };
    assert_eq!(
        act("mute").await.unwrap().status(),
        202,
        "mute through {other}"
    );
    let (a, b) = &pairs[1];
    a.send_tone(1209.0, 2 * SECOND).await;
    let muted = b.hear_level(1209.0, SECOND);
    assert!(
        muted < -50.0,
        "B no longer hears the muted A: {muted:.1} dB"
    );
    assert_eq!(act("unmute").await.unwrap().status(), 202);
    let seen = events_on(&mut ws_other).await;
    for action in ["mute-member", "unmute-member"] {
        assert!(
            seen.iter()
                .any(|e| e["name"] == action && e["data"]["participant_id"] == phone_a),
            "{other}'s WebSocket shows {action}: {seen:#?}"
        );
    }
    eprintln!(
        "room {room} on {}: read and muted through {other}",
        host[room]
    );

    // The service number opens a room on the node it reaches: the caller keys the demo
    // conference's number and PIN, that node claims it (its numbers now route there), and a
    // caller of its number through Kamailio lands there too; they hear each other.
    let entry = &nodes[0];
    let keyed = |user: &str, keys: &str| DialOpts {
        pin: Some(keys.into()),
        pin_delay: Duration::from_millis(2500),
        user: user.into(),
        answer_timeout: Duration::from_secs(15),
        ..DialOpts::default()
    };
    let service = Phone::dial(entry.sip, "1999", keyed("svc", "1000#"))
        .await
        .expect("the service number answers");
    tokio::time::sleep(3 * SECOND).await;
    for key in "1234#".chars() {
        service.send_dtmf_rfc4733(key).await.unwrap();
    }
    let deadline = Instant::now() + 10 * SECOND;
    while cluster.focus_of("demo").as_deref() != Some(entry.name.as_str()) {
        assert!(
            Instant::now() < deadline,
            "the service number's node claims demo: {:?}",
            cluster.focus_of("demo")
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let kamailio: SocketAddr = KAMAILIO.parse().unwrap();
    let dialed = Phone::dial(kamailio, "1000", keyed("k1000", "1234#"))
        .await
        .expect("1000 through Kamailio");
    tokio::time::sleep(4 * SECOND).await;
    assert_eq!(
        room_on(entry.api, "demo").await,
        (2, Some(entry.name.clone())),
        "both callers of demo on {}",
        entry.name
    );
    talk("demo", &service, &dialed).await;
    eprintln!("demo opened on {} through its service number", entry.name);

    // The service number of another node brings its caller to demo's host: that node dials
    // 1000 there and bridges the caller, whose digits pass through; only the host asks for
    // the PIN. All three hear each other.
    let far = &nodes[1];
    let relayed = Phone::dial(far.sip, "1999", keyed("far", "1000#"))
        .await
        .expect("the other node's service number answers");
    // Keyed once, after the caller is brought to demo's host and asked there.
    tokio::time::sleep(5 * SECOND).await;
    for key in "1234#".chars() {
        relayed.send_dtmf_rfc4733(key).await.unwrap();
    }
    let deadline = Instant::now() + 15 * SECOND;
    while room_on(entry.api, "demo").await.0 < 3 {
        assert!(
            Instant::now() < deadline,
            "the relayed caller never joined demo on {}: {}\n---\n{}",
            entry.name,
            cluster.log(&far.name),
            cluster.log(&entry.name)
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert_eq!(
        room_on(far.api, "demo").await.0,
        0,
        "{} does not host demo",
        far.name
    );
    talk("demo", &service, &relayed).await;
    drop((service, dialed, relayed));
    eprintln!(
        "a caller of {}'s service number was brought to demo on {}",
        far.name, entry.name
    );

    // Kill the host of the first room.
    let victim = host[ROOMS[0]].clone();
    let (killed, text) = cluster.script(&["kill", &victim]);
    let killed_at = Instant::now();
    assert!(killed, "kill {victim}: {text}");
    let dead_rooms: Vec<&str> = ROOMS.into_iter().filter(|r| host[r] == victim).collect();
    let live_rooms: Vec<&str> = ROOMS.into_iter().filter(|r| host[r] != victim).collect();
    assert!(!live_rooms.is_empty());

    // The other nodes' calls are undisturbed: members stay, phones still hear each other.
    let others = live_rooms.iter().map(|room| {
        let i = ROOMS.iter().position(|r| r == room).unwrap();
        let (a, b) = &pairs[i];
        talk(room, a, b)
    });
    futures_util::future::join_all(others).await;
    for room in &live_rooms {
        let (n, _) = room_on(api[&host[room]], room).await;
        assert_eq!(n, SIPP_CALLS_PER_ROOM + 2, "{room} kept its callers");
    }

    // The dead node's claims lapse; its rooms' next callers land on a live node.
    let deadline = Instant::now() + Duration::from_secs(CLAIM_TTL_SECS + 10);
    while dead_rooms
        .iter()
        .any(|r| cluster.focus_of(r).as_deref() == Some(&victim))
    {
        assert!(
            Instant::now() < deadline,
            "the dead node's claims never lapsed"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let status = cluster.status();
    let dead = status.iter().find(|l| l.name == victim).unwrap();
    assert_eq!(dead.pid, "-", "status shows {victim} down: {dead:?}");
    eprintln!(
        "killed {victim} (rooms {dead_rooms:?}); its claims lapsed after {:.1} s",
        killed_at.elapsed().as_secs_f64()
    );
    let redialled =
        futures_util::future::join_all(dead_rooms.iter().map(|r| pair_hears_each_other(r))).await;
    for room in &dead_rooms {
        let focus = cluster.focus_of(room).expect("claimed again");
        eprintln!("room {room} reopened on {focus}");
        assert_ne!(focus, victim, "{room} reopened on a live node");
        let (n, shown) = room_on(api[&focus], room).await;
        assert_eq!(
            (n, shown.as_deref()),
            (2, Some(focus.as_str())),
            "{room} on {focus}"
        );
    }

    // Redis goes away: hosted rooms keep their audio, a new room is refused with 503 and
    // Retry-After; Redis back (scripts/cluster up starts only what is down): the nodes
    // reconnect by themselves, their refreshes claim their rooms again, new rooms open.
    let reopened_on = cluster.focus_of(dead_rooms[0]).unwrap();
    let mut ws_local = watch(api[&reopened_on], dead_rooms[0]).await;
    // Quiet first (the redial's talking ends), so what follows happens without Redis.
    events_on(&mut ws_local).await;
    let stopped = Command::new("redis-cli")
        .args(["-p", REDIS_PORT, "shutdown", "nosave"])
        .status()
        .expect("redis-cli runs");
    assert!(!stopped.success() || cluster.focus_of(ROOMS[0]).is_none());
    let (a, b) = &redialled[0];
    talk(dead_rooms[0], a, b).await;
    let seen = events_on(&mut ws_local).await;
    assert!(
        seen.iter().any(|e| e["name"] == "start-talking"),
        "without Redis, {reopened_on}'s WebSocket still shows its room's events: {seen:#?}"
    );
    match Phone::dial(kamailio, "7199", DialOpts::default()).await {
        Err(CallError::Rejected(r)) => {
            assert_eq!(r.status(), Some(503), "a new room without Redis");
            assert!(
                r.header("Retry-After").is_some(),
                "503 says when to retry: {r:?}"
            );
        }
        Err(e) => panic!("a new room without Redis must be refused with 503: {e:?}"),
        Ok(_) => panic!("a new room without Redis was answered"),
    }
    let up = cluster.script(&["up", "--nodes", "3", "--bin", env!("CARGO_BIN_EXE_chorus")]);
    assert!(up.0, "scripts/cluster up again: {}", up.1);
    let deadline = Instant::now() + Duration::from_secs(CLAIM_TTL_SECS + 5);
    while cluster.focus_of(dead_rooms[0]).is_none() {
        assert!(
            Instant::now() < deadline,
            "the host's refresh never claimed its room again"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    // The event bus is back too: every node's WebSocket shows the new room's callers.
    tokio::time::sleep(2 * SECOND).await;
    let mut watchers = Vec::new();
    for addr in api.iter().filter(|(n, _)| **n != victim).map(|(_, a)| *a) {
        watchers.push(watch(addr, "7199").await);
    }
    let fresh = pair_hears_each_other("7199").await;
    let host_7199 = cluster.focus_of("7199").expect("the new room is claimed");
    for ws in &mut watchers {
        let seen = events_on(ws).await;
        let data = joined(&seen, "a7199").unwrap_or_else(|| panic!("a7199 joining: {seen:#?}"));
        assert_eq!(data["focus"], host_7199.as_str(), "{data}");
    }

    // Another node takes the claim behind the host's back: at its next refresh the host
    // ends the room with BYEs and says so in its log.
    let key = format!("chorus:focus:{ACCOUNT}:7199");
    let taken = Command::new("redis-cli")
        .args(["-p", REDIS_PORT, "SET", &key, "node9", "EX", "30"])
        .output()
        .expect("redis-cli runs");
    assert!(taken.status.success());
    let byes = tokio::join!(
        fresh.0.wait_bye(Duration::from_secs(CLAIM_TTL_SECS + 2)),
        fresh.1.wait_bye(Duration::from_secs(CLAIM_TTL_SECS + 2))
    );
    assert_eq!(byes, (true, true), "the members of a lost room get BYE");
    assert!(
        cluster
            .log(&host_7199)
            .contains("claim lost to another node"),
        "{host_7199} logs the lost claim"
    );

    drop((
        sipp, pairs, redialled, fresh, ws_other, ws_host, ws_local, watchers,
    ));
    for node in api.keys().filter(|n| **n != victim) {
        assert!(
            !cluster.log(node).contains("panicked"),
            "{node} log:\n{}",
            cluster.log(node)
        );
    }
}
