//! Configuration: YAML → raw serde types (`deny_unknown_fields`) → checks → a compiled, immutable
//! [`Snapshot`]. Every problem is collected with file:line and key, and `dlpgate check`, `run` and
//! reload all call [`load`].

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;
use sha2::Digest;

use crate::engine::{Action, HashKey, Level, RuleSet, Transformer};
use crate::policy::{Cidr, Clearance, Department, Direction, DirectionFilter, Override, Policy};

/// One configuration problem.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub file: PathBuf,
    pub line: usize,
    pub key: String,
    pub msg: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if self.line > 0 {
            write!(f, ":{}", self.line)?;
        }
        if !self.key.is_empty() {
            write!(f, ": {}", self.key)?;
        }
        write!(f, ": {}", self.msg)
    }
}

/// Every problem found (never empty when returned as an error).
#[derive(Debug, Clone)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        crate::engine::error::write_lines(f, &self.0)
    }
}

impl std::error::Error for ConfigErrors {}

// ---------------------------------------------------------------------------------------------
// raw types

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    #[serde(default)]
    server: RawServer,
    #[serde(default)]
    listeners: Vec<RawListener>,
    #[serde(default)]
    admin: Option<RawAdmin>,
    #[serde(default)]
    rules: RawRules,
    #[serde(default)]
    identity: RawIdentity,
    #[serde(default)]
    departments: Vec<RawDepartment>,
    #[serde(default)]
    policies: Vec<RawPolicy>,
    #[serde(default)]
    routes: Vec<RawRoute>,
    #[serde(default)]
    quotas: Vec<RawQuota>,
    #[serde(default)]
    audit: RawAudit,
    #[serde(default)]
    logging: RawLogging,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawQuota {
    id: String,
    #[serde(default)]
    departments: Vec<String>,
    #[serde(default)]
    categories: Vec<String>,
    #[serde(default)]
    level: Option<Level>,
    limit: u64,
    window_seconds: u64,
    #[serde(default)]
    action: QuotaAction,
}

#[derive(Debug, Deserialize, Clone, Copy, Default, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
enum QuotaAction {
    Alert,
    #[default]
    Block,
}

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

#[derive(Debug, Deserialize, Clone)]
#[serde(deny_unknown_fields)]
struct RawServer {
    #[serde(default = "d_threads")]
    threads: usize,
    #[serde(default)]
    pid_file: Option<String>,
    #[serde(default)]
    upgrade_sock: Option<String>,
    #[serde(default = "d_grace")]
    grace_period_seconds: u64,
    #[serde(default = "d_shutdown")]
    graceful_shutdown_timeout_seconds: u64,
    #[serde(default)]
    work_stealing: bool,
}

impl Default for RawServer {
    fn default() -> Self {
        Self {
            threads: d_threads(),
            pid_file: None,
            upgrade_sock: None,
            grace_period_seconds: d_grace(),
            graceful_shutdown_timeout_seconds: d_shutdown(),
            work_stealing: false,
        }
    }
}

