//! The registrar on a virtual clock: challenge, bind, refresh, expire, remove, bounds.

use super::*;
use crate::sip::digest::Proof;
use std::time::UNIX_EPOCH;

const SECOND: Duration = Duration::from_secs(1);

struct Clock {
    now: Instant,
    wall: SystemTime,
}

impl Clock {
    fn new() -> Self {
        let wall = UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        Self {
            now: Instant::now(),
            wall,
        }
    }

    fn advance(&mut self, by: Duration) {
        self.now += by;
        self.wall += by;
    }
}

fn alice() -> Credentials {
    Credentials {
        device: DeviceRef {
            account: "acct".into(),
            id: "d-alice".into(),
        },
        username: "alice".into(),
        password: "wonderland".into(),
        realm: None,
    }
}

fn registrar(config: Config) -> Registrar {
    Registrar::new(config, [9; 32])
}

/// A phone: Call-ID, CSeq and the last challenge it got.
struct Phone {
    call_id: String,
    cseq: u32,
    username: String,
    password: String,
    challenge: Option<(String, String, Algorithm)>,
}

impl Phone {
    fn new(call_id: &str, username: &str, password: &str) -> Self {
        Self {
            call_id: call_id.into(),
            cseq: 0,
            username: username.into(),
            password: password.into(),
            challenge: None,
        }
    }

    /// Sends one REGISTER (answering the last challenge, if any) and keeps a new challenge.
    fn send(
        &mut self,
        r: &mut Registrar,
        c: &Clock,
        contacts: Contacts,
        expires: Option<u32>,
    ) -> Reply {
        self.cseq += 1;
        let auth = self.challenge.as_ref().map(|(realm, nonce, algorithm)| {
            Proof {
                algorithm: *algorithm,
                username: &self.username,
                realm,
                method: "REGISTER",
                uri: "sip:127.0.0.1",
                nonce,
                qop_auth: Some(("00000001", "c0ffee")),
            }
            .credentials(&self.password)
        });
        let request = Register {
            call_id: &self.call_id,
            cseq: self.cseq,
            expires,
            contacts,
            authorizations: auth.iter().map(String::as_str).collect(),
        };
        // The address-of-record is always alice's device.
        let reply = r.register(c.now, c.wall, &request, Some(&alice()));
        if reply.status == 401 {
            self.challenge = Some(parse_challenge(&reply));
        }
        reply
    }

    /// REGISTERs until the challenge is met (at most twice).
    fn register(
        &mut self,
        r: &mut Registrar,
        c: &Clock,
        contacts: Contacts,
        expires: Option<u32>,
    ) -> Reply {
        let reply = self.send(r, c, contacts.clone(), expires);
        if reply.status == 401 {
            return self.send(r, c, contacts, expires);
        }
        reply
    }
}

fn parse_challenge(reply: &Reply) -> (String, String, Algorithm) {
    let (_, value) = reply
        .headers
        .iter()
        .find(|(n, _)| *n == "WWW-Authenticate")
        .unwrap();
    let field = |name: &str| {
        let start = value.find(&format!("{name}=\"")).unwrap() + name.len() + 2;
        value[start..].split('"').next().unwrap().to_owned()
    };
    (field("realm"), field("nonce"), Algorithm::Md5)
}

fn one(uri: &str, expires: Option<u32>) -> Contacts {
    Contacts::List(vec![(uri.to_owned(), expires)])
}

fn contacts(reply: &Reply) -> Vec<&str> {
    reply
        .headers
        .iter()
        .filter(|(n, _)| *n == "Contact")
        .map(|(_, v)| v.as_str())
        .collect()
}

