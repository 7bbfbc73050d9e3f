//! Departments, how they are recognised, clearance levels, and the decision finding → action.
//!
//! Plain data and pure functions: no I/O, no HTTP. The gateway gathers an [`Identity`] from the
//! connection and request, [`identify`] picks the department, and [`Policy::decide`] turns each
//! finding into an action for that department, route and direction.

use std::net::IpAddr;

use serde::Deserialize;

use crate::engine::{Action, Level, Rule};

/// What a department may see in clear: findings at or below this level are allowed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Clearance {
    None,
    General,
    Important,
    Core,
}

impl Clearance {
    pub fn covers(self, level: Level) -> bool {
        let l = match level {
            Level::General => Clearance::General,
            Level::Important => Clearance::Important,
            Level::Core => Clearance::Core,
        };
        l <= self
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Clearance::None => "none",
            Clearance::General => "general",
            Clearance::Important => "important",
            Clearance::Core => "core",
        }
    }
}

/// Request (data flowing into services) or response (data flowing out to callers).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Direction {
    Request,
    Response,
}

impl Direction {
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::Request => "request",
            Direction::Response => "response",
        }
    }
}

/// A department: its index in the snapshot's department list (not a bare `usize`, so it cannot be
/// mixed up with a route or rule index).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DeptId(pub usize);

impl<T> std::ops::Index<DeptId> for Vec<T> {
    type Output = T;
    fn index(&self, d: DeptId) -> &T {
        &self[d.0]
    }
}

/// One value per direction, indexed by [`Direction`] (never by a bare 0 or 1).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PerDirection<T> {
    pub request: T,
    pub response: T,
}

impl<T> PerDirection<T> {
    pub fn new(request: T, response: T) -> Self {
        PerDirection { request, response }
    }

    /// Both values, computed per direction.
    pub fn from_fn(mut f: impl FnMut(Direction) -> T) -> Self {
        PerDirection { request: f(Direction::Request), response: f(Direction::Response) }
    }
}

impl<T> std::ops::Index<Direction> for PerDirection<T> {
    type Output = T;
    fn index(&self, d: Direction) -> &T {
        match d {
            Direction::Request => &self.request,
            Direction::Response => &self.response,
        }
    }
}

impl<T> std::ops::IndexMut<Direction> for PerDirection<T> {
    fn index_mut(&mut self, d: Direction) -> &mut T {
        match d {
            Direction::Request => &mut self.request,
            Direction::Response => &mut self.response,
        }
    }
}

/// Which directions an override applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum DirectionFilter {
    Request,
    Response,
    #[default]
    Both,
}

impl DirectionFilter {
    fn matches(self, d: Direction) -> bool {
        matches!(
            (self, d),
            (DirectionFilter::Both, _)
                | (DirectionFilter::Request, Direction::Request)
                | (DirectionFilter::Response, Direction::Response)
        )
    }
}

/// An IPv4 or IPv6 network.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    net: IpAddr,
    prefix: u8,
}

impl Cidr {
    /// Parse `10.0.0.0/8`, `2001:db8::/32` or a bare address (a /32 or /128).
    pub fn parse(s: &str) -> Result<Cidr, String> {
        let (addr, prefix) = match s.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s, None),
        };
        let net: IpAddr = addr.trim().parse().map_err(|_| format!("invalid network address {s:?}"))?;
        let max = if net.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            Some(p) => p
                .trim()
                .parse::<u8>()
                .ok()
                .filter(|p| *p <= max)
                .ok_or_else(|| format!("invalid prefix length in {s:?} (0-{max})"))?,
            None => max,
        };
        Ok(Cidr { net, prefix })
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4),
            v4 => v4,
        };
        match (self.net, ip) {
            (IpAddr::V4(n), IpAddr::V4(a)) => {
                let mask = if self.prefix == 0 { 0 } else { u32::MAX << (32 - u32::from(self.prefix)) };
                u32::from(n) & mask == u32::from(a) & mask
            }
            (IpAddr::V6(n), IpAddr::V6(a)) => {
                let mask = if self.prefix == 0 { 0 } else { u128::MAX << (128 - u32::from(self.prefix)) };
                u128::from(n) & mask == u128::from(a) & mask
            }
            _ => false,
        }
    }
}

/// The subject fields of a verified client certificate.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CertIdentity {
    pub cn: Vec<String>,
    pub ou: Vec<String>,
    pub sans: Vec<String>,
}

