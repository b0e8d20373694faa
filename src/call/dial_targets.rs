//! What a `dial` rings (spec §7), read from the store: a device id rings the device's live
//! registered contacts, a user id the contacts of every device the user owns, a `sip:` URI
//! itself, an inline device its `sip.route` or, by its SIP username, the registered device,
//! and a number what its callflow's first node rings (a ring group, a device, a user,
//! resources), else the gateways of the carriers whose rules take it (the account's
//! resources, then the system's; lower `weight_cost` first), one after the other. Errors
//! are Kazoo's, on `data.endpoints.{i}`.
//!
//! Contacts are rung over UDP at their host, which must be an IP address, except a
//! gateway's `server`, which may be a DNS name: the shell looks it up (A/AAAA, bounded)
//! when the leg is placed, never on the call plane's task.

use std::net::{IpAddr, SocketAddr};
use std::time::SystemTime;

use serde_json::{Map, Value, json};

use crate::api::service::{ConfRef, DialArgs, EndpointSpec, ServiceError};
use crate::documents::{DEFAULT_REALM, Gateway, Kind, Owner, resource_route, sip_key};
use crate::registrar::DeviceRef;
use crate::store::{Store, StoreError, StoredDocument};

use super::callflow_node::{Module, Node};
use super::dial_order::{Contact, Endpoint, MAX_LEGS_PER_ORDER, NumberFlow, Ring};
use super::locate::{SIP_PORT, ServerName};
use crate::sip::{DialAuth, Protocol};

/// The account's callflow for a number, resolved (`super::callflow_targets::resolve`,
/// given by the caller so that this module and that one do not import each other).
pub type CallflowOf<'a> = &'a dyn Fn(&str) -> Result<Option<Node>, StoreError>;

/// The endpoints of `args`, each with what it rings.
pub fn resolve(
    store: &dyn Store,
    conf: &ConfRef,
    args: &DialArgs,
    wall: SystemTime,
    callflow: CallflowOf,
) -> Result<Vec<Endpoint>, ServiceError> {
    let account = conf.account.as_str();
    let mut endpoints = Vec::new();
    for (i, spec) in args.endpoints.iter().enumerate() {
        let field = format!("data.endpoints.{i}");
        let (id, contacts) = match spec {
            EndpointSpec::Id(id) => {
                endpoints.push(by_id(store, account, id, &field, wall)?);
                continue;
            }
            EndpointSpec::Uri(uri) => (uri.clone(), vec![contact(uri, &field)?]),
            EndpointSpec::Device(doc) => {
                let id = doc.get("id").and_then(Value::as_str).unwrap_or_default();
                (id.to_string(), inline_device(store, doc, &field, wall)?)
            }
            EndpointSpec::Number(number) => {
                endpoints.push(number_endpoint(store, account, number, &field, callflow)?);
                continue;
            }
        };
        let ring = Ring::Simultaneous;
        endpoints.push(Endpoint::new(id, contacts, ring));
    }
    if endpoints.iter().all(Endpoint::rings_nothing) {
        return Err(invalid(
            "data.endpoints",
            "minItems",
            json!({"message": "No endpoint has a registered contact to ring", "target": 1}),
        ));
    }
    Ok(endpoints)
}

/// A number runs the account's callflow for it (numbers, then patterns): when that starts
/// with a bridging node (device, user, ring group, resources; `skip_module` nodes passed
/// by their `_` child), the endpoint rings what the node resolves to, then the bridging
/// child for its failure, as a callflow would (see [`number_flow`]). A number without a
/// callflow goes to the carriers (Kazoo's `no_match`). A callflow that starts otherwise (a
/// conference) cannot bring anyone into this conference: refused, naming the callflow.
fn number_endpoint(
    store: &dyn Store,
    account: &str,
    number: &str,
    field: &str,
    callflow: CallflowOf,
) -> Result<Endpoint, ServiceError> {
    let Some(node) = callflow(number)? else {
        let contacts = gateways(store, account, number, true)?;
        return Ok(Endpoint::new(number.to_string(), contacts, Ring::Failover));
    };
    let Some(flow) = number_flow(node) else {
        let message = format!(
            "The callflow for {number} does not start with device, user, ring_group or resources"
        );
        return Err(invalid(
            field,
            "enum",
            json!({"message": message, "value": number}),
        ));
    };
    let mut endpoint = Endpoint::new(number.to_string(), Vec::new(), Ring::Failover);
    endpoint.callflow = Some(Box::new(flow));
    Ok(endpoint)
}