fn d_threads() -> usize {
    2
}
fn d_grace() -> u64 {
    30
}
fn d_shutdown() -> u64 {
    10
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawListener {
    #[serde(default)]
    name: Option<String>,
    addr: String,
    #[serde(default)]
    tls: Option<RawTls>,
    #[serde(default = "yes")]
    h2: bool,
}

fn yes() -> bool {
    true
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTls {
    cert: String,
    key: String,
    #[serde(default)]
    client_ca: Option<String>,
    #[serde(default)]
    client_auth: ClientAuth,
}

/// Whether clients must present a certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum ClientAuth {
    #[default]
    None,
    Optional,
    Required,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAdmin {
    #[serde(default = "d_admin")]
    addr: String,
    #[serde(default)]
    token_file: Option<String>,
}

fn d_admin() -> String {
    "127.0.0.1:9090".into()
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawRules {
    #[serde(default)]
    dirs: Vec<String>,
    #[serde(default)]
    hash_key_file: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawIdentity {
    #[serde(default = "d_key_header")]
    api_key_header: String,
    #[serde(default)]
    trusted_proxies: Vec<String>,
    #[serde(default = "d_dept_header")]
    department_header: String,
    #[serde(default)]
    unknown: UnknownMode,
}

impl Default for RawIdentity {
    fn default() -> Self {
        Self {
            api_key_header: d_key_header(),
            trusted_proxies: vec![],
            department_header: d_dept_header(),
            unknown: UnknownMode::Allow,
        }
    }
}

fn d_key_header() -> String {
    "x-api-key".into()
}
fn d_dept_header() -> String {
    "x-dlp-department".into()
}

/// What happens to a caller no department recognises.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum UnknownMode {
    #[default]
    Allow,
    Refuse,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDepartment {
    id: String,
    #[serde(default)]
    name: Option<String>,
    clearance: Clearance,
    #[serde(default, rename = "match")]
    matcher: RawMatch,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawMatch {
    #[serde(default)]
    cert_ou: Vec<String>,
    #[serde(default)]
    cert_cn: Vec<String>,
    #[serde(default)]
    cert_san: Vec<String>,
    #[serde(default)]
    api_key_sha256: Vec<String>,
    #[serde(default)]
    cidrs: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPolicy {
    id: String,
    #[serde(default)]
    overrides: Vec<RawOverride>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawOverride {
    #[serde(default)]
    departments: Vec<String>,
    #[serde(default)]
    routes: Vec<String>,
    #[serde(default)]
    categories: Vec<String>,
    #[serde(default)]
    rules: Vec<String>,
    #[serde(default)]
    direction: DirectionFilter,
    action: Action,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRoute {
    id: String,
    #[serde(default)]
    hosts: Vec<String>,
    #[serde(default = "d_prefix")]
    path_prefix: String,
    policy: String,
    upstream: RawUpstream,
    #[serde(default)]
    inspect: RawInspect,
}

fn d_prefix() -> String {
    "/".into()
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawUpstream {
    addrs: Vec<String>,
    #[serde(default)]
    tls: bool,
    #[serde(default)]
    sni: String,
    #[serde(default)]
    ca_file: String,
    #[serde(default = "d_connect")]
    connect_timeout_ms: u64,
    #[serde(default = "d_read")]
    read_timeout_ms: u64,
    #[serde(default = "d_hc")]
    health_check_interval_s: u64,
}

fn d_connect() -> u64 {
    2000
}
fn d_read() -> u64 {
    30000
}
fn d_hc() -> u64 {
    5
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawInspect {
    #[serde(default = "yes")]
    request: bool,
    #[serde(default = "yes")]
    response: bool,
    #[serde(default = "d_max_buffer")]
    max_buffer: usize,
    #[serde(default)]
    on_error: FailMode,
    #[serde(default)]
    on_binary: BinaryMode,
    #[serde(default)]
    content_types: Vec<String>,
    #[serde(default = "d_max_decompressed")]
    max_decompressed: usize,
    #[serde(default = "d_ratio")]
    max_ratio: usize,
}

impl Default for RawInspect {
    fn default() -> Self {
        Self {
            request: true,
            response: true,
            max_buffer: d_max_buffer(),
            on_error: FailMode::Block,
            on_binary: BinaryMode::Pass,
            content_types: vec![],
            max_decompressed: d_max_decompressed(),
            max_ratio: d_ratio(),
        }
    }
}

fn d_max_buffer() -> usize {
    1 << 20
}
fn d_max_decompressed() -> usize {
    64 << 20
}
fn d_ratio() -> usize {
    100
}

/// What to do with a body that cannot be inspected (oversize, undecodable, scanner error).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum FailMode {
    /// Refuse it (fail closed). The default.
    #[default]
    Block,
    /// Forward it uninspected and record an alert.
    Pass,
}

/// What to do with content types that are not text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum BinaryMode {
    #[default]
    Pass,
    Block,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAudit {
    #[serde(default)]
    fingerprint_key_file: Option<String>,
    #[serde(default = "d_queue")]
    queue: usize,
    #[serde(default)]
    sinks: Vec<RawSink>,
}

impl Default for RawAudit {
    fn default() -> Self {
        Self { fingerprint_key_file: None, queue: d_queue(), sinks: Vec::new() }
    }
}

fn d_queue() -> usize {
    10_000
}

#[derive(Debug, Deserialize, Clone)]
#[serde(deny_unknown_fields, tag = "type", rename_all = "lowercase")]
enum RawSink {
    File { path: String },
    Stdout,
    Syslog { addr: String },
}

#[derive(Debug, Deserialize, Clone)]
#[serde(deny_unknown_fields)]
struct RawLogging {
    #[serde(default)]
    format: LogFormat,
    #[serde(default = "d_level")]
    level: String,
}

impl Default for RawLogging {
    fn default() -> Self {
        Self { format: LogFormat::Text, level: d_level() }
    }
}

fn d_level() -> String {
    "info".into()
}

/// Log line format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

// ---------------------------------------------------------------------------------------------
// compiled types

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
}

#[derive(Debug, Clone)]
pub struct Listener {
    pub name: String,
    pub addr: SocketAddr,
    pub tls: Option<TlsSettings>,
    pub h2: bool,
}

#[derive(Debug, Clone)]
pub struct AdminSettings {
    pub addr: SocketAddr,
    /// Bearer token for `POST /reload`; reload is refused when unset.
    pub token: Option<String>,
}

#[derive(Debug, Clone)]
pub struct IdentitySettings {
    pub api_key_header: String,
    pub trusted_proxies: Vec<Cidr>,
    pub department_header: String,
    pub unknown: UnknownMode,
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
        let ct = ct.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
        if ct.is_empty() {
            return true;
        }
        if self.content_types.is_empty() {
            DEFAULT_CONTENT_TYPES.iter().any(|t| {
                if t.starts_with('+') {
                    ct.ends_with(t)
                } else if t.ends_with('/') {
                    ct.starts_with(t)
                } else {
                    ct == *t
                }
            })
        } else {
            self.content_types
                .iter()
                .any(|t| ct == t.to_ascii_lowercase() || (t.ends_with('/') && ct.starts_with(&t.to_ascii_lowercase())))
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
    /// Per department: [request may block, response may block]
    pub may_block: Vec<[bool; 2]>,
    /// Per department: [request may act, response may act] (anything other than allow).
    pub may_act: Vec<[bool; 2]>,
    /// Per department, per direction (request, response): the action for each rule.
    pub decisions: Vec<[Vec<Action>; 2]>,
}

impl Route {
    /// The precomputed action for `rule` seen by department `dept` in direction `dir`.
    pub fn decision(&self, dept: usize, dir: Direction, rule: usize) -> Action {
        let d = usize::from(dir == Direction::Response);
        self.decisions.get(dept).and_then(|x| x[d].get(rule)).copied().unwrap_or(Action::Block)
    }

    pub fn may_act_for(&self, dept: usize, dir: Direction) -> bool {
        let d = usize::from(dir == Direction::Response);
        self.may_act.get(dept).is_some_and(|x| x[d])
    }
}

/// A request path in normal form (RFC 3986 §6.2.2): percent-encoded unreserved characters
/// decoded, dot segments resolved, repeated slashes collapsed; `Ok(None)` when it already is.
/// Routes match this form, so `/%61pi/`, `//api/` or `/x/../api/` reach `/api/`'s route under its
/// policy whatever the upstream makes of them.
///
/// `loose` reads the path as the most lenient servers do: `%2F`, `%5C` and `\` as separators, a
/// segment's `;parameters` dropped (`..;` is `..` to Tomcat). The gateway routes both readings
/// and refuses a path whose readings reach different routes.
///
/// A `%` not followed by two hex digits is refused: decoding could otherwise form a new escape
/// (`%2%65` → `%2e`).
pub fn normal_path(path: &str, loose: bool) -> Result<Option<String>, &'static str> {
    let b = path.as_bytes();
    let suspicious = b.contains(&b'%')
        || b.contains(&b'\\')
        || b.contains(&b';')
        || path.contains("//")
        || path.contains("/.")
        || !path.starts_with('/');
    if !suspicious || path.is_empty() || path == "*" {
        return Ok(None);
    }
    let hex = |c: u8| (c as char).to_digit(16);
    let mut decoded = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let (Some(h), Some(l)) = (b.get(i + 1).and_then(|&c| hex(c)), b.get(i + 2).and_then(|&c| hex(c))) else {
                return Err("malformed percent-encoding in path");
            };
            let c = (h * 16 + l) as u8;
            if c.is_ascii_alphanumeric()
                || matches!(c, b'-' | b'.' | b'_' | b'~')
                || (loose && matches!(c, b'/' | b'\\'))
            {
                decoded.push(if c == b'\\' { b'/' } else { c });
            } else {
                decoded.extend_from_slice(&b[i..i + 3]);
            }
            i += 3;
            continue;
        }
        decoded.push(if loose && b[i] == b'\\' { b'/' } else { b[i] });
        i += 1;
    }
    let decoded = String::from_utf8_lossy(&decoded).into_owned();
    let segments: Vec<&str> =
        decoded.split('/').map(|seg| if loose { seg.split(';').next().unwrap_or("") } else { seg }).collect();
    let last = segments.len().saturating_sub(1);
    let (mut out, mut trailing) = (Vec::new(), false);
    for (k, seg) in segments.iter().enumerate() {
        match *seg {
            "" | "." => trailing = k == last && k > 0,
            ".." => {
                out.pop();
                trailing = k == last;
            }
            s => {
                out.push(s);
                trailing = false;
            }
        }
    }
    let mut norm = String::with_capacity(path.len());
    for seg in &out {
        norm.push('/');
        norm.push_str(seg);
    }
    if trailing || norm.is_empty() {
        norm.push('/');
    }
    Ok((norm != path).then_some(norm))
}

impl Route {
    pub fn matches(&self, host: &str, path: &str) -> bool {
        let host =
            host.rsplit_once(':').filter(|(_, p)| p.bytes().all(|b| b.is_ascii_digit())).map_or(host, |(h, _)| h);
        (self.hosts.is_empty() || self.hosts.iter().any(|h| h.eq_ignore_ascii_case(host)))
            && path.starts_with(&self.path_prefix)
    }
}

/// Upstream addresses of a route: round robin over the healthy ones (all, when none is healthy).
#[derive(Debug)]
pub struct Pool {
    pub addrs: Vec<SocketAddr>,
    pub healthy: Vec<std::sync::atomic::AtomicBool>,
    next: std::sync::atomic::AtomicUsize,
}

impl Pool {
    pub fn new(addrs: Vec<SocketAddr>) -> Pool {
        let healthy = addrs.iter().map(|_| std::sync::atomic::AtomicBool::new(true)).collect();
        Pool { addrs, healthy, next: std::sync::atomic::AtomicUsize::new(0) }
    }

    /// A connection to `addr` failed: skip it until a health check finds it up again. Only when
    /// health checks run (`checked`): otherwise nothing would ever bring it back.
    pub fn connect_failed(&self, addr: SocketAddr, checked: bool) {
        if !checked {
            return;
        }
        if let Some(h) = self.addrs.iter().position(|a| *a == addr).and_then(|i| self.healthy.get(i)) {
            h.store(false, std::sync::atomic::Ordering::Relaxed);
        }
    }

    /// The next address, skipping unhealthy ones.
    ///
    /// # Panics
    /// Never: a route always has at least one address (checked at load).
    pub fn pick(&self, failed: &[SocketAddr]) -> SocketAddr {
        use std::sync::atomic::Ordering;
        let n = self.addrs.len().max(1);
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        // healthy and not yet failed for this request; then any not failed; then any
        let usable = |k: usize, healthy_only: bool| {
            self.addrs.get(k).filter(|a| {
                !failed.contains(a) && (!healthy_only || self.healthy.get(k).is_some_and(|h| h.load(Ordering::Relaxed)))
            })
        };
        for healthy_only in [true, false] {
            if let Some(a) = (0..n).find_map(|i| usable((start + i) % n, healthy_only)) {
                return *a;
            }
        }
        self.addrs.get(start % n).copied().unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 9)))
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
    pub unknown: usize,
    pub policies: Vec<Policy>,
    pub routes: Vec<Route>,
    /// Per route: upstream addresses with health and round-robin state.
    pub pools: Vec<Arc<Pool>>,
    pub quotas: Vec<Quota>,
    pub audit: AuditSettings,
    pub logging: LoggingSettings,
    pub loaded_at: std::time::SystemTime,
}

impl Snapshot {
    /// The first route matching host and path.
    pub fn route(&self, host: &str, path: &str) -> Option<usize> {
        self.routes.iter().position(|r| r.matches(host, path))
    }

    pub fn policy_of(&self, route: usize) -> &Policy {
        &self.policies[self.routes[route].policy]
    }
}

// ---------------------------------------------------------------------------------------------
// loading

struct Ctx<'a> {
    file: &'a Path,
    text: &'a str,
    base: PathBuf,
    errs: Vec<ConfigError>,
}

impl Ctx<'_> {
    /// Report a problem at the line where `key` (optionally with `value`) appears.
    fn err(&mut self, key: &str, value: Option<&str>, msg: impl Into<String>) {
        let line = find_line(self.text, key, value);
        self.errs.push(ConfigError { file: self.file.to_path_buf(), line, key: key.to_string(), msg: msg.into() });
    }

    fn err_at(&mut self, line: usize, key: &str, msg: impl Into<String>) {
        self.errs.push(ConfigError { file: self.file.to_path_buf(), line, key: key.to_string(), msg: msg.into() });
    }

    fn path(&self, p: &str) -> PathBuf {
        let p = Path::new(p);
        if p.is_absolute() { p.to_path_buf() } else { self.base.join(p) }
    }

    fn readable(&mut self, key: &str, p: &str) -> Option<PathBuf> {
        let path = self.path(p);
        match std::fs::metadata(&path) {
            Ok(m) if m.is_file() => Some(path),
            Ok(_) => {
                self.err(key, Some(p), format!("{} is not a file", path.display()));
                None
            }
            Err(e) => {
                self.err(key, Some(p), format!("cannot read {}: {e}", path.display()));
                None
            }
        }
    }
}

/// Line (1-based) of the first `key:` line whose value contains `value`, else of the first `key:`.
/// The line where route `id` starts (`- id: x` or `- {id: x, …}` under `routes:`); 0 if not found.
fn route_line(text: &str, id: &str) -> usize {
    let mut in_routes = false;
    for (i, l) in text.lines().enumerate() {
        if !l.starts_with([' ', '-', '#']) && !l.is_empty() {
            in_routes = l.starts_with("routes:");
            continue;
        }
        let t = l.trim_start().trim_start_matches('-').trim_start().trim_start_matches('{').trim_start();
        if in_routes {
            if let Some(rest) = t.strip_prefix("id:") {
                let v = rest.trim_start();
                let v = v.trim_start_matches(['"', '\'']);
                if v.strip_prefix(id).is_some_and(|r| r.is_empty() || r.starts_with([',', '}', ' ', '"', '\''])) {
                    return i + 1;
                }
            }
        }
    }
    0
}

fn find_line(text: &str, key: &str, value: Option<&str>) -> usize {
    let last = key.rsplit('.').next().unwrap_or(key);
    let last = last.split('[').next().unwrap_or(last);
    let mut first = 0;
    for (i, l) in text.lines().enumerate() {
        let t = l.trim_start().trim_start_matches("- ").trim_start();
        if let Some(rest) = t.strip_prefix(last) {
            if rest.trim_start().starts_with(':') {
                if first == 0 {
                    first = i + 1;
                }
                if value.is_none_or(|v| rest.contains(v)) {
                    return i + 1;
                }
            }
        }
        if let Some(v) = value {
            if first == 0 && !v.is_empty() && l.contains(v) && t.starts_with("- ") {
                return i + 1;
            }
        }
    }
    if let Some(v) = value {
        if let Some(i) = text.lines().position(|l| !v.is_empty() && l.contains(v)) {
            return i + 1;
        }
    }
    first
}

/// Load and compile a configuration file. Every problem is reported at once.
pub fn load(path: &Path) -> Result<Snapshot, ConfigErrors> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        ConfigErrors(vec![ConfigError {
            file: path.to_path_buf(),
            line: 0,
            key: String::new(),
            msg: format!("cannot read config: {e}"),
        }])
    })?;
    load_str(path, &text)
}

