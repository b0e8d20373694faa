//! A dialed number's callflow, read from the store and resolved for the call plane
//! (`super::callflow`): the account's callflow listing the number, else the first whose
//! `patterns` match it. Every node's documents, registered contacts and gateways are looked
//! up here, in the shell, so the plane walks the tree without waiting on the store.
//!
//! Bounds: [`MAX_NODES`] nodes resolved (the rest run as "too large"), [`MAX_BRANCHES`]
//! branches per bridging node, ring groups repeated at most [`MAX_REPEATS`] times, groups
//! and users expanded [`MAX_EXPANSION`] levels deep.

use std::collections::HashSet;
use std::time::{Duration, SystemTime};

use serde_json::{Map, Value};

use crate::conference::document::ConferenceDoc;
use crate::conference::flow::{CallflowOptions, Target};
use crate::conference::vocabulary::ToneSetting;
use crate::documents::{Kind, Owner, select_callflow};
use crate::store::{Store, StoreError, StoredDocument};

use super::callflow_node::{BridgeNode, ConferenceNode, Failure, MAX_VISITS, Module, Node};
use super::dial_order::{Endpoint, MAX_LEGS_PER_ORDER, Plan, Ring};
use super::dial_targets::{device_endpoint, gateways};

/// Nodes resolved per call.
pub const MAX_NODES: u32 = MAX_VISITS;
/// Branches (devices, or a number's gateways) one bridging node rings.
pub const MAX_BRANCHES: usize = MAX_LEGS_PER_ORDER;
/// Rounds of a ring group.
pub const MAX_REPEATS: u64 = 10;
/// Levels of groups and users a ring group expands.
pub const MAX_EXPANSION: usize = 3;
/// Kazoo's ring timeout, overall and per member, when none is given.
const DEFAULT_TIMEOUT: u64 = 20;
/// Longest timeout or delay taken (seconds).
const MAX_SECONDS: u64 = 600;

/// The callflow `number` runs in `account`, resolved; `None` when no callflow takes it.
pub fn resolve(
    store: &dyn Store,
    account: &str,
    number: &str,
    wall: SystemTime,
) -> Result<Option<Node>, StoreError> {
    let owner = Owner::Account(account);
    // Numbers are indexed; patterns need every callflow of the account.
    let listed = store.find_documents(Kind::Callflow, "numbers", number, Some(owner))?;
    let callflows = match listed.into_iter().next() {
        Some((_, callflow)) => vec![callflow],
        None => store.list_documents(owner, Kind::Callflow)?,
    };
    let Some(callflow) = select_callflow(number, &callflows, |c| &c.doc) else {
        return Ok(None);
    };
    let Some(flow) = callflow.doc.get("flow").and_then(Value::as_object) else {
        return Ok(None);
    };
    let mut resolver = Resolver {
        store,
        account,
        number,
        wall,
        callflow,
        budget: MAX_NODES,
    };
    resolver.node(flow).map(Some)
}

struct Resolver<'a> {
    store: &'a dyn Store,
    account: &'a str,
    number: &'a str,
    wall: SystemTime,
    callflow: &'a StoredDocument,
    budget: u32,
}

/// The time in seconds at `field` of `data`, bounded, or `default`.
fn seconds(data: &Map<String, Value>, field: &str, default: u64) -> Duration {
    let s = data.get(field).and_then(Value::as_u64).unwrap_or(default);
    Duration::from_secs(s.min(MAX_SECONDS))
}

fn text<'d>(data: &'d Map<String, Value>, field: &str) -> &'d str {
    data.get(field).and_then(Value::as_str).unwrap_or_default()
}