/// The bridging nodes of a callflow from `node` (`skip_module` nodes passed by their `_`
/// child); a child that is not one (a conference) is dropped: it cannot ring anyone into
/// this conference.
fn number_flow(mut node: Node) -> Option<NumberFlow> {
    loop {
        match node.module {
            Module::Bridge(bridge) => {
                let children = node.children.into_iter();
                let children = children.filter_map(|(k, child)| Some((k, number_flow(child)?)));
                return Some(NumberFlow {
                    node: bridge,
                    children: children.collect(),
                });
            }
            Module::Skip => {
                let (_, child) = node.children.into_iter().find(|(k, _)| k == "_")?;
                node = child;
            }
            _ => return None,
        }
    }
}

/// A device (see [`device_endpoint`]), or a user's devices all at once.
fn by_id(
    store: &dyn Store,
    account: &str,
    id: &str,
    field: &str,
    wall: SystemTime,
) -> Result<Endpoint, ServiceError> {
    let owner = Owner::Account(account);
    match store.get_document(owner, Kind::Device, id) {
        Ok(device) => return Ok(device_endpoint(store, account, &device, wall, true)?),
        Err(StoreError::NotFound(_)) => {}
        Err(e) => return Err(e.into()),
    }
    match store.get_document(owner, Kind::User, id) {
        Ok(_) => {}
        Err(StoreError::NotFound(_)) => {
            let message = format!("ID {id} not found");
            return Err(invalid(
                field,
                "not_found",
                json!({"message": message, "value": id}),
            ));
        }
        Err(e) => return Err(e.into()),
    }
    let devices = store.find_documents(Kind::Device, "owner_id", id, Some(owner))?;
    if devices.is_empty() {
        let message = format!("user {id} has no devices");
        return Err(invalid(
            field,
            "minItems",
            json!({"message": message, "target": 1}),
        ));
    }
    let mut contacts = Vec::new();
    for (_, device) in devices {
        let endpoint = device_endpoint(store, account, &device, wall, true)?;
        // The devices ring at once: of a forward's gateways, the first.
        let n = match endpoint.ring {
            Ring::Failover => 1,
            Ring::Simultaneous => endpoint.contacts.len(),
        };
        contacts.extend(endpoint.contacts.into_iter().take(n));
    }
    contacts.truncate(MAX_LEGS_PER_ORDER);
    Ok(Endpoint::new(id.to_string(), contacts, Ring::Simultaneous))
}

