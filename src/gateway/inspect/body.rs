//! Streaming inspection of one body: decoding, documents told by their bytes and inspected
//! whole, text through the bounded-carry scanner.

use std::time::Instant;

use super::{DecodeLimits, Decoder, FindingLog, Scope, Uninspectable, deciding, observe};
use crate::charset::{self, Declared, TextCodec};
use crate::documents;
use crate::engine::{Action, StreamScanner};
use crate::telemetry::Metrics;

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
    pub encoded_in: u64,
    pub decoded: u64,
    plain: Vec<u8>,
    /// Held body and the most it may hold (see [`BodyInspector::hold_whole`]).
    whole: Option<(Vec<u8>, usize)>,
    /// What its type says of its charset.
    declared: Declared,
    /// Text in a charset the engine cannot read as it is (GBK, UTF-16): decoded for it and
    /// encoded back, with the UTF-8 text into and out of the scanner.
    codec: TextCodec,
    text: Vec<u8>,
    masked: Vec<u8>,
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
            encoded_in: 0,
            decoded: 0,
            plain: Vec::new(),
            whole: None,
            declared: Declared::Unknown,
            codec: TextCodec::new(Declared::Unknown),
            text: Vec::new(),
            masked: Vec::new(),
        }
    }

    /// What the body's type says of its charset (see [`Declared::of_content_type`]).
    pub fn with_charset(mut self, declared: Declared) -> Self {
        self.declared = declared;
        self.codec = TextCodec::new(declared);
        self
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
                // plain text, all here: one scan (in GBK or UTF-16, of its UTF-8, and the body
                // goes out as it came unless something in it changed)
                let t0 = Instant::now();
                let decoded = charset::decode_whole(self.declared, &held).map_err(|_| Uninspectable::Undecodable)?;
                let mut decide_fn = deciding(scope, log, &mut self.blocked);
                let snap = scope.snap;
                match &decoded {
                    None => {
                        out.reserve(held.len());
                        crate::engine::stream::scan_whole(&snap.rules, &snap.transformer, &held, out, &mut decide_fn);
                    }
                    Some((c, text)) => {
                        let mut masked = Vec::with_capacity(text.len());
                        crate::engine::stream::scan_whole(
                            &snap.rules,
                            &snap.transformer,
                            text,
                            &mut masked,
                            &mut decide_fn,
                        );
                        if masked == *text {
                            out.extend_from_slice(&held);
                        } else {
                            out.extend_from_slice(&charset::encode(*c, &masked));
                        }
                    }
                }
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
                let r = self.rules.decode.push(d, self.encoded_in, self.decoded, chunk, eos, &mut plain);
                self.decoded += plain.len() as u64;
                r?;
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
                self.blocked |= scanned.blocked;
                out.extend_from_slice(scanned.bytes.as_deref().unwrap_or(&doc));
                Ok(())
            }
            Mode::Text => {
                let t0 = Instant::now();
                let forced = self.scanner.forced_cuts();
                let snap = scope.snap;
                let mut decide_fn = deciding(scope, log, &mut self.blocked);
                // as it came, or decoded (GBK, UTF-16: see `TextCodec`)
                self.text.clear();
                let decoded = self.codec.decode(data, eos, &mut self.text).map_err(|_| Uninspectable::Undecodable)?;
                let text = if decoded { &self.text[..] } else { data };
                if self.codec.coded() {
                    self.masked.clear();
                    self.scanner.push(&snap.rules, &snap.transformer, text, &mut self.masked, &mut decide_fn);
                    if eos {
                        self.scanner.finish(&snap.rules, &snap.transformer, &mut self.masked, &mut decide_fn);
                    }
                    self.codec.encode(&self.masked, eos, out);
                } else {
                    self.scanner.push(&snap.rules, &snap.transformer, text, out, &mut decide_fn);
                    if eos {
                        self.scanner.finish(&snap.rules, &snap.transformer, out, &mut decide_fn);
                    }
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
    let mut inspect = |part: &documents::Part<'_>| {
        let maskable = part.maskable;
        documents::edits(&snap.rules, &snap.transformer, part, &mut |f, value| {
            let mut a = scope.decide(crate::engine::RuleId(f.rule));
            if !maskable && a.rewrites() {
                a = if rules.unmaskable_blocks { Action::Block } else { Action::Alert };
            }
            // a location names entries and sheets, which may themselves hold a value
            let location = || super::masked_name(snap, &(part.locate)(f.start));
            log.record_at(snap, scope.dir, crate::engine::RuleId(f.rule), a, value, Some(&location));
            blocked |= a == Action::Block;
            a
        })
    };
    let r = documents::rewrite(doc, &rules.archive, &|h| snap.rules.names_field(h), &mut inspect);
    if let Ok(o) = &r {
        log.document = Some(o.kind);
    }
    match r {
        Ok(o) => Ok(ScannedDocument { bytes: o.bytes, blocked }),
        Err(documents::DocError::Unreadable(_)) => {
            // no text to read (PDF, .doc): a body that is not text
            let r = &snap.routes[scope.route];
            Metrics::get().uninspected.with_label_values(&[&r.id, Uninspectable::Binary.label()]).inc();
            if rules.binary_blocks {
                return Err(Uninspectable::Binary);
            }
            Ok(ScannedDocument { bytes: None, blocked: false })
        }
        Err(e) => Err(Uninspectable::of_document(&e)),
    }
}
