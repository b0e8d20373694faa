//! An in-memory control plane serving [`Request`]s, recording what it was asked.

use super::super::service::{
    ConfRef, Conference, ConferenceAction, EndpointResponse, EndpointSpec, Live, ParticipantAction,
    Recording, Relate, Request, ServiceError, Target,
};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::SystemTime;
use tokio::sync::mpsc;

/// The actions the fake was asked to perform, in order.
#[derive(Debug, Clone, PartialEq)]
pub enum Seen {
    Conference(String, ConferenceAction),
    Participants(String, Target, ParticipantAction),
    Relate(String, Relate),
}

#[derive(Debug, Default)]
pub struct State {
    pub docs: HashMap<(String, String), Value>,
    pub live: HashMap<String, Live>,
    pub recordings: HashMap<String, PathBuf>,
    pub seen: Vec<Seen>,
    pub requests: usize,
    next_id: u32,
}

#[derive(Clone, Default)]
pub struct Fake(pub Arc<Mutex<State>>);

impl Fake {
    pub fn spawn(mut requests: mpsc::Receiver<Request>) -> Self {
        let fake = Self::default();
        let serving = fake.clone();
        tokio::spawn(async move {
            while let Some(request) = requests.recv().await {
                serving.serve(request);
            }
        });
        fake
    }

    pub fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.0.lock().unwrap()
    }

    fn serve(&self, request: Request) {
        let mut s = self.state();
        s.requests += 1;
        // A dropped receiver means the handler gave up; nothing to do about it here.
        let _delivered = match request {
            Request::List { account, reply } => reply.send(Ok(s.list(&account))).is_ok(),
            Request::Get { conf, reply } => reply.send(s.get(&conf)).is_ok(),
            Request::Create {
                account,
                doc,
                reply,
            } => {
                s.next_id += 1;
                let id = format!("conf{:028}", s.next_id);
                reply.send(s.store(ConfRef { account, id }, doc)).is_ok()
            }
            Request::Replace { conf, doc, reply } => reply
                .send(s.get(&conf).and_then(|_| s.store(conf, doc)))
                .is_ok(),
            Request::Patch { conf, patch, reply } => {
                let merged = s.get(&conf).map(|c| merge(c.doc, patch));
                reply
                    .send(merged.and_then(|doc| s.store(conf, doc)))
                    .is_ok()
            }
            Request::Delete { conf, reply } => {
                let gone = s.docs.remove(&(conf.account, conf.id.clone()));
                reply
                    .send(gone.ok_or(ServiceError::NotFound(conf.id)))
                    .is_ok()
            }
            Request::Conference {
                conf,
                action,
                reply,
            } => {
                let result = match &action {
                    ConferenceAction::Play { media_id } if media_id == "missing" => {
                        Err(ServiceError::NotFound(media_id.clone()))
                    }
                    _ => Ok(()),
                };
                s.seen.push(Seen::Conference(conf.id, action));
                reply.send(result).is_ok()
            }
            Request::Participants {
                conf,
                target,
                action,
                reply,
            } => {
                let result = match target {
                    Target::One(pid) => s.has_participant(&conf.id, pid),
                    Target::All => Ok(()),
                };
                s.seen.push(Seen::Participants(conf.id, target, action));
                reply.send(result).is_ok()
            }
            Request::Dial { dial, reply, .. } => {
                // Every endpoint answers, with a call id named after its position.
                let responses = dial
                    .endpoints
                    .iter()
                    .enumerate()
                    .map(|(i, e)| EndpointResponse {
                        endpoint_id: match e {
                            EndpointSpec::Id(s)
                            | EndpointSpec::Uri(s)
                            | EndpointSpec::Number(s) => s.clone(),
                            EndpointSpec::Device(_) => String::new(),
                        },
                        outcome: Ok(format!("call-{i}")),
                    })
                    .collect();
                reply.send(Ok(responses)).is_ok()
            }
            Request::Relate {
                conf,
                relate,
                reply,
            } => {
                let result = s
                    .has_participant(&conf.id, relate.participant_id)
                    .and_then(|_| s.has_participant(&conf.id, relate.other_participant));
                s.seen.push(Seen::Relate(conf.id, relate));
                reply.send(result).is_ok()
            }
            Request::Recordings { conf, reply } => {
                let list = s.recordings.iter().filter(|(n, _)| n.starts_with(&conf.id));
                let list = list.map(|(name, path)| Recording {
                    name: name.clone(),
                    bytes: std::fs::metadata(path).map_or(0, |m| m.len()),
                    created: SystemTime::UNIX_EPOCH,
                });
                reply.send(Ok(list.collect())).is_ok()
            }
            Request::Recording {
                conf: _,
                name,
                reply,
            } => reply
                .send(
                    s.recordings
                        .get(&name)
                        .cloned()
                        .ok_or(ServiceError::NotFound(name)),
                )
                .is_ok(),
        };
    }
}