/// What dialing `device` rings: its live registered contacts; with `call_forward` enabled
/// and `follow_forward` (a ring group's `ignore_forward: false`, or not in a group), its
/// forward number through the account's carriers, one gateway after the other, in place of
/// the contacts (`substitute`, Kazoo's default), else the first gateway beside them (they
/// all ring at once). Forwarded legs show the caller's id (`keep_caller_id`, default
/// true), else the device's external caller id (then its owner's), and are bridged once
/// their callee presses 1 (`require_keypress`, default true).
pub(super) fn device_endpoint(
    store: &dyn Store,
    account: &str,
    device: &StoredDocument,
    wall: SystemTime,
    follow_forward: bool,
) -> Result<Endpoint, StoreError> {
    let mut contacts = device_contacts(store, account, device, wall)?;
    let id = device.id.clone();
    let forward = device.doc.get("call_forward").filter(|_| follow_forward);
    let flag = |key: &str| forward.and_then(|f| f.get(key)).and_then(Value::as_bool);
    let number = forward
        .and_then(|f| f.get("number"))
        .and_then(Value::as_str);
    let enabled = device.doc.get("enabled") != Some(&Value::Bool(false));
    let Some(number) = number.filter(|n| enabled && flag("enabled") == Some(true) && !n.is_empty())
    else {
        return Ok(Endpoint::new(id, contacts, Ring::Simultaneous));
    };
    let mut carriers = gateways(store, account, number, true)?;
    let caller_id = match flag("keep_caller_id") {
        Some(false) => external_caller_id(store, account, device)?,
        _ => None,
    };
    // Kazoo's default: the forwarded callee confirms with a key (a voicemail does not).
    let confirm = flag("require_keypress") != Some(false);
    for c in &mut carriers {
        c.caller_id.clone_from(&caller_id);
        c.confirm = confirm;
    }
    if flag("substitute") != Some(false) {
        return Ok(Endpoint::new(id, carriers, Ring::Failover));
    }
    contacts.extend(carriers.into_iter().next());
    Ok(Endpoint::new(id, contacts, Ring::Simultaneous))
}

/// The device's `caller_id.external` (name, number), else its owner's; `None` without a
/// number.
fn external_caller_id(
    store: &dyn Store,
    account: &str,
    device: &StoredDocument,
) -> Result<Option<(String, String)>, StoreError> {
    let external = |doc: &serde_json::Map<String, Value>| {
        let id = doc.get("caller_id")?.get("external")?;
        let number = id.get("number").and_then(Value::as_str)?;
        let name = id.get("name").and_then(Value::as_str).unwrap_or(number);
        Some((name.to_string(), number.to_string())).filter(|(_, n)| !n.is_empty())
    };
    if let Some(own) = external(&device.doc) {
        return Ok(Some(own));
    }
    let Some(owner) = device.doc.get("owner_id").and_then(Value::as_str) else {
        return Ok(None);
    };
    match store.get_document(Owner::Account(account), Kind::User, owner) {
        Ok(user) => Ok(external(&user.doc)),
        Err(StoreError::NotFound(_)) => Ok(None),
        Err(e) => Err(e),
    }
}

/// A device's live registered contacts, newest first; none when it is disabled.
fn device_contacts(
    store: &dyn Store,
    account: &str,
    device: &StoredDocument,
    wall: SystemTime,
) -> Result<Vec<Contact>, StoreError> {
    if device.doc.get("enabled") == Some(&Value::Bool(false)) {
        return Ok(Vec::new());
    }
    let key = DeviceRef {
        account: account.to_string(),
        id: device.id.clone(),
    };
    let mut bindings = store.device_bindings(&key)?;
    bindings.retain(|b| b.expires_at > wall);
    bindings.reverse();
    // A contact we cannot reach by UDP at an IP address is skipped, not an error: the
    // phone chose it.
    Ok(bindings
        .iter()
        .filter_map(|b| contact(&b.contact, "").ok())
        .collect())
}

/// An inline device: its `sip.route`, else the registered device with its SIP username.
fn inline_device(
    store: &dyn Store,
    doc: &Value,
    field: &str,
    wall: SystemTime,
) -> Result<Vec<Contact>, ServiceError> {
    let sip = doc.get("sip").and_then(Value::as_object);
    let text = |f: &str| sip.and_then(|s| s.get(f)).and_then(Value::as_str);
    if let Some(route) = text("route") {
        return Ok(vec![contact(route, &format!("{field}.sip.route"))?]);
    }
    let Some(username) = text("username") else {
        return Err(invalid(
            &format!("{field}.sip.route"),
            "required",
            json!({"message": "An inline device needs sip.route or sip.username"}),
        ));
    };
    let key = sip_key(username, text("realm").unwrap_or(DEFAULT_REALM));
    let found = store.find_documents(Kind::Device, "sip.username", &key, None)?;
    let Some((Some(account), device)) = found.into_iter().next() else {
        let message = format!("device {username} not found");
        return Err(invalid(
            &format!("{field}.sip.username"),
            "not_found",
            json!({"message": message, "value": username}),
        ));
    };
    Ok(device_contacts(store, &account, &device, wall)?)
}