impl Resolver<'_> {
    fn node(&mut self, node: &Map<String, Value>) -> Result<Node, StoreError> {
        if self.budget == 0 {
            let (module, children) = (Module::TooLarge, Vec::new());
            return Ok(Node { module, children });
        }
        self.budget -= 1;
        let empty = Map::new();
        let data = node
            .get("data")
            .and_then(Value::as_object)
            .unwrap_or(&empty);
        let module = if data.get("skip_module") == Some(&Value::Bool(true)) {
            Module::Skip
        } else {
            match node
                .get("module")
                .and_then(Value::as_str)
                .unwrap_or_default()
            {
                "conference" => self.conference(data)?,
                kind @ ("device" | "user") => {
                    let timeout = seconds(data, "timeout", DEFAULT_TIMEOUT);
                    let mut branches = Branches::new(true);
                    self.expand(kind, text(data, "id"), 0, &Timing::default(), &mut branches)?;
                    bridge(branches.endpoints, Plan::once(timeout), data)
                }
                "ring_group" => self.ring_group(data)?,
                "resources" => self.resources(data)?,
                _ => Module::Skip,
            }
        };
        let mut children = Vec::new();
        let kids = node.get("children").and_then(Value::as_object);
        for (outcome, child) in kids.into_iter().flatten() {
            if let Some(child) = child.as_object() {
                children.push((outcome.clone(), self.node(child)?));
            }
        }
        Ok(Node { module, children })
    }

    /// `conference`: the document `id`, an ad-hoc room built from `config` (named after
    /// the callflow, so all its numbers meet), or neither: the caller is asked for a
    /// conference number.
    fn conference(&self, data: &Map<String, Value>) -> Result<Module, StoreError> {
        let id = text(data, "id");
        let target = if !id.is_empty() {
            match self.store.get_conference(self.account, id) {
                Ok(c) => Target::Conference {
                    id: c.id,
                    doc: c.doc,
                },
                Err(StoreError::NotFound(_)) => {
                    tracing::info!(id, "callflow: no such conference");
                    return Ok(Module::Fail(Failure::Unavailable));
                }
                Err(e) => return Err(e),
            }
        } else if let Some(config) = data.get("config").and_then(Value::as_object) {
            let mut config = config.clone();
            let name = self.callflow.doc.get("name").cloned();
            let name = name.unwrap_or_else(|| Value::String(self.callflow.id.clone()));
            config.entry("name").or_insert(name);
            Target::Conference {
                id: self.callflow.id.clone(),
                doc: ConferenceDoc::from_map(config),
            }
        } else {
            Target::ServiceMode
        };
        let welcome = data.get("welcome_prompt").and_then(Value::as_object);
        let tone = |field| data.get(field).map(|v| ToneSetting::from_json(Some(v)));
        let options = CallflowOptions {
            moderator: data.get("moderator") == Some(&Value::Bool(true)),
            play_entry_tone: tone("play_entry_tone"),
            play_exit_tone: tone("play_exit_tone"),
            welcome: welcome.and_then(|w| w.get("play")) != Some(&Value::Bool(false)),
            welcome_media: welcome
                .and_then(|w| w.get("media_id"))
                .and_then(Value::as_str)
                .map(str::to_string),
        };
        Ok(Module::Conference(Box::new(ConferenceNode {
            target,
            options,
        })))
    }

    /// `ring_group`: its `endpoints` (devices, users, groups) expanded to devices, rung
    /// by `strategy` (`simultaneous`, `single`, `weighted_random`), `repeats` rounds.
    fn ring_group(&self, data: &Map<String, Value>) -> Result<Module, StoreError> {
        // Kazoo's default: a group rings its members' phones, not their forwards.
        let mut branches = Branches::new(data.get("ignore_forward") == Some(&Value::Bool(false)));
        let mut weights = Vec::new();
        let members = data.get("endpoints").and_then(Value::as_array);
        for member in members.into_iter().flatten().filter_map(Value::as_object) {
            let kind = match text(member, "endpoint_type") {
                "" => "device",
                kind => kind,
            };
            let timing = Timing {
                delay: seconds(member, "delay", 0),
                timeout: seconds(member, "timeout", DEFAULT_TIMEOUT),
            };
            let before = branches.endpoints.len();
            self.expand(kind, text(member, "id"), 0, &timing, &mut branches)?;
            let weight = member.get("weight").and_then(Value::as_u64).unwrap_or(1);
            weights.extend((before..branches.endpoints.len()).map(|_| weight.max(1)));
        }
        let strategy = text(data, "strategy");
        let mut endpoints = branches.endpoints;
        if strategy == "weighted_random" {
            endpoints = weighted_order(endpoints, &weights, super::random::random);
        }
        let sequential = matches!(strategy, "single" | "weighted_random");
        let timeout = match data.get("timeout") {
            Some(_) => seconds(data, "timeout", DEFAULT_TIMEOUT),
            // Single: every member gets its turn.
            None if sequential => endpoints
                .iter()
                .map(|e| e.delay + e.timeout.unwrap_or_default())
                .sum(),
            None => Duration::from_secs(DEFAULT_TIMEOUT),
        };
        let repeats = data.get("repeats").and_then(Value::as_u64).unwrap_or(1);
        let plan = Plan {
            timeout,
            sequential,
            repeats: repeats.clamp(1, MAX_REPEATS) as u32 - 1,
            fail_on_reject: data.get("fail_on_single_reject") == Some(&Value::Bool(true)),
        };
        let ringback = Some(text(data, "ringback")).filter(|r| !r.is_empty());
        Ok(Module::Bridge(BridgeNode {
            endpoints,
            plan,
            ringback: ringback.map(str::to_string),
            // Kazoo's cf_ring_group always bridges with `ignore_early_media`: one phone's
            // early media must not hide the others ringing. A group may say otherwise.
            ignore_early_media: ignores_early_media(data, true),
        }))
    }

    /// `resources`: `to_did` (else the dialed number) through the carriers whose rules
    /// take it, one gateway after the other.
    fn resources(&self, data: &Map<String, Value>) -> Result<Module, StoreError> {
        let number = match text(data, "to_did") {
            "" => self.number,
            did => did,
        };
        let local = data.get("use_local_resources") != Some(&Value::Bool(false));
        let contacts = gateways(self.store, self.account, number, local)?;
        let endpoint = Endpoint::new(number.to_string(), contacts, Ring::Failover);
        let timeout = seconds(data, "timeout", 60);
        Ok(bridge(vec![endpoint], Plan::once(timeout), data))
    }

    /// Adds the devices `id` (of `kind`: device, user, group) stands for, each once.
    fn expand(
        &self,
        kind: &str,
        id: &str,
        depth: usize,
        timing: &Timing,
        out: &mut Branches,
    ) -> Result<(), StoreError> {
        let owner = Owner::Account(self.account);
        let found = |kind| match self.store.get_document(owner, kind, id) {
            Ok(doc) => Ok(Some(doc)),
            Err(StoreError::NotFound(_)) => Ok(None),
            Err(e) => Err(e),
        };
        if depth > MAX_EXPANSION {
            tracing::warn!(id, "callflow: groups nest too deep, member skipped");
            return Ok(());
        }
        match kind {
            "device" => {
                if let Some(device) = found(Kind::Device)? {
                    self.add_device(&device, timing, out)?;
                }
            }
            "user" => {
                let devices =
                    self.store
                        .find_documents(Kind::Device, "owner_id", id, Some(owner))?;
                for (_, device) in devices {
                    self.add_device(&device, timing, out)?;
                }
            }
            "group" => {
                let Some(group) = found(Kind::Group)? else {
                    return Ok(());
                };
                let members = group.doc.get("endpoints").and_then(Value::as_object);
                for (member, spec) in members.into_iter().flatten() {
                    let kind = spec.get("type").and_then(Value::as_str).unwrap_or("device");
                    self.expand(kind, member, depth + 1, timing, out)?;
                }
            }
            _ => {}
        }
        Ok(())
    }

    fn add_device(
        &self,
        device: &StoredDocument,
        timing: &Timing,
        out: &mut Branches,
    ) -> Result<(), StoreError> {
        if !out.seen.insert(device.id.clone()) {
            return Ok(());
        }
        if out.endpoints.len() >= MAX_BRANCHES {
            tracing::warn!(device = %device.id, "callflow: too many branches, device skipped");
            return Ok(());
        }
        let forward = out.follow_forward;
        let mut endpoint = device_endpoint(self.store, self.account, device, self.wall, forward)?;
        endpoint.delay = timing.delay;
        endpoint.timeout = Some(timing.timeout);
        out.endpoints.push(endpoint);
        Ok(())
    }
}

