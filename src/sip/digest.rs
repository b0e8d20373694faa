//! Digest authentication for SIP requests (RFC 3261 §22.4 with RFC 7616 and RFC 8760): the
//! challenge a UAS sends in 401, and the check of the Authorization header that answers it.
//! MD5 and SHA-256, `qop=auth` or none (RFC 2069 clients). Sans-IO: time is passed in.
//!
//! Nonces are stateless: the milliseconds since the first challenge and a SHA-256 MAC of them
//! under a secret of this process, so nothing is stored per challenge, a restart invalidates
//! every nonce (the client is simply challenged again) and an expired nonce with the right
//! password gets a new challenge with `stale=true` (the client retries without asking its user).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use md5::Md5;
use sha2::{Digest as _, Sha256};

/// How long a nonce is accepted.
pub const NONCE_LIFETIME: Duration = Duration::from_secs(300);

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
pub enum Algorithm {
    #[serde(rename = "MD5")]
    Md5,
    #[serde(rename = "SHA-256")]
    Sha256,
}

impl Algorithm {
    pub fn name(self) -> &'static str {
        match self {
            Algorithm::Md5 => "MD5",
            Algorithm::Sha256 => "SHA-256",
        }
    }

    fn parse(name: &str) -> Option<Self> {
        [Algorithm::Md5, Algorithm::Sha256]
            .into_iter()
            .find(|a| a.name().eq_ignore_ascii_case(name))
    }

    /// Lower-case hex of the hash of `data`.
    pub fn hex(self, data: &str) -> String {
        match self {
            Algorithm::Md5 => hex(&Md5::digest(data.as_bytes())),
            Algorithm::Sha256 => hex(&Sha256::digest(data.as_bytes())),
        }
    }
}

/// What the client proves it knows: the parameters of an Authorization header that enter the
/// response (RFC 7616 §3.4.1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Proof<'a> {
    pub algorithm: Algorithm,
    pub username: &'a str,
    pub realm: &'a str,
    pub method: &'a str,
    pub uri: &'a str,
    pub nonce: &'a str,
    /// `(nc, cnonce)` with `qop=auth`; `None` for RFC 2069 clients.
    pub qop_auth: Option<(&'a str, &'a str)>,
}

impl Proof<'_> {
    /// The `response` a client with this password computes.
    pub fn response(&self, password: &str) -> String {
        let h = |s: &str| self.algorithm.hex(s);
        let ha1 = h(&format!("{}:{}:{password}", self.username, self.realm));
        let ha2 = h(&format!("{}:{}", self.method, self.uri));
        match self.qop_auth {
            Some((nc, cnonce)) => h(&format!("{ha1}:{}:{nc}:{cnonce}:auth:{ha2}", self.nonce)),
            None => h(&format!("{ha1}:{}:{ha2}", self.nonce)),
        }
    }

    /// The Authorization (or Proxy-Authorization) value a client with this password sends.
    pub fn credentials(&self, password: &str) -> String {
        let mut out = format!(
            "Digest username={}, realm={}, nonce={}, uri={}, response=\"{}\", algorithm={}",
            quote(self.username),
            quote(self.realm),
            quote(self.nonce),
            quote(self.uri),
            self.response(password),
            self.algorithm.name()
        );
        if let Some((nc, cnonce)) = self.qop_auth {
            out += &format!(", qop=auth, nc={nc}, cnonce={}", quote(cnonce));
        }
        out
    }
}

/// The client side (RFC 7616 §3.4, RFC 2617 §3.2.2): the credentials that answer one
/// `WWW-Authenticate` / `Proxy-Authenticate` challenge for `method` on `uri`; `None` when
/// the challenge is not Digest, names an algorithm we lack, or asks a qop other than `auth`.
/// `cnonce` is the client's random token.
pub fn answer(
    challenge: &str,
    username: &str,
    password: &str,
    method: &str,
    uri: &str,
    cnonce: &str,
) -> Option<String> {
    let p = params(challenge)?;
    let algorithm = match p.get("algorithm") {
        Some(a) => Algorithm::parse(a)?,
        None => Algorithm::Md5,
    };
    let qop = match p.get("qop") {
        None => None,
        Some(list) => {
            list.split(',')
                .find(|q| q.trim().eq_ignore_ascii_case("auth"))?;
            Some(("00000001", cnonce))
        }
    };
    let (realm, nonce) = (p.get("realm")?, p.get("nonce")?);
    let proof = Proof {
        algorithm,
        username,
        realm,
        method,
        uri,
        nonce,
        qop_auth: qop,
    };
    let mut credentials = proof.credentials(password);
    if let Some(opaque) = p.get("opaque") {
        credentials += &format!(", opaque={}", quote(opaque));
    }
    Some(credentials)
}

