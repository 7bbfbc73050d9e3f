//! Streaming scan: feed chunks of any size, get transformed output as it becomes final.
//!
//! The scanner keeps a bounded carry between chunks. Output is released up to a *cut*: a position
//! right after a hard break (newline, quote, comma, bracket, `，`, `。` …) that no built-in value
//! can span, and at least [`WINDOW`] bytes before the end of what has arrived (room for regex and
//! keyword matches that could span a break). Every value that ends before the cut is complete, so
//! the findings and the output equal whole-buffer scanning for any chunking. A short
//! [`LOOKBACK`] of released bytes stays as context (boundaries, exclusions, context words).
//!
//! Memory per stream is O([`MAX_CARRY`]): if no hard break arrives for that long (a huge digit
//! run, base64), the cut is forced at a character boundary; a value straddling a forced cut may
//! be missed, and [`StreamScanner::forced_cuts`] counts that.

use std::borrow::Cow;

use super::{Action, Finding, Place, RuleSet, Scan, Transformer};

/// Bytes held back from the end of the buffer before a cut (longest regex/keyword match).
pub const WINDOW: usize = 256;
/// Bytes of already-released input kept as left context: enough for the context-word window
/// even when every context byte was written as an escape (`\\u0031` is 6 bytes for 1).
pub const LOOKBACK: usize = super::CONTEXT_BEFORE * 12;
/// New bytes a release waits for while a long line or row is kept as lookback.
pub const MIN_RELEASE: usize = 4096;
/// Most bytes held without a hard break before the cut is forced.
pub const MAX_CARRY: usize = 64 * 1024;

/// Room a stream keeps for its carry between chunks (more is let go after each release).
const KEEP_ROOM: usize = 4 * 1024;

/// A finding reported by the stream, with offsets from the start of the stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StreamFinding {
    pub rule: usize,
    pub start: u64,
    pub end: u64,
    pub context: bool,
}

/// Incremental scanner for one body. Holds no reference to the rule set, so the caller can keep
/// it in per-request state next to an `Arc<RuleSet>`.
#[derive(Debug, Default)]
pub struct StreamScanner {
    buf: Vec<u8>,
    /// stream offset of `buf[0]`
    base: u64,
    /// bytes of `buf` already released (the lookback region)
    done: usize,
    /// `buf` positions in `done..=searched` are known to hold no break (see `find_cut`)
    searched: usize,
    /// evaluate context words for every finding (see [`StreamScanner::with_context`])
    want_context: bool,
    forced: u64,
    total: u64,
    /// The stream's first line (a CSV header row names the columns of every later line), up to
    /// [`super::fields::MAX_HEADER`] bytes.
    header: Vec<u8>,
    header_done: bool,
    /// The last HTML table header row released so far (for the table's later rows).
    table_header: Option<Vec<Vec<u8>>>,
    /// The first line is a CSV header naming a field: lines are kept from their start (known once
    /// the first line is).
    csv: Option<bool>,
    /// `buf[0]` is the start of a line.
    line_start: bool,
}

impl StreamScanner {
    pub fn new() -> Self {
        Self::default()
    }

    /// Also evaluate context words for every finding (`StreamFinding::context`).
    pub fn with_context(mut self) -> Self {
        self.want_context = true;
        self
    }

    /// Bytes currently held (carry plus lookback).
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    /// Bytes of room the stream holds between chunks (what a thousand idle streams cost).
    pub fn room(&self) -> usize {
        self.buf.capacity() + self.header.capacity()
    }

    /// Total bytes pushed so far.
    pub fn total(&self) -> u64 {
        self.total
    }

    /// How many times the cut had to be forced (no hard break within [`MAX_CARRY`]).
    pub fn forced_cuts(&self) -> u64 {
        self.forced
    }

    /// Feed a chunk. Released output is appended to `out`; `decide` is called once per finding,
    /// in order, and its action is applied.
    pub fn push(
        &mut self,
        rules: &RuleSet,
        tr: &Transformer,
        chunk: &[u8],
        out: &mut Vec<u8>,
        decide: &mut dyn FnMut(&StreamFinding, &[u8]) -> Action,
    ) {
        self.total += chunk.len() as u64;
        if !self.header_done {
            let room = super::fields::MAX_HEADER - self.header.len();
            let line = memchr::memchr(b'\n', chunk).map_or(chunk.len(), |n| n + 1);
            self.header.extend_from_slice(&chunk[..line.min(room)]);
            self.header_done = self.header.last() == Some(&b'\n') || self.header.len() >= super::fields::MAX_HEADER;
        }
        self.buf.extend_from_slice(chunk);
        let Some(cut) = self.find_cut() else { return };
        self.release(rules, tr, cut, out, decide);
    }