/// A ring group member's own timing, inherited by the devices it expands to.
struct Timing {
    delay: Duration,
    timeout: Duration,
}

impl Default for Timing {
    fn default() -> Self {
        Timing {
            delay: Duration::ZERO,
            timeout: Duration::from_secs(DEFAULT_TIMEOUT),
        }
    }
}

struct Branches {
    endpoints: Vec<Endpoint>,
    seen: HashSet<String>,
    /// Whether devices' `call_forward` applies (not in a ring group that ignores it).
    follow_forward: bool,
}

impl Branches {
    fn new(follow_forward: bool) -> Self {
        Branches {
            endpoints: Vec::new(),
            seen: HashSet::new(),
            follow_forward,
        }
    }
}

/// A `device`, `user` or `resources` node: the caller hears a branch's early media unless
/// the node says `ignore_early_media` (Kazoo's default for them: false).
fn bridge(endpoints: Vec<Endpoint>, plan: Plan, data: &Map<String, Value>) -> Module {
    Module::Bridge(BridgeNode {
        endpoints,
        plan,
        ringback: None,
        ignore_early_media: ignores_early_media(data, false),
    })
}

fn ignores_early_media(data: &Map<String, Value>, default: bool) -> bool {
    let flag = data.get("ignore_early_media").and_then(Value::as_bool);
    flag.unwrap_or(default)
}