/// Compile configuration text (`path` names it in errors and anchors relative paths).
pub fn load_str(path: &Path, text: &str) -> Result<Snapshot, ConfigErrors> {
    let base = path.parent().map(Path::to_path_buf).unwrap_or_default();
    let mut c = Ctx { file: path, text, base, errs: Vec::new() };
    let raw: RawConfig = match serde_yaml_ng::from_str(text) {
        Ok(r) => r,
        Err(e) => {
            let line = e.location().map_or(0, |l| l.line());
            let msg = e.to_string();
            let msg = msg.find(" at line ").map_or(msg.clone(), |p| msg[..p].to_string());
            return Err(ConfigErrors(vec![ConfigError { file: path.to_path_buf(), line, key: String::new(), msg }]));
        }
    };
    let snap = compile(&mut c, raw);
    if c.errs.is_empty() {
        if let Some(s) = snap {
            return Ok(s);
        }
    }
    if c.errs.is_empty() {
        c.errs.push(ConfigError {
            file: path.to_path_buf(),
            line: 0,
            key: String::new(),
            msg: "configuration did not compile".into(),
        });
    }
    Err(ConfigErrors(c.errs))
}

fn compile(c: &mut Ctx<'_>, raw: RawConfig) -> Option<Snapshot> {
    // server
    let s = raw.server.clone();
    if s.threads == 0 || s.threads > 256 {
        c.err("server.threads", None, format!("must be 1..=256, found {}", s.threads));
    }
    let server = ServerSettings {
        threads: s.threads,
        pid_file: s.pid_file.unwrap_or_else(|| "/tmp/dlpgate.pid".into()),
        upgrade_sock: s.upgrade_sock.unwrap_or_else(|| "/tmp/dlpgate_upgrade.sock".into()),
        grace_period_seconds: s.grace_period_seconds,
        graceful_shutdown_timeout_seconds: s.graceful_shutdown_timeout_seconds,
        work_stealing: s.work_stealing,
    };

    // listeners
    let mut listeners = Vec::new();
    if raw.listeners.is_empty() {
        c.err("listeners", None, "at least one listener is required");
    }
    for (i, l) in raw.listeners.into_iter().enumerate() {
        let Ok(addr) = l.addr.parse::<SocketAddr>() else {
            c.err("addr", Some(&l.addr), format!("invalid listen address {:?} (expected ip:port)", l.addr));
            continue;
        };
        if addr.port() == 0 {
            c.err("addr", Some(&l.addr), "a listener needs a fixed port, not 0");
        }
        let tls = match l.tls {
            None => None,
            Some(t) => {
                let cert = c.readable("cert", &t.cert);
                let key = c.readable("key", &t.key);
                let client_ca = match (&t.client_ca, t.client_auth) {
                    (Some(ca), _) => c.readable("client_ca", ca),
                    (None, ClientAuth::None) => None,
                    (None, _) => {
                        c.err("client_auth", None, "client_auth optional/required needs client_ca");
                        None
                    }
                };
                match (cert, key) {
                    (Some(cert), Some(key)) => Some(TlsSettings { cert, key, client_ca, client_auth: t.client_auth }),
                    _ => None,
                }
            }
        };
        let name = l.name.unwrap_or_else(|| format!("listener{i}"));
        if listeners.iter().any(|x: &Listener| x.name == name) {
            // certificates are looked up by listener name
            c.err("name", Some(&name), format!("listener name {name:?} is used twice"));
        }
        listeners.push(Listener { name, addr, tls, h2: l.h2 });
    }

    // admin
    let ra = raw.admin.unwrap_or(RawAdmin { addr: d_admin(), token_file: None });
    let admin_addr = ra.addr.parse::<SocketAddr>().unwrap_or_else(|_| {
        c.err("admin.addr", Some(&ra.addr), format!("invalid address {:?}", ra.addr));
        SocketAddr::from(([127, 0, 0, 1], 9090))
    });
    let token = match &ra.token_file {
        None => None,
        Some(p) => match c.readable("token_file", p).map(std::fs::read_to_string) {
            Some(Ok(t)) if t.trim().len() >= 16 => Some(t.trim().to_string()),
            Some(Ok(_)) => {
                c.err("token_file", Some(p), "admin token must be at least 16 characters");
                None
            }
            Some(Err(e)) => {
                c.err("token_file", Some(p), format!("cannot read: {e}"));
                None
            }
            None => None,
        },
    };
    let admin = AdminSettings { addr: admin_addr, token };

    // rules
    let rules = if raw.rules.dirs.is_empty() {
        crate::engine::default_rules()
    } else {
        let dirs: Vec<PathBuf> = raw.rules.dirs.iter().map(|d| c.path(d)).collect();
        RuleSet::load(&dirs)
    };
    let rules = match rules {
        Ok(r) => Some(Arc::new(r)),
        Err(e) => {
            for re in e.0 {
                c.errs.push(ConfigError {
                    file: re.file.clone(),
                    line: re.line,
                    key: re.rule.map(|r| format!("rule {r}")).unwrap_or_default(),
                    msg: re.msg,
                });
            }
            None
        }
    };
    let hash_key = key_or_random(c, "hash_key_file", raw.rules.hash_key_file.as_deref());
    let fingerprint_key = key_or_random(c, "fingerprint_key_file", raw.audit.fingerprint_key_file.as_deref());

    // identity
    let mut trusted = Vec::new();
    for p in &raw.identity.trusted_proxies {
        match Cidr::parse(p) {
            Ok(x) => trusted.push(x),
            Err(e) => c.err("trusted_proxies", Some(p), e),
        }
    }
    let identity = IdentitySettings {
        api_key_header: raw.identity.api_key_header.to_ascii_lowercase(),
        trusted_proxies: trusted,
        department_header: raw.identity.department_header.to_ascii_lowercase(),
        unknown: raw.identity.unknown,
    };

    // departments
    let mut departments: Vec<Department> = Vec::new();
    for d in raw.departments {
        if departments.iter().any(|x| x.id == d.id) {
            c.err("id", Some(&d.id), format!("duplicate department id {:?}", d.id));
            continue;
        }
        // sent to upstreams in a header and used as a metric label
        if d.id.is_empty() || !d.id.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.')) {
            c.err(
                "id",
                Some(&d.id),
                format!("department id {:?} must be ASCII letters, digits, '-', '_' or '.'", d.id),
            );
        }
        let mut keys = Vec::new();
        for k in &d.matcher.api_key_sha256 {
            let bytes: Option<Vec<u8>> = (k.len() == 64)
                .then(|| {
                    (0..32)
                        .map(|i| u8::from_str_radix(k.get(i * 2..i * 2 + 2).unwrap_or("zz"), 16).ok())
                        .collect::<Option<Vec<u8>>>()
                })
                .flatten();
            match bytes.and_then(|b| <[u8; 32]>::try_from(b).ok()) {
                Some(b) => keys.push(b),
                None => c.err(
                    "api_key_sha256",
                    Some(k),
                    "expected 64 hex digits (SHA-256 of the key; `printf %s KEY | sha256sum`)",
                ),
            }
        }
        let mut cidrs = Vec::new();
        for n in &d.matcher.cidrs {
            match Cidr::parse(n) {
                Ok(x) => cidrs.push(x),
                Err(e) => c.err("cidrs", Some(n), e),
            }
        }
        departments.push(Department {
            name: d.name.unwrap_or_else(|| d.id.clone()),
            id: d.id,
            clearance: d.clearance,
            cert_ou: d.matcher.cert_ou,
            cert_cn: d.matcher.cert_cn,
            cert_san: d.matcher.cert_san,
            api_keys: keys,
            cidrs,
        });
    }
    let unknown = match departments.iter().position(|d| d.id == "unknown") {
        Some(i) => i,
        None => {
            departments.push(Department {
                id: "unknown".into(),
                name: "unknown".into(),
                clearance: Clearance::None,
                cert_ou: vec![],
                cert_cn: vec![],
                cert_san: vec![],
                api_keys: vec![],
                cidrs: vec![],
            });
            departments.len() - 1
        }
    };

    // policies
    let route_ids: Vec<String> = raw.routes.iter().map(|r| r.id.clone()).collect();
    let categories: Vec<String> =
        rules.as_ref().map(|r| r.rules().iter().map(|x| x.category.clone()).collect()).unwrap_or_default();
    let rule_ids: Vec<String> =
        rules.as_ref().map(|r| r.rules().iter().map(|x| x.id.clone()).collect()).unwrap_or_default();
    let mut policies: Vec<Policy> = Vec::new();
    for p in raw.policies {
        if policies.iter().any(|x| x.id == p.id) {
            c.err("id", Some(&p.id), format!("duplicate policy id {:?}", p.id));
            continue;
        }
        let mut overrides = Vec::new();
        for o in p.overrides {
            for d in &o.departments {
                if !departments.iter().any(|x| &x.id == d) {
                    c.err("departments", Some(d), format!("policy {}: unknown department {d:?}", p.id));
                }
            }
            for r in &o.routes {
                if !route_ids.contains(r) {
                    c.err("routes", Some(r), format!("policy {}: unknown route {r:?}", p.id));
                }
            }
            if rules.is_some() {
                for cat in &o.categories {
                    if !categories.contains(cat) {
                        c.err("categories", Some(cat), format!("policy {}: no loaded rule has category {cat:?}", p.id));
                    }
                }
                for r in &o.rules {
                    if !rule_ids.contains(r) {
                        c.err("rules", Some(r), format!("policy {}: unknown rule {r:?}", p.id));
                    }
                }
            }
            overrides.push(Override {
                departments: o.departments,
                routes: o.routes,
                categories: o.categories,
                rules: o.rules,
                direction: o.direction,
                action: o.action,
            });
        }
        policies.push(Policy { id: p.id, overrides });
    }

    // routes
    let mut routes = Vec::new();
    if route_ids.is_empty() {
        c.err("routes", None, "at least one route is required");
    }
    for r in raw.routes {
        if routes.iter().any(|x: &Route| x.id == r.id) {
            c.err("id", Some(&r.id), format!("duplicate route id {:?}", r.id));
            continue;
        }
        let Some(policy) = policies.iter().position(|p| p.id == r.policy) else {
            c.err("policy", Some(&r.policy), format!("route {}: unknown policy {:?}", r.id, r.policy));
            continue;
        };
        if !r.path_prefix.starts_with('/') {
            c.err("path_prefix", Some(&r.path_prefix), format!("route {}: path_prefix must start with /", r.id));
        } else if !matches!(normal_path(&r.path_prefix, false), Ok(None)) {
            // requests are matched in normal form: another spelling would never match
            c.err(
                "path_prefix",
                Some(&r.path_prefix),
                format!("route {}: path_prefix must be in normal form (no escapes, dot segments or //)", r.id),
            );
        }
        let mut addrs = Vec::new();
        if r.upstream.addrs.is_empty() {
            c.err("addrs", None, format!("route {}: upstream needs at least one address", r.id));
        }
        for a in &r.upstream.addrs {
            match a.parse::<SocketAddr>() {
                Ok(x) => addrs.push(x),
                Err(_) => c.err(
                    "addrs",
                    Some(a),
                    format!("route {}: invalid upstream address {a:?} (expected ip:port)", r.id),
                ),
            }
        }
        let ca_file = if r.upstream.ca_file.is_empty() { None } else { c.readable("ca_file", &r.upstream.ca_file) };
        if r.upstream.tls && r.upstream.sni.trim().is_empty() {
            // Pingora would turn certificate verification off and every handshake would fail
            c.err_at(
                route_line(c.text, &r.id),
                "tls",
                format!(
                    "route {}: an upstream with tls: true needs sni (the name its certificate is checked against)",
                    r.id
                ),
            );
        }
        let i = r.inspect;
        if i.max_buffer == 0 || i.max_buffer > 256 << 20 {
            c.err(
                "max_buffer",
                Some(&i.max_buffer.to_string()),
                format!("route {}: max_buffer must be 1..=268435456 bytes", r.id),
            );
        }
        // every decision precomputed: [department][direction][rule] -> action
        let decisions: Vec<[Vec<Action>; 2]> = match &rules {
            Some(rs) => departments
                .iter()
                .map(|d| {
                    let p = &policies[policy];
                    let per = |dir| rs.rules().iter().map(|rule| p.decide(rule, d, &r.id, dir)).collect::<Vec<_>>();
                    [per(Direction::Request), per(Direction::Response)]
                })
                .collect(),
            None => vec![],
        };
        let may_block = decisions
            .iter()
            .map(|[req, resp]| [i.request && req.contains(&Action::Block), i.response && resp.contains(&Action::Block)])
            .collect();
        let may_act = decisions
            .iter()
            .map(|[req, resp]| {
                [
                    i.request && req.iter().any(|a| *a != Action::Allow),
                    i.response && resp.iter().any(|a| *a != Action::Allow),
                ]
            })
            .collect();
        routes.push(Route {
            id: r.id,
            hosts: r.hosts,
            path_prefix: r.path_prefix,
            policy,
            upstream: Upstream {
                addrs,
                tls: r.upstream.tls,
                sni: r.upstream.sni,
                ca_file,
                connect_timeout: Duration::from_millis(r.upstream.connect_timeout_ms.max(1)),
                read_timeout: Duration::from_millis(r.upstream.read_timeout_ms.max(1)),
                health_check_interval: Duration::from_secs(r.upstream.health_check_interval_s),
            },
            inspect: Inspect {
                request: i.request,
                response: i.response,
                max_buffer: i.max_buffer,
                on_error: i.on_error,
                on_binary: i.on_binary,
                content_types: i.content_types,
                max_decompressed: i.max_decompressed,
                max_ratio: i.max_ratio.max(1),
            },
            may_block,
            may_act,
            decisions,
        });
    }

    // quotas
    let mut quotas: Vec<Quota> = Vec::new();
    for q in raw.quotas {
        if quotas.iter().any(|x| x.id == q.id) {
            c.err("id", Some(&q.id), format!("duplicate quota id {:?}", q.id));
        }
        for d in &q.departments {
            if !departments.iter().any(|x| &x.id == d) {
                c.err("departments", Some(d), format!("quota {}: unknown department {d:?}", q.id));
            }
        }
        if rules.is_some() {
            for cat in &q.categories {
                if !categories.contains(cat) {
                    c.err("categories", Some(cat), format!("quota {}: no loaded rule has category {cat:?}", q.id));
                }
            }
        }
        if q.limit == 0 {
            c.err("limit", Some("limit: 0"), format!("quota {}: limit must be at least 1", q.id));
        }
        if !(1..=86_400).contains(&q.window_seconds) || q.window_seconds % quota_buckets(q.window_seconds) != 0 {
            c.err(
                "window_seconds",
                Some(&format!("window_seconds: {}", q.window_seconds)),
                format!("quota {}: window_seconds must be 1..=60, or a multiple of 60 up to 86400", q.id),
            );
        }
        quotas.push(Quota {
            id: q.id,
            departments: q.departments,
            categories: q.categories,
            level: q.level,
            limit: q.limit,
            window_seconds: q.window_seconds,
            block: q.action == QuotaAction::Block,
        });
    }

    // A department under a quota has its responses scanned even on routes where every decision
    // for it is `allow` (which otherwise skip the scan): the quota counts what it receives in clear.
    for route in &mut routes {
        for (d, dept) in departments.iter().enumerate() {
            if route.inspect.response && quotas.iter().any(|q| q.applies_to(&dept.id)) {
                if let Some(m) = route.may_act.get_mut(d) {
                    m[1] = true;
                }
            }
        }
    }

    // audit
    let mut sinks = Vec::new();
    for s in raw.audit.sinks {
        match s {
            RawSink::File { path } => sinks.push(Sink::File(c.path(&path))),
            RawSink::Stdout => sinks.push(Sink::Stdout),
            RawSink::Syslog { addr } => {
                if !(addr.starts_with("udp://") || addr.starts_with("tcp://") || addr.starts_with("unix://")) {
                    c.err("addr", Some(&addr), "syslog addr must be udp://host:port, tcp://host:port or unix:///path");
                }
                sinks.push(Sink::Syslog(addr));
            }
        }
    }
    if raw.audit.queue == 0 {
        c.err("queue", None, "audit queue must be at least 1");
    }
    let logging = LoggingSettings { format: raw.logging.format, level: raw.logging.level };

    let rules = rules?;
    let hash_key = hash_key?;
    let fingerprint_key = fingerprint_key?;
    if !c.errs.is_empty() {
        return None;
    }
    Some(Snapshot {
        source: c.file.to_path_buf(),
        server,
        listeners,
        admin,
        rules,
        transformer: Transformer::new(hash_key),
        fingerprint_key,
        identity,
        departments,
        unknown,
        policies,
        pools: routes.iter().map(|r| Arc::new(Pool::new(r.upstream.addrs.clone()))).collect(),
        routes,
        quotas,
        audit: AuditSettings { queue: raw.audit.queue, sinks },
        logging,
        loaded_at: std::time::SystemTime::now(),
    })
}

