//! Admission control for SIP requests, sans-IO: the endpoint asks before it gives a request a
//! transaction or a new call, passing the source address and the current time.
//!
//! - A source ACL (deny wins; a non-empty allow list admits only what it names): 403.
//! - Token buckets per source IP and global for new INVITEs (never re-INVITEs, ACK, BYE or
//!   CANCEL of a call already admitted) and for REGISTER: 503 with Retry-After.
//! - Caps on calls not yet confirmed by ACK (per source and global), on calls per source and
//!   on live server transactions (per source and global): 503 with Retry-After.
//! - Every refusal draws on a refusal budget (per source and global): past it the request is
//!   dropped without a word, so a flood, even from forged addresses, gets no replies to
//!   reflect at a victim.
//!
//! State per source lives in one table of at most `Limits::sources` entries. An entry with
//! no live call or transaction is forgotten once idle for [`FORGET_AFTER`]; when the table is
//! full, such an entry makes room for a new source (its buckets start full again, which only
//! favours it). A source whose entry cannot be made (every entry holds calls) is refused.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use ipnet::IpNet;
use serde::Deserialize;

/// An idle source with nothing live is forgotten after this long (its buckets are full by then
/// at any sane rate).
pub const FORGET_AFTER: Duration = Duration::from_secs(60);
/// How often the table is swept for idle sources.
const SWEEP_EVERY: Duration = Duration::from_secs(10);

/// A token bucket's shape: `rate` tokens a second, up to `burst` saved.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rate {
    pub rate: f64,
    pub burst: f64,
}

impl Rate {
    const fn new(rate: f64, burst: f64) -> Self {
        Rate { rate, burst }
    }
}

/// `[sip.limits]`: see docs/security.md for each key.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Limits {
    pub invite_per_source: Rate,
    pub invite_global: Rate,
    pub register_per_source: Rate,
    pub register_global: Rate,
    /// Calls admitted and not yet confirmed by ACK (ringing or answered).
    pub unacked_per_source: u32,
    pub unacked_global: u32,
    pub calls_per_source: u32,
    pub transactions_per_source: u32,
    pub transactions_global: u32,
    /// Refusals (403, 503, 4xx to malformed requests) sent; past this, silence.
    pub refusals_per_source: Rate,
    pub refusals_global: Rate,
    /// Source addresses tracked at once.
    pub sources: usize,
    /// The Retry-After of a 503.
    pub retry_after_secs: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            invite_per_source: Rate::new(50.0, 100.0),
            invite_global: Rate::new(200.0, 400.0),
            register_per_source: Rate::new(20.0, 100.0),
            register_global: Rate::new(200.0, 400.0),
            unacked_per_source: 100,
            unacked_global: 500,
            calls_per_source: 1000,
            transactions_per_source: 5000,
            transactions_global: 20_000,
            refusals_per_source: Rate::new(20.0, 50.0),
            refusals_global: Rate::new(200.0, 400.0),
            sources: 10_000,
            retry_after_secs: 5,
        }
    }
}

/// `[sip.acl]`: source networks. Deny wins; a non-empty allow list admits only its networks.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Acl {
    pub allow: Vec<IpNet>,
    pub deny: Vec<IpNet>,
}

impl Acl {
    pub fn permits(&self, ip: IpAddr) -> bool {
        let ip = canonical(ip);
        let listed = |nets: &[IpNet]| nets.iter().any(|n| n.contains(&ip));
        !listed(&self.deny) && (self.allow.is_empty() || listed(&self.allow))
    }
}

/// An IPv4-mapped IPv6 address is the IPv4 address (dual-stack sockets report them).
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// What a request asks of the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// An INVITE outside any dialog: a new call.
    NewInvite,
    Register,
    /// Anything else that needs a new server transaction.
    Other,
    /// A request within a call or transaction we already hold (BYE, re-INVITE, CANCEL...):
    /// always admitted, so a flood never cuts off calls in progress.
    Existing,
}

/// Why a request is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// The ACL: 403 Forbidden.
    Forbidden,
    /// A rate or a cap: 503 Service Unavailable with Retry-After.
    Busy,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Admit,
    /// Answer with this refusal (the refusal budget allowed it).
    Refuse(Refusal),
    /// Past the refusal budget: no answer at all.
    Drop,
}

/// A token bucket; `at: None` until first used (it starts full).
#[derive(Debug, Clone, Default)]
struct Bucket {
    tokens: f64,
    at: Option<Instant>,
}

