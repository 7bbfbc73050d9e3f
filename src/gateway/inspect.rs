//! Per-request inspection: the finding log (metrics + audit material), policy decisions, streaming
//! body inspection and bounded decompression. Plain functions and types, testable without a server.

use std::io::Write;
use std::time::Instant;

use crate::config::Snapshot;
use crate::documents;
use crate::engine::stream::StreamFinding;
use crate::engine::transform::mask;
use crate::engine::{Action, StreamScanner};
use crate::policy::Direction;
use crate::telemetry::{AuditFinding, Metrics};

/// Findings of one request, aggregated per (direction, rule, action).
#[derive(Debug, Default)]
pub struct FindingLog {
    pub entries: Vec<LogEntry>,
    /// Counts only, no sample or fingerprint: nothing will read them (no audit sink).
    pub brief: bool,
    /// Per rule, the values a response delivered in clear (`allow`, `alert`), for the quotas.
    pub returned: Vec<(usize, u64)>,
    /// A body was a document of this kind (the last one inspected).
    pub document: Option<documents::Kind>,
    /// The file name a `Content-Disposition` (of the message or of a multipart part holding a
    /// document) gave it; raw here, masked when audited.
    pub file: Option<String>,
}

#[derive(Debug)]
pub struct LogEntry {
    pub dir: Direction,
    pub rule: usize,
    pub action: Action,
    pub count: u64,
    pub sample: String,
    pub fingerprints: Vec<String>,
    /// Where in a document (at most [`MAX_FINGERPRINTS`]).
    pub locations: Vec<String>,
}

const MAX_FINGERPRINTS: usize = 16;

impl FindingLog {
    /// Record one finding: count it, and (unless `brief`) keep a masked sample and a keyed
    /// fingerprint for the audit event (never the value). `allow` findings are not recorded.
    pub fn record(&mut self, snap: &Snapshot, dir: Direction, rule: usize, action: Action, value: &[u8]) {
        self.record_at(snap, dir, rule, action, value, None);
    }

    /// [`FindingLog::record`], with where in a document the value was (named only while the
    /// entry keeps locations: a workbook may hold a million values).
    pub fn record_at(
        &mut self,
        snap: &Snapshot,
        dir: Direction,
        rule: usize,
        action: Action,
        value: &[u8],
        location: Option<&dyn Fn() -> String>,
    ) {
        if dir == Direction::Response && matches!(action, Action::Allow | Action::Alert) {
            match self.returned.iter_mut().find(|r| r.0 == rule) {
                Some(r) => r.1 += 1,
                None => self.returned.push((rule, 1)),
            }
        }
        if action == Action::Allow {
            return;
        }
        if let Some(e) = self.entries.iter_mut().find(|e| e.dir == dir && e.rule == rule && e.action == action) {
            e.count += 1;
            if let Some(l) = location.filter(|_| !self.brief && e.locations.len() < MAX_FINGERPRINTS).map(|f| f()) {
                if !e.locations.contains(&l) {
                    e.locations.push(l);
                }
            }
            if !self.brief && e.fingerprints.len() < MAX_FINGERPRINTS {
                let fp = snap.fingerprint_key.fingerprint(value);
                if !e.fingerprints.contains(&fp) {
                    e.fingerprints.push(fp);
                }
            }
            return;
        }
        let (sample, fingerprints) = if self.brief {
            (String::new(), Vec::new())
        } else {
            let mut s = Vec::new();
            mask(value, &snap.rules.rules()[rule].mask, &mut s);
            (String::from_utf8_lossy(&s).into_owned(), vec![snap.fingerprint_key.fingerprint(value)])
        };
        let locations = location.filter(|_| !self.brief).map(|f| f()).into_iter().collect();
        self.entries.push(LogEntry { dir, rule, action, count: 1, sample, fingerprints, locations });
    }

    /// Count every recorded finding in `dlpgate_findings_total` (once per request).
    pub fn count(&self, snap: &Snapshot, dept: usize) {
        let m = Metrics::get();
        let dept = snap.departments.get(dept).map(|d| d.id.as_str()).unwrap_or("unknown");
        for e in &self.entries {
            let r = &snap.rules.rules()[e.rule];
            m.findings
                .with_label_values(&[&r.id, r.level.as_str(), e.dir.as_str(), dept, e.action.as_str()])
                .inc_by(e.count);
        }
    }

    /// The strongest action recorded (allow when nothing was).
    pub fn strongest(&self) -> Action {
        self.entries.iter().map(|e| e.action).max().unwrap_or(Action::Allow)
    }

    /// Ids of rules whose findings were blocked.
    pub fn blocked_rules(&self, snap: &Snapshot) -> Vec<String> {
        let mut v: Vec<String> = self
            .entries
            .iter()
            .filter(|e| e.action == Action::Block)
            .map(|e| snap.rules.rules()[e.rule].id.clone())
            .collect();
        v.dedup();
        v
    }

    pub fn audit_findings(&self, snap: &Snapshot) -> Vec<AuditFinding> {
        self.entries
            .iter()
            .map(|e| {
                let r = &snap.rules.rules()[e.rule];
                AuditFinding {
                    rule: r.id.clone(),
                    category: r.category.clone(),
                    level: r.level.as_str().into(),
                    action: e.action.as_str().into(),
                    count: e.count,
                    sample: e.sample.clone(),
                    fingerprints: e.fingerprints.clone(),
                    locations: e.locations.clone(),
                }
            })
            .collect()
    }
}