/// A key from a file, or a random per-process key when no file is configured.
fn key_or_random(c: &mut Ctx<'_>, key: &str, file: Option<&str>) -> Option<HashKey> {
    match file {
        Some(f) => {
            let p = c.readable(key, f)?;
            match HashKey::from_file(&p) {
                Ok(k) => Some(k),
                Err(e) => {
                    c.err(key, Some(f), e);
                    None
                }
            }
        }
        None => {
            // one key per process and purpose, so a reload keeps tokens and fingerprints stable
            type Keys = std::sync::Mutex<std::collections::HashMap<String, HashKey>>;
            static KEYS: std::sync::OnceLock<Keys> = std::sync::OnceLock::new();
            let keys = KEYS.get_or_init(Default::default);
            let mut keys = keys.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            match keys.get(key) {
                Some(k) => Some(k.clone()),
                None => match random_key() {
                    Ok(k) => {
                        keys.insert(key.to_string(), k.clone());
                        Some(k)
                    }
                    Err(e) => {
                        c.err(key, None, e);
                        None
                    }
                },
            }
        }
    }
}

/// 32 random bytes from the OS.
pub fn random_key() -> Result<HashKey, String> {
    use std::io::Read;
    let mut k = [0u8; 32];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut k))
        .map_err(|e| format!("no random key: /dev/urandom: {e}"))?;
    Ok(HashKey::new(k))
}

