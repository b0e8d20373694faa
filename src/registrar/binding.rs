//! One contact bound to a device, as kept in memory and stored (expiry in Unix seconds, so a
//! restart keeps it until then).

use serde::{Deserialize, Serialize};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Binding {
    /// The Contact URI as the phone sent it.
    pub contact: String,
    #[serde(rename = "expires", with = "unix_seconds")]
    pub expires_at: SystemTime,
    /// The registration (Call-ID and CSeq) that last refreshed it: older requests of the same
    /// registration are ignored (RFC 3261 §10.3 step 7).
    pub call_id: String,
    pub cseq: u32,
}

impl Binding {
    pub fn new(contact: &str, expires_at: SystemTime, call_id: String, cseq: u32) -> Self {
        Self {
            contact: contact.to_owned(),
            expires_at,
            call_id,
            cseq,
        }
    }

    /// RFC 3261 §19.1.4 compares scheme and host case-insensitively; phones resend their
    /// Contact byte for byte, so a case-insensitive comparison of the whole URI suffices.
    pub fn same_contact(&self, uri: &str) -> bool {
        self.contact.eq_ignore_ascii_case(uri)
    }
}

/// A device's stored bindings after one node's change: `known` (that node's bindings now)
/// and `dropped` (those it removed since) over `stored`. Several nodes may bind contacts of
/// one device, and each knows only its own (and those it loaded at start), so a contact is
/// replaced only by a binding expiring no earlier, and removed only if not refreshed since
/// the node dropped it; the others' contacts stay. The newest binding is last.
pub fn merge(mut stored: Vec<Binding>, known: &[Binding], dropped: &[Binding]) -> Vec<Binding> {
    stored.retain(|s| {
        !dropped
            .iter()
            .any(|d| s.same_contact(&d.contact) && s.expires_at <= d.expires_at)
    });
    for k in known {
        match stored.iter().position(|s| s.same_contact(&k.contact)) {
            Some(i) if stored[i].expires_at > k.expires_at => {}
            Some(i) if stored[i] == *k => {}
            Some(i) => {
                stored.remove(i);
                stored.push(k.clone());
            }
            None => stored.push(k.clone()),
        }
    }
    stored
}

mod unix_seconds {
    use super::*;
    use serde::{Deserializer, Serializer};

    pub fn serialize<S: Serializer>(t: &SystemTime, s: S) -> Result<S::Ok, S::Error> {
        let secs = t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
        s.serialize_u64(secs)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<SystemTime, D::Error> {
        Ok(UNIX_EPOCH + Duration::from_secs(u64::deserialize(d)?))
    }
}