/// The gateways that carry `number`, in the order they are tried: the account's own
/// carriers (when `local`) and the system's.
pub(super) fn gateways(
    store: &dyn Store,
    account: &str,
    number: &str,
    local: bool,
) -> Result<Vec<Contact>, StoreError> {
    let mut routes = Vec::new();
    let owners = [Owner::Account(account), Owner::System];
    for owner in owners.into_iter().skip(usize::from(!local)) {
        for resource in store.list_documents(owner, Kind::Resource)? {
            routes.extend(resource_route(&resource.doc, number));
        }
    }
    // Stable: at equal weight the account's own carriers come first.
    routes.sort_by_key(|(weight, _, _)| *weight);
    let contacts = routes.into_iter().flat_map(|(_, number, gateways)| {
        gateways
            .into_iter()
            .filter_map(move |g| gateway_contact(&g, &number))
    });
    Ok(contacts.take(MAX_LEGS_PER_ORDER).collect())
}

/// `sip:{prefix}{number}{suffix}@{server}[:{port}]` (`;transport=tcp` for a TCP gateway),
/// with the gateway's credentials; `None` (skipped, logged) for TLS or a prefix or suffix
/// that would not sit in a URI. A gateway without a port is located by SRV (RFC 3263).
fn gateway_contact(g: &Gateway, number: &str) -> Option<Contact> {
    let tcp = g.transport.eq_ignore_ascii_case("tcp");
    let uri = format!(
        "sip:{}{number}{}@{}{}{}",
        g.prefix,
        g.suffix,
        g.server,
        g.port.map(|p| format!(":{p}")).unwrap_or_default(),
        if tcp { ";transport=tcp" } else { "" }
    );
    // The prefix and suffix land in our Request-URI: URI user characters only.
    let user_safe = |s: &str| {
        s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "+-_.*#".contains(c))
    };
    let reachable = (tcp || g.transport.eq_ignore_ascii_case("udp"))
        && user_safe(&g.prefix)
        && user_safe(&g.suffix);
    let Some(mut contact) = locate(&uri).filter(|_| reachable) else {
        tracing::warn!(server = %g.server, transport = %g.transport, "gateway skipped: UDP or TCP, URI-safe prefix and suffix only");
        return None;
    };
    contact.auth = (!g.username.is_empty()).then(|| DialAuth {
        username: g.username.clone(),
        password: g.password.clone(),
    });
    Some(contact)
}

/// Where `uri` rings (see [`locate`]), or a validation error naming `field`.
pub fn contact(uri: &str, field: &str) -> Result<Contact, ServiceError> {
    locate(uri).ok_or_else(|| {
        invalid(
            field,
            "format",
            json!({"message": "Not a sip: URI with a host, over UDP or TCP", "value": uri}),
        )
    })
}

