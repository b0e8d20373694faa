//! The registrar's async shell: REGISTERs from the SIP task, device credentials and stored
//! bindings from the store (in `spawn_blocking`), the clock. All decisions are
//! [`Registrar`]'s.

use super::{Config, Contacts, Credentials, DeviceRef, Register, Registrar};
use crate::documents::{DEFAULT_REALM, Kind, sip_key};
use crate::sip::{IncomingRegister, SipHandle};
use crate::store::{Store, StoreError};
use serde_json::Value;
use std::sync::Arc;
use std::time::{Instant, SystemTime};
use tokio::sync::mpsc;

/// Serves REGISTERs until the SIP task stops sending them (or the task is aborted: it holds
/// a [`SipHandle`], which keeps the SIP task alive).
pub async fn run(
    config: Config,
    store: Arc<dyn Store>,
    sip: SipHandle,
    mut registers: mpsc::Receiver<IncomingRegister>,
) {
    let mut secret = [0u8; 32];
    if getrandom::fill(&mut secret).is_err() {
        tracing::error!("no randomness for registrar nonces: REGISTER stays unanswered");
        return;
    }
    let mut registrar = Registrar::new(config, secret);
    match blocking(&store, |s| s.bindings()).await {
        Ok(stored) => {
            let wall = SystemTime::now();
            for (device, bindings) in stored {
                registrar.restore(wall, device, bindings);
            }
        }
        Err(e) => tracing::error!(error = %e, "stored registrations not loaded"),
    }
    loop {
        let next = registrar.poll_timeout().map(until);
        let sleep = tokio::time::sleep(next.unwrap_or(std::time::Duration::from_secs(3600)));
        tokio::select! {
            request = registers.recv() => {
                let Some(request) = request else { return };
                let device = lookup(&store, &request).await;
                let register = as_register(&request);
                let reply = registrar.register(Instant::now(), SystemTime::now(), &register, device.as_ref());
                // Stored before the phone hears 200: an acknowledged binding survives a crash.
                save_changes(&mut registrar, &store).await;
                sip.respond_register(request.id, reply.status, reply.reason, reply.headers).await;
            }
            () = sleep => {
                registrar.handle_timeout(SystemTime::now());
                save_changes(&mut registrar, &store).await;
            }
        }
    }
}

/// How long until `at` (zero when past).
fn until(at: SystemTime) -> std::time::Duration {
    at.duration_since(SystemTime::now()).unwrap_or_default()
}

fn as_register(request: &IncomingRegister) -> Register<'_> {
    let contacts = if request.star {
        Contacts::All
    } else if request.contacts.is_empty() {
        Contacts::Query
    } else {
        Contacts::List(request.contacts.clone())
    };
    Register {
        call_id: &request.call_id,
        cseq: request.cseq,
        expires: request.expires,
        contacts,
        authorizations: request.authorizations.iter().map(String::as_str).collect(),
    }
}

/// The enabled device whose SIP username is the address-of-record's user in the realm of
/// its host, else among devices without `sip.realm` (the server's realm).
async fn lookup(store: &Arc<dyn Store>, request: &IncomingRegister) -> Option<Credentials> {
    let keys = [
        sip_key(&request.user, &request.host),
        sip_key(&request.user, DEFAULT_REALM),
    ];
    let found = blocking(store, move |s| {
        for key in keys {
            let mut found = s.find_documents(Kind::Device, "sip.username", &key, None)?;
            if let Some(one) = found.pop() {
                return Ok(Some(one));
            }
        }
        Ok(None)
    })
    .await;
    let (account, doc) = match found {
        Ok(Some((Some(account), doc))) => (account, doc),
        Ok(_) => return None,
        Err(e) => {
            tracing::error!(error = %e, "device lookup for REGISTER");
            return None;
        }
    };
    let sip = doc.doc.get("sip")?;
    let text = |f: &str| sip.get(f).and_then(Value::as_str).map(str::to_owned);
    let enabled = doc.doc.get("enabled").and_then(Value::as_bool) != Some(false);
    enabled.then_some(Credentials {
        device: DeviceRef {
            account,
            id: doc.id,
        },
        username: text("username")?,
        password: text("password")?,
        realm: text("realm"),
    })
}

async fn save_changes(registrar: &mut Registrar, store: &Arc<dyn Store>) {
    while let Some((device, bindings, dropped)) = registrar.poll_change() {
        let put = move |s: &dyn Store| s.put_bindings(&device, &bindings, &dropped);
        if let Err(e) = blocking(store, put).await {
            tracing::error!(error = %e, "registrations not stored");
        }
    }
}

async fn blocking<T: Send + 'static>(
    store: &Arc<dyn Store>,
    f: impl FnOnce(&dyn Store) -> Result<T, StoreError> + Send + 'static,
) -> Result<T, StoreError> {
    let store = store.clone();
    tokio::task::spawn_blocking(move || f(&*store))
        .await
        .map_err(|e| StoreError::File {
            path: "registrar".into(),
            reason: e.to_string(),
        })?
}