/// What decides a finding's action: which department's body is scanned, on which route, in which
/// direction.
#[derive(Debug, Clone, Copy)]
pub struct Scope<'a> {
    pub snap: &'a Snapshot,
    pub route: usize,
    pub dept: usize,
    pub dir: Direction,
}

impl Scope<'_> {
    /// The action for a finding of `rule`.
    pub fn decide(&self, rule: usize) -> Action {
        self.snap.routes[self.route].decision(self.dept, self.dir, rule)
    }
}

/// Scan a complete buffer; returns the transformed bytes and whether a finding was blocked.
pub fn scan_buffer(scope: Scope<'_>, log: &mut FindingLog, input: &[u8]) -> (Vec<u8>, bool) {
    let mut out = Vec::with_capacity(input.len());
    let mut blocked = false;
    let mut decide_fn = deciding(scope, log, &mut blocked);
    crate::engine::stream::scan_whole(&scope.snap.rules, &scope.snap.transformer, input, &mut out, &mut decide_fn);
    drop(decide_fn);
    (out, blocked)
}

/// Scan form-urlencoded data (a query string, a form body): `+` is read as the space it stands
/// for, so `138+0013+8000`, what a browser sends for `138 0013 8000`, is found; the rewrite keeps
/// every other byte as it came.
pub fn scan_form(scope: Scope<'_>, log: &mut FindingLog, input: &[u8]) -> (Vec<u8>, bool) {
    if !input.contains(&b'+') {
        return scan_buffer(scope, log, input);
    }
    let view: Vec<u8> = input.iter().map(|&b| if b == b'+' { b' ' } else { b }).collect();
    let mut out = Vec::with_capacity(input.len());
    let mut blocked = false;
    let mut decide_fn = deciding(scope, log, &mut blocked);
    crate::engine::stream::scan_whole_as(
        &scope.snap.rules,
        &scope.snap.transformer,
        &view,
        input,
        &mut out,
        &mut decide_fn,
    );
    drop(decide_fn);
    if !input.contains(&b' ') {
        // a rewritten value kept its separators as spaces: in form data they are `+` again
        for b in out.iter_mut().filter(|b| **b == b' ') {
            *b = b'+';
        }
    }
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
        let a = scope.decide(f.rule);
        log.record(scope.snap, scope.dir, f.rule, a, v);
        if a == Action::Block {
            *blocked = true;
            Action::Redact
        } else {
            a
        }
    }
}

/// Count `bytes` scanned since `t0` in `dlpgate_inspected_bytes_total` and
/// `dlpgate_scan_duration_seconds`: once per body (or per request head), not per piece.
pub fn observe(dir: Direction, bytes: usize, t0: Instant) {
    let m = Metrics::get();
    m.inspected_bytes.with_label_values(&[dir.as_str()]).inc_by(bytes as u64);
    m.scan_duration.with_label_values(&[dir.as_str()]).observe(t0.elapsed().as_secs_f64());
}

/// Why a body was not inspected, or why the gateway stepped in without a rule's `block`: one
/// closed set, so that the client's status, the metric label and the audit reason cannot drift
/// apart when a message is reworded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Uninspectable {
    /// The body is longer than the route's `max_buffer`.
    Oversize,
    /// Decoding would exceed `max_decompressed`.
    DecompressedSize,
    /// Decoding would exceed `max_ratio`.
    DecompressionRatio,
    /// The body does not decode.
    Undecodable,
    /// A `Content-Encoding` the gateway cannot decode.
    UnsupportedCoding,
    /// A compressed request body.
    EncodedRequest,
    /// A protocol upgrade (WebSocket …) on an inspected route.
    Upgrade,
    /// A content type that is not text (on a route that blocks them).
    Binary,
    /// A document longer than the route's `max_document`.
    DocumentSize,
    /// An archive past its limits (entries, nesting, inflated size, ratio, overlaps).
    ArchiveLimit,
    /// An encrypted archive entry.
    Encrypted,
    /// A document that does not parse.
    CorruptDocument,
    /// A document whose values cannot be masked in place (legacy `.xls`), refused per
    /// `on_unmaskable`.
    Unmaskable,
    /// A `block` finding after the response head was sent: the stream was aborted.
    BlockedMidStream,
    /// A quota of the department is exhausted.
    Quota,
    /// 64 KiB without a break: a value across the forced cut may have been missed.
    ForcedCut,
}