/// `sip:user@host[:port][;transport=udp|tcp]`: an IP address (port 5060 when none is
/// given), or a DNS name the shell locates when the leg is placed
/// ([`super::output::Output::Resolve`]: SRV when no port is given, RFC 3263).
fn locate(uri: &str) -> Option<Contact> {
    let rest = uri.strip_prefix("sip:")?;
    let rest = rest.split('?').next()?;
    let mut parts = rest.split(';');
    let hostport = parts.next()?;
    let hostport = hostport.rsplit_once('@').map_or(hostport, |(_, h)| h);
    let transport = parts
        .filter_map(|p| p.split_once('='))
        .find(|(name, _)| name.eq_ignore_ascii_case("transport"))
        .map(|(_, value)| value);
    let protocol = match transport {
        None => Protocol::Udp,
        Some(t) if t.eq_ignore_ascii_case("udp") => Protocol::Udp,
        Some(t) if t.eq_ignore_ascii_case("tcp") => Protocol::Tcp,
        Some(_) => return None,
    };
    let (host, port) = split_host_port(hostport)?;
    let (addr, host) = match host.parse::<IpAddr>() {
        Ok(ip) => (SocketAddr::new(ip, port.unwrap_or(SIP_PORT)), None),
        Err(_) if host_name(host) => (
            SocketAddr::from(([0, 0, 0, 0], port.unwrap_or(SIP_PORT))),
            Some(ServerName {
                name: host.to_string(),
                port,
            }),
        ),
        Err(_) => return None,
    };
    Some(Contact {
        uri: uri.to_string(),
        addr,
        auth: None,
        host,
        protocol,
        caller_id: None,
        confirm: false,
    })
}

/// A DNS name (letters, digits, `-`, dots, not all digits and dots).
fn host_name(server: &str) -> bool {
    let chars = |c: char| c.is_ascii_alphanumeric() || c == '-' || c == '.';
    !server.is_empty()
        && server.len() <= 253
        && server.chars().all(chars)
        && server.chars().any(|c| c.is_ascii_alphabetic())
}

/// `host[:port]` or `[v6][:port]`; `None` for a port that is not a number.
fn split_host_port(hostport: &str) -> Option<(&str, Option<u16>)> {
    let (host, port) = match hostport.strip_prefix('[') {
        Some(v6) => match v6.split_once(']')? {
            (ip, "") => (ip, None),
            (ip, after) => (ip, Some(after.strip_prefix(':')?)),
        },
        None => match hostport.split_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (hostport, None),
        },
    };
    let port = match port {
        Some(p) => Some(p.parse().ok()?),
        None => None,
    };
    Some((host, port))
}

fn invalid(field: &str, rule: &str, detail: Value) -> ServiceError {
    let mut map = Map::new();
    map.insert(field.to_string(), json!({ rule: detail }));
    ServiceError::Validation(Value::Object(map))
}

#[cfg(test)]
mod tests {
    use std::path::Path;
    use std::time::{Duration, UNIX_EPOCH};

    use super::*;
    use crate::api::service::DialFlags;
    use crate::call::registered_phone::registered_phone;
    use crate::store::{DocumentWrite, SqliteStore};

    fn create(s: &SqliteStore, kind: Kind, id: Option<&str>, body: Value) {
        let write = DocumentWrite::Create(body);
        s.write_document(Owner::Account("a"), kind, id, write, None)
            .unwrap_or_else(|e| panic!("{e}"));
    }

    fn numbers(s: &SqliteStore, numbers: &[&str]) -> Result<Vec<Endpoint>, ServiceError> {
        let specs = numbers.iter().map(|n| EndpointSpec::Number(n.to_string()));
        dial(s, specs.collect())
    }

    fn dial(s: &SqliteStore, endpoints: Vec<EndpointSpec>) -> Result<Vec<Endpoint>, ServiceError> {
        let conf = ConfRef {
            account: "a".into(),
            id: "room".into(),
        };
        let args = DialArgs {
            endpoints,
            caller_id_name: None,
            caller_id_number: None,
            timeout: Duration::from_secs(20),
            flags: DialFlags::default(),
            outbound_call_id: None,
        };
        let callflow =
            |n: &str| crate::call::callflow_targets::resolve(s, &conf.account, n, UNIX_EPOCH);
        resolve(s, &conf, &args, UNIX_EPOCH, &callflow)
    }

