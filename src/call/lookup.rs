//! The store reads a new call's routing needs (the number's documents and callflow, the
//! `conferences` config, the caller's kept name). The shell runs them on blocking threads,
//! so a slow or unreachable database delays the calls that wait for it, not the call plane
//! and every other call's signalling.

use std::sync::Arc;
use std::time::SystemTime;

use crate::documents::{DEFAULT_REALM, Kind, Owner, sip_key};
use crate::sounds::library::Library;
use crate::store::{Store, StoreError};

use super::callflow_targets;
use super::output::{Caller, StoreAnswer, StoreQuery};

/// The `source_type` of a media document holding a caller's recorded name.
pub(super) const PLAY_NAME: &str = "play_name";

/// A read's id and its answer, back to the call plane.
pub(super) type LookedUp = (u64, Result<StoreAnswer, String>);

#[derive(Clone)]
pub(super) struct StoreReader {
    pub store: Arc<dyn Store>,
    /// Media documents' audio: a recorded name is also kept there for the caller's next call.
    pub media: Library,
}

impl StoreReader {
    pub fn lookup(&self, account: &str, query: StoreQuery) -> Result<StoreAnswer, StoreError> {
        let found = |number: &str| -> Result<_, StoreError> {
            let found = self.store.find_by_number(account, number)?;
            Ok(found.into_iter().map(|c| (c.id, c.doc)).collect())
        };
        Ok(match query {
            StoreQuery::Route { number, caller } => StoreAnswer::Route {
                config: self.store.conferences_config(account)?,
                found: found(&number)?,
                name: caller.and_then(|c| self.kept_name(account, &c)),
                callflow: callflow_targets::resolve(
                    &*self.store,
                    account,
                    &number,
                    SystemTime::now(),
                )?
                .map(Box::new),
            },
            StoreQuery::FindByNumber { number } => StoreAnswer::Found(found(&number)?),
        })
    }

    /// Who a caller's recorded name belongs to, as Kazoo keeps it: the user owning the
    /// caller's device, else the device, else the caller's address.
    pub fn name_owner(&self, account: &str, caller: &Caller) -> String {
        let owner = Some(Owner::Account(account));
        let device = [caller.host.as_str(), DEFAULT_REALM]
            .iter()
            .find_map(|realm| {
                let key = sip_key(&caller.user, realm);
                let found = self
                    .store
                    .find_documents(Kind::Device, "sip.username", &key, owner);
                found.ok()?.into_iter().next().map(|(_, d)| d)
            });
        match device {
            Some(d) => match d.doc.get("owner_id").and_then(serde_json::Value::as_str) {
                Some(user) => user.to_string(),
                None => d.id,
            },
            None => format!("caller:{}@{}", caller.user, caller.host),
        }
    }

    /// The caller's kept `play_name` media document, if its audio is there.
    pub fn kept_name_doc(&self, account: &str, caller: &Caller) -> Option<String> {
        let owner = self.name_owner(account, caller);
        let docs = self
            .store
            .find_documents(
                Kind::Media,
                "owner_id",
                &owner,
                Some(Owner::Account(account)),
            )
            .ok()?;
        docs.into_iter()
            .map(|(_, d)| d)
            .find(|d| d.doc.get("source_type").and_then(|v| v.as_str()) == Some(PLAY_NAME))
            .map(|d| d.id)
    }

    fn kept_name(&self, account: &str, caller: &Caller) -> Option<String> {
        let id = self.kept_name_doc(account, caller)?;
        let path = self.media.path(account, &id)?;
        path.is_file().then_some(id)
    }
}