impl Uninspectable {
    /// What the client and the audit event are told.
    pub fn message(self) -> &'static str {
        match self {
            Uninspectable::Oversize => "body exceeds max_buffer",
            Uninspectable::DecompressedSize => "decompressed body exceeds max_decompressed",
            Uninspectable::DecompressionRatio => "compression ratio exceeds max_ratio",
            Uninspectable::Undecodable => "undecodable body",
            Uninspectable::UnsupportedCoding => "undecodable content-encoding",
            Uninspectable::EncodedRequest => "encoded request body",
            Uninspectable::Upgrade => "protocol upgrade not inspectable",
            Uninspectable::Binary => "content type not inspectable",
            Uninspectable::DocumentSize => "document exceeds max_document",
            Uninspectable::ArchiveLimit => "archive exceeds its limits",
            Uninspectable::Encrypted => "encrypted archive entry",
            Uninspectable::CorruptDocument => "damaged document",
            Uninspectable::Unmaskable => "document values cannot be masked in place",
            Uninspectable::BlockedMidStream => "block finding after headers were sent",
            Uninspectable::Quota => "quota exceeded",
            Uninspectable::ForcedCut => "forced cut",
        }
    }

    /// The `reason` label of `dlpgate_uninspected_total` and `dlpgate_blocked_total` (a closed set).
    pub fn label(self) -> &'static str {
        match self {
            Uninspectable::Oversize | Uninspectable::DocumentSize => "oversize",
            Uninspectable::DecompressedSize | Uninspectable::DecompressionRatio | Uninspectable::ArchiveLimit => {
                "decompression_limit"
            }
            Uninspectable::Undecodable
            | Uninspectable::UnsupportedCoding
            | Uninspectable::EncodedRequest
            | Uninspectable::CorruptDocument => "undecodable",
            Uninspectable::Encrypted => "encrypted",
            Uninspectable::Unmaskable => "unmaskable",
            Uninspectable::Binary => "binary_content_type",
            Uninspectable::BlockedMidStream => "blocked_mid_stream",
            Uninspectable::Upgrade => "protocol_upgrade",
            Uninspectable::Quota => "quota",
            Uninspectable::ForcedCut => "forced_cut",
        }
    }

    /// The status a refused message gets: a response the gateway cannot vouch for is the
    /// upstream's failure (502); a request is refused for what it is.
    pub fn status(self, dir: Direction) -> u16 {
        match (self, dir) {
            (Uninspectable::Unmaskable, _) => 403,
            (_, Direction::Response) => 502,
            (Uninspectable::Upgrade, _) => 403,
            (Uninspectable::Oversize | Uninspectable::DocumentSize, _) => 413,
            _ => 415,
        }
    }

    fn of_document(e: &crate::documents::DocError) -> Uninspectable {
        use crate::documents::DocError;
        match e {
            DocError::Limit(_) => Uninspectable::ArchiveLimit,
            DocError::Encrypted => Uninspectable::Encrypted,
            DocError::Corrupt(_) => Uninspectable::CorruptDocument,
            DocError::Unreadable(_) => Uninspectable::Binary,
        }
    }
}

/// Where a decoder writes: refuses output past `room` bytes, so a decompression bomb is stopped
/// while it expands, not after a whole chunk has been inflated into memory.
#[derive(Debug, Default)]
pub struct Sink {
    buf: Vec<u8>,
    room: usize,
    full: bool,
}

impl std::io::Write for Sink {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        if b.len() > self.room {
            self.full = true;
            return Err(std::io::Error::other("decompression limit"));
        }
        self.room -= b.len();
        self.buf.extend_from_slice(b);
        Ok(b.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// A bounded streaming decoder for `Content-Encoding`.
pub enum Decoder {
    Gzip(flate2::write::GzDecoder<Sink>),
    Deflate(flate2::write::ZlibDecoder<Sink>),
    Brotli(Box<brotli::DecompressorWriter<Sink>>),
}

impl std::fmt::Debug for Decoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Decoder::Gzip(_) => "Decoder::Gzip",
            Decoder::Deflate(_) => "Decoder::Deflate",
            Decoder::Brotli(_) => "Decoder::Brotli",
        })
    }
}

/// Why a decoder stopped.
#[derive(Debug, PartialEq, Eq)]
pub enum DecodeError {
    /// the output would exceed the room it was given
    Limit,
    Corrupt,
}

/// What to do with a `Content-Encoding` value.
#[derive(Debug, PartialEq, Eq)]
pub enum Coding {
    Identity,
    Decode(&'static str),
    /// zstd, stacked codings, anything unknown
    Unsupported,
}

/// How a message's body is coded, from every `Content-Encoding` field line and every coding
/// listed in them (a second line must not hide behind a first `identity`).
pub fn coding(headers: &http::HeaderMap) -> Coding {
    let mut codings = headers
        .get_all(http::header::CONTENT_ENCODING)
        .iter()
        .flat_map(|v| v.as_bytes().split(|&b| b == b','))
        .map(<[u8]>::trim_ascii)
        .filter(|c| !c.is_empty() && !c.eq_ignore_ascii_case(b"identity"));
    let Some(first) = codings.next() else { return Coding::Identity };
    if codings.next().is_some() {
        return Coding::Unsupported;
    }
    match first.to_ascii_lowercase().as_slice() {
        b"gzip" | b"x-gzip" => Coding::Decode("gzip"),
        b"deflate" => Coding::Decode("deflate"),
        b"br" => Coding::Decode("br"),
        _ => Coding::Unsupported,
    }
}

impl Decoder {
    pub fn new(kind: &str) -> Option<Decoder> {
        match kind {
            "gzip" => Some(Decoder::Gzip(flate2::write::GzDecoder::new(Sink::default()))),
            "deflate" => Some(Decoder::Deflate(flate2::write::ZlibDecoder::new(Sink::default()))),
            "br" => Some(Decoder::Brotli(Box::new(brotli::DecompressorWriter::new(Sink::default(), 4096)))),
            _ => None,
        }
    }