/// SHA-256 of an API key, as stored in `api_key_sha256`.
pub fn api_key_digest(key: &[u8]) -> [u8; 32] {
    sha2::Sha256::digest(key).into()
}

#[cfg(test)]
mod tests {
    use super::normal_path;

    #[test]
    fn paths_in_normal_form() {
        let strict = |p: &str| normal_path(p, false).map(|n| n.unwrap_or_else(|| p.to_string()));
        let loose = |p: &str| normal_path(p, true).map(|n| n.unwrap_or_else(|| p.to_string()));
        for (raw, norm) in [
            ("/api/residents", "/api/residents"),
            ("/%61pi/residents", "/api/residents"),
            ("//api//residents", "/api/residents"),
            ("/x/../api/residents", "/api/residents"),
            ("/x/%2e%2e/api/", "/api/"),
            ("/api/./residents/.", "/api/residents/"),
            ("/../../etc", "/etc"),
            ("/a%2Fb", "/a%2Fb"), // an encoded slash is data, not a separator
            ("/a%20b/%E6%9C%BA", "/a%20b/%E6%9C%BA"),
            ("/api;v=1/x", "/api;v=1/x"),
            ("*", "*"),
            ("", ""),
        ] {
            assert_eq!(strict(raw).as_deref(), Ok(norm), "{raw}");
        }
        // what lenient servers make of the same paths
        for (raw, norm) in [
            ("/public/..%2Fapi/x", "/api/x"),
            ("/public/..%5capi/x", "/api/x"),
            ("/public/..\\api/x", "/api/x"),
            ("/public/..;/api/x", "/api/x"),
            ("/public/x/..;/../api/x", "/api/x"),
            ("/public/.;/../api/x", "/api/x"),
            ("/%2Fapi/x", "/api/x"),
            ("/api;jsessionid=1/x", "/api/x"),
            ("/projects/group%2Fname", "/projects/group/name"),
        ] {
            assert_eq!(loose(raw).as_deref(), Ok(norm), "{raw}");
        }
        for raw in ["/x/%2%65%2%65/api", "/x/%%32%65", "/x/%"] {
            assert_eq!(strict(raw), Err("malformed percent-encoding in path"), "{raw}");
        }
    }
    use super::*;

