//! Per-request inspection, plain functions and types testable without a server:
//! - `findings`: the finding log (metrics and audit material);
//! - `outcome`: [`Uninspectable`], why a body was not inspected;
//! - `decode`: bounded `Content-Encoding` decoders;
//! - `body`: [`BodyInspector`] (streaming, documents) and [`scan_document`];
//! - `multipart`: multipart bodies and `Content-Disposition`;
//! - here: the scope of a scan, whole-buffer and form scans, [`scan_body`].

mod body;
mod decode;
mod findings;
pub mod multipart;
mod outcome;

use std::time::Instant;

pub use body::{BodyInspector, BodyRules, ScannedDocument, scan_document};
pub use decode::{Coding, DecodeError, DecodeLimits, Decoder, Sink, coding, encode};
pub use findings::{FindingLog, LogEntry, Returned};
pub use multipart::{disposition_filename, multipart_boundary, scan_multipart};
pub use outcome::Uninspectable;

use crate::charset::{self, Declared};
use crate::config::RouteId;
use crate::config::Snapshot;
use crate::documents;
use crate::engine::Action;
use crate::engine::Place;
use crate::engine::RuleId;
use crate::engine::stream::StreamFinding;
use crate::policy::{DeptId, Direction};
use crate::telemetry::Metrics;

/// What decides a finding's action: which department's body is scanned, on which route, in which
/// direction.
#[derive(Debug, Clone, Copy)]
pub struct Scope<'a> {
    pub snap: &'a Snapshot,
    pub route: RouteId,
    pub dept: DeptId,
    pub dir: Direction,
}

impl Scope<'_> {
    /// The action for a finding of `rule`.
    pub fn decide(&self, rule: RuleId) -> Action {
        self.snap.routes[self.route].decision(self.dept, self.dir, rule)
    }
}

/// Scan a complete buffer; returns the transformed bytes and whether a finding was blocked.
pub fn scan_buffer(scope: Scope<'_>, log: &mut FindingLog, input: &[u8]) -> (Vec<u8>, bool) {
    scan_buffer_at(scope, log, input, &Place::start())
}

/// [`scan_buffer`] for a text that stands at `place` (a multipart form field's value).
pub fn scan_buffer_at(scope: Scope<'_>, log: &mut FindingLog, input: &[u8], place: &Place<'_>) -> (Vec<u8>, bool) {
    scan_with(scope, log, input, place, false)
}

/// Scan form-urlencoded data (a query string, a form body): `+` is read as the space it stands
/// for, so `138+0013+8000`, what a browser sends for `138 0013 8000`, is found; the rewrite keeps
/// every other byte as it came ([`crate::engine::stream::scan_form_at`], as `dlpgate scan` reads a
/// form file).
pub fn scan_form(scope: Scope<'_>, log: &mut FindingLog, input: &[u8]) -> (Vec<u8>, bool) {
    scan_form_at(scope, log, input, &Place::start())
}

/// [`scan_form`] for form data that stands at `place` (a multipart form field's value).
pub fn scan_form_at(scope: Scope<'_>, log: &mut FindingLog, input: &[u8], place: &Place<'_>) -> (Vec<u8>, bool) {
    scan_with(scope, log, input, place, true)
}

/// A complete text (`form`: form-urlencoded data) scanned whole with the scope's decisions.
fn scan_with(scope: Scope<'_>, log: &mut FindingLog, input: &[u8], place: &Place<'_>, form: bool) -> (Vec<u8>, bool) {
    let mut out = Vec::with_capacity(input.len());
    let mut blocked = false;
    let mut decide_fn = deciding(scope, log, &mut blocked);
    let (rules, tr) = (&scope.snap.rules, &scope.snap.transformer);
    if form {
        crate::engine::stream::scan_form_at(rules, tr, input, place, false, &mut out, &mut decide_fn);
    } else {
        crate::engine::stream::scan_whole_at(rules, tr, input, input, place, false, &mut out, &mut decide_fn);
    }
    drop(decide_fn);
    (out, blocked)
}

