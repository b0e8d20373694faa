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

use super::callflow::{BridgeNode, ConferenceNode, Failure, MAX_VISITS, Module, Node};
use super::dial_order::{Endpoint, MAX_LEGS_PER_ORDER, Plan, Ring};
use super::dial_targets::{device_contacts, gateways};

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
    let callflows = store.list_documents(Owner::Account(account), Kind::Callflow)?;
    let Some(callflow) = select_callflow(number, &callflows) else {
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
                    let mut branches = Branches::default();
                    self.expand(kind, text(data, "id"), 0, &Timing::default(), &mut branches)?;
                    bridge(branches.endpoints, timeout, false, 0)
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
        let mut branches = Branches::default();
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
            endpoints = weighted_order(endpoints, &weights, super::answer::random);
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
        let repeats = repeats.clamp(1, MAX_REPEATS) as u32 - 1;
        Ok(bridge(endpoints, timeout, sequential, repeats))
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
        Ok(bridge(vec![endpoint], timeout, false, 0))
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
        let contacts = device_contacts(self.store, self.account, device, self.wall)?;
        let mut endpoint = Endpoint::new(device.id.clone(), contacts, Ring::Simultaneous);
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

#[derive(Default)]
struct Branches {
    endpoints: Vec<Endpoint>,
    seen: HashSet<String>,
}

fn bridge(endpoints: Vec<Endpoint>, timeout: Duration, sequential: bool, repeats: u32) -> Module {
    let plan = Plan {
        timeout,
        sequential,
        repeats,
    };
    Module::Bridge(BridgeNode { endpoints, plan })
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
