//! Per-request state ([`Ctx`]) and what every path does with the client's body.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use pingora::prelude::*;
use pingora::proxy::Session;

use super::inspect::{BodyInspector, FindingLog, Uninspectable};
use super::respond::Verdict;
use super::state::Active;
use crate::config::RouteId;
use crate::policy::DeptId;
use crate::policy::Direction;
use crate::telemetry::AuditEvent;

/// Request bodies up to this size are read and decided before the upstream is contacted
/// (Pingora's retry buffer replays them; it holds 64 KiB).
pub const EARLY_BODY_LIMIT: usize = 64 * 1024;

/// Responses with a Content-Length up to this size are held and scanned once, at their end
/// (one scan and one write instead of a streaming carry).
pub const WHOLE_BODY_LIMIT: usize = 64 * 1024;

/// How the request body is handled.
#[derive(Debug, Default)]
pub enum ReqBody {
    /// Not inspected.
    #[default]
    Pass,
    /// Already read and decided; this is what the upstream gets.
    Decided(Option<Bytes>),
    /// Held until the end (a block is possible), up to `max_buffer`.
    Hold(Vec<u8>),
    /// Streamed through the scanner (rewrites only, no block possible).
    Stream(Box<BodyInspector>),
}

/// Per-request state.
#[derive(Debug, Default)]
pub struct Ctx {
    pub snap: Option<Arc<Active>>,
    /// Upstream addresses that refused a connection for this request (not tried again for it).
    pub connect_failed: Vec<SocketAddr>,
    /// The client's `X-Forwarded-For` lines, joined (read once, for the client address and for
    /// the upstream's header).
    pub forwarded_for: Option<String>,
    /// The gateway answered the client's `Expect: 100-continue` itself.
    pub continued: bool,
    pub route: Option<RouteId>,
    pub dept: DeptId,
    pub incident: Incident,
    pub start: Option<Instant>,
    pub client_ip: Option<IpAddr>,
    pub peer_ip: Option<IpAddr>,
    pub listener: String,
    pub method: String,
    pub path: String,
    pub log: FindingLog,
    pub verdict: Option<Verdict>,
    pub req_body: ReqBody,
    pub new_query: Option<String>,
    /// Header fields with a rewritten value: every value of the field, in order.
    pub new_headers: Vec<(http::HeaderName, Vec<http::HeaderValue>)>,
    pub resp: Option<Box<BodyInspector>>,
    pub status: u16,
    /// Why the gateway stepped in without a rule's `block` (an uninspectable body, a quota, a
    /// response aborted mid-stream).
    pub reason: Option<Uninspectable>,
    pub block_dir: Option<Direction>,
    /// Why the caller was not identified (`unknown_api_key`, `unrecognised`), when it was not.
    pub identity_failure: Option<&'static str>,
    /// The request body was decoded (gzip, deflate, br) and goes on without `Content-Encoding`.
    pub req_decoded: bool,
}

impl Ctx {
    pub fn snap(&self) -> Result<Arc<Active>> {
        self.snap.clone().ok_or_else(|| Error::explain(InternalError, "no snapshot"))
    }

    /// The path as audit events show it: every value the rules find in it masked (a REST path
    /// may carry an ID number; it goes upstream as it is, but never into the audit trail).
    pub fn audit_path(&self) -> String {
        self.masked(&self.path)
    }

    /// `text` with every value the rules find in it masked (for paths and file names in audit
    /// events and logs). `_` is read as the separator it is in names (`导出_110105…X.xlsx`),
    /// where the engine would otherwise take it for part of a word.
    pub fn masked(&self, text: &str) -> String {
        match self.snap.as_ref() {
            Some(snap) => super::inspect::masked_name(snap, text),
            None => String::new(),
        }
    }

    /// An audit event about this request: who, where, what, and the status sent. The caller
    /// fills in direction, action, reason and findings.
    pub fn audit_event(&self, event: &'static str, route: &str, department: &str, status: u16) -> AuditEvent {
        let incident = self.incident.to_string();
        AuditEvent {
            ts: crate::telemetry::rfc3339(std::time::SystemTime::now()),
            event,
            request_id: incident.clone(),
            incident,
            listener: self.listener.clone(),
            route: route.to_string(),
            department: department.to_string(),
            client_ip: self.client_ip.map(|i| i.to_string()).unwrap_or_default(),
            method: self.method.clone(),
            path: self.audit_path(),
            direction: Direction::Response.as_str(),
            action: String::new(),
            status,
            reason: None,
            document: self.log.document.map(crate::documents::Kind::as_str),
            file: self.log.file.as_deref().map(|f| self.masked(f)),
            findings: Vec::new(),
        }
    }
}

/// A request's incident id (`<unix seconds>-<pid>-<sequence>`, hex): taken for every request, and
/// written out only for those an audit event or a refusal names.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Incident {
    secs: u64,
    seq: u64,
}

impl Incident {
    pub fn new() -> Incident {
        use std::sync::atomic::{AtomicU64, Ordering};
        static SEQ: AtomicU64 = AtomicU64::new(0);
        let t = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
        Incident { secs: t.as_secs(), seq: SEQ.fetch_add(1, Ordering::Relaxed) }
    }
}

impl std::fmt::Display for Incident {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        static PID: std::sync::OnceLock<u32> = std::sync::OnceLock::new();
        write!(f, "{:x}-{:x}-{:x}", self.secs, PID.get_or_init(std::process::id), self.seq)
    }
}

/// The next chunk of the client's request body. A failure here (a malformed or truncated body, a
/// client gone away) is the client's, so it is answered as one (400) rather than as the gateway's.
/// A client that waits for `100 Continue` before sending its body (curl does, for uploads) is
/// told to go on when the gateway itself reads the body before contacting the upstream; the
/// upstream then gets no `Expect` (see [`Gateway::prepare_upstream`]).
pub(crate) async fn continue_if_expected(session: &mut Session, ctx: &mut Ctx) -> Result<()> {
    // HTTP/1.1 only: a 1.0 client does not know it (RFC 9110 §10.1.1), and Pingora drops 1xx
    // heads on HTTP/2, where clients go on after their own short wait
    let req = session.req_header();
    let expects = req.version == http::Version::HTTP_11
        && req
            .headers
            .get(http::header::EXPECT)
            .is_some_and(|v| v.as_bytes().trim_ascii().eq_ignore_ascii_case(b"100-continue"));
    if expects && !ctx.continued && session.response_written().is_none() {
        ctx.continued = true;
        session.as_downstream_mut().write_continue_response().await.map_err(|e| e.into_down())?;
    }
    Ok(())
}

pub(crate) async fn read_client_body(session: &mut Session) -> Result<Option<bytes::Bytes>> {
    session.read_request_body().await.map_err(|e| e.into_down())
}