    fn sink(&mut self) -> &mut Sink {
        match self {
            Decoder::Gzip(d) => d.get_mut(),
            Decoder::Deflate(d) => d.get_mut(),
            Decoder::Brotli(d) => d.get_mut(),
        }
    }

    /// Feed compressed bytes (and, with `eos`, finish the stream); decoded bytes are appended to
    /// `out`, at most `room` of them.
    pub fn push(&mut self, input: &[u8], eos: bool, room: usize, out: &mut Vec<u8>) -> Result<(), DecodeError> {
        let sink = self.sink();
        sink.room = room;
        sink.full = false;
        let mut r = match self {
            Decoder::Gzip(d) => d.write_all(input),
            Decoder::Deflate(d) => d.write_all(input),
            Decoder::Brotli(d) => d.write_all(input),
        };
        if r.is_ok() && eos {
            r = match self {
                Decoder::Gzip(d) => d.try_finish(),
                Decoder::Deflate(d) => d.try_finish(),
                Decoder::Brotli(d) => d.flush(),
            };
        }
        let sink = self.sink();
        out.append(&mut sink.buf);
        match r {
            Ok(()) => Ok(()),
            Err(_) if sink.full => Err(DecodeError::Limit),
            Err(_) => Err(DecodeError::Corrupt),
        }
    }
}

/// Limits on decoded size and ratio (zip bombs).
#[derive(Debug, Clone, Copy)]
pub struct DecodeLimits {
    pub max_decompressed: usize,
    pub max_ratio: usize,
}

/// How a body is read once its first bytes are known.
#[derive(Debug)]
enum Mode {
    /// Waiting for [`documents::SNIFF_LEN`] bytes to tell a document by its signature.
    Sniff(Vec<u8>),
    /// Scanned as text, streamed through the scanner.
    Text,
    /// Held whole (a zip's directory is at its end), inspected at its end.
    Document(Vec<u8>),
    /// Not text and not a document: passed as it is (counted).
    Pass,
}

/// What a route says about documents and bodies that are not text.
#[derive(Debug, Clone, Copy)]
pub struct BodyRules {
    pub decode: DecodeLimits,
    pub max_document: usize,
    pub archive: documents::Limits,
    pub unmaskable_blocks: bool,
    pub binary_blocks: bool,
}

impl BodyRules {
    pub fn of(i: &crate::config::Inspect) -> BodyRules {
        BodyRules {
            decode: DecodeLimits { max_decompressed: i.max_decompressed, max_ratio: i.max_ratio },
            max_document: i.max_document,
            archive: i.archive,
            unmaskable_blocks: i.on_unmaskable == crate::config::UnmaskableMode::Block,
            binary_blocks: i.on_binary == crate::config::BinaryMode::Block,
        }
    }
}

/// Streaming inspection of one body: optional decoding; a document, told by its first bytes
/// whatever its label, held and inspected whole; text through the bounded-carry scanner; masking
/// as it goes.
#[derive(Debug)]
pub struct BodyInspector {
    scanner: StreamScanner,
    decoder: Option<Decoder>,
    rules: BodyRules,
    mode: Mode,
    /// The content type is not text: a body that is no document is passed (or refused).
    binary_label: bool,
    /// A `block` finding was seen (or a document's values cannot be masked and the route refuses
    /// such documents).
    pub blocked: bool,
    /// The body was a document of this kind.
    pub document: Option<documents::Kind>,
    /// The body was neither text nor a document and was passed as it is.
    pub passed_binary: bool,
    pub encoded_in: u64,
    pub decoded: u64,
    plain: Vec<u8>,
    /// Held body and the most it may hold (see [`BodyInspector::hold_whole`]).
    whole: Option<(Vec<u8>, usize)>,
}

impl BodyInspector {
    /// `text`: whether the content type is one the route scans as text. Either way the first
    /// bytes decide whether the body is a document.
    pub fn new(decoder: Option<Decoder>, rules: BodyRules, text: bool) -> Self {
        Self {
            scanner: StreamScanner::new(),
            decoder,
            rules,
            mode: Mode::Sniff(Vec::new()),
            binary_label: !text,
            blocked: false,
            document: None,
            passed_binary: false,
            encoded_in: 0,
            decoded: 0,
            plain: Vec::new(),
            whole: None,
        }
    }

    /// Hold the body and scan it once at its end (for small text bodies of known length). A body
    /// that grows past `limit` is streamed from there on.
    pub fn hold_whole(&mut self, limit: usize) {
        self.whole = Some((Vec::new(), limit));
    }

    /// Whether the body is held whole until its end (a document, or not yet known): nothing of it
    /// should be released before then.
    pub fn holding(&self) -> bool {
        matches!(self.mode, Mode::Document(_) | Mode::Sniff(_))
    }