    /// End of stream: release everything.
    pub fn finish(
        &mut self,
        rules: &RuleSet,
        tr: &Transformer,
        out: &mut Vec<u8>,
        decide: &mut dyn FnMut(&StreamFinding, &[u8]) -> Action,
    ) {
        let cut = self.buf.len();
        self.release(rules, tr, cut, out, decide);
        self.buf.clear();
        self.done = 0;
        self.searched = 0;
    }

    fn find_cut(&mut self) -> Option<usize> {
        let len = self.buf.len();
        let hi = len.checked_sub(WINDOW)?;
        // with a long line or row kept as lookback (up to ROW_MAX), every release rescans it:
        // release only once there is a good deal new, so tiny chunks cannot make that quadratic
        let least = if self.done > LOOKBACK { MIN_RELEASE } else { 0 };
        if hi <= self.done + least {
            return None;
        }
        // A break depends only on the bytes before it, so positions searched by an earlier push
        // need no second look: tiny chunks without breaks cost O(chunk), not O(carry), each.
        let floor = self.done.max(self.searched);
        let mut c = hi;
        while c > floor {
            if is_break_before(&self.buf, c) {
                return Some(c);
            }
            c -= 1;
        }
        self.searched = hi;
        if len - self.done > MAX_CARRY {
            // forced: back off to a UTF-8 character boundary
            let mut c = hi;
            while c > self.done + 1 && (self.buf[c] & 0xC0) == 0x80 {
                c -= 1;
            }
            self.forced += 1;
            return Some(c);
        }
        None
    }

    fn release(
        &mut self,
        rules: &RuleSet,
        tr: &Transformer,
        mut cut: usize,
        out: &mut Vec<u8>,
        decide: &mut dyn FnMut(&StreamFinding, &[u8]) -> Action,
    ) {
        // the scan's room (findings, values, marks: tens of KiB for a chunk) is the thread's, not
        // the stream's: a thousand slow streams do not each keep one
        let mut scan = Scan::take_room();
        scan.want_context = self.want_context;
        let table_header = self.table_header.as_deref();
        let place = if self.base == 0 {
            Place { table_header, ..Place::start() }
        } else {
            Place {
                header: self.header_done.then_some(&self.header[..]),
                table_header,
                line_start: self.line_start,
                ..Place::default()
            }
        };
        rules.scan_at(&self.buf, &place, &mut scan);
        // a match across the cut (long regex/keyword): move the cut back to its start; one that
        // starts where this release does is released whole, so the stream always moves on
        if let Some(f) = scan.findings.iter().find(|f| f.start >= self.done && f.start < cut && f.end > cut) {
            cut = if f.start > self.done { f.start } else { f.end };
        }
        let mut cursor = self.done;
        for f in scan.findings.iter() {
            if f.start < self.done || f.end > cut {
                continue;
            }
            let sf = StreamFinding {
                rule: f.rule,
                start: self.base + f.start as u64,
                end: self.base + f.end as u64,
                context: f.context,
            };
            let value = scan.value(f);
            let action = decide(&sf, value);
            if action.rewrites() {
                out.extend_from_slice(&self.buf[cursor..f.start]);
                tr.render(&rules.rules()[f.rule], action, value, f.kept(), out);
                cursor = f.end;
            }
        }
        out.extend_from_slice(&self.buf[cursor..cut]);
        scan.give_room();
        if rules.fields.wants_values() {
            if let Some(h) = super::fields::table_header_after(&self.buf[..cut]) {
                self.table_header = h;
            }
        }
        // keep a lookback of released bytes as context; and the current CSV line or HTML row from
        // its start, when it began within reach (field context reads a cell by its line or row)
        let mut keep_from = cut.saturating_sub(LOOKBACK);
        let mut line_start = false;
        if rules.fields.wants_values() {
            // a cell at the cut may look back ROW_MAX from a little before it (its key, LOOK)
            let reach = cut.saturating_sub(super::fields::ROW_MAX + super::fields::LOOK + 1);
            if self.csv.is_none() && self.header_done {
                let named = rules.fields.header_has_fields(&self.header);
                self.csv = Some(named);
                if !named {
                    // a first line that names no field is not read again (its columns name
                    // nothing): a thousand JSON streams do not each keep 4 KiB of it
                    self.header = Vec::new();
                }
            }
            if self.csv == Some(true) {
                match memchr::memrchr(b'\n', &self.buf[reach..cut]) {
                    Some(n) if reach + n < keep_from => (keep_from, line_start) = (reach + n + 1, true),
                    Some(_) => {}
                    // no line start since the buffer began with one (within reach)
                    None if self.line_start && reach == 0 => (keep_from, line_start) = (0, true),
                    None => {}
                }
            }
            // (markup at all first: most bodies have none)
            let rows = memchr::memchr(b'<', &self.buf[reach..cut])
                .map(|_| super::fields::last_row_start(&self.buf[reach..cut]));
            if let Some(tr) = rows.flatten() {
                if reach + tr < keep_from {
                    keep_from = reach + tr;
                    line_start = false;
                }
            }
        }
        self.line_start = line_start;
        self.buf.drain(..keep_from);
        // what is kept is a carry of a few KiB: room for a whole chunk is not kept between chunks
        if self.buf.capacity() > KEEP_ROOM && self.buf.capacity() > 4 * self.buf.len() {
            self.buf.shrink_to(KEEP_ROOM.max(2 * self.buf.len()));
        }
        self.base += keep_from as u64;
        self.done = cut - keep_from;
        self.searched = self.done;
    }
}