/// Endpoints in a weighted random order: each draws `u^(1/weight)` and the largest goes
/// first (Efraimidis-Spirakis), so a member of weight 2 leads twice as often as one of 1.
fn weighted_order(
    endpoints: Vec<Endpoint>,
    weights: &[u64],
    mut random: impl FnMut() -> u64,
) -> Vec<Endpoint> {
    let mut keyed: Vec<(f64, Endpoint)> = endpoints
        .into_iter()
        .zip(weights)
        .map(|(e, w)| {
            let u = (random() >> 11) as f64 / (1u64 << 53) as f64;
            (u.powf(1.0 / *w as f64), e)
        })
        .collect();
    keyed.sort_by(|a, b| b.0.total_cmp(&a.0));
    keyed.into_iter().map(|(_, e)| e).collect()
}

#[cfg(test)]
mod tests {
    use std::path::Path;
    use std::time::UNIX_EPOCH;

    use serde_json::json;

    use super::*;
    use crate::call::registered_phone::registered_phone;
    use crate::store::{DocumentWrite, SqliteStore};

    const ACCOUNT: &str = "a";

    fn store() -> SqliteStore {
        SqliteStore::open(Path::new(":memory:")).expect("open")
    }

    fn create(s: &SqliteStore, kind: Kind, id: &str, body: Value) {
        let write = DocumentWrite::Create(body);
        s.write_document(Owner::Account(ACCOUNT), kind, Some(id), write, None)
            .unwrap_or_else(|e| panic!("{e}"));
    }

    /// Device `id`, registered at 127.0.0.1:`port`.
    fn phone(s: &SqliteStore, id: &str, port: u16, owner: Option<&str>) {
        registered_phone(s, ACCOUNT, id, port, owner);
    }

    fn run(s: &SqliteStore, number: &str) -> Option<Node> {
        resolve(s, ACCOUNT, number, UNIX_EPOCH).expect("resolved")
    }

    fn bridge_of(node: &Node) -> &BridgeNode {
        match &node.module {
            Module::Bridge(b) => b,
            other => panic!("not a bridge: {other:?}"),
        }
    }

    #[test]
    fn numbers_match_before_patterns_and_nothing_matches_nothing() {
        let s = store();
        let flow = |id: &str| json!({"module": "conference", "data": {"config": {"name": id}}});
        let by_pattern = json!({"patterns": ["^5\\d{3}$"], "flow": flow("pattern")});
        create(&s, Kind::Callflow, "aa", by_pattern);
        let by_number = json!({"numbers": ["5000"], "flow": flow("number")});
        create(&s, Kind::Callflow, "bb", by_number);
        let room = |n: &str| match run(&s, n).map(|n| n.module) {
            Some(Module::Conference(c)) => match c.target {
                // An ad-hoc room from `config`, named after the callflow.
                Target::Conference { id, doc } => format!("{id} {}", doc.name().unwrap_or("")),
                Target::ServiceMode => "service".into(),
            },
            other => format!("{other:?}"),
        };
        assert_eq!(room("5000"), "bb number", "the exact number wins");
        assert_eq!(room("5123"), "aa pattern", "else the pattern");
        assert!(
            run(&s, "6000").is_none(),
            "else no callflow: today's routing"
        );
    }

