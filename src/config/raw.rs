//! The configuration file as serde reads it: plain data, `deny_unknown_fields` everywhere, defaults
//! here. Nothing is checked yet; [`super::compile`] turns these into the [`super::model`] types.

use serde::Deserialize;

use crate::engine::{Action, Level};
use crate::policy::{Clearance, DirectionFilter};

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawConfig {
    #[serde(default)]
    pub(crate) server: RawServer,
    #[serde(default)]
    pub(crate) listeners: Vec<RawListener>,
    #[serde(default)]
    pub(crate) admin: Option<RawAdmin>,
    #[serde(default)]
    pub(crate) rules: RawRules,
    #[serde(default)]
    pub(crate) identity: RawIdentity,
    #[serde(default)]
    pub(crate) departments: Vec<RawDepartment>,
    #[serde(default)]
    pub(crate) policies: Vec<RawPolicy>,
    #[serde(default)]
    pub(crate) routes: Vec<RawRoute>,
    #[serde(default)]
    pub(crate) quotas: Vec<RawQuota>,
    #[serde(default)]
    pub(crate) cluster: Option<RawCluster>,
    #[serde(default)]
    pub(crate) audit: RawAudit,
    #[serde(default)]
    pub(crate) logging: RawLogging,
}

/// Replicas sharing state: quota counters in Redis.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawCluster {
    pub(crate) redis: RawRedis,
    #[serde(default)]
    pub(crate) on_store_error: StoreErrorMode,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawRedis {
    /// `redis://host:port/db` or `rediss://` (TLS); no password in it: `password_file`.
    pub(crate) url: String,
    #[serde(default = "d_key_prefix")]
    pub(crate) key_prefix: String,
    /// The longest any Redis operation may take.
    #[serde(default = "d_redis_timeout")]
    pub(crate) timeout_ms: u64,
    /// How often a replica sends its counts and reads the others'.
    #[serde(default = "d_sync")]
    pub(crate) sync_ms: u64,
    #[serde(default)]
    pub(crate) username: Option<String>,
    #[serde(default)]
    pub(crate) password_file: Option<String>,
    #[serde(default)]
    pub(crate) tls: Option<RawRedisTls>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawRedisTls {
    /// CA bundle for the server's certificate (default: the system's roots).
    #[serde(default)]
    pub(crate) ca_file: Option<String>,
    /// A client certificate and key, for a Redis that requires one.
    #[serde(default)]
    pub(crate) cert: Option<String>,
    #[serde(default)]
    pub(crate) key: Option<String>,
}

fn d_key_prefix() -> String {
    "dlpgate:".into()
}
fn d_redis_timeout() -> u64 {
    50
}
fn d_sync() -> u64 {
    100
}

/// What quotas do while the shared store cannot be reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum StoreErrorMode {
    /// Count in this process alone, as without `cluster` (and say so). The default.
    #[default]
    Local,
    /// Refuse the requests of departments under a `block` quota (503).
    Block,
    /// Serve them, log and count it; no quota blocks.
    Alert,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawQuota {
    pub(crate) id: String,
    #[serde(default)]
    pub(crate) departments: Vec<String>,
    #[serde(default)]
    pub(crate) categories: Vec<String>,
    #[serde(default)]
    pub(crate) level: Option<Level>,
    pub(crate) limit: u64,
    pub(crate) window_seconds: u64,
    #[serde(default)]
    pub(crate) action: QuotaAction,
}

#[derive(Debug, Deserialize, Clone, Copy, Default, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub(crate) enum QuotaAction {
    Alert,
    #[default]
    Block,
}

#[derive(Debug, Deserialize, Clone)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawServer {
    #[serde(default = "d_threads")]
    pub(crate) threads: usize,
    #[serde(default)]
    pub(crate) pid_file: Option<String>,
    #[serde(default)]
    pub(crate) upgrade_sock: Option<String>,
    #[serde(default = "d_grace")]
    pub(crate) grace_period_seconds: u64,
    #[serde(default = "d_shutdown")]
    pub(crate) graceful_shutdown_timeout_seconds: u64,
    #[serde(default)]
    pub(crate) work_stealing: bool,
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