fn is_form(content_type: &str) -> bool {
    content_type.trim_start().to_ascii_lowercase().starts_with("application/x-www-form-urlencoded")
}

/// The per-finding callback of both scan paths: the policy's action, recorded in `log`; a
/// `block` sets `blocked` and the value is redacted in the (discarded) output.
fn deciding<'a>(
    scope: Scope<'a>,
    log: &'a mut FindingLog,
    blocked: &'a mut bool,
) -> impl FnMut(&StreamFinding, &[u8]) -> Action + 'a {
    move |f, v| {
        let a = scope.decide(crate::engine::RuleId(f.rule));
        log.record(scope.snap, scope.dir, RuleId(f.rule), a, v);
        if a == Action::Block {
            *blocked = true;
            Action::Redact
        } else {
            a
        }
    }
}

/// `text` (a path, a file or sheet name, a location) with every value the rules find in it masked,
/// for audit events and logs, read as names are ([`documents::name_view`]).
pub fn masked_name(snap: &Snapshot, text: &str) -> String {
    let scan = snap.rules.scan(&documents::name_view(text));
    if scan.findings.is_empty() {
        return text.to_string();
    }
    let mut out = Vec::with_capacity(text.len());
    snap.transformer.apply(&snap.rules, text.as_bytes(), &scan, |_| Action::Mask, &mut out);
    String::from_utf8_lossy(&out).into_owned()
}

/// Count `bytes` scanned since `t0` in `dlpgate_inspected_bytes_total` and
/// `dlpgate_scan_duration_seconds`: once per body (or per request head), not per piece.
pub fn observe(dir: Direction, bytes: usize, t0: Instant) {
    let m = Metrics::get();
    m.inspected_bytes.with_label_values(&[dir.as_str()]).inc_by(bytes as u64);
    m.scan_duration.with_label_values(&[dir.as_str()]).observe(t0.elapsed().as_secs_f64());
}

/// A complete body as scanned.
#[derive(Debug)]
pub struct ScannedBody {
    /// What the receiver gets (rewritten where findings were masked).
    pub out: Vec<u8>,
    /// A `block` finding (or a document that cannot be masked, where the route refuses those).
    pub blocked: bool,
    /// Parts left as they were because they are neither text nor documents.
    pub binary_parts: usize,
}

/// Scan a complete request or response body: a document (told by its bytes) inside, a multipart
/// body part by part, a form with `+` read as space, anything else as text.
pub fn scan_body(
    scope: Scope<'_>,
    log: &mut FindingLog,
    body: &[u8],
    content_type: Option<&str>,
    rules: &BodyRules,
) -> Result<ScannedBody, Uninspectable> {
    let t0 = Instant::now();
    let result = if documents::sniff(body).is_some() {
        scan_document(scope, log, body, rules).map(|d| ScannedBody {
            out: d.bytes.unwrap_or_else(|| body.to_vec()),
            blocked: d.blocked,
            binary_parts: 0,
        })
    } else {
        match multipart_boundary(content_type) {
            Some(b) => scan_multipart(scope, log, body, &b, rules),
            None => {
                let (out, blocked) = if content_type.is_some_and(is_form) {
                    scan_form(scope, log, body)
                } else {
                    let declared = Declared::of_content_type(content_type);
                    match charset::decode_whole(declared, body).map_err(|_| Uninspectable::Undecodable)? {
                        None => scan_buffer(scope, log, body),
                        Some((c, text)) => {
                            // scanned as UTF-8, and sent in its own charset (as it came when unchanged)
                            let (out, blocked) = scan_buffer(scope, log, &text);
                            (if out == text { body.to_vec() } else { charset::encode(c, &out) }, blocked)
                        }
                    }
                };
                Ok(ScannedBody { out, blocked, binary_parts: 0 })
            }
        }
    };
    observe(scope.dir, body.len(), t0);
    result
}
