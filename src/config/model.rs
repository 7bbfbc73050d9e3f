//! The compiled configuration: the immutable [`Snapshot`] a request reads, and its parts. Plain data
//! and lookups, no I/O.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use crate::engine::RuleId;
use crate::engine::{Action, HashKey, Level, RuleSet, Transformer};
use crate::policy::{Cidr, Department, DeptId, Direction, PerDirection, Policy};

/// A route: its index in the snapshot's route list (and in the gateway's per-route state).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RouteId(pub usize);

impl<T> std::ops::Index<RouteId> for Vec<T> {
    type Output = T;
    fn index(&self, r: RouteId) -> &T {
        &self[r.0]
    }
}

pub use super::raw::{
    BinaryMode, ClientAuth, FailMode, GuomiMode, LogFormat, RequestCoding, StoreErrorMode, UnknownMode, UnmaskableMode,
};

/// A bulk-exfiltration quota: at most `limit` sensitive values received in clear per department
/// in any `window_seconds` (see [`crate::gateway::quota`]).
#[derive(Debug, Clone)]
pub struct Quota {
    pub id: String,
    /// Empty: every department but `unknown`, each counted on its own.
    pub departments: Vec<String>,
    /// Empty: every category.
    pub categories: Vec<String>,
    /// Only values of rules at this level or above.
    pub level: Option<Level>,
    pub limit: u64,
    pub window_seconds: u64,
    /// Refuse the department's requests (429) while over the limit; otherwise alert only.
    pub block: bool,
}

/// At most this many buckets per quota window: the window slides in steps of `window / buckets`.
pub const MAX_QUOTA_BUCKETS: u64 = 60;

/// Buckets for a quota window of `window_seconds`: one per second up to a minute, else 60. Only
/// windows these divide evenly are accepted (up to 60 s, or a multiple of 60 s).
pub fn quota_buckets(window_seconds: u64) -> u64 {
    window_seconds.clamp(1, MAX_QUOTA_BUCKETS)
}

impl Quota {
    /// Named departments, or every recognised one: the `unknown` department is shared by all
    /// unidentified callers, any one of whom could otherwise use it up for all; name it to count it.
    pub fn applies_to(&self, dept: &str) -> bool {
        if self.departments.is_empty() { dept != "unknown" } else { self.departments.iter().any(|d| d == dept) }
    }

    /// Whether values found by `rule` count against this quota.
    pub fn counts(&self, rule: &crate::engine::Rule) -> bool {
        (self.categories.is_empty() || self.categories.contains(&rule.category))
            && self.level.is_none_or(|l| rule.level >= l)
    }
}

/// Pingora server settings.
#[derive(Debug, Clone)]
pub struct ServerSettings {
    pub threads: usize,
    pub pid_file: String,
    pub upgrade_sock: String,
    pub grace_period_seconds: u64,
    pub graceful_shutdown_timeout_seconds: u64,
    /// Tokio work stealing between worker threads. Off by default: one event loop per thread,
    /// as nginx workers, measured faster for short proxied requests (see README, Performance).
    pub work_stealing: bool,
}

#[derive(Debug, Clone)]
pub struct TlsSettings {
    pub cert: PathBuf,
    pub key: PathBuf,
    pub client_ca: Option<PathBuf>,
    pub client_auth: ClientAuth,
    /// The SM2 certificate chain and key (with `guomi` prefer or only).
    pub sm2: Option<(PathBuf, PathBuf)>,
    pub guomi: GuomiMode,
}

#[derive(Debug, Clone)]
pub struct Listener {
    pub name: String,
    pub addr: SocketAddr,
    pub tls: Option<TlsSettings>,
    pub h2: bool,
    pub timeouts: Timeouts,
}

/// A listener's client timeouts (nginx's `client_header_timeout`, `client_body_timeout`,
/// `keepalive_timeout`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    pub header: Duration,
    pub body: Duration,
    /// Zero: no keep-alive (each connection serves one request).
    pub keepalive: Duration,
}