    #[test]
    fn conference_keys_become_the_flow_options() {
        let s = store();
        let conf = s
            .create_conference(ACCOUNT, None, json!({"name": "sales"}))
            .expect("conference");
        let data = json!({
            "id": conf.id,
            "moderator": true,
            "welcome_prompt": {"play": true, "media_id": "hello"},
            "play_entry_tone": false,
            "play_exit_tone": "tone_stream://%(200,0,500)",
        });
        let flow = json!({"numbers": ["5000"], "flow": {"module": "conference", "data": data}});
        create(&s, Kind::Callflow, "cf", flow);
        let Some(Module::Conference(c)) = run(&s, "5000").map(|n| n.module) else {
            panic!("a conference node")
        };
        assert!(matches!(&c.target, Target::Conference { id, .. } if *id == conf.id));
        let expected = CallflowOptions {
            moderator: true,
            play_entry_tone: Some(ToneSetting::Off),
            play_exit_tone: Some(ToneSetting::Custom("tone_stream://%(200,0,500)".into())),
            welcome: true,
            welcome_media: Some("hello".into()),
        };
        assert_eq!(c.options, expected);

        let missing = json!({"numbers": ["5001"], "flow": {"module": "conference", "data": {"id": "0".repeat(32)}}});
        create(&s, Kind::Callflow, "cf2", missing);
        assert_eq!(
            run(&s, "5001").map(|n| n.module),
            Some(Module::Fail(Failure::Unavailable))
        );
        let skipped = json!({"module": "conference", "data": {"skip_module": true}});
        let flow = json!({"numbers": ["5002"], "flow": skipped});
        create(&s, Kind::Callflow, "cf3", flow);
        assert_eq!(run(&s, "5002").map(|n| n.module), Some(Module::Skip));
    }

    #[test]
    fn device_and_user_nodes_ring_registered_contacts_and_resources_the_carriers() {
        let s = store();
        let user = "u".repeat(32);
        create(
            &s,
            Kind::User,
            &user,
            json!({"first_name": "A", "last_name": "B"}),
        );
        phone(&s, "desk", 5070, Some(&user));
        phone(&s, "mobile", 5072, Some(&user));
        let flow = |n: &str, module: &str, data: Value| {
            let flow = json!({"numbers": [n], "flow": {"module": module, "data": data}});
            create(&s, Kind::Callflow, &format!("cf{n}"), flow);
        };
        flow("1", "device", json!({"id": "desk", "timeout": 7}));
        flow("2", "user", json!({"id": user}));
        let resource = json!({"name": "carrier", "rules": ["^\\+?(\\d{7,15})$"],
                              "gateways": [{"server": "127.0.0.1", "port": 5090, "prefix": "9"}]});
        let write = DocumentWrite::Create(resource);
        s.write_document(Owner::Account(ACCOUNT), Kind::Resource, None, write, None)
            .expect("resource");
        flow("3", "resources", json!({"to_did": "+14155550000"}));
        flow(
            "4",
            "resources",
            json!({"to_did": "+14155550000", "use_local_resources": false}),
        );
        flow("5", "resources", json!({"ignore_early_media": true}));

        let node = run(&s, "1").expect("device");
        let b = bridge_of(&node);
        assert_eq!(b.endpoints.len(), 1);
        assert_eq!(b.endpoints[0].contacts[0].uri, "sip:desk@127.0.0.1:5070");
        assert_eq!(b.plan.timeout, Duration::from_secs(7));
        assert!(!b.ignore_early_media, "a device's early media is heard");
        let node = run(&s, "2").expect("user");
        let ids: Vec<&str> = bridge_of(&node)
            .endpoints
            .iter()
            .map(|e| e.id.as_str())
            .collect();
        assert_eq!(ids, ["desk", "mobile"], "a user rings every device it owns");
        let node = run(&s, "3").expect("resources");
        let b = bridge_of(&node);
        assert_eq!(b.endpoints[0].ring, Ring::Failover);
        assert!(!b.ignore_early_media, "Kazoo's resources default");
        assert!(bridge_of(&run(&s, "5").expect("resources")).ignore_early_media);
        assert_eq!(
            b.endpoints[0].contacts[0].uri,
            "sip:914155550000@127.0.0.1:5090"
        );
        let node = run(&s, "4").expect("resources");
        assert!(
            bridge_of(&node).endpoints[0].contacts.is_empty(),
            "the system's only: none"
        );
    }