/// True when no value can span the position `c` (between `buf[c-1]` and `buf[c]`).
fn is_break_before(buf: &[u8], c: usize) -> bool {
    let b = buf[c - 1];
    if matches!(
        b,
        b'\n'
            | b'\r'
            | b'\t'
            | b'"'
            | b'\''
            | b','
            | b'<'
            | b'>'
            | b'{'
            | b'}'
            | b'['
            | b']'
            | b'|'
            | b'='
            | b':'
            | b'!'
            | b'?'
    ) {
        return true;
    }
    // full-width comma/colon/semicolon and ideographic full stop: ， ： ； 。
    c >= 3
        && matches!(&buf[c - 3..c], [0xEF, 0xBC, 0x8C] | [0xEF, 0xBC, 0x9A] | [0xEF, 0xBC, 0x9B] | [0xE3, 0x80, 0x82])
}

/// Whole-buffer helper with the same signature shape, for callers that hold the full body.
pub fn scan_whole(
    rules: &RuleSet,
    tr: &Transformer,
    input: &[u8],
    out: &mut Vec<u8>,
    decide: &mut dyn FnMut(&StreamFinding, &[u8]) -> Action,
) -> Vec<Finding> {
    scan_whole_as(rules, tr, input, input, out, decide)
}

/// [`scan_whole`], matching on `view` (a same-length reading of `input`, e.g. a form body with
/// `+` read as the space it stands for) and rewriting `input`.
pub fn scan_whole_as(
    rules: &RuleSet,
    tr: &Transformer,
    view: &[u8],
    input: &[u8],
    out: &mut Vec<u8>,
    decide: &mut dyn FnMut(&StreamFinding, &[u8]) -> Action,
) -> Vec<Finding> {
    scan_whole_at(rules, tr, view, input, &Place::start(), false, out, decide)
}

/// [`scan_whole_as`] for a text that stands at `place` (a form field's value). `context`: evaluate
/// context words for every finding, as [`StreamScanner::with_context`] does (a report wants them;
/// rewriting needs them only for the rules that require them, which always get them).
#[allow(clippy::too_many_arguments)]
pub fn scan_whole_at(
    rules: &RuleSet,
    tr: &Transformer,
    view: &[u8],
    input: &[u8],
    place: &Place<'_>,
    context: bool,
    out: &mut Vec<u8>,
    decide: &mut dyn FnMut(&StreamFinding, &[u8]) -> Action,
) -> Vec<Finding> {
    debug_assert_eq!(view.len(), input.len());
    // the thread's room: a small body (most API responses) does not grow four vectors from
    // nothing each time
    let mut scan = Scan::take_room();
    scan.want_context = context;
    rules.scan_at(view, place, &mut scan);
    let mut actions = Vec::with_capacity(scan.findings.len());
    for f in &scan.findings {
        let sf = StreamFinding { rule: f.rule, start: f.start as u64, end: f.end as u64, context: f.context };
        actions.push(decide(&sf, scan.value(f)));
    }
    let mut i = 0;
    tr.apply(
        rules,
        input,
        &scan,
        |_| {
            let a = actions.get(i).copied().unwrap_or(Action::Allow);
            i += 1;
            a
        },
        out,
    );
    let findings = scan.findings.clone();
    scan.give_room();
    findings
}

/// Form-urlencoded data (a query string, a form body) as the engine reads it: `+` is the space it
/// stands for, so `138+0013+8000`, what a browser sends for `138 0013 8000`, is found.
pub fn form_view(input: &[u8]) -> Cow<'_, [u8]> {
    if input.contains(&b'+') {
        Cow::Owned(input.iter().map(|&b| if b == b'+' { b' ' } else { b }).collect())
    } else {
        Cow::Borrowed(input)
    }
}