#[test]
fn a_challenged_register_binds_and_expires() {
    let (mut r, mut c) = (registrar(Config::default()), Clock::new());
    let mut phone = Phone::new("cid-1", "alice", "wonderland");
    let first = phone.send(&mut r, &c, one("sip:alice@10.0.0.1:5062", None), Some(600));
    assert_eq!(first.status, 401);
    assert!(
        r.contacts(c.wall, &alice().device).is_empty(),
        "no binding before auth"
    );
    let ok = phone.send(&mut r, &c, one("sip:alice@10.0.0.1:5062", None), Some(600));
    assert_eq!(ok.status, 200);
    assert_eq!(contacts(&ok), ["<sip:alice@10.0.0.1:5062>;expires=600"]);
    let (device, stored, _) = r.poll_change().unwrap();
    assert_eq!((device, stored.len()), (alice().device, 1));
    assert_eq!(r.poll_timeout(), Some(c.wall + 600 * SECOND));

    c.advance(599 * SECOND);
    r.handle_timeout(c.wall);
    assert_eq!(r.contacts(c.wall, &alice().device).len(), 1);
    c.advance(SECOND);
    r.handle_timeout(c.wall);
    assert!(r.contacts(c.wall, &alice().device).is_empty());
    let (_, left, dropped) = r.poll_change().unwrap();
    assert_eq!((left, dropped), (vec![], stored), "the expiry is stored");
    assert_eq!(r.poll_timeout(), None);
}

#[test]
fn wrong_password_and_unknown_users_get_403_never_a_binding() {
    let (mut r, c) = (registrar(Config::default()), Clock::new());
    let mut wrong = Phone::new("cid-2", "alice", "looking-glass");
    assert_eq!(
        wrong
            .register(&mut r, &c, one("sip:x@h", None), None)
            .status,
        403
    );
    // Credentials of another user presented for alice's address-of-record.
    let mut mallory = Phone::new("cid-3", "mallory", "wonderland");
    assert_eq!(
        mallory
            .register(&mut r, &c, one("sip:x@h", None), None)
            .status,
        403
    );
    // An address-of-record no device has is challenged, then refused.
    let request = Register {
        call_id: "cid-4",
        cseq: 1,
        expires: None,
        contacts: one("sip:x@h", None),
        authorizations: vec![],
    };
    let reply = r.register(c.now, c.wall, &request, None);
    assert_eq!(reply.status, 401);
    let (realm, nonce, algorithm) = parse_challenge(&reply);
    assert_eq!(realm, "chorus");
    let auth = Proof {
        algorithm,
        username: "ghost",
        realm: &realm,
        method: "REGISTER",
        uri: "sip:h",
        nonce: &nonce,
        qop_auth: None,
    }
    .credentials("anything");
    let request = Register {
        cseq: 2,
        authorizations: vec![&auth],
        ..request
    };
    assert_eq!(r.register(c.now, c.wall, &request, None).status, 403);
    assert!(r.poll_change().is_none() && r.poll_timeout().is_none());
}

#[test]
fn an_expired_nonce_with_the_right_password_is_stale() {
    let (mut r, mut c) = (registrar(Config::default()), Clock::new());
    let mut phone = Phone::new("cid-5", "alice", "wonderland");
    phone.register(&mut r, &c, one("sip:a@h", None), None);
    c.advance(crate::sip::digest::NONCE_LIFETIME + SECOND);
    let stale = phone.send(&mut r, &c, one("sip:a@h", None), None);
    assert_eq!(stale.status, 401);
    assert!(
        stale.headers.iter().any(|(_, v)| v.contains("stale=true")),
        "{stale:?}"
    );
    assert_eq!(
        phone.send(&mut r, &c, one("sip:a@h", None), None).status,
        200
    );
}

#[test]
fn several_contacts_refresh_and_remove() {
    let (mut r, mut c) = (registrar(Config::default()), Clock::new());
    let mut desk = Phone::new("cid-desk", "alice", "wonderland");
    let mut soft = Phone::new("cid-soft", "alice", "wonderland");
    desk.register(&mut r, &c, one("sip:a@desk", Some(300)), None);
    let both = soft.register(&mut r, &c, one("sip:a@soft", None), Some(900));
    assert_eq!(
        contacts(&both),
        ["<sip:a@soft>;expires=900", "<sip:a@desk>;expires=300"]
    );
    // A refresh moves the expiry; a retransmitted older CSeq does not.
    c.advance(100 * SECOND);
    let refreshed = desk.register(&mut r, &c, one("sip:a@desk", Some(300)), None);
    assert!(contacts(&refreshed).contains(&"<sip:a@desk>;expires=300"));
    desk.cseq -= 1;
    desk.register(&mut r, &c, one("sip:a@desk", Some(0)), None);
    assert_eq!(
        r.contacts(c.wall, &alice().device).len(),
        2,
        "older CSeq ignored"
    );
    // Expires: 0 removes one contact, then `*` removes all.
    desk.cseq += 5;
    let removed = desk.register(&mut r, &c, one("sip:a@desk", None), Some(0));
    assert_eq!(contacts(&removed), ["<sip:a@soft>;expires=800"]);
    assert_eq!(
        soft.register(&mut r, &c, Contacts::All, Some(3600)).status,
        400
    );
    let cleared = soft.register(&mut r, &c, Contacts::All, Some(0));
    assert_eq!((cleared.status, contacts(&cleared).len()), (200, 0));
    assert!(r.contacts(c.wall, &alice().device).is_empty());
}