/// A quoted-string (RFC 3261 §25.1): quotes and backslashes escaped.
fn quote(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

/// The verdict on a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The right password for this user.
    Authorized { username: String },
    /// No usable credentials (none, another realm, an unknown algorithm or a nonce that is not
    /// ours): 401 with a fresh challenge. `stale`: the password was right but the nonce expired.
    Challenge { stale: bool },
    /// Wrong password, unknown user, or credentials for another method or URI: 403.
    Refused,
}

/// The server side of Digest for one realm and its users.
pub struct Digest {
    realm: String,
    algorithms: Vec<Algorithm>,
    /// Username to password.
    users: HashMap<String, String>,
    secret: [u8; 32],
    /// Nonce times count from the first challenge.
    epoch: Option<Instant>,
}

impl std::fmt::Debug for Digest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Digest")
            .field("realm", &self.realm)
            .field("algorithms", &self.algorithms)
            .field("users", &self.users.len())
            .finish_non_exhaustive()
    }
}

impl Digest {
    /// `algorithms` in order of preference, as the challenges list them; `secret` keys nonces.
    pub fn new(
        realm: &str,
        algorithms: Vec<Algorithm>,
        users: impl IntoIterator<Item = (String, String)>,
        secret: [u8; 32],
    ) -> Self {
        Digest {
            realm: realm.to_string(),
            algorithms,
            users: users.into_iter().collect(),
            secret,
            epoch: None,
        }
    }

    /// The WWW-Authenticate values of a 401: one per algorithm, preferred first (RFC 8760).
    pub fn challenges(&mut self, now: Instant, stale: bool) -> Vec<String> {
        let realm = self.realm.clone();
        self.challenges_in(&realm, now, stale)
    }

    /// [`Digest::challenges`] in another realm (a registrar's devices each name theirs).
    pub fn challenges_in(&mut self, realm: &str, now: Instant, stale: bool) -> Vec<String> {
        let nonce = self.nonce(realm, now);
        let stale = if stale { ", stale=true" } else { "" };
        self.algorithms
            .iter()
            .map(|a| {
                format!(
                    "Digest realm=\"{realm}\", nonce=\"{nonce}\", algorithm={}, qop=\"auth\"{stale}",
                    a.name()
                )
            })
            .collect()
    }