pub(crate) fn d_threads() -> usize {
    2
}
pub(crate) fn d_grace() -> u64 {
    30
}
pub(crate) fn d_shutdown() -> u64 {
    10
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawListener {
    #[serde(default)]
    pub(crate) name: Option<String>,
    pub(crate) addr: String,
    #[serde(default)]
    pub(crate) tls: Option<RawTls>,
    #[serde(default = "yes")]
    pub(crate) h2: bool,
    /// Seconds for a request head to arrive whole (nginx `client_header_timeout`).
    #[serde(default = "d_sixty")]
    pub(crate) client_header_timeout_s: u64,
    /// Seconds between two reads of a request body (nginx `client_body_timeout`).
    #[serde(default = "d_sixty")]
    pub(crate) client_body_timeout_s: u64,
    /// Seconds an idle keep-alive connection waits for its next request; 0 turns keep-alive off.
    #[serde(default = "d_keepalive")]
    pub(crate) keepalive_timeout_s: u64,
}

pub(crate) fn d_sixty() -> u64 {
    60
}
pub(crate) fn d_keepalive() -> u64 {
    75
}

pub(crate) fn yes() -> bool {
    true
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawTls {
    pub(crate) cert: String,
    pub(crate) key: String,
    #[serde(default)]
    pub(crate) client_ca: Option<String>,
    #[serde(default)]
    pub(crate) client_auth: ClientAuth,
    /// An SM2 certificate chain and key, for 国密 clients (RFC 8998).
    #[serde(default)]
    pub(crate) sm2_cert: Option<String>,
    #[serde(default)]
    pub(crate) sm2_key: Option<String>,
    #[serde(default)]
    pub(crate) guomi: GuomiMode,
}

/// Whether a TLS listener serves 国密 clients (RFC 8998: SM2, SM3, SM4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum GuomiMode {
    /// Ordinary TLS only. The default.
    #[default]
    Off,
    /// A client offering the SM suites gets them with the SM2 certificate; others get ECDHE/AES.
    Prefer,
    /// Only 国密 clients; every other handshake is refused.
    Only,
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
pub(crate) struct RawAdmin {
    #[serde(default = "d_admin")]
    pub(crate) addr: String,
    #[serde(default)]
    pub(crate) token_file: Option<String>,
}

pub(crate) fn d_admin() -> String {
    "127.0.0.1:9090".into()
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawRules {
    #[serde(default)]
    pub(crate) dirs: Vec<String>,
    #[serde(default)]
    pub(crate) hash_key_file: Option<String>,
    #[serde(default)]
    pub(crate) hash_algorithm: HmacAlgorithm,
}

/// The HMAC of `hash` tokens and audit fingerprints.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
pub enum HmacAlgorithm {
    #[default]
    #[serde(rename = "hmac-sha256")]
    HmacSha256,
    /// GB/T 32905 SM3, for deployments assessed against 国密 requirements.
    #[serde(rename = "hmac-sm3")]
    HmacSm3,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawIdentity {
    #[serde(default = "d_key_header")]
    pub(crate) api_key_header: String,
    #[serde(default)]
    pub(crate) trusted_proxies: Vec<String>,
    #[serde(default = "d_dept_header")]
    pub(crate) department_header: String,
    #[serde(default)]
    pub(crate) unknown: UnknownMode,
    /// A request whose API key no department holds: `allow` (treated as any caller not
    /// recognised, counted and audited) or `refuse` (401).
    #[serde(default)]
    pub(crate) unknown_api_key: UnknownMode,
}

impl Default for RawIdentity {
    fn default() -> Self {
        Self {
            api_key_header: d_key_header(),
            trusted_proxies: vec![],
            department_header: d_dept_header(),
            unknown: UnknownMode::Allow,
            unknown_api_key: UnknownMode::Allow,
        }
    }
}

pub(crate) fn d_key_header() -> String {
    "x-api-key".into()
}
pub(crate) fn d_dept_header() -> String {
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
pub(crate) struct RawDepartment {
    pub(crate) id: String,
    #[serde(default)]
    pub(crate) name: Option<String>,
    pub(crate) clearance: Clearance,
    #[serde(default, rename = "match")]
    pub(crate) matcher: RawMatch,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawMatch {
    #[serde(default)]
    pub(crate) cert_ou: Vec<String>,
    #[serde(default)]
    pub(crate) cert_cn: Vec<String>,
    #[serde(default)]
    pub(crate) cert_san: Vec<String>,
    #[serde(default)]
    pub(crate) api_key_sha256: Vec<String>,
    #[serde(default)]
    pub(crate) cidrs: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawPolicy {
    pub(crate) id: String,
    #[serde(default)]
    pub(crate) overrides: Vec<RawOverride>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawOverride {
    #[serde(default)]
    pub(crate) departments: Vec<String>,
    #[serde(default)]
    pub(crate) routes: Vec<String>,
    #[serde(default)]
    pub(crate) categories: Vec<String>,
    #[serde(default)]
    pub(crate) rules: Vec<String>,
    #[serde(default)]
    pub(crate) direction: DirectionFilter,
    pub(crate) action: Action,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawRoute {
    pub(crate) id: String,
    #[serde(default)]
    pub(crate) hosts: Vec<String>,
    #[serde(default = "d_prefix")]
    pub(crate) path_prefix: String,
    pub(crate) policy: String,
    pub(crate) upstream: RawUpstream,
    #[serde(default)]
    pub(crate) inspect: RawInspect,
}

pub(crate) fn d_prefix() -> String {
    "/".into()
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawUpstream {
    pub(crate) addrs: Vec<String>,
    #[serde(default)]
    pub(crate) tls: bool,
    #[serde(default)]
    pub(crate) sni: String,
    #[serde(default)]
    pub(crate) ca_file: String,
    #[serde(default = "d_connect")]
    pub(crate) connect_timeout_ms: u64,
    #[serde(default = "d_read")]
    pub(crate) read_timeout_ms: u64,
    #[serde(default = "d_hc")]
    pub(crate) health_check_interval_s: u64,
    #[serde(default)]
    pub(crate) receive_buffer: usize,
}

pub(crate) fn d_connect() -> u64 {
    2000
}
pub(crate) fn d_read() -> u64 {
    30000
}
pub(crate) fn d_hc() -> u64 {
    5
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawInspect {
    #[serde(default = "yes")]
    pub(crate) request: bool,
    #[serde(default = "yes")]
    pub(crate) response: bool,
    #[serde(default = "d_max_buffer")]
    pub(crate) max_buffer: usize,
    #[serde(default)]
    pub(crate) on_error: FailMode,
    #[serde(default)]
    pub(crate) on_binary: BinaryMode,
    #[serde(default)]
    pub(crate) content_types: Vec<String>,
    #[serde(default = "d_max_decompressed")]
    pub(crate) max_decompressed: usize,
    #[serde(default = "d_ratio")]
    pub(crate) max_ratio: usize,
    #[serde(default = "d_max_document")]
    pub(crate) max_document: usize,
    #[serde(default)]
    pub(crate) on_unmaskable: UnmaskableMode,
    #[serde(default)]
    pub(crate) archive: RawArchive,
    #[serde(default)]
    pub(crate) request_coding: RequestCoding,
}

/// How a compressed request body (gzip, deflate, br) goes on once it was decoded and scanned.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum RequestCoding {
    /// Decoded, without `Content-Encoding` (every server takes identity). The default.
    #[default]
    Identity,
    /// Encoded again with the client's coding.
    Keep,
}

/// Limits on archives inside a document (zip bombs).
#[derive(Debug, Deserialize, Clone, Copy)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawArchive {
    #[serde(default = "d_depth")]
    pub(crate) max_depth: usize,
    #[serde(default = "d_entries")]
    pub(crate) max_entries: usize,
    #[serde(default = "d_inflated")]
    pub(crate) max_inflated: u64,
}

impl Default for RawArchive {
    fn default() -> Self {
        Self { max_depth: d_depth(), max_entries: d_entries(), max_inflated: d_inflated() }
    }
}

fn d_max_document() -> usize {
    64 << 20
}
fn d_depth() -> usize {
    3
}
fn d_entries() -> usize {
    10_000
}
fn d_inflated() -> u64 {
    512 << 20
}

/// What to do with a document whose values cannot be masked in place (legacy `.xls`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum UnmaskableMode {
    /// Refuse it (403) when a finding's action would rewrite it. The default.
    #[default]
    Block,
    /// Deliver it as it is and record an alert.
    Alert,
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
            max_document: d_max_document(),
            on_unmaskable: UnmaskableMode::Block,
            archive: RawArchive::default(),
            request_coding: RequestCoding::Identity,
        }
    }
}

pub(crate) fn d_max_buffer() -> usize {
    1 << 20
}
pub(crate) fn d_max_decompressed() -> usize {
    64 << 20
}
pub(crate) fn d_ratio() -> usize {
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
pub(crate) struct RawAudit {
    #[serde(default)]
    pub(crate) fingerprint_key_file: Option<String>,
    #[serde(default)]
    pub(crate) fingerprint_algorithm: HmacAlgorithm,
    #[serde(default = "d_queue")]
    pub(crate) queue: usize,
    #[serde(default)]
    pub(crate) sinks: Vec<RawSink>,
}

impl Default for RawAudit {
    fn default() -> Self {
        Self {
            fingerprint_key_file: None,
            fingerprint_algorithm: HmacAlgorithm::default(),
            queue: d_queue(),
            sinks: Vec::new(),
        }
    }
}

pub(crate) fn d_queue() -> usize {
    10_000
}

#[derive(Debug, Deserialize, Clone)]
#[serde(deny_unknown_fields, tag = "type", rename_all = "lowercase")]
pub(crate) enum RawSink {
    File { path: String },
    Stdout,
    Syslog { addr: String },
}

#[derive(Debug, Deserialize, Clone)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawLogging {
    #[serde(default)]
    pub(crate) format: LogFormat,
    #[serde(default = "d_level")]
    pub(crate) level: String,
}

impl Default for RawLogging {
    fn default() -> Self {
        Self { format: LogFormat::Text, level: d_level() }
    }
}

pub(crate) fn d_level() -> String {
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