impl Default for Timeouts {
    /// nginx's defaults.
    fn default() -> Self {
        Timeouts { header: Duration::from_secs(60), body: Duration::from_secs(60), keepalive: Duration::from_secs(75) }
    }
}

/// `cluster`: where replicas share quota counters.
#[derive(Clone)]
pub struct ClusterSettings {
    pub url: String,
    pub key_prefix: String,
    pub timeout: Duration,
    pub sync: Duration,
    pub username: Option<String>,
    pub password: Option<String>,
    /// `rediss://`: a CA bundle (PEM; `None`: the system's roots) and a client certificate and key.
    pub ca: Option<Vec<u8>>,
    pub client_cert: Option<(Vec<u8>, Vec<u8>)>,
    pub on_store_error: StoreErrorMode,
}

impl std::fmt::Debug for ClusterSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClusterSettings")
            .field("url", &self.url)
            .field("key_prefix", &self.key_prefix)
            .field("timeout", &self.timeout)
            .field("sync", &self.sync)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .field("on_store_error", &self.on_store_error)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Clone)]
pub struct AdminSettings {
    pub addr: SocketAddr,
    /// Bearer token for `POST /reload`; reload is refused when unset.
    pub token: Option<String>,
}

#[derive(Debug, Clone)]
pub struct IdentitySettings {
    pub api_key_header: http::HeaderName,
    pub trusted_proxies: Vec<Cidr>,
    pub department_header: http::HeaderName,
    pub unknown: UnknownMode,
    pub unknown_api_key: UnknownMode,
}

#[derive(Debug, Clone)]
pub struct Upstream {
    pub addrs: Vec<SocketAddr>,
    pub tls: bool,
    pub sni: String,
    pub ca_file: Option<PathBuf>,
    pub connect_timeout: Duration,
    pub read_timeout: Duration,
    pub health_check_interval: Duration,
    /// The upstream sockets' receive buffer (`SO_RCVBUF`); `None`: the system's, which grows with
    /// the connection. Pingora reads a response body up to 64 KiB at a time, as much as the socket
    /// holds: a small buffer keeps each stream's reads, and so its memory, small.
    pub receive_buffer: Option<usize>,
}

#[derive(Debug, Clone)]
pub struct Inspect {
    pub request: bool,
    pub response: bool,
    pub max_buffer: usize,
    pub on_error: FailMode,
    pub on_binary: BinaryMode,
    pub content_types: Vec<String>,
    pub max_decompressed: usize,
    pub max_ratio: usize,
    /// The most of a document (xlsx, docx, zip …) held to be inspected whole.
    pub max_document: usize,
    pub on_unmaskable: UnmaskableMode,
    pub request_coding: RequestCoding,
    pub archive: crate::documents::Limits,
}

/// Text-like content types scanned when a route lists none.
pub const DEFAULT_CONTENT_TYPES: &[&str] = &[
    "application/json",
    "application/problem+json",
    "application/x-ndjson",
    "application/xml",
    "application/javascript",
    "application/x-www-form-urlencoded",
    "multipart/form-data",
    "multipart/mixed",
    "multipart/related",
    "multipart/alternative",
    "text/",
    "+json",
    "+xml",
];

impl Inspect {
    /// Whether a body of this content type is scanned. A missing type is scanned (fail closed).
    pub fn scannable(&self, content_type: Option<&str>) -> bool {
        let Some(ct) = content_type else { return true };
        let ct = ct.split(';').next().unwrap_or("").trim().as_bytes();
        if ct.is_empty() {
            return true;
        }
        // ASCII case folded as compared: asked of every response, so nothing is allocated
        let is = |t: &str| ct.eq_ignore_ascii_case(t.as_bytes());
        let starts = |t: &str| ct.get(..t.len()).is_some_and(|h| h.eq_ignore_ascii_case(t.as_bytes()));
        let ends = |t: &str| ct.len() >= t.len() && ct[ct.len() - t.len()..].eq_ignore_ascii_case(t.as_bytes());
        if self.content_types.is_empty() {
            DEFAULT_CONTENT_TYPES.iter().any(|t| {
                if t.starts_with('+') {
                    ends(t)
                } else if t.ends_with('/') {
                    starts(t)
                } else {
                    is(t)
                }
            })
        } else {
            self.content_types.iter().any(|t| is(t) || (t.ends_with('/') && starts(t)))
        }
    }
}