    /// Checks the Authorization headers of a request with this method. The `uri` the client
    /// hashed is taken as given: proxies may rewrite the Request-URI after it was computed
    /// (and SIPp hashes the server's address), so it is not compared with the Request-URI.
    pub fn check<'a>(
        &self,
        now: Instant,
        method: &str,
        authorizations: impl IntoIterator<Item = &'a str>,
    ) -> Outcome {
        let password = |user: &str| self.users.get(user).map(String::as_str);
        self.check_in(&self.realm, password, now, method, authorizations)
    }

    /// [`Digest::check`] in `realm`, with the password of a username from `password`.
    pub fn check_in<'a, 'p>(
        &self,
        realm: &str,
        password: impl FnOnce(&str) -> Option<&'p str>,
        now: Instant,
        method: &str,
        authorizations: impl IntoIterator<Item = &'a str>,
    ) -> Outcome {
        let ours = authorizations
            .into_iter()
            .filter_map(params)
            .find(|p| p.get("realm").is_some_and(|r| r == realm));
        let Some(p) = ours else {
            return Outcome::Challenge { stale: false };
        };
        let field = |name: &str| p.get(name).map(String::as_str);
        let algorithm = match field("algorithm") {
            None => Some(Algorithm::Md5),
            Some(name) => Algorithm::parse(name).filter(|a| self.algorithms.contains(a)),
        };
        let (Some(algorithm), Some(nonce)) = (algorithm, field("nonce")) else {
            return Outcome::Challenge { stale: false };
        };
        let Some(issued) = self.nonce_time(realm, nonce) else {
            return Outcome::Challenge { stale: false };
        };
        let (Some(username), Some(uri), Some(response)) =
            (field("username"), field("uri"), field("response"))
        else {
            return Outcome::Refused;
        };
        let qop_auth = match (field("qop"), field("nc"), field("cnonce")) {
            (None, _, _) => None,
            (Some(q), Some(nc), Some(cnonce)) if q.eq_ignore_ascii_case("auth") => {
                Some((nc, cnonce))
            }
            _ => return Outcome::Refused,
        };
        let Some(password) = password(username) else {
            return Outcome::Refused;
        };
        let proof = Proof {
            algorithm,
            username,
            realm,
            method,
            uri,
            nonce,
            qop_auth,
        };
        if !same(&proof.response(password), &response.to_ascii_lowercase()) {
            return Outcome::Refused;
        }
        let expires = self.epoch.map(|e| e + issued + NONCE_LIFETIME);
        if expires.is_none_or(|at| now > at) {
            return Outcome::Challenge { stale: true };
        }
        Outcome::Authorized {
            username: username.to_string(),
        }
    }

    fn nonce(&mut self, realm: &str, now: Instant) -> String {
        let epoch = *self.epoch.get_or_insert(now);
        let ms = now.saturating_duration_since(epoch).as_millis() as u64;
        format!("{ms:x}.{}", self.mac(realm, ms))
    }

    /// When a nonce of ours for `realm` was issued (since the epoch); `None` for anything else.
    fn nonce_time(&self, realm: &str, nonce: &str) -> Option<Duration> {
        let (ms, mac) = nonce.split_once('.')?;
        let ms = u64::from_str_radix(ms, 16).ok()?;
        same(&self.mac(realm, ms), mac).then_some(Duration::from_millis(ms))
    }

    fn mac(&self, realm: &str, ms: u64) -> String {
        let mut h = Sha256::new();
        h.update(self.secret);
        h.update(format!("{ms:x}:{realm}"));
        hex(&h.finalize()[..16])
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Equality in time independent of where the strings differ.
fn same(a: &str, b: &str) -> bool {
    a.len() == b.len() && a.bytes().zip(b.bytes()).fold(0, |d, (x, y)| d | (x ^ y)) == 0
}

/// The parameters of a `Digest` credentials value, names lower-cased, quotes and escapes
/// removed; `None` for another scheme or a malformed list.
fn params(value: &str) -> Option<HashMap<String, String>> {
    let value = value.trim_start();
    let (scheme, mut rest) = value.split_at(value.find(char::is_whitespace)?);
    if !scheme.eq_ignore_ascii_case("Digest") {
        return None;
    }
    let mut out = HashMap::new();
    loop {
        rest = rest.trim_start_matches(|c: char| c == ',' || c.is_whitespace());
        if rest.is_empty() {
            return Some(out);
        }
        let (name, after) = rest.split_once('=')?;
        let after = after.trim_start();
        let (val, tail) = match after.strip_prefix('"') {
            Some(quoted) => unquote(quoted)?,
            None => {
                let end = after.find(',').unwrap_or(after.len());
                (after[..end].trim().to_string(), &after[end..])
            }
        };
        out.insert(name.trim().to_ascii_lowercase(), val);
        rest = tail;
    }
}

/// A quoted-string's content (after its opening quote) and what follows its closing quote.
fn unquote(s: &str) -> Option<(String, &str)> {
    let mut out = String::new();
    let mut chars = s.char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            '"' => return Some((out, &s[i + 1..])),
            '\\' => out.push(chars.next()?.1),
            c => out.push(c),
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: [u8; 32] = [7; 32];

    /// RFC 7616 §3.9.1: the same credentials with MD5 and with SHA-256.
    #[test]
    fn rfc7616_examples() {
        let proof = |algorithm| Proof {
            algorithm,
            username: "Mufasa",
            realm: "http-auth@example.org",
            method: "GET",
            uri: "/dir/index.html",
            nonce: "7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v",
            qop_auth: Some(("00000001", "f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ")),
        };
        assert_eq!(
            proof(Algorithm::Md5).response("Circle of Life"),
            "8ca523f5e9506fed4657c9700eebdbec"
        );
        assert_eq!(
            proof(Algorithm::Sha256).response("Circle of Life"),
            "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1"
        );
    }

    /// RFC 2617 §3.5, and the RFC 2069 form without qop.
    #[test]
    fn rfc2617_example_and_no_qop() {
        let mut proof = Proof {
            algorithm: Algorithm::Md5,
            username: "Mufasa",
            realm: "testrealm@host.com",
            method: "GET",
            uri: "/dir/index.html",
            nonce: "dcd98b7102dd2f0e8b11d0f600bfb0c093",
            qop_auth: Some(("00000001", "0a4f113b")),
        };
        assert_eq!(
            proof.response("Circle Of Life"),
            "6629fae49393a05397450978507c4ef1"
        );
        proof.qop_auth = None;
        let ha1 = Algorithm::Md5.hex("Mufasa:testrealm@host.com:Circle Of Life");
        let ha2 = Algorithm::Md5.hex("GET:/dir/index.html");
        let expected =
            Algorithm::Md5.hex(&format!("{ha1}:dcd98b7102dd2f0e8b11d0f600bfb0c093:{ha2}"));
        assert_eq!(proof.response("Circle Of Life"), expected);
    }

    fn server() -> Digest {
        let users = [("alice".to_string(), "s3cret".to_string())];
        Digest::new(
            "chorus",
            vec![Algorithm::Sha256, Algorithm::Md5],
            users,
            SECRET,
        )
    }

    fn nonce_of(challenge: &str) -> String {
        params(challenge).unwrap()["nonce"].clone()
    }

    /// The Authorization a client sends for INVITE sip:1000@h with this password.
    fn authorization(algorithm: Algorithm, nonce: &str, password: &str) -> String {
        let proof = Proof {
            algorithm,
            username: "alice",
            realm: "chorus",
            method: "INVITE",
            uri: "sip:1000@h",
            nonce,
            qop_auth: Some(("00000001", "c\"n")),
        };
        proof.credentials(password)
    }

    #[test]
    fn challenges_list_sha256_first_with_one_nonce() {
        let mut d = server();
        let c = d.challenges(Instant::now(), false);
        assert_eq!(c.len(), 2);
        assert!(c[0].contains("algorithm=SHA-256"), "{}", c[0]);
        assert!(c[1].contains("algorithm=MD5"), "{}", c[1]);
        assert!(c[0].contains("qop=\"auth\"") && !c[0].contains("stale"));
        assert_eq!(nonce_of(&c[0]), nonce_of(&c[1]));
        assert!(d.challenges(Instant::now(), true)[0].ends_with(", stale=true"));
    }

    #[test]
    fn the_right_password_passes_with_either_algorithm_and_a_wrong_one_is_refused() {
        let mut d = server();
        let t0 = Instant::now();
        let nonce = nonce_of(&d.challenges(t0, false)[0]);
        let check = |auth: &str| d.check(t0, "INVITE", [auth]);
        for algorithm in [Algorithm::Md5, Algorithm::Sha256] {
            assert_eq!(
                check(&authorization(algorithm, &nonce, "s3cret")),
                Outcome::Authorized {
                    username: "alice".into()
                }
            );
            assert_eq!(
                check(&authorization(algorithm, &nonce, "guess")),
                Outcome::Refused
            );
        }
        let other_user = authorization(Algorithm::Md5, &nonce, "s3cret").replace("alice", "bob");
        assert_eq!(check(&other_user), Outcome::Refused);
        let right = authorization(Algorithm::Md5, &nonce, "s3cret");
        let other_uri = right.replace("uri=\"sip:1000@h\"", "uri=\"sip:2000@h\"");
        assert_eq!(
            check(&other_uri),
            Outcome::Refused,
            "the response covers the URI"
        );
        assert_eq!(
            d.check(t0, "BYE", [right.as_str()]),
            Outcome::Refused,
            "and the method"
        );
    }

    #[test]
    fn missing_foreign_or_forged_credentials_get_a_challenge() {
        let mut d = server();
        let t0 = Instant::now();
        let nonce = nonce_of(&d.challenges(t0, false)[0]);
        let fresh = Outcome::Challenge { stale: false };
        assert_eq!(d.check(t0, "INVITE", []), fresh);
        let right = authorization(Algorithm::Md5, &nonce, "s3cret");
        let cases = [
            right.replace("realm=\"chorus\"", "realm=\"other\""),
            right.replace(&nonce, "0.00000000000000000000000000000000"),
            right.replace("algorithm=MD5", "algorithm=SHA-512-256"),
            format!("Basic {}", "YWxpY2U6czNjcmV0"),
        ];
        for auth in &cases {
            assert_eq!(d.check(t0, "INVITE", [auth.as_str()]), fresh, "{auth}");
        }
        let other_secret = Digest::new("chorus", vec![Algorithm::Md5], [], [8; 32]);
        assert_eq!(
            other_secret.check(t0, "INVITE", [right.as_str()]),
            fresh,
            "a nonce from before a restart"
        );
    }

    #[test]
    fn an_expired_nonce_with_the_right_password_is_stale() {
        let mut d = server();
        let t0 = Instant::now();
        let nonce = nonce_of(&d.challenges(t0, false)[0]);
        let right = authorization(Algorithm::Sha256, &nonce, "s3cret");
        let wrong = authorization(Algorithm::Sha256, &nonce, "guess");
        let later = t0 + NONCE_LIFETIME + Duration::from_secs(1);
        assert_eq!(
            d.check(later, "INVITE", [right.as_str()]),
            Outcome::Challenge { stale: true }
        );
        assert_eq!(d.check(later, "INVITE", [wrong.as_str()]), Outcome::Refused);
        assert!(matches!(
            d.check(t0 + NONCE_LIFETIME, "INVITE", [right.as_str()]),
            Outcome::Authorized { .. }
        ));
    }

    #[test]
    fn an_algorithm_not_offered_is_not_accepted() {
        let mut md5_only = Digest::new(
            "chorus",
            vec![Algorithm::Md5],
            [("alice".to_string(), "s3cret".to_string())],
            SECRET,
        );
        let t0 = Instant::now();
        let challenges = md5_only.challenges(t0, false);
        assert_eq!(challenges.len(), 1);
        let nonce = nonce_of(&challenges[0]);
        let sha = authorization(Algorithm::Sha256, &nonce, "s3cret");
        assert_eq!(
            md5_only.check(t0, "INVITE", [sha.as_str()]),
            Outcome::Challenge { stale: false }
        );
    }

    #[test]
    fn a_client_answer_passes_the_server_check() {
        let mut server = server();
        let now = Instant::now();
        for challenge in server.challenges(now, false) {
            let credentials = answer(&challenge, "alice", "s3cret", "INVITE", "sip:x@h", "c0ffee")
                .expect("answerable");
            let outcome = server.check(now, "INVITE", [credentials.as_str()]);
            let alice = Outcome::Authorized {
                username: "alice".into(),
            };
            assert_eq!(outcome, alice, "{challenge}");
        }
        let rfc2069 = r#"Digest realm="r", nonce="n""#;
        let credentials = answer(rfc2069, "u", "p", "INVITE", "sip:x@h", "c").unwrap();
        assert!(!credentials.contains("qop"), "{credentials}");
        assert_eq!(
            answer(r#"Basic realm="r""#, "u", "p", "INVITE", "sip:x@h", "c"),
            None
        );
        let unknown = r#"Digest realm="r", nonce="n", algorithm=SHA-512-256"#;
        assert_eq!(answer(unknown, "u", "p", "INVITE", "sip:x@h", "c"), None);
    }

    #[test]
    fn parameters_parse_with_quotes_escapes_spaces_and_case() {
        let p = params(
            "digest  Username = \"a\\\\b\" ,realm=\"r, s\",NC=00000001,qop=auth ,  uri=\"sip:x\"",
        )
        .unwrap();
        assert_eq!(p["username"], "a\\b");
        assert_eq!(p["realm"], "r, s");
        assert_eq!(p["nc"], "00000001");
        assert_eq!(p["qop"], "auth");
        assert_eq!(p["uri"], "sip:x");
        assert_eq!(params("Digest realm=\"unterminated"), None);
        assert_eq!(params("Digest"), None);
    }
}
