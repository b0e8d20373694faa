//! The document store's behaviour, one test body run against each backend: SQLite in a temp
//! dir, and PostgreSQL in a throwaway cluster (a fresh database per test; skipped with a
//! message only when PostgreSQL cannot be started). Then PostgreSQL's faults: two nodes
//! racing one number, concurrent migrations, and a write while the database is down
//! answering 503 through the API, with the store working again once it is back.

mod support;

use chorus::conference::controls;
use chorus::conference::flow::{
    CallflowOptions, ConferenceState, Flow, FlowAction, FlowSetup, Target,
};
use chorus::conference::profile;
use chorus::conference::vocabulary::Role;
use chorus::documents::{Kind, Owner};
use chorus::registrar::{Binding, DeviceRef};
use chorus::store::{
    DocumentWrite, PostgresStore, Seed, SqliteStore, Store, StoreError, StoredDocument,
};
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::{Duration, Instant, UNIX_EPOCH};
use support::pg_cluster::Cluster;
use support::{DialOpts, Phone};

const SECOND: Duration = Duration::from_secs(1);

const ACCT: &str = "acct";

/// One backend's database for one test.
enum Db {
    Sqlite(PathBuf),
    Postgres(String),
}

impl Db {
    /// A new handle on the same database, as a restarted (or another) node opens it.
    fn open(&self) -> Box<dyn Store> {
        match self {
            // The file name SqliteStore::open_seeded uses in the data directory.
            Db::Sqlite(dir) => Box::new(SqliteStore::open(&dir.join("chorus.sqlite3")).unwrap()),
            Db::Postgres(url) => Box::new(PostgresStore::open(url).unwrap()),
        }
    }

    fn open_seeded(&self, seed: &Seed) -> Result<Box<dyn Store>, StoreError> {
        Ok(match self {
            Db::Sqlite(dir) => Box::new(SqliteStore::open_seeded(dir, seed, ACCT)?),
            Db::Postgres(url) => Box::new(PostgresStore::open_seeded(url, seed, ACCT)?),
        })
    }
}

