//! REGISTER handed to the application's registrar ([`EndpointConfig::registrar`]): parsed
//! into an [`IncomingRegister`], answered with [`Endpoint::respond_register`].

use super::*;
use crate::sip::NameAddr;

/// REGISTERs awaiting the registrar's answer; more are answered 503 at once.
pub const MAX_AWAITING_REGISTERS: usize = 1024;
/// Contacts one REGISTER may list (the registrar bounds bindings further).
pub const MAX_CONTACTS: usize = 16;

impl Endpoint {
    pub fn poll_register(&mut self) -> Option<IncomingRegister> {
        self.registers.pop_front()
    }

    /// Sends the registrar's answer to a REGISTER (ignored when the transaction is gone).
    pub fn respond_register(
        &mut self,
        now: Instant,
        id: RegisterId,
        status: u16,
        reason: &str,
        headers: Vec<(&'static str, String)>,
    ) {
        if let Some(key) = self.awaiting_registers.remove(&id) {
            self.reply(now, &key, status, reason, headers, None);
        }
    }

    pub(super) fn incoming_register(&mut self, now: Instant, key: TxKey, req: Request, peer: Peer) {
        if self.awaiting_registers.len() >= MAX_AWAITING_REGISTERS {
            let retry = self.admission.limits().retry_after_secs.to_string();
            let headers = vec![("Retry-After", retry)];
            return self.reply(now, &key, 503, "Service Unavailable", headers, None);
        }
        let id = RegisterId(self.fresh_id());
        let Some(register) = parse_register(id, &req, peer.addr) else {
            return self.reply(now, &key, 400, "Bad Contact", vec![], None);
        };
        self.awaiting_registers.insert(id, key);
        self.registers.push_back(register);
    }
}

/// The REGISTER's address-of-record, Expires, contacts and credentials; `None` when a
/// Contact is malformed, `*` is not alone, or there are too many contacts.
fn parse_register(id: RegisterId, req: &Request, source: SocketAddr) -> Option<IncomingRegister> {
    let values: Vec<&str> = req.msg.headers_named("Contact").collect();
    let star = values.iter().any(|v| v.trim() == "*");
    if (star && values.len() > 1) || values.len() > MAX_CONTACTS {
        return None;
    }
    let contacts = if star {
        Vec::new()
    } else {
        let parsed = values
            .iter()
            .map(|v| Some((NameAddr::parse(v)?.uri, expires_param(v))));
        parsed.collect::<Option<Vec<_>>>()?
    };
    let host = aor_host(&req.to.uri)?;
    Some(IncomingRegister {
        id,
        call_id: req.call_id.clone(),
        cseq: req.cseq,
        user: req.to.user.clone()?,
        host,
        expires: req
            .msg
            .header("Expires")
            .and_then(|e| e.trim().parse().ok()),
        star,
        contacts,
        authorizations: req
            .msg
            .headers_named("Authorization")
            .map(str::to_owned)
            .collect(),
        source,
    })
}

/// The `expires` parameter of a Contact value (after its URI).
fn expires_param(value: &str) -> Option<u32> {
    let params = match value.rfind('>') {
        Some(end) => &value[end + 1..],
        None => value.split_once(';').map_or("", |(_, p)| p),
    };
    params.split(';').find_map(|p| {
        let (name, v) = p.split_once('=')?;
        name.trim()
            .eq_ignore_ascii_case("expires")
            .then(|| v.trim().parse().ok())?
    })
}

/// The host of a `sip:user@host[:port][;params]` address-of-record.
fn aor_host(uri: &str) -> Option<String> {
    let rest = uri.split_once('@')?.1;
    let end = rest.find([';', '?', '>']).unwrap_or(rest.len());
    let hostport = &rest[..end];
    let host = match hostport.strip_prefix('[') {
        Some(v6) => v6.split(']').next()?,
        None => hostport.split(':').next()?,
    };
    (!host.is_empty()).then(|| host.to_ascii_lowercase())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn contact_expires_and_aor_hosts() {
        assert_eq!(expires_param("<sip:a@h;expires=5>;expires=60"), Some(60));
        assert_eq!(expires_param("\"A\" <sip:a@h> ; Expires = 0"), Some(0));
        assert_eq!(expires_param("sip:a@h;expires=x"), None);
        assert_eq!(expires_param("<sip:a@h>"), None);
        assert_eq!(
            aor_host("sip:alice@Acme.Example:5060;transport=tcp").as_deref(),
            Some("acme.example")
        );
        assert_eq!(aor_host("sip:alice@[::1]:5060").as_deref(), Some("::1"));
        assert_eq!(aor_host("sip:acme.example"), None);
    }
}