impl Bucket {
    fn has_token(&mut self, rate: &Rate, now: Instant) -> bool {
        self.tokens = match self.at {
            None => rate.burst,
            Some(at) => {
                let secs = now.saturating_duration_since(at).as_secs_f64();
                (self.tokens + secs * rate.rate).min(rate.burst)
            }
        };
        self.at = Some(self.at.map_or(now, |at| at.max(now)));
        self.tokens >= 1.0
    }

    fn take(&mut self) {
        self.tokens -= 1.0;
    }
}

/// What a source (or everyone) holds live.
#[derive(Debug, Clone, Default)]
struct Load {
    calls: u32,
    unacked: u32,
    transactions: u32,
}

impl Load {
    fn is_empty(&self) -> bool {
        self.calls == 0 && self.unacked == 0 && self.transactions == 0
    }
}

/// Per-source or global state: one bucket per limited kind, and the live load.
#[derive(Debug, Clone, Default)]
struct Meter {
    invite: Bucket,
    register: Bucket,
    refusals: Bucket,
    load: Load,
    seen: Option<Instant>,
}

/// The shapes a meter's buckets follow.
struct Shapes<'a> {
    invite: &'a Rate,
    register: &'a Rate,
}

impl Meter {
    /// The bucket `kind` draws on, and its shape; none for kinds without a rate.
    fn bucket<'a>(&mut self, kind: Kind, shapes: &Shapes<'a>) -> Option<(&mut Bucket, &'a Rate)> {
        match kind {
            Kind::NewInvite => Some((&mut self.invite, shapes.invite)),
            Kind::Register => Some((&mut self.register, shapes.register)),
            Kind::Other | Kind::Existing => None,
        }
    }
}

pub struct Admission {
    limits: Limits,
    acl: Acl,
    global: Meter,
    sources: HashMap<IpAddr, Meter>,
    next_sweep: Option<Instant>,
}

impl Admission {
    pub fn new(limits: Limits, acl: Acl) -> Self {
        Admission {
            limits,
            acl,
            global: Meter::default(),
            sources: HashMap::new(),
            next_sweep: None,
        }
    }

    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// Whether the ACL lets `ip` talk to us at all.
    pub fn permits(&self, ip: IpAddr) -> bool {
        self.acl.permits(ip)
    }

    /// Decides on a request from `ip`; an admitted one that opens a transaction or a call
    /// must be reported with [`Self::opened`] / [`Self::call_opened`].
    pub fn admit(&mut self, now: Instant, ip: IpAddr, kind: Kind) -> Verdict {
        let ip = canonical(ip);
        if !self.acl.permits(ip) {
            return self.refuse(now, ip, Refusal::Forbidden);
        }
        if kind == Kind::Existing {
            return Verdict::Admit;
        }
        self.sweep(now);
        if !self.track(now, ip) {
            return self.refuse(now, ip, Refusal::Busy);
        }
        let l = &self.limits;
        let global = &self.global.load;
        let Some(source) = self.sources.get(&ip) else {
            return self.refuse(now, ip, Refusal::Busy);
        };
        let load = &source.load;
        let mut full = load.transactions >= l.transactions_per_source
            || global.transactions >= l.transactions_global;
        if kind == Kind::NewInvite {
            full |= load.calls >= l.calls_per_source
                || load.unacked >= l.unacked_per_source
                || global.unacked >= l.unacked_global;
        }
        if full || !self.take_token(now, ip, kind) {
            return self.refuse(now, ip, Refusal::Busy);
        }
        Verdict::Admit
    }

    /// Whether a stateless refusal (a 4xx to a malformed request, say) may be sent to `ip`;
    /// draws on the same budget as admission refusals.
    pub fn may_refuse(&mut self, now: Instant, ip: IpAddr) -> bool {
        let ip = canonical(ip);
        self.sweep(now);
        self.track(now, ip);
        let (per_source, global) = (
            &self.limits.refusals_per_source,
            &self.limits.refusals_global,
        );
        let source_ok = match self.sources.get_mut(&ip) {
            Some(m) => m.refusals.has_token(per_source, now),
            None => true,
        };
        let global_ok = self.global.refusals.has_token(global, now);
        if !(source_ok && global_ok) {
            return false;
        }
        if let Some(m) = self.sources.get_mut(&ip) {
            m.refusals.take();
        }
        self.global.refusals.take();
        true
    }