    #[test]
    fn minimal_config_loads_with_defaults() {
        let text = "listeners: [{addr: \"127.0.0.1:8080\"}]\npolicies: [{id: p}]\nroutes: [{id: r, policy: p, upstream: {addrs: [\"127.0.0.1:9000\"]}}]\n";
        let s = load_str(Path::new("min.yaml"), text).expect("minimal config");
        assert_eq!(s.audit.queue, 10_000);
        assert_eq!(s.admin.addr.to_string(), "127.0.0.1:9090");
        assert_eq!(s.departments[s.unknown].id, "unknown");
        assert_eq!(s.routes[0].inspect.on_error, FailMode::Block);
    }

    #[test]
    fn department_ids_must_be_header_safe() {
        let text = "listeners: [{addr: \"127.0.0.1:8080\"}]\ndepartments:\n  - {id: 公安厅, clearance: core}\npolicies: [{id: p}]\nroutes: [{id: r, policy: p, upstream: {addrs: [\"127.0.0.1:9000\"]}}]\n";
        let e = load_str(Path::new("d.yaml"), text).expect_err("non-ASCII department id");
        assert!(e.to_string().contains("d.yaml:3: id: department id"), "{e}");
    }

    #[test]
    fn find_line_locates_keys_and_values() {
        let t = "a:\n  b: 1\nroutes:\n  - id: x\n    policy: nope\n";
        assert_eq!(find_line(t, "policy", Some("nope")), 5);
        assert_eq!(find_line(t, "b", None), 2);
    }

    #[test]
    fn content_types() {
        let i = Inspect {
            request: true,
            response: true,
            max_buffer: 1,
            on_error: FailMode::Block,
            on_binary: BinaryMode::Pass,
            content_types: vec![],
            max_decompressed: 1,
            max_ratio: 1,
        };
        assert!(i.scannable(Some("application/json; charset=utf-8")));
        assert!(i.scannable(Some("text/html")));
        assert!(i.scannable(Some("application/vnd.api+json")));
        assert!(!i.scannable(Some("image/png")));
        assert!(!i.scannable(Some("application/octet-stream")));
        assert!(i.scannable(None));
    }
}