    #[test]
    fn a_dialed_device_rings_its_forward_and_its_users_other_phones_beside_its_first_gateway() {
        let s = SqliteStore::open(Path::new(":memory:")).expect("open");
        let user = "u".repeat(32);
        let name = json!({"first_name": "A", "last_name": "B"});
        create(&s, Kind::User, Some(&user), name);
        for (id, port) in [("desk", 5070), ("cell", 5072)] {
            registered_phone(&s, "a", id, port, Some(&user));
        }
        let cf = json!({"call_forward": {"enabled": true, "number": "+14155550000"}});
        let write = DocumentWrite::Patch(cf);
        s.write_document(Owner::Account("a"), Kind::Device, Some("desk"), write, None)
            .expect("forward");
        let carrier = json!({"name": "c", "rules": ["^\\+?(\\d{7,15})$"],
            "gateways": [{"server": "127.0.0.1", "port": 5090}, {"server": "127.0.0.1", "port": 5092}]});
        create(&s, Kind::Resource, None, carrier);
        let ids = ["desk", user.as_str()].map(|id| EndpointSpec::Id(id.to_string()));
        let endpoints = dial(&s, ids.to_vec()).expect("resolved");
        let uris = |e: &Endpoint| e.contacts.iter().map(|c| c.uri.clone()).collect::<Vec<_>>();
        assert_eq!(endpoints[0].ring, Ring::Failover);
        let gateways = [
            "sip:14155550000@127.0.0.1:5090",
            "sip:14155550000@127.0.0.1:5092",
        ];
        assert_eq!(uris(&endpoints[0]), gateways);
        let confirm = |e: &Endpoint| e.contacts.iter().map(|c| c.confirm).collect::<Vec<_>>();
        assert_eq!(
            confirm(&endpoints[0]),
            [true, true],
            "Kazoo's require_keypress"
        );
        assert_eq!(endpoints[1].ring, Ring::Simultaneous);
        let mut user = uris(&endpoints[1]);
        user.sort();
        assert_eq!(user, [gateways[0], "sip:cell@127.0.0.1:5072"]);
    }

    #[test]
    fn a_forward_shows_the_callers_id_unless_keep_caller_id_is_off_then_the_devices_or_owners() {
        let s = SqliteStore::open(Path::new(":memory:")).expect("open");
        let user = "u".repeat(32);
        let owner = json!({"first_name": "A", "last_name": "B",
            "caller_id": {"external": {"name": "Alice B", "number": "+14155550001"}}});
        create(&s, Kind::User, Some(&user), owner);
        let carrier = json!({"name": "c", "rules": ["^\\+?(\\d{7,15})$"],
            "gateways": [{"server": "127.0.0.1", "port": 5090}]});
        create(&s, Kind::Resource, None, carrier);
        let forward = |keep: Option<bool>, own: Option<Value>| {
            let mut cf = json!({"enabled": true, "number": "+14155550000"});
            if let Some(keep) = keep {
                cf["keep_caller_id"] = Value::Bool(keep);
            }
            let mut device = json!({"name": "desk", "owner_id": user, "call_forward": cf});
            if let Some(own) = own {
                device["caller_id"] = json!({"external": own});
            }
            let write = DocumentWrite::Replace(device);
            s.write_document(Owner::Account("a"), Kind::Device, Some("desk"), write, None)
                .expect("device");
            let ids = vec![EndpointSpec::Id("desk".into())];
            let endpoints = dial(&s, ids).expect("resolved");
            endpoints[0].contacts[0].caller_id.clone()
        };
        registered_phone(&s, "a", "desk", 5070, Some(&user));
        assert_eq!(
            forward(None, None),
            None,
            "Kazoo's default keeps the caller's"
        );
        assert_eq!(forward(Some(true), None), None);
        let own = json!({"name": "Desk", "number": "+14155550002"});
        assert_eq!(
            forward(Some(false), Some(own)),
            Some(("Desk".into(), "+14155550002".into()))
        );
        assert_eq!(
            forward(Some(false), None),
            Some(("Alice B".into(), "+14155550001".into())),
            "the owner's when the device has none"
        );
    }