    /// A server transaction for a request from `ip` is now live.
    pub fn opened(&mut self, ip: IpAddr) {
        self.change(ip, |l| l.transactions += 1);
    }

    pub fn closed(&mut self, ip: IpAddr) {
        self.change(ip, |l| l.transactions = l.transactions.saturating_sub(1));
    }

    /// An admitted INVITE became a call, unconfirmed until [`Self::call_confirmed`].
    pub fn call_opened(&mut self, ip: IpAddr) {
        self.change(ip, |l| {
            l.calls += 1;
            l.unacked += 1;
        });
    }

    pub fn call_confirmed(&mut self, ip: IpAddr) {
        self.change(ip, |l| l.unacked = l.unacked.saturating_sub(1));
    }

    pub fn call_closed(&mut self, ip: IpAddr, confirmed: bool) {
        self.change(ip, |l| {
            l.calls = l.calls.saturating_sub(1);
            if !confirmed {
                l.unacked = l.unacked.saturating_sub(1);
            }
        });
    }

    /// Sources tracked now (for tests and metrics).
    pub fn tracked(&self) -> usize {
        self.sources.len()
    }

    fn change(&mut self, ip: IpAddr, f: impl Fn(&mut Load)) {
        f(&mut self.global.load);
        if let Some(m) = self.sources.get_mut(&canonical(ip)) {
            f(&mut m.load);
        }
    }

    fn refuse(&mut self, now: Instant, ip: IpAddr, why: Refusal) -> Verdict {
        if self.may_refuse(now, ip) {
            Verdict::Refuse(why)
        } else {
            Verdict::Drop
        }
    }

    /// Takes a token from the source's and the global bucket of `kind`, only if both have one.
    fn take_token(&mut self, now: Instant, ip: IpAddr, kind: Kind) -> bool {
        let source_shapes = source_shapes(&self.limits);
        let global_shapes = global_shapes(&self.limits);
        let Some(source) = self.sources.get_mut(&ip) else {
            return false;
        };
        let Some((sb, sr)) = source.bucket(kind, &source_shapes) else {
            return true;
        };
        let Some((gb, gr)) = self.global.bucket(kind, &global_shapes) else {
            return true;
        };
        if !(sb.has_token(sr, now) && gb.has_token(gr, now)) {
            return false;
        }
        sb.take();
        gb.take();
        true
    }

    /// Makes sure `ip` has an entry; false when the table is full of sources with live load.
    fn track(&mut self, now: Instant, ip: IpAddr) -> bool {
        if let Some(m) = self.sources.get_mut(&ip) {
            m.seen = Some(now);
            return true;
        }
        if self.sources.len() >= self.limits.sources {
            let idle = self
                .sources
                .iter()
                .find(|(_, m)| m.load.is_empty())
                .map(|(ip, _)| *ip);
            match idle {
                Some(old) => drop(self.sources.remove(&old)),
                None => return false,
            }
        }
        let meter = Meter {
            seen: Some(now),
            ..Meter::default()
        };
        self.sources.insert(ip, meter);
        true
    }

    /// Forgets sources idle for [`FORGET_AFTER`] with nothing live, every [`SWEEP_EVERY`].
    pub fn sweep(&mut self, now: Instant) {
        if self.next_sweep.is_some_and(|at| now < at) {
            return;
        }
        self.next_sweep = Some(now + SWEEP_EVERY);
        self.sources.retain(|_, m| {
            !m.load.is_empty()
                || m.seen
                    .is_some_and(|at| now.saturating_duration_since(at) < FORGET_AFTER)
        });
        if self.sources.is_empty() {
            self.sources.shrink_to_fit();
        }
    }
}

fn source_shapes(l: &Limits) -> Shapes<'_> {
    Shapes {
        invite: &l.invite_per_source,
        register: &l.register_per_source,
    }
}