impl State {
    fn list(&self, account: &str) -> Vec<Conference> {
        let mine = self.docs.iter().filter(|((a, _), _)| a == account);
        let mut list: Vec<Conference> = mine
            .map(|((_, id), doc)| Conference {
                doc: doc.clone(),
                live: self.live.get(id).cloned(),
            })
            .collect();
        list.sort_by_key(|c| c.doc["id"].as_str().map(str::to_owned));
        list
    }

    fn get(&self, conf: &ConfRef) -> Result<Conference, ServiceError> {
        let doc = self.docs.get(&(conf.account.clone(), conf.id.clone()));
        let doc = doc
            .cloned()
            .ok_or_else(|| ServiceError::NotFound(conf.id.clone()))?;
        Ok(Conference {
            doc,
            live: self.live.get(&conf.id).cloned(),
        })
    }

    /// The two checks the real data layer makes that matter to the API: schema and numbers.
    fn store(&mut self, conf: ConfRef, mut doc: Value) -> Result<Value, ServiceError> {
        if doc["name"]
            .as_str()
            .is_some_and(|n| n.chars().count() > 128)
        {
            return Err(ServiceError::Validation(json!({"name": {"maxLength": {
                "message": "String must not be more than 128 characters",
                "target": 128,
                "value": doc["name"],
            }}})));
        }
        let taken: Vec<String> = numbers(&doc)
            .filter(|n| {
                let others = self
                    .docs
                    .iter()
                    .filter(|((a, id), _)| *a == conf.account && *id != conf.id);
                others.into_iter().any(|(_, d)| numbers(d).any(|m| &m == n))
            })
            .collect();
        if !taken.is_empty() {
            return Err(ServiceError::Validation(json!({"numbers": {"unique": {
                "message": "Numbers already in use",
                "cause": taken.join(","),
            }}})));
        }
        doc["id"] = conf.id.clone().into();
        self.docs.insert((conf.account, conf.id), doc.clone());
        Ok(doc)
    }

    fn has_participant(&self, id: &str, pid: u32) -> Result<(), ServiceError> {
        let live = self
            .live
            .get(id)
            .map(|l| &l.participants[..])
            .unwrap_or_default();
        match live.iter().any(|p| p.participant_id == pid) {
            true => Ok(()),
            false => Err(ServiceError::NotFound(pid.to_string())),
        }
    }
}

fn numbers(doc: &Value) -> impl Iterator<Item = String> + '_ {
    let lists = [
        &doc["conference_numbers"],
        &doc["member"]["numbers"],
        &doc["moderator"]["numbers"],
    ];
    lists
        .into_iter()
        .filter_map(Value::as_array)
        .flatten()
        .filter_map(Value::as_str)
        .map(str::to_owned)
}

fn merge(mut doc: Value, patch: Value) -> Value {
    if let (Value::Object(d), Value::Object(p)) = (&mut doc, patch) {
        d.extend(p);
    }
    doc
}