impl Drop for Db {
    fn drop(&mut self) {
        if let Db::Sqlite(dir) = self {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

/// The PostgreSQL cluster this test binary shares, stopped when the process exits.
fn shared_cluster() -> Option<&'static Cluster> {
    static CLUSTER: OnceLock<Option<Cluster>> = OnceLock::new();
    extern "C" fn stop() {
        if let Some(Some(c)) = CLUSTER.get() {
            c.stop();
            let _ = std::fs::remove_dir_all(c.dir());
        }
    }
    CLUSTER
        .get_or_init(|| {
            let c = Cluster::start()?;
            // SAFETY: registers a plain function; it runs once at exit.
            unsafe { libc::atexit(stop) };
            Some(c)
        })
        .as_ref()
}

/// Runs `test` on a fresh SQLite database, then on a fresh PostgreSQL one.
fn on_each_backend(test: impl Fn(&Db)) {
    let dir = std::env::temp_dir().join(format!("chorus-store-{}", support::unique_token()));
    std::fs::create_dir_all(&dir).unwrap();
    eprintln!("SQLite");
    test(&Db::Sqlite(dir));
    if let Some(cluster) = shared_cluster() {
        eprintln!("PostgreSQL");
        test(&Db::Postgres(cluster.new_database()));
    }
}

fn repo_seed() -> Seed {
    Seed::read(&Path::new(env!("CARGO_MANIFEST_DIR")).join("config/seed")).expect("seed")
}

fn obj(v: Value) -> serde_json::Map<String, Value> {
    v.as_object().cloned().unwrap_or_default()
}

#[test]
fn a_restart_loses_nothing() {
    on_each_backend(|db| {
        let created = {
            let s = db.open();
            let c = s
                .create_conference(ACCT, None, json!({"name": "a", "x": [1]}))
                .unwrap();
            s.patch_conference(ACCT, &c.id, &json!({"play_name": true}), Some(1))
                .unwrap();
            s.put_config(None, "conferences", obj(json!({"pin_timeout": 7000})))
                .unwrap();
            c
        };
        assert_eq!(created.id.len(), 32);
        assert!(created.id.bytes().all(|b| b.is_ascii_hexdigit()));
        let s = db.open();
        let got = s.get_conference(ACCT, &created.id).unwrap();
        assert_eq!(got.revision, 2);
        assert_eq!(got.doc.json()["x"], json!([1]));
        assert!(got.doc.play_name() && got.doc.join_muted(Role::Member));
        assert_eq!(s.conferences_config(ACCT).unwrap().pin_timeout_ms(), 7000);
    });
}

#[test]
fn crud_with_revisions_and_soft_delete() {
    on_each_backend(|db| {
        let s = db.open();
        let c = s
            .create_conference(ACCT, Some("c1"), json!({"name": "a"}))
            .unwrap();
        assert_eq!(c.revision, 1);
        assert!(matches!(
            s.create_conference(ACCT, Some("c1"), json!({})),
            Err(StoreError::Exists(_))
        ));
        let r = s
            .replace_conference(ACCT, "c1", json!({"name": "b"}), Some(1))
            .unwrap();
        assert_eq!((r.revision, r.doc.name()), (2, Some("b")));
        assert!(matches!(
            s.replace_conference(ACCT, "c1", json!({"name": "c"}), Some(1)),
            Err(StoreError::Conflict {
                expected: 1,
                stored: 2
            })
        ));
        assert!(matches!(
            s.patch_conference(ACCT, "c1", &json!({"name": 5}), None),
            Err(StoreError::Invalid(_))
        ));
        let gone = s.delete_conference(ACCT, "c1", None).unwrap();
        assert_eq!(gone.doc.name(), Some("b"));
        assert!(matches!(
            s.get_conference(ACCT, "c1"),
            Err(StoreError::NotFound(_))
        ));
        assert!(matches!(
            s.delete_conference(ACCT, "c1", None),
            Err(StoreError::NotFound(_))
        ));
        assert!(matches!(
            s.patch_conference(ACCT, "c1", &json!({}), None),
            Err(StoreError::NotFound(_))
        ));
        assert!(s.list_conferences(ACCT).unwrap().is_empty());
        // Re-creating a deleted id continues its revisions.
        let again = s.create_conference(ACCT, Some("c1"), json!({})).unwrap();
        assert_eq!(again.revision, 4);
        assert!(s.list_conferences("other").unwrap().is_empty());
    });
}

#[test]
fn numbers_are_unique_per_account_and_found() {
    on_each_backend(|db| {
        let s = db.open();
        s.create_conference(ACCT, Some("a"), json!({"conference_numbers": ["1000"]}))
            .unwrap();
        let e = s
            .create_conference(ACCT, Some("b"), json!({"member": {"numbers": ["1000"]}}))
            .unwrap_err();
        let StoreError::Invalid(v) = e else {
            panic!("{e}")
        };
        assert_eq!(v.to_json()["numbers"]["unique"]["cause"], json!(["1000"]));
        // Updating a doc with its own numbers is fine; another account is separate.
        s.patch_conference(ACCT, "a", &json!({"name": "x"}), None)
            .unwrap();
        s.create_conference("other", Some("b"), json!({"conference_numbers": ["1000"]}))
            .unwrap();
        // A deleted conference frees its numbers.
        s.delete_conference(ACCT, "a", None).unwrap();
        s.create_conference(ACCT, Some("b"), json!({"moderator": {"numbers": ["1000"]}}))
            .unwrap();
        let found = s.find_by_number(ACCT, "1000").unwrap();
        let ids: Vec<_> = found.iter().map(|c| c.id.as_str()).collect();
        assert_eq!(ids, ["b"]);
        assert!(s.find_by_number(ACCT, "1001").unwrap().is_empty());
    });
}

/// Two nodes (two store handles) create conferences with one number at the same moment:
/// exactly one gets it, the others are told it is in use.
#[test]
fn racing_writers_cannot_put_one_number_in_two_conferences() {
    on_each_backend(|db| {
        let nodes: Vec<Box<dyn Store>> = (0..4).map(|_| db.open()).collect();
        let results: Vec<_> = std::thread::scope(|s| {
            let runs: Vec<_> = nodes
                .iter()
                .enumerate()
                .map(|(i, node)| {
                    s.spawn(move || {
                        let body = json!({"conference_numbers": ["5000", format!("60{i}")]});
                        node.create_conference(ACCT, Some(&format!("race{i}")), body)
                    })
                })
                .collect();
            runs.into_iter().map(|r| r.join().unwrap()).collect()
        });
        let won = results.iter().filter(|r| r.is_ok()).count();
        assert_eq!(won, 1, "{results:?}");
        assert!(
            results
                .iter()
                .all(|r| r.is_ok() || matches!(r, Err(StoreError::Invalid(_)))),
            "{results:?}"
        );
        assert_eq!(nodes[0].find_by_number(ACCT, "5000").unwrap().len(), 1);
    });
}

#[test]
fn seeds_load_once_from_the_repo_config() {
    on_each_backend(|db| {
        let seed = repo_seed();
        let s = db.open_seeded(&seed).unwrap();
        let demo = s.get_conference(ACCT, "demo").unwrap();
        assert_eq!(demo.doc.conference_numbers(), ["1000"]);
        assert_eq!(demo.doc.numbers(Role::Member), ["1001"]);
        assert_eq!(demo.doc.pins(Role::Member), ["1234"]);
        assert_eq!(demo.doc.numbers(Role::Moderator), ["1002"]);
        assert_eq!(demo.doc.pins(Role::Moderator), ["4321"]);
        for n in ["1000", "1001", "1002"] {
            assert_eq!(s.find_by_number(ACCT, n).unwrap().len(), 1, "{n}");
        }
        let cfg = s.conferences_config(ACCT).unwrap();
        assert_eq!(cfg.pin_timeout_ms(), 5000);
        assert_eq!(controls::group("default", &demo.doc, &cfg).len(), 7);
        let profile = profile::resolve(&demo.doc, &cfg, None).unwrap();
        assert_eq!(profile.mixer.rate(), 48000);
        assert_eq!(profile.sounds["locked-sound"], "conf-locked");
        // A second start does not re-seed: a deleted seed stays deleted.
        s.delete_conference(ACCT, "demo", None).unwrap();
        drop(s);
        let s = db.open_seeded(&seed).unwrap();
        assert!(s.get_conference(ACCT, "demo").is_err());
    });
}

/// The seeded demo as a caller meets it: dial 1001, PIN 1234, join.
#[test]
fn seeded_demo_member_joins_by_number_and_pin() {
    on_each_backend(|db| {
        let s = db.open_seeded(&repo_seed()).unwrap();
        let [found] = s
            .find_by_number(ACCT, "1001")
            .unwrap()
            .try_into()
            .unwrap_or_else(|v: Vec<_>| panic!("one conference expected, got {}", v.len()));
        let mut flow = Flow::new(FlowSetup {
            callflow: CallflowOptions::for_doc(&found.doc),
            target: Target::Conference {
                id: found.id,
                doc: found.doc,
            },
            dialed: Some("1001".into()),
            config: s.conferences_config(ACCT).unwrap(),
            name_media: None,
        });
        let now = Instant::now();
        flow.on_answered(now);
        flow.on_prompt_finished(now);
        for d in "1234#".chars() {
            flow.on_digit(now, d);
        }
        flow.on_conference_state(now, ConferenceState::default());
        let actions: Vec<_> = std::iter::from_fn(|| flow.poll()).collect();
        let Some(FlowAction::Join(join)) = actions.last() else {
            panic!("{actions:?}")
        };
        assert_eq!(
            (join.conference_id.as_str(), join.role),
            ("demo", Role::Member)
        );
        assert!(!join.flags.mute, "the demo seed lets members talk");
    });
}

#[test]
fn a_bad_seed_names_its_file_and_writes_nothing() {
    let seed_dir = std::env::temp_dir().join(format!("chorus-seed-{}", support::unique_token()));
    std::fs::create_dir_all(seed_dir.join("conferences")).unwrap();
    let one = r#"{"conference_numbers":["1"]}"#;
    std::fs::write(seed_dir.join("conferences/a.json"), one).unwrap();
    std::fs::write(seed_dir.join("conferences/b.json"), one).unwrap();
    let seed = Seed::read(&seed_dir).unwrap();
    on_each_backend(|db| {
        let e = db
            .open_seeded(&seed)
            .err()
            .expect("a bad seed fails the start");
        assert!(e.to_string().contains("b.json"), "{e}");
        assert!(db.open().list_conferences(ACCT).unwrap().is_empty());
    });
    std::fs::write(seed_dir.join("conferences/c.json"), "[1]").unwrap();
    let e = Seed::read(&seed_dir).unwrap_err();
    assert!(e.to_string().contains("c.json"), "{e}");
    assert_eq!(
        Seed::read(&seed_dir.join("missing")).unwrap(),
        Seed::default()
    );
    let _ = std::fs::remove_dir_all(&seed_dir);
}

fn create(s: &dyn Store, owner: Owner, kind: Kind, id: &str, body: Value) -> StoredDocument {
    let write = DocumentWrite::Create(body);
    s.write_document(owner, kind, Some(id), write, None)
        .unwrap_or_else(|e| panic!("{e}"))
}

/// The field and cause of a unique-key refusal.
fn unique_error(e: StoreError) -> (String, Value) {
    let StoreError::Invalid(v) = e else {
        panic!("{e}")
    };
    let v = v.to_json();
    let (field, rules) = v.as_object().and_then(|m| m.iter().next()).unwrap();
    (field.clone(), rules["unique"]["cause"].clone())
}

const A: Owner = Owner::Account("a");
const B: Owner = Owner::Account("b");

#[test]
fn callflow_numbers_are_unique_in_their_account_until_deleted() {
    on_each_backend(|db| {
        let s = &*db.open();
        let flow = |n: &str| json!({"numbers": [n, "2000"], "flow": {"module": "device"}});
        create(s, A, Kind::Callflow, "f1", flow("1000"));
        let write = DocumentWrite::Create(flow("3000"));
        let e = s.write_document(A, Kind::Callflow, Some("f2"), write, None);
        assert_eq!(
            unique_error(e.unwrap_err()),
            ("numbers".into(), json!(["2000"]))
        );
        // Another account, and a rewrite of the holder itself, are fine.
        create(s, B, Kind::Callflow, "f2", flow("3000"));
        let patch = DocumentWrite::Patch(json!({"name": "main"}));
        let patched = s.write_document(A, Kind::Callflow, Some("f1"), patch, Some(1));
        assert_eq!(patched.unwrap().revision, 2);
        let found = s
            .find_documents(Kind::Callflow, "numbers", "2000", Some(A))
            .unwrap();
        assert_eq!(found.len(), 1);
        assert_eq!(
            (found[0].0.as_deref(), found[0].1.id.as_str()),
            (Some("a"), "f1")
        );
        s.delete_document(A, Kind::Callflow, "f1", None).unwrap();
        let found = s.find_documents(Kind::Callflow, "numbers", "2000", Some(A));
        assert!(found.unwrap().is_empty());
        create(s, A, Kind::Callflow, "f3", flow("1000"));
    });
}

#[test]
fn sip_credentials_are_unique_in_their_realm_across_accounts() {
    on_each_backend(|db| {
        let s = &*db.open();
        let device = |realm: Option<&str>| {
            let mut sip = json!({"username": "alice", "password": "secret1"});
            if let Some(r) = realm {
                sip["realm"] = json!(r);
            }
            json!({"name": "phone", "sip": sip})
        };
        create(s, A, Kind::Device, "d1", device(None));
        create(s, A, Kind::Device, "d2", device(Some("B.example")));
        let write = DocumentWrite::Create(device(None));
        let e = s.write_document(B, Kind::Device, Some("d3"), write, None);
        assert_eq!(
            unique_error(e.unwrap_err()),
            ("sip.username".into(), json!(["alice@"]))
        );
        let key = chorus::documents::sip_key("alice", "b.example");
        let found = s
            .find_documents(Kind::Device, "sip.username", &key, None)
            .unwrap();
        assert_eq!(found[0].1.id, "d2");
    });
}

#[test]
fn system_resources_are_apart_from_accounts() {
    on_each_backend(|db| {
        let s = &*db.open();
        let carrier = json!({"name": "c", "gateways": [{"server": "127.0.0.1"}]});
        create(s, Owner::System, Kind::Resource, "r1", carrier.clone());
        let system = s.list_documents(Owner::System, Kind::Resource).unwrap();
        assert_eq!(system.len(), 1);
        assert!(s.list_documents(A, Kind::Resource).unwrap().is_empty());
        assert!(matches!(
            s.get_document(A, Kind::Resource, "r1"),
            Err(StoreError::NotFound(_))
        ));
        let got = s.get_document(Owner::System, Kind::Resource, "r1").unwrap();
        assert_eq!(got.doc["weight_cost"], 50, "defaults are filled");
        let write = DocumentWrite::Replace(carrier);
        assert!(matches!(
            s.write_document(A, Kind::Resource, Some("r1"), write, None),
            Err(StoreError::NotFound(_))
        ));
    });
}

#[test]
fn bindings_survive_a_reopen_and_empty_deletes() {
    on_each_backend(|db| {
        let device = DeviceRef {
            account: "a".into(),
            id: "d".into(),
        };
        let at = UNIX_EPOCH + Duration::from_secs(1_900_000_000);
        let bindings = vec![Binding::new("sip:a@h", at, "cid".into(), 7)];
        db.open().put_bindings(&device, &bindings, &[]).unwrap();
        let s = db.open();
        assert_eq!(
            s.bindings().unwrap(),
            vec![(device.clone(), bindings.clone())]
        );
        assert_eq!(s.device_bindings(&device).unwrap(), bindings);
        s.put_bindings(&device, &[], &bindings).unwrap();
        assert!(s.bindings().unwrap().is_empty());
        assert!(s.device_bindings(&device).unwrap().is_empty());
    });
}

/// Several nodes starting at once on an empty database: each migrates or waits for the one
/// migrating (advisory lock), and the schema is applied once.
#[test]
fn concurrent_starts_migrate_once() {
    let Some(cluster) = shared_cluster() else {
        return;
    };
    let url = cluster.new_database();
    std::thread::scope(|s| {
        let starts: Vec<_> = (0..4)
            .map(|_| s.spawn(|| PostgresStore::open(&url).map(drop)))
            .collect();
        for start in starts {
            start.join().unwrap().expect("a node starts");
        }
    });
    let mut client = postgres::Client::connect(&url, postgres::NoTls).unwrap();
    let versions = client
        .query("SELECT version FROM schema_migrations", &[])
        .unwrap();
    assert_eq!(versions.len(), 1);
}

/// A server on a PostgreSQL cluster of its own, for a test that stops or freezes it;
/// `None` when PostgreSQL cannot start.
async fn server_on_a_cluster_of_its_own() -> Option<(Cluster, chorus::server::Running)> {
    let cluster = tokio::task::spawn_blocking(Cluster::start).await.unwrap()?;
    let mut config = support::server_config();
    config.store.url = cluster.new_database();
    let srv = chorus::server::start(config).await.expect("server starts");
    Some((cluster, srv))
}

/// PostgreSQL stops under a running server: the room in progress goes on (its callers
/// still hear each other), a new caller gets 503 with Retry-After, writes through the API
/// answer 503 with Retry-After in Kazoo's shape and leave nothing behind, and once PostgreSQL is back the same write succeeds
/// without restarting the server.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgresql_down_answers_503_and_the_store_comes_back() {
    let Some((cluster, srv)) = server_on_a_cluster_of_its_own().await else {
        return;
    };
    let client = reqwest::Client::new();
    let url = format!(
        "http://{}/v2/accounts/{}/conferences",
        srv.api,
        chorus::config::DEFAULT_ACCOUNT
    );
    // Each conference a number of its own: a refused write must not be refused for that.
    let put = |name: &str| {
        let number = format!("73{}", name.len());
        let body = json!({"data": {"name": name, "conference_numbers": [number]}});
        client
            .put(&url)
            .header("X-Auth-Token", "test-token")
            .header("Content-Type", "application/json")
            .body(body.to_string())
            .send()
    };
    let created = put("before").await.unwrap();
    assert_eq!(created.status().as_u16(), 201, "{:?}", created.text().await);
    let mut a = Phone::dial(srv.sip, "7300", DialOpts::default())
        .await
        .unwrap();
    let mut b = Phone::dial(srv.sip, "7300", DialOpts::default())
        .await
        .unwrap();

    assert!(
        tokio::task::block_in_place(|| cluster.stop()),
        "PostgreSQL stops"
    );
    tokio::join!(
        a.send_tone(697.0, SECOND * 2),
        b.send_tone(1209.0, SECOND * 2)
    );
    assert!(a.hear_level(1209.0, SECOND) > -30.0, "A still hears B");
    assert!(b.hear_level(697.0, SECOND) > -30.0, "B still hears A");
    let refused = put("while-down").await.unwrap();
    let retry = refused.headers().get("retry-after").cloned();
    assert_eq!(refused.status().as_u16(), 503);
    assert_eq!(retry.as_ref().map(|v| v.to_str().unwrap()), Some("2"));
    let body: Value = serde_json::from_slice(&refused.bytes().await.unwrap()).unwrap();
    assert_eq!(
        (body["status"].as_str(), body["message"].as_str()),
        (Some("error"), Some("datastore_fault"))
    );

    // A new caller cannot be routed without the store: 503 with Retry-After, not a 404.
    match Phone::dial(srv.sip, "7302", DialOpts::default()).await {
        Err(support::CallError::Rejected(r)) => {
            assert_eq!(r.status(), Some(503));
            assert_eq!(r.header("Retry-After"), Some("2"));
        }
        other => panic!(
            "a new call while PostgreSQL is down: {:?}",
            other.map(|_| ())
        ),
    }

    assert!(
        tokio::task::block_in_place(|| cluster.start_again()),
        "PostgreSQL restarts"
    );
    // The connection the server held died with PostgreSQL: the next call reconnects.
    tokio::time::sleep(SECOND).await;
    let listed = client
        .get(&url)
        .header("X-Auth-Token", "test-token")
        .send()
        .await
        .unwrap();
    let listed: Value = serde_json::from_slice(&listed.bytes().await.unwrap()).unwrap();
    let names: Vec<_> = listed["data"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|c| c["name"].as_str())
        .collect();
    assert!(
        names.contains(&"before") && !names.contains(&"while-down"),
        "{listed}"
    );
    let again = put("after").await.unwrap();
    assert_eq!(again.status().as_u16(), 201, "{:?}", again.text().await);
    assert_eq!(a.hangup().await.unwrap(), 200);
    assert_eq!(b.hangup().await.unwrap(), 200);
    srv.stop().await;
}

/// A frozen PostgreSQL (its processes stopped: connections open, nothing answers, as behind
/// a link that drops every packet) holds up the new call whose routing waits for it, not
/// the call plane: a member in a room still mutes itself with *1 meanwhile.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frozen_postgresql_holds_up_a_new_call_not_the_rooms_controls() {
    let Some((cluster, srv)) = server_on_a_cluster_of_its_own().await else {
        return;
    };
    let doc = json!({"data": {"name": "frozen", "conference_numbers": ["7400"],
                              "play_welcome": false, "member": {"join_muted": false}}});
    let created = reqwest::Client::new()
        .put(format!(
            "http://{}/v2/accounts/{}/conferences",
            srv.api,
            chorus::config::DEFAULT_ACCOUNT
        ))
        .header("X-Auth-Token", "test-token")
        .body(doc.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(created.status().as_u16(), 201);
    let a = Phone::dial(srv.sip, "7400", DialOpts::default())
        .await
        .unwrap();
    let b = Phone::dial(srv.sip, "7400", DialOpts::default())
        .await
        .unwrap();
    a.send_tone(697.0, SECOND).await;
    assert!(b.hear_level(697.0, SECOND / 2) > -30.0, "B hears A");

    assert!(
        tokio::task::block_in_place(|| cluster.freeze(true)),
        "PostgreSQL freezes"
    );
    let sip = srv.sip;
    let c = tokio::spawn(async move { Phone::dial(sip, "7400", DialOpts::default()).await });
    tokio::time::sleep(SECOND / 2).await;
    for key in "*1".chars() {
        a.send_dtmf_rfc4733(key).await.unwrap();
    }
    tokio::time::sleep(2 * SECOND).await; // the muted prompt plays to A
    a.send_tone(697.0, SECOND).await;
    let (heard, waiting) = (b.hear_level(697.0, SECOND / 2), !c.is_finished());
    // Thawed before any verdict, so that a failure ends the test instead of hanging it.
    assert!(
        tokio::task::block_in_place(|| cluster.freeze(false)),
        "PostgreSQL thaws"
    );
    assert!(waiting, "the new call waited for the store");
    assert!(
        heard < -50.0,
        "A muted itself meanwhile: B hears {heard:.1} dB"
    );
    let c = c
        .await
        .unwrap()
        .expect("the new call joins once the store answers");
    drop(c);
    srv.stop().await;
}

/// Two nodes bind contacts of one device (each registrar knows only its own, and what it
/// loaded at start): neither's write undoes the other's, a stale copy does not undo a
/// refresh, and an unregistered contact goes.
#[test]
fn two_nodes_bind_one_device_without_undoing_each_other() {
    on_each_backend(|db| {
        let (a, b) = (db.open(), db.open());
        let device = DeviceRef {
            account: "a".into(),
            id: "d".into(),
        };
        let at = |s: u64| UNIX_EPOCH + Duration::from_secs(1_900_000_000 + s);
        let one = Binding::new("sip:one@h", at(60), "c1".into(), 1);
        let two = Binding::new("sip:two@h", at(60), "c2".into(), 1);
        a.put_bindings(&device, std::slice::from_ref(&one), &[])
            .unwrap();
        b.put_bindings(&device, std::slice::from_ref(&two), &[])
            .unwrap();
        let both = vec![one.clone(), two.clone()];
        assert_eq!(a.device_bindings(&device).unwrap(), both);
        // A refreshes one; B writes its stale copy, then drops it as expired.
        let refreshed = Binding::new("sip:one@h", at(120), "c1".into(), 2);
        a.put_bindings(
            &device,
            std::slice::from_ref(&refreshed),
            std::slice::from_ref(&one),
        )
        .unwrap();
        b.put_bindings(&device, &both, &[]).unwrap();
        b.put_bindings(
            &device,
            std::slice::from_ref(&two),
            std::slice::from_ref(&one),
        )
        .unwrap();
        assert_eq!(
            b.device_bindings(&device).unwrap(),
            [two.clone(), refreshed.clone()]
        );
        // B's phone unregisters: A's contact stays.
        b.put_bindings(&device, &[], &[two]).unwrap();
        assert_eq!(a.device_bindings(&device).unwrap(), [refreshed]);
    });
}