    /// Feed a chunk (and/or end of stream); transformed output is appended to `out`.
    pub fn push(
        &mut self,
        scope: Scope<'_>,
        log: &mut FindingLog,
        chunk: &[u8],
        eos: bool,
        out: &mut Vec<u8>,
    ) -> Result<(), Uninspectable> {
        if let Some((held, limit)) = self.whole.as_mut() {
            held.extend_from_slice(chunk);
            if !eos && held.len() <= *limit {
                return Ok(());
            }
            let held = self.whole.take().map(|w| w.0).unwrap_or_default();
            if eos && self.decoder.is_none() && !self.binary_label && documents::sniff(&held).is_none() {
                // plain text, all here: one scan
                let t0 = Instant::now();
                out.reserve(held.len());
                let mut decide_fn = deciding(scope, log, &mut self.blocked);
                crate::engine::stream::scan_whole(
                    &scope.snap.rules,
                    &scope.snap.transformer,
                    &held,
                    out,
                    &mut decide_fn,
                );
                observe(scope.dir, held.len(), t0);
                self.encoded_in += held.len() as u64;
                self.decoded += held.len() as u64;
                self.mode = Mode::Text;
                return Ok(());
            }
            // longer than announced, coded, or a document: as it would have come
            return self.push(scope, log, &held, eos, out);
        }
        self.encoded_in += chunk.len() as u64;
        let mut plain = std::mem::take(&mut self.plain);
        plain.clear();
        let data: &[u8] = match &mut self.decoder {
            Some(d) => {
                // the most this body may decode to so far: max_decompressed, and max_ratio times
                // what has arrived once past the first MiB
                let limits = self.rules.decode;
                let by_ratio = self.encoded_in.saturating_mul(limits.max_ratio as u64).max(1 << 20);
                let by_size = limits.max_decompressed as u64;
                let room = by_size.min(by_ratio).saturating_sub(self.decoded);
                let r = d.push(chunk, eos, usize::try_from(room).unwrap_or(usize::MAX), &mut plain);
                self.decoded += plain.len() as u64;
                match r {
                    Ok(()) => {}
                    Err(DecodeError::Limit) if by_size <= by_ratio => return Err(Uninspectable::DecompressedSize),
                    Err(DecodeError::Limit) => return Err(Uninspectable::DecompressionRatio),
                    Err(DecodeError::Corrupt) => return Err(Uninspectable::Undecodable),
                }
                &plain
            }
            None => {
                self.decoded += chunk.len() as u64;
                chunk
            }
        };
        let r = self.take(scope, log, data, eos, out);
        self.plain = plain;
        r
    }