    #[test]
    fn a_forwarded_device_rings_its_forward_through_the_carriers_but_not_in_a_ring_group() {
        let s = store();
        phone(&s, "desk", 5070, None);
        phone(&s, "cell", 5072, None);
        let forward = |id: &str, substitute: bool| {
            let cf = json!({"call_forward": {"enabled": true, "number": "+14155550000",
                                              "substitute": substitute}});
            let write = DocumentWrite::Patch(cf);
            s.write_document(Owner::Account(ACCOUNT), Kind::Device, Some(id), write, None)
                .expect("forward");
        };
        forward("desk", true);
        forward("cell", false);
        let carrier = json!({"name": "carrier", "rules": ["^\\+?(\\d{7,15})$"],
            "gateways": [{"server": "127.0.0.1", "port": 5090}, {"server": "127.0.0.1", "port": 5092}]});
        create(&s, Kind::Resource, "carrier", carrier);
        let flow = |n: &str, module: &str, data: Value| {
            let flow = json!({"numbers": [n], "flow": {"module": module, "data": data}});
            create(&s, Kind::Callflow, &format!("cf{n}"), flow);
        };
        flow("1", "device", json!({"id": "desk"}));
        flow("2", "device", json!({"id": "cell"}));
        let members = json!([{"id": "desk"}, {"id": "cell"}]);
        flow("3", "ring_group", json!({"endpoints": members}));
        flow(
            "4",
            "ring_group",
            json!({"endpoints": members, "ignore_forward": false}),
        );
        let uris = |number: &str| -> Vec<(Ring, Vec<String>)> {
            let node = run(&s, number).expect("callflow");
            let endpoints = &bridge_of(&node).endpoints;
            let uris = |e: &Endpoint| e.contacts.iter().map(|c| c.uri.clone()).collect();
            endpoints.iter().map(|e| (e.ring, uris(e))).collect()
        };
        let carriers = vec![
            "sip:14155550000@127.0.0.1:5090".to_string(),
            "sip:14155550000@127.0.0.1:5092".to_string(),
        ];
        assert_eq!(
            uris("1"),
            [(Ring::Failover, carriers.clone())],
            "substituted"
        );
        let both = vec!["sip:cell@127.0.0.1:5072".to_string(), carriers[0].clone()];
        assert_eq!(
            uris("2"),
            [(Ring::Simultaneous, both.clone())],
            "beside the phone"
        );
        let phones = [
            (
                Ring::Simultaneous,
                vec!["sip:desk@127.0.0.1:5070".to_string()],
            ),
            (
                Ring::Simultaneous,
                vec!["sip:cell@127.0.0.1:5072".to_string()],
            ),
        ];
        assert_eq!(
            uris("3"),
            phones,
            "a ring group ignores forwards by default"
        );
        let forwarded = [(Ring::Failover, carriers), (Ring::Simultaneous, both)];
        assert_eq!(uris("4"), forwarded);
    }