fn global_shapes(l: &Limits) -> Shapes<'_> {
    Shapes {
        invite: &l.invite_global,
        register: &l.register_global,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(192, 0, 2, 1));
    const B: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(192, 0, 2, 2));
    const SECOND: Duration = Duration::from_secs(1);

    fn ip(n: u32) -> IpAddr {
        IpAddr::V4(std::net::Ipv4Addr::from(0x0a00_0000 + n))
    }

    /// How many of `n` requests of `kind` from `ip` at `now` are admitted.
    fn admitted(adm: &mut Admission, now: Instant, ip: IpAddr, kind: Kind, n: usize) -> usize {
        (0..n)
            .filter(|_| adm.admit(now, ip, kind) == Verdict::Admit)
            .count()
    }

    fn generous_refusals(l: Limits) -> Limits {
        Limits {
            refusals_per_source: Rate::new(1e6, 1e6),
            refusals_global: Rate::new(1e6, 1e6),
            ..l
        }
    }

    #[test]
    fn invites_from_one_source_follow_its_bucket_and_refill_with_time() {
        let mut adm = Admission::new(Limits::default(), Acl::default());
        let t0 = Instant::now();
        assert_eq!(
            admitted(&mut adm, t0, A, Kind::NewInvite, 120),
            100,
            "the burst"
        );
        assert_eq!(
            adm.admit(t0, A, Kind::NewInvite),
            Verdict::Refuse(Refusal::Busy)
        );
        assert_eq!(
            admitted(&mut adm, t0 + SECOND, A, Kind::NewInvite, 60),
            50,
            "a second refills the rate"
        );
        assert_eq!(
            admitted(&mut adm, t0 + SECOND, B, Kind::NewInvite, 10),
            10,
            "another source has its own bucket"
        );
    }

    #[test]
    fn the_global_bucket_bounds_many_sources_together() {
        let mut adm = Admission::new(generous_refusals(Limits::default()), Acl::default());
        let t0 = Instant::now();
        let total: usize = (0..20)
            .map(|n| admitted(&mut adm, t0, ip(n), Kind::NewInvite, 50))
            .sum();
        assert_eq!(total, 400, "the global burst");
    }

    #[test]
    fn requests_in_existing_calls_pass_whatever_the_buckets_say() {
        let mut adm = Admission::new(Limits::default(), Acl::default());
        let t0 = Instant::now();
        admitted(&mut adm, t0, A, Kind::NewInvite, 1000);
        for _ in 0..1000 {
            adm.opened(A);
        }
        assert_eq!(admitted(&mut adm, t0, A, Kind::Existing, 100), 100);
    }

    #[test]
    fn register_has_its_own_bucket() {
        let mut adm = Admission::new(Limits::default(), Acl::default());
        let t0 = Instant::now();
        admitted(&mut adm, t0, A, Kind::NewInvite, 1000);
        assert_eq!(admitted(&mut adm, t0, A, Kind::Register, 200), 100);
    }

    #[test]
    fn unacknowledged_calls_are_capped_per_source_and_globally() {
        let limits = Limits {
            unacked_per_source: 3,
            unacked_global: 5,
            ..Limits::default()
        };
        let mut adm = Admission::new(limits, Acl::default());
        let t0 = Instant::now();
        for _ in 0..3 {
            assert_eq!(adm.admit(t0, A, Kind::NewInvite), Verdict::Admit);
            adm.call_opened(A);
        }
        assert_eq!(
            adm.admit(t0, A, Kind::NewInvite),
            Verdict::Refuse(Refusal::Busy)
        );
        adm.call_confirmed(A);
        assert_eq!(
            adm.admit(t0, A, Kind::NewInvite),
            Verdict::Admit,
            "an ACK frees one"
        );
        adm.call_opened(A);
        for _ in 0..2 {
            assert_eq!(adm.admit(t0, B, Kind::NewInvite), Verdict::Admit);
            adm.call_opened(B);
        }
        assert_eq!(
            adm.admit(t0, ip(9), Kind::NewInvite),
            Verdict::Refuse(Refusal::Busy),
            "five unacknowledged in all"
        );
        adm.call_closed(B, false);
        assert_eq!(adm.admit(t0, ip(9), Kind::NewInvite), Verdict::Admit);
        assert_eq!(
            adm.admit(t0, ip(9), Kind::Other),
            Verdict::Admit,
            "only INVITEs"
        );
    }

    #[test]
    fn calls_and_transactions_per_source_are_capped() {
        let limits = Limits {
            calls_per_source: 2,
            transactions_per_source: 4,
            transactions_global: 6,
            ..Limits::default()
        };
        let mut adm = Admission::new(limits, Acl::default());
        let t0 = Instant::now();
        for _ in 0..2 {
            assert_eq!(adm.admit(t0, A, Kind::NewInvite), Verdict::Admit);
            adm.call_opened(A);
            adm.call_confirmed(A);
        }
        assert_eq!(
            adm.admit(t0, A, Kind::NewInvite),
            Verdict::Refuse(Refusal::Busy)
        );
        adm.call_closed(A, true);
        assert_eq!(adm.admit(t0, A, Kind::NewInvite), Verdict::Admit);
        for _ in 0..3 {
            adm.opened(A);
        }
        assert_eq!(adm.admit(t0, A, Kind::Other), Verdict::Admit);
        adm.opened(A);
        assert_eq!(
            adm.admit(t0, A, Kind::Other),
            Verdict::Refuse(Refusal::Busy)
        );
        for _ in 0..2 {
            assert_eq!(adm.admit(t0, B, Kind::Other), Verdict::Admit);
            adm.opened(B);
        }
        assert_eq!(
            adm.admit(t0, B, Kind::Other),
            Verdict::Refuse(Refusal::Busy),
            "global"
        );
        adm.closed(A);
        assert_eq!(adm.admit(t0, B, Kind::Other), Verdict::Admit);
    }

    #[test]
    fn past_the_refusal_budget_requests_are_dropped_silently() {
        let limits = Limits {
            invite_per_source: Rate::new(1.0, 1.0),
            refusals_per_source: Rate::new(2.0, 5.0),
            ..Limits::default()
        };
        let mut adm = Admission::new(limits, Acl::default());
        let t0 = Instant::now();
        let verdicts: Vec<Verdict> = (0..10).map(|_| adm.admit(t0, A, Kind::NewInvite)).collect();
        assert_eq!(verdicts[0], Verdict::Admit);
        assert!(
            verdicts[1..6]
                .iter()
                .all(|v| *v == Verdict::Refuse(Refusal::Busy))
        );
        assert!(
            verdicts[6..].iter().all(|v| *v == Verdict::Drop),
            "{verdicts:?}"
        );
        assert!(
            !adm.may_refuse(t0, A),
            "malformed requests share the budget"
        );
        assert!(adm.may_refuse(t0 + SECOND, A), "the budget refills");
    }

    #[test]
    fn the_global_refusal_budget_bounds_forged_sources() {
        let limits = Limits {
            invite_per_source: Rate::new(0.0, 0.0),
            ..Limits::default()
        };
        let mut adm = Admission::new(limits, Acl::default());
        let t0 = Instant::now();
        let answered = (0..2000)
            .filter(|n| adm.admit(t0, ip(*n), Kind::NewInvite) != Verdict::Drop)
            .count();
        assert_eq!(answered, 400);
    }

    #[test]
    fn the_acl_denies_before_anything_and_deny_wins() {
        let acl = Acl {
            allow: vec!["192.0.2.0/24".parse().unwrap(), "::1/128".parse().unwrap()],
            deny: vec!["192.0.2.2/32".parse().unwrap()],
        };
        let mut adm = Admission::new(Limits::default(), acl);
        let t0 = Instant::now();
        assert_eq!(adm.admit(t0, A, Kind::NewInvite), Verdict::Admit);
        for kind in [Kind::NewInvite, Kind::Existing, Kind::Other] {
            assert_eq!(adm.admit(t0, B, kind), Verdict::Refuse(Refusal::Forbidden));
        }
        assert_eq!(
            adm.admit(t0, ip(1), Kind::Other),
            Verdict::Refuse(Refusal::Forbidden)
        );
        let mapped: IpAddr = "::ffff:192.0.2.2".parse().unwrap();
        assert!(!adm.permits(mapped), "IPv4-mapped is the IPv4 address");
        assert!(adm.permits("::1".parse().unwrap()));
        assert!(Acl::default().permits(B), "no lists: everyone");
    }

    #[test]
    fn the_source_table_is_bounded_and_forgets_idle_sources() {
        let limits = Limits {
            sources: 3,
            ..Limits::default()
        };
        let mut adm = Admission::new(limits, Acl::default());
        let t0 = Instant::now();
        for n in 0..3 {
            adm.admit(t0, ip(n), Kind::Other);
            adm.opened(ip(n));
        }
        assert_eq!(adm.tracked(), 3);
        assert_eq!(
            adm.admit(t0, ip(7), Kind::Other),
            Verdict::Refuse(Refusal::Busy),
            "every entry holds a transaction"
        );
        adm.closed(ip(0));
        assert_eq!(
            adm.admit(t0, ip(7), Kind::Other),
            Verdict::Admit,
            "evicts the idle one"
        );
        assert_eq!(adm.tracked(), 3);
        for n in 1..3 {
            adm.closed(ip(n));
        }
        adm.sweep(t0 + FORGET_AFTER + SWEEP_EVERY);
        assert_eq!(adm.tracked(), 0, "idle sources are forgotten");
    }
}