/// [`scan_whole_at`] for form-urlencoded data, matching on its [`form_view`] and appending its
/// rewrite to `out` as form data: every byte outside a rewritten value stays as it came; in data
/// without a literal space, a rewritten value's separators are `+` again; in data that was all
/// ASCII, what a rewrite brought outside it (a name's kept surname, a label) is percent-encoded.
pub fn scan_form_at(
    rules: &RuleSet,
    tr: &Transformer,
    input: &[u8],
    place: &Place<'_>,
    context: bool,
    out: &mut Vec<u8>,
    decide: &mut dyn FnMut(&StreamFinding, &[u8]) -> Action,
) -> Vec<Finding> {
    let view = form_view(input);
    let from = out.len();
    let findings = scan_whole_at(rules, tr, &view, input, place, context, out, decide);
    if matches!(view, Cow::Owned(_)) && !input.contains(&b' ') {
        for b in out[from..].iter_mut().filter(|b| **b == b' ') {
            *b = b'+';
        }
    }
    if input.is_ascii() && !out[from..].is_ascii() {
        const HEX: &[u8; 16] = b"0123456789ABCDEF";
        let rewritten = out.split_off(from);
        for b in rewritten {
            if b.is_ascii() {
                out.push(b);
            } else {
                out.extend_from_slice(&[b'%', HEX[usize::from(b >> 4)], HEX[usize::from(b & 15)]]);
            }
        }
    }
    findings
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::synthetic::{Rng, id_card, mobile};
    use crate::{HashKey, default_rules};

    /// Form data is matched with `+` as a space and rewritten as form data: separators `+` again
    /// (unless the data has literal spaces), what a rewrite brings outside ASCII percent-encoded
    /// (unless the data was not ASCII), appended after what `out` already holds.
    #[test]
    fn form_data_is_rewritten_as_form_data() {
        let rules = default_rules().expect("rules");
        let tr = Transformer::new(HashKey::new("k"));
        let form = |input: &str, action: Action| {
            let mut out = b"before|".to_vec();
            let found =
                scan_form_at(&rules, &tr, input.as_bytes(), &Place::start(), false, &mut out, &mut |_, _| action);
            (found.len(), String::from_utf8(out).expect("utf-8"))
        };
        let m = Action::Mask;
        assert_eq!(form("tel=138+0013+8000&q=a+b", m), (1, "before|tel=138+****+8000&q=a+b".into()));
        assert_eq!(form("tel=138 0013+8000&q=a", m), (1, "before|tel=138 **** 8000&q=a".into()));
        assert_eq!(form("tel=13800138000", m), (1, "before|tel=138****8000".into()));
        // the label 手机号, percent-encoded
        assert_eq!(form("tel=138+0013+8000", Action::Redact).1, "before|tel=[%E6%89%8B%E6%9C%BA%E5%8F%B7]");
        assert_eq!(form("bz=正常&tel=138+0013+8000", Action::Redact).1, "before|bz=正常&tel=[手机号]");
        assert_eq!(form("a=1+2&b=3", m), (0, "before|a=1+2&b=3".into()));
    }

    /// A stream fed 64 KiB chunks (what Pingora reads) keeps a carry of a few KiB between them,
    /// not a chunk's worth, and still masks exactly as the whole body is masked.
    #[test]
    fn a_stream_keeps_little_room_between_chunks() {
        let rules = default_rules().expect("rules");
        let tr = Transformer::new(HashKey::new("k"));
        let mut r = Rng(5);
        let mut body = String::from("[");
        while body.len() < 1 << 20 {
            body.push_str(&format!(
                "{{\"sfzh\":\"{}\",\"lxdh\":\"{}\",\"bz\":\"ok\"}},\n",
                id_card(&mut r),
                mobile(&mut r)
            ));
        }
        body.push_str("{}]");
        let mut whole = Vec::new();
        scan_whole(&rules, &tr, body.as_bytes(), &mut whole, &mut |_, _| Action::Mask);
        let mut sc = StreamScanner::new();
        let mut out = Vec::new();
        let mut most = 0;
        for chunk in body.as_bytes().chunks(64 * 1024) {
            sc.push(&rules, &tr, chunk, &mut out, &mut |_, _| Action::Mask);
            most = most.max(sc.room());
            // the first line names no field: it is not kept either
            assert!(sc.room() <= KEEP_ROOM, "room kept between chunks: {}", sc.room());
        }
        sc.finish(&rules, &tr, &mut out, &mut |_, _| Action::Mask);
        assert!(most > 0);
        assert_eq!(out, whole, "the stream's output differs from the whole body's");
        assert!(out.windows(4).any(|w| w == b"****"));
    }
}