    #[test]
    fn a_ring_group_expands_users_and_groups_to_devices_once_within_bounds() {
        let s = store();
        let user = "u".repeat(32);
        create(
            &s,
            Kind::User,
            &user,
            json!({"first_name": "A", "last_name": "B"}),
        );
        phone(&s, "desk", 5070, Some(&user));
        phone(&s, "mobile", 5072, Some(&user));
        phone(&s, "lobby", 5074, None);
        // Groups nested five deep: the innermost member is past the bound.
        phone(&s, "deep", 5076, None);
        create(
            &s,
            Kind::Group,
            "g5",
            json!({"name": "g5", "endpoints": {"deep": {"type": "device"}}}),
        );
        for (g, inner) in [("g4", "g5"), ("g3", "g4"), ("g2", "g3"), ("g1", "g2")] {
            let body = json!({"name": g, "endpoints": {inner: {"type": "group"}, "lobby": {"type": "device"}}});
            create(&s, Kind::Group, g, body);
        }
        let members = json!([
            {"id": user, "endpoint_type": "user", "delay": 2, "timeout": 15},
            {"id": "desk", "endpoint_type": "device"},
            {"id": "g1", "endpoint_type": "group"},
        ]);
        let data = json!({"endpoints": members, "strategy": "single", "repeats": 99,
                          "ringback": "tone_stream://%(1000,3000,425)"});
        let flow = json!({"numbers": ["6000"], "flow": {"module": "ring_group", "data": data}});
        create(&s, Kind::Callflow, "rg", flow);
        let node = run(&s, "6000").expect("a callflow");
        let b = bridge_of(&node);
        let ids: Vec<&str> = b.endpoints.iter().map(|e| e.id.as_str()).collect();
        assert_eq!(
            ids,
            ["desk", "mobile", "lobby"],
            "each device once, `deep` too deep"
        );
        assert_eq!(b.endpoints[0].delay, Duration::from_secs(2));
        assert_eq!(b.endpoints[0].timeout, Some(Duration::from_secs(15)));
        assert_eq!(b.endpoints[0].contacts[0].uri, "sip:desk@127.0.0.1:5070");
        assert!(b.plan.sequential);
        assert_eq!(b.plan.repeats as u64, MAX_REPEATS - 1);
        // Single, no overall timeout: every member gets its turn.
        assert_eq!(b.plan.timeout, Duration::from_secs(17 + 17 + 20));
        assert_eq!(
            b.ringback.as_deref(),
            Some("tone_stream://%(1000,3000,425)")
        );
        assert!(
            b.ignore_early_media,
            "Kazoo's ring groups ignore early media"
        );

        // Many devices: at most MAX_BRANCHES ring.
        let mut many = serde_json::Map::new();
        for i in 0..20 {
            let id = format!("p{i:02}");
            phone(&s, &id, 6000 + i, None);
            many.insert(id, json!({"type": "device"}));
        }
        create(
            &s,
            Kind::Group,
            "many",
            json!({"name": "many", "endpoints": many}),
        );
        let data = json!({"endpoints": [{"id": "many", "endpoint_type": "group"}]});
        let flow = json!({"numbers": ["6001"], "flow": {"module": "ring_group", "data": data}});
        create(&s, Kind::Callflow, "rg2", flow);
        let node = run(&s, "6001").expect("a callflow");
        assert_eq!(bridge_of(&node).endpoints.len(), MAX_BRANCHES);
    }

    #[test]
    fn weighted_random_puts_heavier_members_first_more_often() {
        let e = |id: &str| Endpoint::new(id.into(), Vec::new(), Ring::Simultaneous);
        let mut random = crate::test_rng::seeded(0x1234_5678);
        let mut heavy_first = 0;
        for _ in 0..1000 {
            let order = weighted_order(vec![e("light"), e("heavy")], &[1, 3], &mut random);
            heavy_first += usize::from(order[0].id == "heavy");
        }
        // P(heavy first) = 3/4.
        assert!((700..800).contains(&heavy_first), "{heavy_first}");
    }

    #[test]
    fn the_node_budget_bounds_a_wide_flow() {
        let s = store();
        let leaf = json!({"module": "device", "data": {"id": "x"}});
        let mut children = serde_json::Map::new();
        for i in 0..40 {
            children.insert(format!("k{i:02}"), leaf.clone());
        }
        let flow = json!({"numbers": ["7000"], "flow": {"module": "device", "data": {"id": "x"}, "children": children}});
        create(&s, Kind::Callflow, "wide", flow);
        let node = run(&s, "7000").expect("a callflow");
        let too_large = node
            .children
            .iter()
            .filter(|(_, n)| n.module == Module::TooLarge)
            .count();
        assert_eq!(too_large, 40 + 1 - MAX_NODES as usize);
    }
}