    /// Decoded bytes, by mode.
    fn take(
        &mut self,
        scope: Scope<'_>,
        log: &mut FindingLog,
        data: &[u8],
        eos: bool,
        out: &mut Vec<u8>,
    ) -> Result<(), Uninspectable> {
        match &mut self.mode {
            Mode::Sniff(head) => {
                head.extend_from_slice(data);
                if head.len() < documents::SNIFF_LEN && !eos {
                    return Ok(());
                }
                let head = std::mem::take(head);
                self.mode = if documents::sniff(&head).is_some() {
                    Mode::Document(Vec::new())
                } else if self.binary_label {
                    let r = &scope.snap.routes[scope.route];
                    Metrics::get().uninspected.with_label_values(&[&r.id, Uninspectable::Binary.label()]).inc();
                    if self.rules.binary_blocks {
                        return Err(Uninspectable::Binary);
                    }
                    self.passed_binary = true;
                    Mode::Pass
                } else {
                    Mode::Text
                };
                self.take(scope, log, &head, eos, out)
            }
            Mode::Pass => {
                out.extend_from_slice(data);
                Ok(())
            }
            Mode::Document(held) => {
                if held.len() + data.len() > self.rules.max_document {
                    return Err(Uninspectable::DocumentSize);
                }
                held.extend_from_slice(data);
                if !eos {
                    return Ok(());
                }
                let doc = std::mem::take(held);
                let t0 = Instant::now();
                let r = scan_document(scope, log, &doc, &self.rules);
                observe(scope.dir, doc.len(), t0);
                let scanned = r?;
                self.document = Some(scanned.kind);
                self.blocked |= scanned.blocked;
                out.extend_from_slice(scanned.bytes.as_deref().unwrap_or(&doc));
                Ok(())
            }
            Mode::Text => {
                let t0 = Instant::now();
                let forced = self.scanner.forced_cuts();
                let snap = scope.snap;
                let mut decide_fn = deciding(scope, log, &mut self.blocked);
                self.scanner.push(&snap.rules, &snap.transformer, data, out, &mut decide_fn);
                if eos {
                    self.scanner.finish(&snap.rules, &snap.transformer, out, &mut decide_fn);
                }
                if self.scanner.forced_cuts() > forced {
                    // 64 KiB without a break: a value across that cut may have been missed; count it
                    Metrics::get()
                        .uninspected
                        .with_label_values(&[&snap.routes[scope.route].id, Uninspectable::ForcedCut.label()])
                        .inc();
                }
                observe(scope.dir, data.len(), t0);
                Ok(())
            }
        }
    }
}

/// A document as inspected: the bytes to deliver (`None`: as it came) and whether it is refused.
#[derive(Debug)]
pub struct ScannedDocument {
    pub kind: documents::Kind,
    pub bytes: Option<Vec<u8>>,
    /// A `block` finding, or values that cannot be masked on a route that refuses them.
    pub blocked: bool,
}

/// Inspect a whole document (xlsx, docx, pptx, zip, legacy xls): every text in it scanned with
/// the scope's policy, findings recorded with their locations, rewrites written back in place.
/// Where a value cannot be masked in place, a finding that would rewrite it counts as `block`
/// (the route's `on_unmaskable: block`, the default) or `alert`.
pub fn scan_document(
    scope: Scope<'_>,
    log: &mut FindingLog,
    doc: &[u8],
    rules: &BodyRules,
) -> Result<ScannedDocument, Uninspectable> {
    let mut blocked = false;
    let snap = scope.snap;
    let mut inspect = |text: &[u8], locate: &dyn Fn(usize) -> String, maskable: bool| {
        let scan = snap.rules.scan(text);
        let mut edits = Vec::new();
        for f in &scan.findings {
            let mut a = scope.decide(f.rule);
            if !maskable && a.rewrites() {
                a = if rules.unmaskable_blocks { Action::Block } else { Action::Alert };
            }
            let value = scan.value(f);
            log.record_at(snap, scope.dir, f.rule, a, value, Some(&|| locate(f.start)));
            match a {
                Action::Block => blocked = true,
                a if a.rewrites() => {
                    let mut with = Vec::new();
                    snap.transformer.render(&snap.rules.rules()[f.rule], a, value, &mut with);
                    edits.push(documents::Edit { start: f.start, end: f.end, with });
                }
                _ => {}
            }
        }
        edits
    };
    let r = documents::rewrite(doc, &rules.archive, &mut inspect);
    if let Ok(o) = &r {
        log.document = Some(o.kind);
    }
    match r {
        Ok(o) => Ok(ScannedDocument { kind: o.kind, bytes: o.bytes, blocked }),
        Err(documents::DocError::Unreadable(_)) => {
            // no text to read (PDF, .doc): a body that is not text
            let r = &snap.routes[scope.route];
            Metrics::get().uninspected.with_label_values(&[&r.id, Uninspectable::Binary.label()]).inc();
            if rules.binary_blocks {
                return Err(Uninspectable::Binary);
            }
            Ok(ScannedDocument { kind: documents::Kind::Zip, bytes: None, blocked: false })
        }
        Err(e) => Err(Uninspectable::of_document(&e)),
    }
}

/// The `boundary` parameter of a `multipart/*` content type.
pub fn multipart_boundary(content_type: Option<&str>) -> Option<String> {
    let ct = content_type?;
    if !ct.trim_start().to_ascii_lowercase().starts_with("multipart/") {
        return None;
    }
    let mut found = ct.split(';').skip(1).filter_map(|p| {
        let (k, v) = p.split_once('=')?;
        k.trim().eq_ignore_ascii_case("boundary").then(|| v.trim().trim_matches('"').to_string())
    });
    let first = found.next()?;
    // two boundaries: parsers disagree on which one counts, so none is trusted (scanned whole)
    (found.next().is_none() && !first.is_empty()).then_some(first)
}

/// Scan a complete multipart body part by part. Every part is scanned and rewritten except an
/// uploaded file (a `filename` in its disposition) of a type that is not text: that is copied
/// untouched and reported in `binary_parts`, so an image or PDF is never corrupted by masking.
/// A form field is always scanned, whatever type the client gives it (form parsers ignore it).
/// Delimiters count only at the start of a line, as RFC 2046 has them.
/// A file part whose bytes show a document (xlsx, docx, zip …) is inspected inside.
/// Returns (output, blocked, binary_parts); an unparsable body is scanned whole.
pub fn scan_multipart(
    scope: Scope<'_>,
    log: &mut FindingLog,
    body: &[u8],
    boundary: &str,
    rules: &BodyRules,
) -> Result<(Vec<u8>, bool, usize), Uninspectable> {
    let delim = format!("--{boundary}");
    let finder = memchr::memmem::Finder::new(delim.as_bytes());
    let positions: Vec<usize> = finder
        .find_iter(body)
        .filter(|&p| {
            let line_start = p == 0 || body[..p].ends_with(b"\r\n");
            let after = &body[p + delim.len()..];
            let line_end = after.is_empty()
                || after.starts_with(b"\r\n")
                || after.starts_with(b"--")
                || after.starts_with(b" ")
                || after.starts_with(b"\t");
            line_start && line_end
        })
        .collect();
    if positions.len() < 2 {
        let (o, b) = scan_buffer(scope, log, body);
        return Ok((o, b, 0));
    }
    let mut out = Vec::with_capacity(body.len());
    let mut blocked = false;
    let mut binary = 0;
    // what a lenient parser might still read as data: the preamble, a part without a header
    // block, and what follows the last delimiter are scanned as they are
    let scan_raw = |out: &mut Vec<u8>, log: &mut FindingLog, bytes: &[u8]| {
        let (o, b) = scan_buffer(scope, log, bytes);
        out.extend_from_slice(&o);
        b
    };
    blocked |= scan_raw(&mut out, log, &body[..positions[0]]);
    for w in positions.windows(2) {
        let (start, end) = (w[0], w[1]);
        let part = &body[start..end];
        // delimiter line, headers, blank line, content
        let Some(head_end) = memchr::memmem::find(part, b"\r\n\r\n") else {
            blocked |= scan_raw(&mut out, log, part);
            continue;
        };
        let content_start = head_end + 4;
        let headers = String::from_utf8_lossy(&part[..head_end]).to_ascii_lowercase();
        let field = |name: &str| headers.lines().find_map(|l| l.strip_prefix(name)).map(str::trim);
        let ctype = field("content-type:").unwrap_or("");
        let file = field("content-disposition:").is_some_and(names_a_file);
        // base64 hides what it carries; anything else (quoted-printable, a made-up coding) is
        // scanned as it is, as form parsers read it
        let coded = field("content-transfer-encoding:").is_some_and(|c| c == "base64");
        let essence = ctype.split(';').next().unwrap_or("").trim();
        if coded {
            // cannot be scanned as it is, so it is not text to us
            binary += 1;
            out.extend_from_slice(part);
            continue;
        }
        let text = !file
            || essence.is_empty()
            || essence.starts_with("text/")
            || essence.ends_with("/json")
            || essence.ends_with("+json")
            || essence.ends_with("/xml")
            || essence.ends_with("+xml")
            || is_form(essence);
        out.extend_from_slice(&part[..content_start]);
        let content = &part[content_start..];
        let doc = content.strip_suffix(b"\r\n").unwrap_or(content);
        if documents::sniff(doc).is_some() {
            // an uploaded workbook, document or archive: inspected inside, whatever its label
            if log.file.is_none() {
                let raw = String::from_utf8_lossy(&part[..head_end]).into_owned();
                log.file = raw.lines().find_map(|l| {
                    let (k, v) = l.split_once(':')?;
                    k.trim().eq_ignore_ascii_case("content-disposition").then(|| disposition_filename(v))?
                });
            }
            let d = scan_document(scope, log, doc, rules)?;
            blocked |= d.blocked;
            out.extend_from_slice(d.bytes.as_deref().unwrap_or(doc));
            out.extend_from_slice(&content[doc.len()..]);
        } else if text {
            let content = &part[content_start..];
            let (o, b) =
                if is_form(essence) { scan_form(scope, log, content) } else { scan_buffer(scope, log, content) };
            blocked |= b;
            out.extend_from_slice(&o);
        } else {
            binary += 1;
            out.extend_from_slice(&part[content_start..]);
        }
    }
    if let Some(&last) = positions.last() {
        blocked |= scan_raw(&mut out, log, &body[last..]);
    }
    Ok((out, blocked, binary))
}

/// The parameters of a `Content-Disposition` value, split at `;` outside quotes (the first item is
/// the disposition type).
fn disposition_params(disposition: &str) -> Vec<String> {
    let mut params = Vec::new();
    let (mut cur, mut quoted, mut escaped) = (String::new(), false, false);
    for c in disposition.chars() {
        match c {
            _ if escaped => escaped = false,
            '\\' if quoted => escaped = true,
            '"' => quoted = !quoted,
            ';' if !quoted => {
                params.push(std::mem::take(&mut cur));
                continue;
            }
            _ => {}
        }
        cur.push(c);
    }
    params.push(cur);
    params
}

/// Whether a `Content-Disposition` value (lowercased) has a `filename` or `filename*` parameter
/// (not a field *named* "filename": parameters are split outside quotes).
fn names_a_file(disposition: &str) -> bool {
    disposition_params(disposition)
        .iter()
        .skip(1)
        .any(|p| matches!(p.split('=').next().map(str::trim), Some("filename" | "filename*")))
}

/// The file name a `Content-Disposition` value gives: `filename*` (RFC 8187, percent-decoded) over
/// `filename` (unquoted). At most 256 bytes of it.
pub fn disposition_filename(disposition: &str) -> Option<String> {
    let params = disposition_params(disposition);
    let value = |name: &str| {
        params.iter().skip(1).find_map(|p| {
            let (k, v) = p.split_once('=')?;
            k.trim().eq_ignore_ascii_case(name).then(|| v.trim().to_string())
        })
    };
    let name = if let Some(ext) = value("filename*") {
        // charset'language'percent-encoded
        let encoded = ext.splitn(3, '\'').nth(2).unwrap_or(&ext).to_string();
        let b = encoded.as_bytes();
        let mut out = Vec::with_capacity(b.len());
        let mut i = 0;
        while i < b.len() {
            let hex = |c: u8| (c as char).to_digit(16);
            match (b[i], b.get(i + 1).copied().and_then(hex), b.get(i + 2).copied().and_then(hex)) {
                (b'%', Some(h), Some(l)) => {
                    out.push((h * 16 + l) as u8);
                    i += 3;
                }
                (c, ..) => {
                    out.push(c);
                    i += 1;
                }
            }
        }
        String::from_utf8_lossy(&out).into_owned()
    } else {
        let v = value("filename")?;
        let v = v.strip_prefix('"').and_then(|v| v.strip_suffix('"')).unwrap_or(&v);
        v.replace("\\\"", "\"").replace("\\\\", "\\")
    };
    let mut end = name.len().min(256);
    while !name.is_char_boundary(end) {
        end -= 1;
    }
    (!name.is_empty()).then(|| name[..end].to_string())
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
    let result =
        if documents::sniff(body).is_some() {
            scan_document(scope, log, body, rules).map(|d| ScannedBody {
                out: d.bytes.unwrap_or_else(|| body.to_vec()),
                blocked: d.blocked,
                binary_parts: 0,
            })
        } else {
            match multipart_boundary(content_type) {
                Some(b) => scan_multipart(scope, log, body, &b, rules)
                    .map(|(out, blocked, binary_parts)| ScannedBody { out, blocked, binary_parts }),
                None => {
                    let (out, blocked) = if content_type.is_some_and(is_form) {
                        scan_form(scope, log, body)
                    } else {
                        scan_buffer(scope, log, body)
                    };
                    Ok(ScannedBody { out, blocked, binary_parts: 0 })
                }
            }
        };
    observe(scope.dir, body.len(), t0);
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_parts_are_told_by_their_parameters() {
        assert!(names_a_file("form-data; name=\"doc\"; filename=\"a.png\""));
        assert!(names_a_file("attachment; filename*=utf-8''a.png"));
        assert!(!names_a_file("form-data; name=\"filename\""));
        assert!(!names_a_file("form-data; name=\"x; filename=y\""));
        assert!(!names_a_file("form-data; name=\"xfilename\""));
    }

    #[test]
    fn file_names_from_dispositions() {
        let f = disposition_filename;
        assert_eq!(f("attachment; filename=\"a b.xlsx\"").as_deref(), Some("a b.xlsx"));
        assert_eq!(f("attachment; filename=plain.csv").as_deref(), Some("plain.csv"));
        assert_eq!(
            f("attachment; filename=\"x.xlsx\"; filename*=UTF-8''%E5%AF%BC%E5%87%BA.xlsx").as_deref(),
            Some("导出.xlsx")
        );
        assert_eq!(f("attachment; filename=\"q\\\"q.txt\"").as_deref(), Some("q\"q.txt"));
        assert_eq!(f("inline").as_deref(), None);
        assert_eq!(f("form-data; name=\"filename\"").as_deref(), None);
    }

    #[test]
    fn multipart_boundaries() {
        assert_eq!(multipart_boundary(Some("multipart/form-data; boundary=abc")), Some("abc".into()));
        assert_eq!(multipart_boundary(Some("multipart/mixed; charset=x; boundary=\"q q\"")), Some("q q".into()));
        assert_eq!(multipart_boundary(Some("application/json")), None);
        assert_eq!(multipart_boundary(Some("multipart/form-data; boundary=a; boundary=b")), None);
    }

    #[test]
    fn codings() {
        let h = |lines: &[&str]| {
            let mut m = http::HeaderMap::new();
            for l in lines {
                m.append(http::header::CONTENT_ENCODING, http::HeaderValue::from_str(l).expect("value"));
            }
            coding(&m)
        };
        assert_eq!(h(&[]), Coding::Identity);
        assert_eq!(h(&["identity"]), Coding::Identity);
        assert_eq!(h(&["GZIP"]), Coding::Decode("gzip"));
        assert_eq!(h(&[" br "]), Coding::Decode("br"));
        assert_eq!(h(&["identity, gzip"]), Coding::Decode("gzip"));
        assert_eq!(h(&["zstd"]), Coding::Unsupported);
        assert_eq!(h(&["gzip, br"]), Coding::Unsupported);
        // a second field line counts as much as the first
        assert_eq!(h(&["identity", "gzip"]), Coding::Decode("gzip"));
        assert_eq!(h(&["gzip", "gzip"]), Coding::Unsupported);
    }

    #[test]
    fn gzip_decoder_round_trip_in_pieces() {
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        enc.write_all(b"hello 13800138000 world").unwrap_or_default();
        let gz = enc.finish().unwrap_or_default();
        let mut d = Decoder::new("gzip").expect("gzip");
        let mut out = Vec::new();
        let pieces: Vec<&[u8]> = gz.chunks(3).collect();
        for (i, c) in pieces.iter().enumerate() {
            d.push(c, i + 1 == pieces.len(), 1 << 20, &mut out).expect("push");
        }
        assert_eq!(out, b"hello 13800138000 world");
    }

    /// 64 MiB of zeros, compressed: a bomb that fits in one upstream chunk.
    fn bomb(kind: &str) -> Vec<u8> {
        let zeros = vec![0u8; 1 << 20];
        match kind {
            "gzip" => {
                let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
                for _ in 0..64 {
                    e.write_all(&zeros).unwrap_or_default();
                }
                e.finish().unwrap_or_default()
            }
            _ => {
                let mut e = brotli::CompressorWriter::new(Vec::new(), 4096, 9, 22);
                for _ in 0..64 {
                    e.write_all(&zeros).unwrap_or_default();
                }
                e.into_inner()
            }
        }
    }

    #[test]
    fn decoders_stop_a_bomb_at_the_room_they_are_given() {
        for kind in ["gzip", "br"] {
            let input = bomb(kind);
            assert!(input.len() < 256 * 1024, "{kind} bomb is {} bytes", input.len());
            let mut d = Decoder::new(kind).expect("decoder");
            let mut out = Vec::new();
            assert_eq!(d.push(&input, true, 1 << 20, &mut out), Err(DecodeError::Limit), "{kind}");
            assert!(out.len() <= 1 << 20, "{kind}: decoded {} bytes past the room", out.len());
            // and with room enough, the same input decodes whole
            let mut d = Decoder::new(kind).expect("decoder");
            let mut out = Vec::new();
            assert_eq!(d.push(&input, true, 64 << 20, &mut out), Ok(()), "{kind}");
            assert_eq!(out.len(), 64 << 20, "{kind}");
        }
    }

    #[test]
    fn corrupt_input_is_not_a_limit() {
        let mut d = Decoder::new("gzip").expect("decoder");
        assert_eq!(d.push(b"not gzip at all", true, 1 << 20, &mut Vec::new()), Err(DecodeError::Corrupt));
    }
}