#[test]
fn expiry_is_bounded_and_a_query_binds_nothing() {
    let (mut r, c) = (registrar(Config::default()), Clock::new());
    let mut phone = Phone::new("cid-6", "alice", "wonderland");
    let brief = phone.register(&mut r, &c, one("sip:a@h", Some(10)), None);
    assert_eq!(brief.status, 423);
    assert!(brief.headers.contains(&("Min-Expires", "60".into())));
    let long = phone.register(&mut r, &c, one("sip:a@h", Some(999_999)), None);
    assert_eq!(contacts(&long), ["<sip:a@h>;expires=7200"]);
    let query = phone.register(&mut r, &c, Contacts::Query, None);
    assert_eq!(contacts(&query), ["<sip:a@h>;expires=7200"]);
}

#[test]
fn bindings_per_device_and_in_all_are_bounded() {
    let config = Config {
        max_per_device: 2,
        max_total: 3,
        ..Config::default()
    };
    let (mut r, c) = (registrar(config), Clock::new());
    let mut phone = Phone::new("cid-7", "alice", "wonderland");
    for host in ["a", "b"] {
        let reply = phone.register(&mut r, &c, one(&format!("sip:a@{host}"), None), None);
        assert_eq!(reply.status, 200);
    }
    let third = phone.register(&mut r, &c, one("sip:a@c", None), None);
    assert_eq!(
        (third.status, third.reason),
        (503, "Too Many Registered Contacts")
    );
    assert_eq!(r.contacts(c.wall, &alice().device).len(), 2);
    // Another device may bind one more; the total is then full.
    let bob = DeviceRef {
        account: "acct".into(),
        id: "d-bob".into(),
    };
    let binding = |uri: &str| Binding::new(uri, c.wall + 60 * SECOND, "x".into(), 1);
    r.restore(
        c.wall,
        bob.clone(),
        vec![binding("sip:b@1"), binding("sip:b@2")],
    );
    assert_eq!(
        r.contacts(c.wall, &bob).len(),
        1,
        "restore keeps to the total"
    );
    // Replacing a contact within the bound still works.
    let swap = Contacts::List(vec![("sip:a@a".into(), Some(0)), ("sip:a@c".into(), None)]);
    assert_eq!(phone.register(&mut r, &c, swap, None).status, 200);
}

#[test]
fn restored_bindings_live_until_they_expire() {
    let (mut r, mut c) = (registrar(Config::default()), Clock::new());
    let mut phone = Phone::new("cid-8", "alice", "wonderland");
    phone.register(&mut r, &c, one("sip:a@h", Some(120)), None);
    let (device, stored, _) = r.poll_change().unwrap();
    let text = serde_json::to_string(&stored).unwrap();
    // A restart 60 s later: a new registrar from what was stored.
    c.advance(60 * SECOND);
    let mut again = registrar(Config::default());
    let expired = Binding::new("sip:old@h", c.wall - SECOND, "y".into(), 1);
    let mut loaded: Vec<Binding> = serde_json::from_str(&text).unwrap();
    loaded.push(expired);
    again.restore(c.wall, device.clone(), loaded);
    let live = again.contacts(c.wall, &device);
    assert_eq!(
        live.iter().map(|b| b.contact.as_str()).collect::<Vec<_>>(),
        ["sip:a@h"]
    );
    assert_eq!(again.poll_timeout(), Some(c.wall + 60 * SECOND));
}