/// Everything known about a caller.
#[derive(Debug, Clone, Default)]
pub struct Identity {
    pub cert: Option<CertIdentity>,
    /// SHA-256 of the API key header value
    pub api_key_sha256: Option<[u8; 32]>,
    /// The client address (after trusted `X-Forwarded-For`)
    pub ip: Option<IpAddr>,
}

/// A department and how it is recognised.
#[derive(Debug, Clone)]
pub struct Department {
    pub id: String,
    pub name: String,
    pub clearance: Clearance,
    pub cert_ou: Vec<String>,
    pub cert_cn: Vec<String>,
    pub cert_san: Vec<String>,
    pub api_keys: Vec<[u8; 32]>,
    pub cidrs: Vec<Cidr>,
}

/// How the caller was recognised (for audit and logs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recognised {
    Certificate,
    ApiKey,
    Network,
    Unknown,
}

/// Pick the department: client certificate first, then API key, then source network.
pub fn identify(depts: &[Department], id: &Identity) -> Option<(DeptId, Recognised)> {
    identify_index(depts, id).map(|(i, r)| (DeptId(i), r))
}

fn identify_index(depts: &[Department], id: &Identity) -> Option<(usize, Recognised)> {
    if let Some(c) = &id.cert {
        // a certificate naming several departments (an OU of one, a SAN of another) gets the
        // least cleared of them, not whichever the config happens to list first
        let hit = depts
            .iter()
            .enumerate()
            .filter(|(_, d)| {
                d.cert_ou.iter().any(|x| c.ou.contains(x))
                    || d.cert_cn.iter().any(|x| c.cn.contains(x))
                    || d.cert_san.iter().any(|x| c.sans.iter().any(|s| s.eq_ignore_ascii_case(x)))
            })
            .min_by_key(|(_, d)| d.clearance);
        if let Some((i, _)) = hit {
            return Some((i, Recognised::Certificate));
        }
    }
    if let Some(k) = &id.api_key_sha256 {
        // constant-time comparison of digests
        let hit = depts.iter().position(|d| d.api_keys.iter().any(|x| ct_eq(x, k)));
        if let Some(i) = hit {
            return Some((i, Recognised::ApiKey));
        }
    }
    if let Some(ip) = id.ip {
        if let Some(i) = depts.iter().position(|d| d.cidrs.iter().any(|c| c.contains(ip))) {
            return Some((i, Recognised::Network));
        }
    }
    None
}

/// Whether some department holds the API key with this digest.
pub fn api_key_known(depts: &[Department], digest: &[u8; 32]) -> bool {
    depts.iter().any(|d| d.api_keys.iter().any(|x| ct_eq(x, digest)))
}