#[derive(Debug, Clone)]
pub struct Route {
    pub id: String,
    pub hosts: Vec<String>,
    pub path_prefix: String,
    pub policy: usize,
    pub upstream: Upstream,
    pub inspect: Inspect,
    /// Per department and direction: a finding may be blocked.
    pub may_block: Vec<PerDirection<bool>>,
    /// Per department and direction: a finding may be acted on (anything other than allow).
    pub may_act: Vec<PerDirection<bool>>,
    /// Per department and direction: the action for each rule.
    pub decisions: Vec<PerDirection<Vec<Action>>>,
}

impl Route {
    /// The precomputed action for `rule` seen by department `dept` in direction `dir`.
    pub fn decision(&self, dept: DeptId, dir: Direction, rule: RuleId) -> Action {
        self.decisions.get(dept.0).and_then(|x| x[dir].get(rule.0)).copied().unwrap_or(Action::Block)
    }

    /// Whether anything department `dept` sends or receives in direction `dir` may be acted on.
    pub fn may_act_for(&self, dept: DeptId, dir: Direction) -> bool {
        self.may_act.get(dept.0).is_some_and(|x| x[dir])
    }

    /// Whether a finding department `dept` sends or receives in direction `dir` may be blocked.
    pub fn may_block_for(&self, dept: DeptId, dir: Direction) -> bool {
        self.may_block.get(dept.0).is_some_and(|x| x[dir])
    }
}

impl Route {
    pub fn matches(&self, host: &str, path: &str) -> bool {
        let host =
            host.rsplit_once(':').filter(|(_, p)| p.bytes().all(|b| b.is_ascii_digit())).map_or(host, |(h, _)| h);
        (self.hosts.is_empty() || self.hosts.iter().any(|h| h.eq_ignore_ascii_case(host)))
            && path.starts_with(&self.path_prefix)
    }
}

/// Where audit events go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Sink {
    File(PathBuf),
    Stdout,
    Syslog(String),
}

#[derive(Debug, Clone)]
pub struct AuditSettings {
    pub queue: usize,
    pub sinks: Vec<Sink>,
}

#[derive(Debug, Clone)]
pub struct LoggingSettings {
    pub format: LogFormat,
    pub level: String,
}

/// One compiled, immutable configuration: what a request needs, swapped as a whole on reload.
#[derive(Debug)]
pub struct Snapshot {
    pub source: PathBuf,
    pub server: ServerSettings,
    pub listeners: Vec<Listener>,
    pub admin: AdminSettings,
    pub rules: Arc<RuleSet>,
    pub transformer: Transformer,
    pub fingerprint_key: HashKey,
    pub identity: IdentitySettings,
    pub departments: Vec<Department>,
    /// Index of the `unknown` department (always present: synthesised with clearance none).
    pub unknown: DeptId,
    pub policies: Vec<Policy>,
    pub routes: Vec<Route>,
    pub quotas: Vec<Quota>,
    /// Shared quota counters (read at start-up, as listeners are).
    pub cluster: Option<ClusterSettings>,
    pub audit: AuditSettings,
    pub logging: LoggingSettings,
    pub loaded_at: std::time::SystemTime,
}

impl Snapshot {
    /// The first route matching host and path.
    pub fn route(&self, host: &str, path: &str) -> Option<RouteId> {
        self.routes.iter().position(|r| r.matches(host, path)).map(RouteId)
    }

    pub fn policy_of(&self, route: RouteId) -> &Policy {
        &self.policies[self.routes[route].policy]
    }
}