    #[test]
    fn a_number_rings_its_callflows_ring_group_else_the_carriers() {
        let s = SqliteStore::open(Path::new(":memory:")).expect("open");
        for (id, port) in [("desk", 5070), ("lobby", 5072)] {
            registered_phone(&s, "a", id, port, None);
        }
        let members = json!([{"id": "desk"}, {"id": "lobby"}]);
        let group =
            json!({"module": "ring_group", "data": {"endpoints": members, "strategy": "single"}});
        // Skipped nodes pass to their `_` child.
        let flow =
            json!({"module": "device", "data": {"skip_module": true}, "children": {"_": group}});
        create(
            &s,
            Kind::Callflow,
            Some("rg"),
            json!({"patterns": ["^6\\d{3}$"], "flow": flow}),
        );
        let room = json!({"module": "conference", "data": {"config": {"name": "x"}}});
        create(
            &s,
            Kind::Callflow,
            Some("cf"),
            json!({"numbers": ["7000"], "flow": room}),
        );
        let carrier = json!({"name": "carrier", "rules": ["^\\+?(\\d{7,15})$"],
                             "gateways": [{"server": "127.0.0.1", "port": 5090}]});
        create(&s, Kind::Resource, None, carrier);

        let [group, pstn] = numbers(&s, &["6001", "+14155550000"])
            .expect("resolved")
            .try_into()
            .expect("two endpoints");
        assert_eq!(group.id, "6001");
        let node = group.callflow.expect("the ring group").node;
        let ids: Vec<&str> = node.endpoints.iter().map(|e| e.id.as_str()).collect();
        assert_eq!(ids, ["desk", "lobby"]);
        assert_eq!(
            node.endpoints[1].contacts[0].uri,
            "sip:lobby@127.0.0.1:5072"
        );
        assert!(node.plan.sequential, "the group's own strategy");
        assert!(pstn.callflow.is_none(), "no callflow: the carriers");
        assert_eq!(pstn.contacts[0].uri, "sip:14155550000@127.0.0.1:5090");

        let Err(ServiceError::Validation(e)) = numbers(&s, &["7000"]) else {
            panic!("a conference callflow cannot ring into this conference")
        };
        assert!(e["data.endpoints.0"]["enum"]["message"].is_string(), "{e}");
    }

    #[test]
    fn contacts_name_an_ip_and_port_or_5060_or_a_server_for_dns_and_udp_or_tcp() {
        let at = |u| locate(u).map(|c| (c.addr.to_string(), c.host, c.protocol));
        let ip = |a: &str, p| Some((a.to_string(), None, p));
        assert_eq!(
            at("sip:1001@127.0.0.1:5062;transport=udp"),
            ip("127.0.0.1:5062", Protocol::Udp)
        );
        assert_eq!(at("sip:bob@10.0.0.2"), ip("10.0.0.2:5060", Protocol::Udp));
        assert_eq!(at("sip:bob@[::1]:5070"), ip("[::1]:5070", Protocol::Udp));
        assert_eq!(at("sip:bob@[::1]"), ip("[::1]:5060", Protocol::Udp));
        assert_eq!(
            at("sip:bob@10.0.0.2;lr;Transport=TCP?X-A=1"),
            ip("10.0.0.2:5060", Protocol::Tcp)
        );
        let named = |port| {
            let name = "pbx.example.com".to_string();
            Some(ServerName { name, port })
        };
        let tcp = at("sip:bob@pbx.example.com:5080;transport=tcp");
        assert_eq!(
            tcp,
            Some(("0.0.0.0:5080".into(), named(Some(5080)), Protocol::Tcp))
        );
        let srv = at("sip:bob@pbx.example.com");
        assert_eq!(
            srv,
            Some(("0.0.0.0:5060".into(), named(None), Protocol::Udp))
        );
        assert_eq!(at("sip:bob@10.0.0.2;transport=tls"), None);
        assert_eq!(at("sip:bob@[::1]x"), None);
        assert_eq!(at("sip:bob@127.0.0.1:x"), None);
        assert_eq!(at("sip:bob@bad_host"), None);
        assert_eq!(at("tel:+1555"), None);
    }
}