fn ct_eq(a: &[u8; 32], b: &[u8; 32]) -> bool {
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// One policy override; empty lists match anything.
#[derive(Debug, Clone)]
pub struct Override {
    pub departments: Vec<String>,
    pub routes: Vec<String>,
    pub categories: Vec<String>,
    pub rules: Vec<String>,
    pub direction: DirectionFilter,
    pub action: Action,
}

impl Override {
    fn matches(&self, rule: &Rule, dept: &str, route: &str, dir: Direction) -> bool {
        self.direction.matches(dir)
            && (self.departments.is_empty() || self.departments.iter().any(|d| d == dept))
            && (self.routes.is_empty() || self.routes.iter().any(|r| r == route))
            && (self.categories.is_empty() || self.categories.contains(&rule.category))
            && (self.rules.is_empty() || self.rules.contains(&rule.id))
    }
}

/// A named policy: overrides first (first match wins), then clearance, then the rule's action.
#[derive(Debug, Clone)]
pub struct Policy {
    pub id: String,
    pub overrides: Vec<Override>,
}

impl Policy {
    /// The action for a finding of `rule`, seen by `dept` on `route` in direction `dir`.
    pub fn decide(&self, rule: &Rule, dept: &Department, route: &str, dir: Direction) -> Action {
        if let Some(o) = self.overrides.iter().find(|o| o.matches(rule, &dept.id, route, dir)) {
            return o.action;
        }
        if dept.clearance.covers(rule.level) {
            return Action::Allow;
        }
        rule.action
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::default_rules;

    fn dept(id: &str, clearance: Clearance) -> Department {
        Department {
            id: id.into(),
            name: id.into(),
            clearance,
            cert_ou: vec![],
            cert_cn: vec![],
            cert_san: vec![],
            api_keys: vec![],
            cidrs: vec![],
        }
    }

    #[test]
    fn a_certificate_naming_two_departments_gets_the_lesser_clearance() {
        let mut ps = dept("public-security", Clearance::Core);
        ps.cert_ou = vec!["公安厅".into()];
        let mut civil = dept("civil", Clearance::General);
        civil.cert_san = vec!["civil.gov.example".into()];
        let depts = [ps, civil];
        let cert = |ou: &[&str], san: &[&str]| Identity {
            cert: Some(CertIdentity {
                cn: vec![],
                ou: ou.iter().map(|s| s.to_string()).collect(),
                sans: san.iter().map(|s| s.to_string()).collect(),
            }),
            ..Identity::default()
        };
        assert_eq!(identify(&depts, &cert(&["公安厅"], &[])), Some((DeptId(0), Recognised::Certificate)));
        assert_eq!(identify(&depts, &cert(&[], &["CIVIL.gov.example"])), Some((DeptId(1), Recognised::Certificate)));
        assert_eq!(
            identify(&depts, &cert(&["公安厅"], &["civil.gov.example"])),
            Some((DeptId(1), Recognised::Certificate))
        );
    }

    #[test]
    fn cidr_contains() {
        let c = Cidr::parse("10.20.0.0/16").expect("cidr");
        assert!(c.contains("10.20.3.4".parse().expect("ip")));
        assert!(!c.contains("10.21.0.1".parse().expect("ip")));
        assert!(c.contains("::ffff:10.20.0.9".parse().expect("ip")));
        assert!(Cidr::parse("10.0.0.0/33").is_err());
        assert!(Cidr::parse("2001:db8::/32").expect("v6").contains("2001:db8::1".parse().expect("ip")));
    }

    #[test]
    fn clearance_then_overrides_then_rule_action() {
        let rules = default_rules().expect("rules");
        let id = &rules.rules()[rules.rule_index("cn.id_card").expect("id")];
        let mobile = &rules.rules()[rules.rule_index("cn.mobile").expect("mobile")];
        let p = Policy {
            id: "p".into(),
            overrides: vec![Override {
                departments: vec!["ps".into()],
                routes: vec!["residents".into()],
                categories: vec!["personal.id_number".into()],
                rules: vec![],
                direction: DirectionFilter::Response,
                action: Action::Allow,
            }],
        };
        let unknown = dept("unknown", Clearance::None);
        let civil = dept("civil", Clearance::Important);
        let ps = dept("ps", Clearance::Important);
        let cases = [
            (&unknown, id, "residents", Direction::Response, Action::Mask),
            (&civil, mobile, "residents", Direction::Response, Action::Allow),
            (&civil, id, "residents", Direction::Response, Action::Mask),
            (&ps, id, "residents", Direction::Response, Action::Allow),
            (&ps, id, "other", Direction::Response, Action::Mask),
            (&ps, id, "residents", Direction::Request, Action::Mask),
        ];
        for (i, (d, r, route, dir, want)) in cases.iter().enumerate() {
            assert_eq!(p.decide(r, d, route, *dir), *want, "case {i}");
        }
    }

    #[test]
    fn identify_prefers_certificate_then_key_then_network() {
        let mut a = dept("a", Clearance::Core);
        a.cert_ou = vec!["公安厅".into()];
        let mut b = dept("b", Clearance::General);
        b.api_keys = vec![[7u8; 32]];
        let mut c = dept("c", Clearance::General);
        c.cidrs = vec![Cidr::parse("10.0.0.0/8").expect("cidr")];
        let depts = vec![a, b, c];
        let cert = CertIdentity { ou: vec!["公安厅".into()], ..Default::default() };
        let all =
            Identity { cert: Some(cert), api_key_sha256: Some([7; 32]), ip: Some("10.1.1.1".parse().expect("ip")) };
        assert_eq!(identify(&depts, &all), Some((DeptId(0), Recognised::Certificate)));
        let key = Identity { cert: None, ..all.clone() };
        assert_eq!(identify(&depts, &key), Some((DeptId(1), Recognised::ApiKey)));
        let net = Identity { api_key_sha256: Some([8; 32]), ..key.clone() };
        assert_eq!(identify(&depts, &net), Some((DeptId(2), Recognised::Network)));
        let none = Identity { ip: Some("192.168.0.1".parse().expect("ip")), ..net };
        assert_eq!(identify(&depts, &none), None);
    }
}
