//! Field context: which field a value stands in, and the two detectors that need it, names and
//! addresses.
//!
//! Names and addresses carry no check digit. What gives them away is where they stand: the JSON
//! key, the CSV column header, the XML element or attribute, the form or multipart field, a label in
//! running text (`姓名：`). This module reads that from the few bytes before a value, without
//! parsing the document: the scan looks only at places where an ideograph follows a delimiter
//! (`"`, `>`, `=`, `:`, `,`, tab, newline, space), found 64 bytes at a time with SIMD compares, and
//! asks what key stands before each. Text without ideographs costs one classification pass; a rule
//! set without field rules costs nothing.
//!
//! - `cn_name`: 2–4 ideographs beginning with a surname (single or compound), or a name with `·`,
//!   in a field the rule names or after one of its labels;
//! - `cn_address`: an administrative-division prefix (GB/T 2260, full or short form) and a street
//!   part, in an address field or after a label, or on its own when it has both a division and a
//!   house number (`…路85号`);
//! - any other rule may list `fields`: a finding in one of them counts as having context (and
//!   satisfies `context_required`).
//!
//! Streaming: a key within the stream scanner's lookback of its value is seen; a CSV header is kept
//! by the stream (see [`Place`]).

use std::collections::HashMap;
use std::sync::OnceLock;

use super::{Hit, Kept};

/// Longest key looked at (bytes).
const MAX_KEY: usize = 64;
/// Longest header line kept for CSV columns (bytes).
pub const MAX_HEADER: usize = 4096;
/// How far back (bytes of input) a value's key, line or `<tr>` is looked for: within the stream
/// scanner's lookback (and away from its start, where an escape may be cut), so that a stream reads
/// every value as the whole text would; an HTML header row longer than this is not read.
pub const LOOK: usize = 512;
/// Longest CSV line, and longest distance from an HTML row's `<tr>` to its cell, over which a cell's
/// column is known (input bytes). A stream keeps the current line or row from its start within
/// this distance (see `StreamScanner`), so it reads every cell as the whole text would.
pub const ROW_MAX: usize = 16 << 10;
/// Most characters of an address.
const MAX_ADDRESS: usize = 64;
/// Longest run of digits (and letters) in an address: a house, building or room number. A longer
/// one is an identifier of its own (an ID or phone number), never part of the address.
const MAX_NUMBER: usize = 6;

/// Where a text stands, for field context.
#[derive(Clone, Copy, Default)]
pub struct Place<'a> {
    /// The whole text is the value of this field (a spreadsheet column's header, an example's key).
    pub field: Option<&'a [u8]>,
    /// The text begins at the start of its document or stream: its first line may be a header row.
    pub at_start: bool,
    /// The first line of the stream, when the text no longer holds it (a CSV header row).
    pub header: Option<&'a [u8]>,
    /// The text is units a line each (a document's cells): the field of the unit starting at an
    /// offset (of the text as given), e.g. a spreadsheet cell's column header.
    pub field_at: Option<&'a dyn Fn(usize) -> Option<&'a [u8]>>,
    /// The last HTML table header row before the text (a stream's, see [`table_header_after`]).
    pub table_header: Option<&'a [Vec<u8>]>,
    /// The text begins at the start of a line (a stream keeps a CSV line from its start).
    pub line_start: bool,
}

impl std::fmt::Debug for Place<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Place")
            .field("field", &self.field.map(String::from_utf8_lossy))
            .field("at_start", &self.at_start)
            .field("header", &self.header.map(String::from_utf8_lossy))
            .field("field_at", &self.field_at.is_some())
            .field("table_header", &self.table_header.map(<[Vec<u8>]>::len))
            .field("line_start", &self.line_start)
            .finish()
    }
}

impl Place<'_> {
    /// A whole document or body.
    pub fn start() -> Self {
        Place { at_start: true, ..Place::default() }
    }
}

/// How the normalized text relates to the input as given.
pub(crate) struct Coords<'a> {
    /// the input as given (HTML table header rows are read from it)
    pub raw: &'a [u8],
    /// a normalized position → its offset in the input
    pub orig: &'a dyn Fn(usize) -> usize,
    /// (a normalized position, a distance in input bytes) → the first normalized position at most
    /// that many input bytes before it
    pub floor: &'a dyn Fn(usize, usize) -> usize,
}

/// What a field rule finds in its fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Name,
    Address,
    /// A rule with its own detector: its fields raise it (context).
    Other,
}

#[derive(Debug)]
struct Slot {
    rule: u32,
    kind: Kind,
    /// Labels in running text (`context` words of a name or address rule), as bytes.
    labels: Vec<Vec<u8>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Glob {
    Prefix,
    Suffix,
    Contains,
}

/// FxHash (rustc's): keys are a few bytes each and not chosen by the network (the table is the
/// rule set's), so a multiply-rotate hash is enough and costs a few cycles.
#[derive(Debug, Default, Clone, Copy)]
struct KeyHasher(u64);

impl std::hash::Hasher for KeyHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for c in bytes.chunks(8) {
            let mut w = [0u8; 8];
            w[..c.len()].copy_from_slice(c);
            self.0 = (self.0.rotate_left(5) ^ u64::from_le_bytes(w)).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
        }
    }
}

type KeyMap = HashMap<Vec<u8>, u64, std::hash::BuildHasherDefault<KeyHasher>>;

/// The exact keys of up to [`ShortKeys::MAX`] bytes (nearly all), folded and packed into two
/// words with their length: a lookup hashes and compares two numbers, with no byte compare and
/// no call. Open addressing, at most half full.
#[derive(Debug, Default)]
struct ShortKeys {
    /// (first eight bytes, next seven bytes and the length in the top byte, slots); an empty
    /// entry is all zero (a key has a length)
    table: Vec<(u64, u64, u64)>,
    len: usize,
}

impl ShortKeys {
    const MAX: usize = 15;

    /// `key` folded (ASCII lower case) and packed, if it is short enough.
    #[inline]
    fn pack(key: &[u8]) -> Option<(u64, u64)> {
        if key.is_empty() || key.len() > Self::MAX {
            return None;
        }
        let mut w = [0u8; 16];
        for (d, &b) in w.iter_mut().zip(key) {
            *d = b.to_ascii_lowercase();
        }
        w[15] = key.len() as u8;
        let (a, b) = w.split_at(8);
        Some((u64::from_le_bytes(a.try_into().ok()?), u64::from_le_bytes(b.try_into().ok()?)))
    }

    /// Where `k` is, or the empty entry where it would go (the table is never full).
    #[inline]
    fn find(&self, k: (u64, u64)) -> usize {
        let mask = self.table.len() - 1;
        let h = (k.0 ^ k.1.rotate_left(29)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        let mut i = (h >> 40) as usize & mask;
        while self.table[i].1 != 0 && (self.table[i].0, self.table[i].1) != k {
            i = (i + 1) & mask;
        }
        i
    }

    /// Add `bits` to the slots of `key` (already folded); false if it is too long for this table.
    fn add(&mut self, key: &[u8], bits: u64) -> bool {
        let Some(k) = Self::pack(key) else { return false };
        if (self.len + 1) * 2 > self.table.len() {
            let old = std::mem::take(&mut self.table);
            self.table = vec![(0, 0, 0); (old.len() * 2).max(64)];
            for e in old.into_iter().filter(|e| e.1 != 0) {
                let i = self.find((e.0, e.1));
                self.table[i] = e;
            }
        }
        let i = self.find(k);
        let e = &mut self.table[i];
        if e.1 == 0 {
            self.len += 1;
        }
        *e = (k.0, k.1, e.2 | bits);
        true
    }

    #[inline]
    fn get(&self, k: (u64, u64)) -> u64 {
        if self.table.is_empty() {
            return 0;
        }
        self.table[self.find(k)].2
    }
}

/// The field rules of a rule set: which keys belong to which rules.
#[derive(Debug, Default)]
pub(crate) struct Fields {
    slots: Vec<Slot>,
    /// exact keys longer than [`ShortKeys::MAX`] bytes
    exact: KeyMap,
    short: ShortKeys,
    /// shortest and longest exact key, and shortest glob core: a key outside is looked up no further
    exact_len: (usize, usize),
    /// one bit per exact key, by [`bloom_bit`]
    bloom: Vec<u64>,
    glob_min: usize,
    globs: Vec<(Vec<u8>, Glob, u64)>,
    /// slots of name and address rules: they need the value pass
    value_slots: u64,
    /// an address rule: standalone addresses are looked for too
    address: Option<u32>,
}

/// The key a value stands under.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Key<'t> {
    /// A field name (JSON key, element, attribute, form or multipart field, `key:`).
    Name(&'t [u8]),
    /// Ideographs before a colon or a space: a label in running text (or a Chinese key).
    Label(&'t [u8]),
    /// A cell of a delimited table, where it starts (its line is found in order, see `Lazy`).
    Cell(usize),
    /// An HTML table cell: where its `<td` starts (its row is found in order, see `Lazy`).
    TableCell(usize),
}

/// What a scan works out once, when a value first asks: the CSV header row's columns, the header
/// rows of HTML tables.
#[derive(Default)]
pub(crate) struct Lazy<'t> {
    cols: Option<Columns>,
    tables: Option<TableHeads<'t>>,
    /// how far the text was read for line starts, and the last line start before that
    /// (`None`: no newline yet, the line began before or at the text's start)
    line: Option<(usize, Option<usize>)>,
    /// the column count so far in a line: (line start, position, column, in quotes)
    col: Option<(usize, usize, usize, bool)>,
    /// the HTML row read so far
    row: Option<RowState>,
}

/// An HTML row as read up to `upto`.
#[derive(Debug, Clone, Copy, Default)]
struct RowState {
    upto: usize,
    /// where the row's `<tr` is
    tr: Option<usize>,
    /// cells (`<td`) since it
    tds: usize,
    /// the last header cell (`<th`) since it
    th: Option<usize>,
}

impl Lazy<'_> {
    /// Where the line holding `p` starts (`None`: before or at the text's start). Only a newline
    /// sent as such counts (not an escaped one, `&#10;`, `\n` in JSON): a stream keeps lines by
    /// the input's newlines. Candidates come in order, so each byte is read once; one out of
    /// order reads back from `p`.
    fn line_start(&mut self, t: &[u8], c: &Coords<'_>, p: usize) -> Option<usize> {
        let (from, mut last) = match self.line {
            Some((upto, last)) if upto <= p => (upto, last),
            _ => (0, None),
        };
        let mut end = p;
        while let Some(n) = memchr::memrchr(b'\n', &t[from..end]) {
            let q = from + n;
            if c.raw.get((c.orig)(q)) == Some(&b'\n') {
                last = Some(q + 1);
                break;
            }
            end = q;
        }
        self.line = Some((p, last));
        last
    }

    /// The HTML row holding the cell whose `<td` is at `td`: where its `<tr` is (only a `<` sent
    /// as such), how many cells come before it in the row, and the last `<th` before it in the
    /// row. In order, each byte read once; out of order, read again from [`ROW_MAX`] back.
    fn row(&mut self, t: &[u8], c: &Coords<'_>, td: usize) -> RowState {
        let mut st = match self.row {
            Some(st) if st.upto <= td => st,
            _ => RowState { upto: (c.floor)(td, ROW_MAX), ..RowState::default() },
        };
        let mut i = st.upto;
        while let Some(n) = memchr::memchr(b'<', &t[i..td]) {
            let q = i + n;
            let tag = |name: &[u8]| {
                t.get(q + 1..q + 3).is_some_and(|x| x.eq_ignore_ascii_case(name))
                    && t.get(q + 3).is_some_and(|&b| matches!(b, b'>' | b' ' | b'\t' | b'\n' | b'\r'))
            };
            if tag(b"tr") && c.raw.get((c.orig)(q)) == Some(&b'<') {
                st = RowState { upto: q, tr: Some(q), tds: 0, th: None };
            } else if tag(b"td") {
                st.tds += 1;
            } else if tag(b"th") {
                st.th = Some(q);
            }
            i = q + 1;
        }
        st.upto = td;
        self.row = Some(st);
        st
    }

    /// The column of the cell at `p` in the line starting at `line` (separators outside quotes).
    fn column(&mut self, t: &[u8], line: usize, p: usize, sep: u8) -> usize {
        let (mut at, mut col, mut quoted) = match self.col {
            Some((l, at, col, q)) if l == line && at <= p => (at, col, q),
            _ => (line, 0, false),
        };
        for &b in &t[at..p] {
            if b == b'"' {
                quoted = !quoted;
            } else if b == sep && !quoted {
                col += 1;
            }
        }
        at = p;
        self.col = Some((line, at, col, quoted));
        col
    }
}

/// The HTML tables of a text (as given): their header rows and where each table starts.
pub(crate) struct TableHeads<'t> {
    rows: Vec<HeaderRow<'t>>,
    starts: Vec<usize>,
}

impl<'t> TableHeads<'t> {
    fn of(h: &'t [u8]) -> Self {
        TableHeads { rows: table_headers(h), starts: tags(h, b"<table").collect() }
    }

    /// A table starts between `a` and `b`: a header row before `a` is another table's.
    fn table_between(&self, a: usize, b: usize) -> bool {
        let i = self.starts.partition_point(|&s| s < a);
        self.starts.get(i).is_some_and(|&s| s < b)
    }
}

/// An HTML header row (`<tr>` of `<th>` cells, complete with its `</tr>`, at most [`LOOK`]
/// bytes): where it starts and ends, and its cells' texts.
type HeaderRow<'t> = (usize, usize, Vec<&'t [u8]>);

/// The key in a column header as forms and templates write one, when it is not the header
/// itself: `姓 名` and `姓　名` (spaced out to align with longer headers), `*姓名` and `姓名＊`
/// (required), `姓名（必填）`, `姓名(中文)` and `姓名【必填】` (a note), `姓名：`, and any of these
/// together, written into `buf` (a key longer than any field's is none). `None` when there is
/// nothing to take off. Asked of a sheet's every cell in a field's column: nothing is allocated.
pub(crate) fn header_key<'b>(header: &[u8], buf: &'b mut [u8; MAX_KEY]) -> Option<&'b [u8]> {
    // asked of a sheet's every cell: most headers are no key in a form's dress (the marks are
    // ASCII, or characters whose UTF-8 starts E3 (　【】) or EF (＊：（）))
    if !header.iter().any(|b| matches!(b, b' ' | b'\t' | b'*' | b':' | b')' | b']' | 0xE3 | 0xEF)) {
        return None;
    }
    let cjk = !header.is_ascii();
    let text = std::str::from_utf8(header).ok()?;
    let mut k = text.trim();
    loop {
        let before = k.len();
        k = k.trim_matches(|c: char| c.is_whitespace() || matches!(c, '*' | '＊'));
        k = k.trim_end_matches([':', '：']);
        for (open, close) in [('(', ')'), ('（', '）'), ('【', '】'), ('[', ']'), ('（', ')'), ('(', '）')] {
            if let Some(inner) = k.strip_suffix(close) {
                if let Some(at) = inner.rfind(open).filter(|&at| at > 0) {
                    k = &inner[..at];
                    break;
                }
            }
        }
        if k.len() == before {
            break;
        }
    }
    // spaces within a Chinese header are for alignment; in an ASCII one they are words
    let mut n = 0;
    for c in k.chars().filter(|&c| !(cjk && matches!(c, ' ' | '\u{3000}'))) {
        let w = c.len_utf8();
        c.encode_utf8(buf.get_mut(n..n + w)?);
        n += w;
    }
    let key = &buf[..n];
    (n > 0 && key != header).then_some(key)
}

/// Columns of a CSV/TSV header row: the slots of each column.
#[derive(Debug, Default)]
struct Columns {
    sep: u8,
    slots: Vec<u64>,
    /// some column is a field of some rule
    any: bool,
}

impl Fields {
    /// Add a rule's fields and labels. Fails past 64 field rules.
    pub fn add(&mut self, rule: u32, kind: Kind, fields: &[String], labels: &[String]) -> Result<(), String> {
        let i = self.slots.len();
        if i >= 64 {
            return Err("more than 64 rules with fields".into());
        }
        let bit = 1u64 << i;
        for f in fields {
            let k = fold(f.as_bytes());
            let (starts, ends) = (k.first() == Some(&b'*'), k.len() > 1 && k.last() == Some(&b'*'));
            let core = k[usize::from(starts)..k.len() - usize::from(ends)].to_vec();
            if core.len() > MAX_KEY {
                return Err(format!("field {f:?} is longer than {MAX_KEY} bytes"));
            }
            match (starts, ends) {
                (false, false) => {
                    let (lo, hi) = if self.bloom.is_empty() { (usize::MAX, 0) } else { self.exact_len };
                    self.exact_len = (lo.min(core.len()), hi.max(core.len()));
                    let b = bloom_bit(&core);
                    self.bloom.resize(BLOOM_BITS / 64, 0);
                    self.bloom[b / 64] |= 1 << (b % 64);
                    if !self.short.add(&core, bit) {
                        *self.exact.entry(core).or_default() |= bit;
                    }
                }
                (true, false) => self.globs.push((core, Glob::Suffix, bit)),
                (false, true) => self.globs.push((core, Glob::Prefix, bit)),
                (true, true) => self.globs.push((core, Glob::Contains, bit)),
            }
        }
        self.glob_min = self.globs.iter().map(|g| g.0.len()).min().unwrap_or(usize::MAX);
        if kind != Kind::Other {
            self.value_slots |= bit;
        }
        if kind == Kind::Address {
            // an address without field or label is the first address rule's
            self.address.get_or_insert(rule);
        }
        self.slots.push(Slot { rule, kind, labels: labels.iter().map(|l| l.as_bytes().to_vec()).collect() });
        Ok(())
    }

    /// `header` (a column's header, as a table or sheet shows it) names a field of some rule.
    pub fn names_field(&self, header: &[u8]) -> bool {
        self.slots_of_header(header) != 0
    }

    /// Slots of a column header, as people write headers: the key itself, or the key within
    /// the spacing, marks and notes a form adds to it (see [`header_key`]).
    fn slots_of_header(&self, header: &[u8]) -> u64 {
        let mut key = [0u8; MAX_KEY];
        match self.slots_of(header) {
            0 => header_key(header, &mut key).map_or(0, |k| self.slots_of(k)),
            m => m,
        }
    }

    /// Slots whose fields include `key` (ASCII case folded).
    fn slots_of(&self, key: &[u8]) -> u64 {
        let n = key.len();
        if n == 0 || n > MAX_KEY {
            return 0;
        }
        // most keys are no field's: a bit of (length, first and last byte) says so without a hash
        let exact = n >= self.exact_len.0 && n <= self.exact_len.1 && self.bloom_has(key);
        if !exact && n < self.glob_min {
            return 0;
        }
        let mut m = 0;
        if exact {
            m = match ShortKeys::pack(key) {
                Some(k) => self.short.get(k),
                None => {
                    let mut buf = [0u8; MAX_KEY];
                    let k = &mut buf[..n];
                    k.copy_from_slice(key);
                    k.make_ascii_lowercase();
                    self.exact.get(&k[..]).copied().unwrap_or(0)
                }
            };
        }
        for (g, how, bit) in self.globs.iter().filter(|g| g.0.len() <= n) {
            let hit = match how {
                Glob::Prefix => key[..g.len()].eq_ignore_ascii_case(g),
                Glob::Suffix => key[n - g.len()..].eq_ignore_ascii_case(g),
                Glob::Contains => key.windows(g.len()).any(|w| w.eq_ignore_ascii_case(g)),
            };
            if hit {
                m |= bit;
            }
        }
        m
    }

    fn bloom_has(&self, key: &[u8]) -> bool {
        let b = bloom_bit(key);
        self.bloom.get(b / 64).is_some_and(|w| w >> (b % 64) & 1 == 1)
    }

    /// Slots whose labels end `run` (ideographs just before a colon or space).
    fn slots_of_label(&self, run: &[u8]) -> u64 {
        let mut m = self.slots_of(run);
        for (i, s) in self.slots.iter().enumerate() {
            if s.labels.iter().any(|l| run.ends_with(l)) {
                m |= 1 << i;
            }
        }
        m
    }

    /// The columns of a header row: `header` as it came (a stream's first line, normalized here
    /// as the rows are: `，` is a comma too), or already normalized.
    fn columns(&self, header: &[u8], normalized: bool) -> Columns {
        let norm = (!normalized).then(|| super::normalize::normalize(header));
        let header = norm.as_ref().map_or(header, |n| &n.text[..]);
        let header = header.strip_prefix("\u{feff}".as_bytes()).unwrap_or(header);
        let line = header.split(|&b| b == b'\n').next().unwrap_or(&[]);
        let sep = if line.contains(&b'\t') { b'\t' } else { b',' };
        let slots: Vec<u64> = split_cells(line, sep).map(|c| self.slots_of_header(c)).collect();
        let any = slots.iter().any(|&m| m != 0);
        Columns { sep, slots, any }
    }

    /// `orig` maps a text offset to the offset in the text as given (before normalization).
    fn slots_at<'t>(&self, t: &'t [u8], key: Key<'t>, place: &Place<'_>, c: &Coords<'t>, lazy: &mut Lazy<'t>) -> u64 {
        match key {
            Key::Name(k) => self.slots_of(k),
            Key::TableCell(td) => {
                // this cell's row: its `<tr>` within reach of a stream (see ROW_MAX)
                let st = lazy.row(t, c, td);
                let Some(row) = st.tr.filter(|&r| (c.orig)(td) - (c.orig)(r) <= ROW_MAX) else { return 0 };
                // a header cell before it in its own row is its field (`<th>姓名</th><td>…`)
                if let Some(th) = st.th {
                    return self.slots_of_header(cell_text(&t[..td], th));
                }
                let col = st.tds;
                // else the header row before that row in the same table, read from the input
                let at = (c.orig)(row);
                let tables = lazy.tables.get_or_insert_with(|| TableHeads::of(c.raw));
                let text = match tables.rows.partition_point(|h| h.1 <= at).checked_sub(1) {
                    Some(i) if !tables.table_between(tables.rows[i].1, at) => tables.rows[i].2.get(col).copied(),
                    Some(_) => None,
                    None if tables.table_between(0, at) => None,
                    None => place.table_header.and_then(|h| h.get(col)).map(Vec::as_slice),
                };
                text.map_or(0, |k| self.slots_of_header(k))
            }
            Key::Label(run) => self.slots_of_label(run),
            // a unit of its own (a document's cell): its field, when the caller knows it
            Key::Cell(at) if place.field_at.is_some() => match place.field_at {
                Some(field) if lazy.line_start(t, c, at).unwrap_or(0) == at => {
                    field((c.orig)(at)).map_or(0, |k| self.slots_of_header(k))
                }
                _ => 0,
            },
            Key::Cell(at) => {
                let cols = lazy.cols.get_or_insert_with(|| match (place.header, place.at_start) {
                    (Some(h), _) => self.columns(h, false),
                    (None, true) => self.columns(&t[..t.len().min(MAX_HEADER)], true),
                    (None, false) => Columns::default(),
                });
                if !cols.any {
                    return 0;
                }
                let sep = cols.sep;
                let line = match lazy.line_start(t, c, at) {
                    Some(l) => l,
                    // the text's first line: the header row itself (no record), or a line of a
                    // stream that began before the text, known only if the text starts with it
                    None if place.line_start && !place.at_start => 0,
                    None => return 0,
                };
                // a line too long to be kept by a stream: its cells have no known column
                if (c.orig)(at) - (c.orig)(line) > ROW_MAX {
                    return 0;
                }
                let col = lazy.column(t, line, at, sep);
                lazy.cols.as_ref().and_then(|c| c.slots.get(col).copied()).unwrap_or(0)
            }
        }
    }

    /// A stream's first line is a CSV header naming a field of some rule: the stream keeps each
    /// line from its start (see [`ROW_MAX`]).
    pub fn header_has_fields(&self, header: &[u8]) -> bool {
        self.value_slots != 0 && self.columns(header, false).any
    }

    /// Some rule finds values by their field (the built-in pass should note candidates).
    pub fn wants_values(&self) -> bool {
        self.value_slots != 0
    }

    /// Find names and addresses in `t` (normalized text). `noted`: the candidates the built-in
    /// pass noted on its way (see [`super::prefilter::Marks`], [`for_each_candidate`]). `kept`:
    /// the hits whose detector worked out what their mask keeps (see [`Kept`]).
    #[allow(clippy::too_many_arguments)]
    pub fn scan<'t>(
        &self,
        t: &'t [u8],
        place: &Place<'_>,
        noted: &[usize],
        c: &Coords<'t>,
        lazy: &mut Lazy<'t>,
        out: &mut Vec<Hit>,
        kept: &mut Vec<(Hit, Kept)>,
    ) {
        if self.value_slots == 0 {
            return;
        }
        let mut resume = 0;
        let whole = place.field.map_or(0, |f| self.slots_of_header(f) & self.value_slots);
        // the whole text is the field's value: where it starts, past any whitespace
        let first = t.iter().position(|b| !b.is_ascii_whitespace()).unwrap_or(0);
        let mut each = |p: usize, house: bool| {
            if p < resume {
                return;
            }
            if house {
                // a digit and then 号, 弄, 栋, 幢 or 室: an address on its own?
                if let Some(rule) = self.address {
                    if let Some((start, end)) = standalone_address(t, p, resume.max((c.floor)(p, LOOK))) {
                        out.push(Hit { rule, start, end });
                        resume = end;
                    }
                }
                return;
            }
            // after a comma the key is a cell's column; none is a field's: nothing to look up
            if p > 0 && t[p - 1] == b',' && place.field_at.is_none() && lazy.cols.as_ref().is_some_and(|c| !c.any) {
                return;
            }
            let key = key_within(t, (c.floor)(p, LOOK), p);
            let (mask, in_field) = match key {
                _ if p == first && whole != 0 => (whole, true),
                Some(k) => (self.slots_at(t, k, place, c, lazy) & self.value_slots, !matches!(k, Key::Label(_))),
                None => (0, false),
            };
            if mask == 0 {
                return;
            }
            for (i, s) in self.slots.iter().enumerate() {
                if mask >> i & 1 == 0 {
                    continue;
                }
                let found = match s.kind {
                    Kind::Name => name_at(t, p, in_field),
                    Kind::Address => address_at(t, p),
                    Kind::Other => None,
                };
                if let Some((end, k)) = found {
                    let hit = Hit { rule: s.rule, start: p, end };
                    out.push(hit);
                    if k != Kept::Unknown {
                        kept.push((hit, k));
                    }
                    resume = end;
                    break;
                }
            }
        };
        for &v in noted {
            let (p, house) = (v >> 1, v & 1 == 1);
            let real = if house { HOUSE.at(t, p) } else { ideo_at(t, p) };
            if real {
                each(p, house);
            }
        }
    }

    /// Whether the value holding `start` stands in one of `rule`'s fields (for rules with their
    /// own detector and a `fields` list).
    #[allow(clippy::too_many_arguments)]
    pub fn in_field<'t>(
        &self,
        t: &'t [u8],
        start: usize,
        rule: u32,
        place: &Place<'_>,
        c: &Coords<'t>,
        lazy: &mut Lazy<'t>,
    ) -> bool {
        let Some(i) = self.slots.iter().position(|s| s.rule == rule) else { return false };
        // back to the start of the value: the delimiter that opens it
        let lo = start.saturating_sub(MAX_KEY);
        let mut p = start;
        while p > lo && !matches!(t[p - 1], b'"' | b'\'' | b'>' | b'=' | b':' | b',' | b'\t' | b'\n') {
            p -= 1;
        }
        if p > lo || p == 0 {
            if p == 0 && place.field.is_some_and(|f| self.slots_of_header(f) >> i & 1 == 1) {
                return true;
            }
            if let Some(k) = key_within(t, (c.floor)(p, LOOK), p) {
                return self.slots_at(t, k, place, c, lazy) >> i & 1 == 1;
            }
        }
        false
    }
}

/// Bits of the filter of exact keys: a few hundred keys leave it mostly empty.
const BLOOM_BITS: usize = 4096;

/// A key's bit in the filter of exact keys: from its length, first, second and last byte (ASCII
/// case folded).
fn bloom_bit(key: &[u8]) -> usize {
    let b = |i: usize| u64::from(key.get(i).map_or(0, u8::to_ascii_lowercase));
    let l = u64::from(key.last().map_or(0, u8::to_ascii_lowercase));
    let h = (b(0) | b(1) << 8 | l << 16 | (key.len() as u64) << 24).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    (h >> 52) as usize % BLOOM_BITS
}

fn fold(s: &[u8]) -> Vec<u8> {
    s.trim_ascii().to_ascii_lowercase()
}

/// The cells of one delimited line, unquoted and trimmed.
fn split_cells(line: &[u8], sep: u8) -> impl Iterator<Item = &[u8]> {
    let mut i = 0;
    let mut done = false;
    std::iter::from_fn(move || {
        if done {
            return None;
        }
        let start = i;
        let mut quoted = false;
        while i < line.len() && (quoted || line[i] != sep) {
            if line[i] == b'"' {
                quoted = !quoted;
            }
            i += 1;
        }
        let cell = line[start..i].trim_ascii();
        if i >= line.len() {
            done = true;
        } else {
            i += 1;
        }
        let cell = cell.strip_prefix(b"\"").and_then(|c| c.strip_suffix(b"\"")).unwrap_or(cell);
        Some(cell.trim_ascii())
    })
}

/// First byte of a CJK ideograph (U+4000–U+9FFF) in UTF-8.
#[inline]
fn is_ideo_lead(b: u8) -> bool {
    (0xE4..=0xE9).contains(&b)
}

#[inline]
fn ideo_at(t: &[u8], i: usize) -> bool {
    i + 3 <= t.len() && is_ideo_lead(t[i]) && t[i + 1] & 0xC0 == 0x80 && t[i + 2] & 0xC0 == 0x80
}

/// Call `f(p, false)` for every `p` where an ideograph starts right after a delimiter byte (or at
/// 0): where a value may start; and `f(p, true)` where one of 号, 弄, 栋, 幢, 室, 组 follows an ASCII
/// digit: where a house number may end. In order; sixteen bytes at a time (SSE2/NEON through
/// `wide`), so text without ideographs costs one pass of compares.
pub(crate) fn for_each_candidate(t: &[u8], mut f: impl FnMut(usize, bool)) {
    use wide::u8x16;
    let mut carry = 1u64; // the byte before the text counts as a delimiter
    let mut digit_carry = 0u64;
    let mut w = 0;
    while w < t.len() {
        let mut buf = [0u8; 64];
        let n = (t.len() - w).min(64);
        buf[..n].copy_from_slice(&t[w..w + n]);
        let (mut lead, mut delim, mut digit, mut house_lead) = (0u64, 0u64, 0u64, 0u64);
        for (j, c) in buf.chunks_exact(16).enumerate() {
            let mut a = [0u8; 16];
            a.copy_from_slice(c);
            let x = u8x16::from(a);
            let eq = |b: u8| x.simd_eq(u8x16::splat(b));
            let dx = x - u8x16::splat(0xE4);
            let l = dx.min(u8x16::splat(5)).simd_eq(dx);
            let d = eq(b'"') | eq(b'\'') | eq(b'>') | eq(b'=') | eq(b':') | eq(b',') | eq(b'\t') | eq(b'\n') | eq(b' ');
            let nx = x - u8x16::splat(b'0');
            let g = nx.min(u8x16::splat(9)).simd_eq(nx);
            let sh = 16 * j;
            lead |= u64::from(l.to_bitmask()) << sh;
            delim |= u64::from(d.to_bitmask()) << sh;
            digit |= u64::from(g.to_bitmask()) << sh;
            house_lead |= u64::from((eq(0xE5) | eq(0xE6) | eq(0xE7)).to_bitmask()) << sh;
        }
        if lead != 0 {
            let starts = lead & ((delim << 1) | carry);
            let house = house_lead & ((digit << 1) | digit_carry);
            let mut s = starts | house;
            while s != 0 {
                let bit = s.trailing_zeros();
                s &= s - 1;
                let p = w + bit as usize;
                if house >> bit & 1 == 1 {
                    if HOUSE.at(t, p) {
                        f(p, true);
                    }
                } else if ideo_at(t, p) {
                    f(p, false);
                }
            }
        }
        carry = delim >> 63;
        digit_carry = digit >> 63;
        w += 64;
    }
}

/// What ends a house number (or a village's group number, `张湾村3组`).
const HOUSE: Marks<6> = Marks::new(["号", "弄", "栋", "幢", "室", "组"]);

fn is_key_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.' | b'$' | b'@')
}

/// Start of the run of ideographs ending at `end` (at most `max` characters back).
fn ideo_run_back(t: &[u8], end: usize, max: usize) -> usize {
    let mut s = end;
    let mut n = 0;
    while s >= 3 && n < max && ideo_at(t, s - 3) {
        s -= 3;
        n += 1;
    }
    s
}

/// The key the value starting at `p` stands under, read no further back than `lo`.
#[inline]
fn key_within(t: &[u8], lo: usize, p: usize) -> Option<Key<'_>> {
    // `"key":"value"`, the shape of nearly every JSON value, read at once (what `key_before`
    // and `json_key` find for it, without their other cases)
    if p >= lo + 3 && t[p - 3..p] == *b"\":\"" {
        let close = p - 3;
        let from = lo.max(close.saturating_sub(MAX_KEY));
        let open = t[from..close].iter().rposition(|&b| b == b'"')? + from;
        return Some(Key::Name(&t[open + 1..close]));
    }
    key_read_back(t, lo, p)
}

/// [`key_within`] from the syntax before `p`, whatever its shape.
fn key_read_back(t: &[u8], lo: usize, p: usize) -> Option<Key<'_>> {
    match key_before(&t[lo..], p - lo)? {
        // its line is found by the scan (see `Lazy::line_start`), not within the window
        Key::Cell(at) => Some(Key::Cell(at + lo)),
        Key::TableCell(td) => Some(Key::TableCell(td + lo)),
        k => Some(k),
    }
}

/// The key the value starting at `p` stands under, from the syntax just before it.
fn key_before(t: &[u8], p: usize) -> Option<Key<'_>> {
    let mut i = p;
    while i > 0 && p - i < 4 && t[i - 1] == b' ' {
        i -= 1;
    }
    if i == 0 {
        return Some(Key::Cell(0));
    }
    let spaced = i < p;
    // pretty-printed markup: the value on a line of its own after its element's start tag
    if matches!(t[i - 1], b'\n' | b'\r' | b'\t') || spaced {
        let mut k = i;
        while k > 0 && p - k < 32 && t[k - 1].is_ascii_whitespace() {
            k -= 1;
        }
        if k > 0 && k < i && t[k - 1] == b'>' {
            return element(t, k - 1);
        }
    }
    match t[i - 1] {
        b'"' | b'\'' if !spaced => {
            let mut j = i - 1;
            while j > 0 && t[j - 1] == b' ' {
                j -= 1;
            }
            match j.checked_sub(1).map(|k| t[k]) {
                Some(b':') => json_key(t, j - 1),
                // `<input name="xm" value="…">`: the field is the element's `name`
                Some(b'=') => match word_before(t, j - 1) {
                    Some(w) if w.eq_ignore_ascii_case(b"value") => tag_name_attr(t, j - 1).map(Key::Name),
                    w => w.map(Key::Name),
                },
                Some(b',' | b'\t' | b'\n') | None => cell(t, i - 1),
                _ => None,
            }
        }
        b'>' if !spaced => element(t, i - 1),
        b'=' => word_before(t, i - 1).map(Key::Name),
        b':' => {
            let c = i - 1;
            if c > 0 && t[c - 1] == b'"' {
                return json_key(t, c);
            }
            if c >= 3 && ideo_at(t, c - 3) {
                let s = ideo_run_back(t, c, 8);
                return Some(Key::Label(&t[s..c]));
            }
            word_before(t, c).map(Key::Name)
        }
        // `, ` separates cells too
        b',' | b'\t' => cell(t, i),
        b'\n' if !spaced => {
            let before = &t[..i];
            if before.ends_with(b"\r\n\r\n") || before.ends_with(b"\n\n") {
                // a multipart body, or a CSV row after a blank line
                multipart_name(t, i).map(Key::Name).or_else(|| cell(t, i))
            } else {
                cell(t, i)
            }
        }
        _ if spaced && i >= 3 && ideo_at(t, i - 3) => Some(Key::Label(&t[ideo_run_back(t, i, 8)..i])),
        _ => None,
    }
}

/// The `name="…"` of the start tag holding the attribute whose `=` is at `eq`.
fn tag_name_attr(t: &[u8], eq: usize) -> Option<&[u8]> {
    let lo = eq.saturating_sub(256);
    let lt = memchr::memrchr(b'<', &t[lo..eq])? + lo;
    let tag = &t[lt..eq];
    let at =
        memchr::memmem::find_iter(tag, b"name=").find(|&a| a == 0 || matches!(tag[a - 1], b' ' | b'\t' | b'\n'))?;
    let v = &tag[at + 5..];
    let (q, v) = (*v.first()?, &v[1..]);
    if q != b'"' && q != b'\'' {
        return None;
    }
    memchr::memchr(q, v).map(|e| &v[..e])
}

/// `"key" :` with the colon at `colon`.
fn json_key(t: &[u8], colon: usize) -> Option<Key<'_>> {
    let mut j = colon;
    while j > 0 && t[j - 1] == b' ' {
        j -= 1;
    }
    let close = j.checked_sub(1).filter(|&c| t[c] == b'"')?;
    // keys are short: a plain loop back beats a vector search's setup
    let lo = close.saturating_sub(MAX_KEY);
    let open = t[lo..close].iter().rposition(|&b| b == b'"')? + lo;
    Some(Key::Name(&t[open + 1..close]))
}

/// The ASCII word (or ideographs) just before `end` (`key=`, `key:`).
fn word_before(t: &[u8], end: usize) -> Option<&[u8]> {
    let mut j = end;
    while j > 0 && end - j < MAX_KEY && is_key_byte(t[j - 1]) {
        j -= 1;
    }
    if j == end {
        let s = ideo_run_back(t, end, 8);
        return (s < end).then(|| &t[s..end]);
    }
    Some(&t[j..end])
}

/// The element whose start tag ends with the `>` at `gt`.
fn element(t: &[u8], gt: usize) -> Option<Key<'_>> {
    let lo = gt.saturating_sub(256);
    let lt = memchr::memrchr(b'<', &t[lo..gt])? + lo;
    let tag = &t[lt + 1..gt];
    let end = tag.iter().position(|&b| matches!(b, b' ' | b'\t' | b'\n' | b'/' | b'\r')).unwrap_or(tag.len());
    let name = &tag[..end];
    if name.is_empty() || !name[0].is_ascii_alphabetic() && name[0] < 0x80 {
        return None;
    }
    if name.eq_ignore_ascii_case(b"td") {
        return Some(Key::TableCell(lt));
    }
    // a namespace prefix is not part of the field's name
    let local = name.iter().rposition(|&b| b == b':').map_or(name, |c| &name[c + 1..]);
    Some(Key::Name(local))
}

/// Where the last HTML row (`<tr`) in `h` starts.
pub(crate) fn last_row_start(h: &[u8]) -> Option<usize> {
    last_tag(h, b"<tr")
}

/// The last `tag` (`<tr`, lower case) in `h`, either case, followed by `>` or a space: read from
/// the end, so it costs the distance to it.
fn last_tag(h: &[u8], tag: &[u8]) -> Option<usize> {
    let upper = tag.to_ascii_uppercase();
    let mut end = h.len();
    loop {
        let a = memchr::memmem::rfind(&h[..end], tag);
        let b = memchr::memmem::rfind(&h[..end], &upper);
        let i = a.max(b)?;
        if h.get(i + tag.len()).is_some_and(|&b| matches!(b, b'>' | b' ' | b'\t' | b'\n' | b'\r')) {
            return Some(i);
        }
        end = i;
    }
}

/// Where `tag` (`<tr`, lower case) occurs in `h`, either case, followed by `>` or a space.
fn tags<'a>(h: &'a [u8], tag: &'a [u8]) -> impl Iterator<Item = usize> + 'a {
    let upper = tag.to_ascii_uppercase();
    let mut all: Vec<usize> = memchr::memmem::find_iter(h, tag).chain(memchr::memmem::find_iter(h, &upper)).collect();
    all.sort_unstable();
    all.into_iter()
        .filter(move |&i| h.get(i + tag.len()).is_some_and(|&b| matches!(b, b'>' | b' ' | b'\t' | b'\n' | b'\r')))
}

/// What the released input `h` says about the HTML table the rows after it belong to: the cells
/// of its last header row (`Some(Some(…))`), a table begun since the last header row, so no header
/// (`Some(None)`), or nothing (`None`, no table markup). A stream keeps it for the rows to come.
pub(crate) fn table_header_after(h: &[u8]) -> Option<Option<Vec<Vec<u8>>>> {
    let has = |tag: &[u8]| {
        memchr::memmem::find(h, tag).is_some() || memchr::memmem::find(h, &tag.to_ascii_uppercase()).is_some()
    };
    // no markup at all (most bodies): nothing to read
    if memchr::memchr(b'<', h).is_none() || (!has(b"<th") && !has(b"<table")) {
        return None;
    }
    let t = TableHeads::of(h);
    match t.rows.last() {
        Some(r) if !t.table_between(r.1, h.len()) => Some(Some(r.2.iter().map(|c| c.to_vec()).collect())),
        _ if !t.starts.is_empty() => Some(None),
        _ => None,
    }
}

/// The header rows of the HTML tables in `h` (the input as given), in order: each `<tr>` … `</tr>`
/// of at most [`LOOK`] bytes that holds `<th>` cells, and the text of each cell (its first text,
/// inside any inline markup).
fn table_headers(h: &[u8]) -> Vec<HeaderRow<'_>> {
    let mut rows = Vec::new();
    for start in tags(h, b"<tr") {
        let rest = &h[start..h.len().min(start + LOOK)];
        let close = [b"</tr".as_slice(), b"</TR".as_slice()].iter().filter_map(|c| memchr::memmem::find(rest, c)).min();
        let Some(close) = close else { continue };
        let row = &rest[..close];
        let cells: Vec<&[u8]> = tags(row, b"<th").map(|th| cell_text(row, th)).collect();
        if !cells.is_empty() {
            rows.push((start, start + close, cells));
        }
    }
    rows
}

/// The text of the cell whose start tag begins at `at`: past the tag and any inline tags.
fn cell_text(t: &[u8], at: usize) -> &[u8] {
    let mut i = at;
    loop {
        let Some(gt) = memchr::memchr(b'>', &t[i..]).map(|g| i + g + 1) else { return &t[0..0] };
        let end = memchr::memchr(b'<', &t[gt..]).map_or(t.len(), |l| gt + l);
        if !t[gt..end].trim_ascii().is_empty() || end == t.len() || t[end..].starts_with(b"</") {
            return t[gt..end].trim_ascii();
        }
        i = end;
    }
}

/// A cell starting at `p` (its line is found by the scan, in order: see `Lazy::line_start`).
fn cell(_t: &[u8], p: usize) -> Option<Key<'_>> {
    Some(Key::Cell(p))
}

/// The `name="…"` of the multipart part whose body starts at `body`.
fn multipart_name(t: &[u8], body: usize) -> Option<&[u8]> {
    // the part's header lines, read back from the blank line: each `Name: value`, up to the
    // boundary line (`--…`); the field is the `name` of its Content-Disposition
    let head = t[..body].strip_suffix(b"\r\n\r\n").or_else(|| t[..body].strip_suffix(b"\n\n"))?;
    for line in head.rsplit(|&b| b == b'\n').take(8) {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.starts_with(b"--") {
            return None;
        }
        let colon = memchr::memchr(b':', line)?;
        let name = &line[..colon];
        if name.is_empty() || !name.iter().all(|b| b.is_ascii_alphanumeric() || *b == b'-') {
            // no header line: no header block
            return None;
        }
        if !name.eq_ignore_ascii_case(b"content-disposition") {
            continue;
        }
        let at = memchr::memmem::find_iter(line, b"name=\"").find(|&at| at < 4 || &line[at - 4..at] != b"file")?;
        let rest = &line[at + 6..];
        return memchr::memchr(b'"', rest).map(|end| &rest[..end]);
    }
    None
}

// ---------------------------------------------------------------------------------------------
// Names

/// Single surnames as a bitmap over U+4E00–U+9FFF (2.6 KB, one lookup), compound ones sorted.
struct Surnames {
    single: Vec<u64>,
    compound: Vec<[char; 2]>,
}

const CJK_BASE: u32 = 0x4E00;

impl Surnames {
    fn is_single(&self, c: char) -> bool {
        let Some(i) = (c as u32).checked_sub(CJK_BASE) else { return false };
        self.single.get(i as usize / 64).is_some_and(|w| w >> (i % 64) & 1 == 1)
    }
}

fn surnames() -> &'static Surnames {
    static S: OnceLock<Surnames> = OnceLock::new();
    S.get_or_init(|| {
        let mut s = Surnames { single: vec![0; (0xA000 - CJK_BASE as usize).div_ceil(64)], compound: Vec::new() };
        for line in include_str!("../data/surnames.txt").lines().filter(|l| !l.starts_with('#')) {
            let cs: Vec<char> = line.trim().chars().collect();
            match cs[..] {
                [c] => {
                    if let Some(i) = (c as u32).checked_sub(CJK_BASE).map(|i| i as usize) {
                        if let Some(w) = s.single.get_mut(i / 64) {
                            *w |= 1 << (i % 64);
                        }
                    }
                }
                [a, b] => s.compound.push([a, b]),
                _ => {}
            }
        }
        s.compound.sort_unstable();
        s
    })
}

/// Bytes of the surname `v` begins with (compound first), 0 when it begins with none.
pub fn surname_len(v: &[u8]) -> usize {
    // surnames are ideographs: three bytes each in UTF-8
    let ch = |i: usize| -> Option<char> {
        let b = v.get(i..i + 3)?;
        if !ideo_at(b, 0) {
            return None;
        }
        char::from_u32((u32::from(b[0] & 0x0F) << 12) | (u32::from(b[1] & 0x3F) << 6) | u32::from(b[2] & 0x3F))
    };
    let Some(a) = ch(0) else { return 0 };
    let names = surnames();
    if let Some(b) = ch(3) {
        if names.compound.binary_search(&[a, b]).is_ok() {
            return 6;
        }
    }
    if names.is_single(a) { 3 } else { 0 }
}

/// What ends a place, an organisation or an amount, not a person: a value after a name label in
/// running text that ends so is not taken for a name.
const NOT_NAME_ENDINGS: &str = "省市区县路街道镇乡村元号局厅处科室部所站院校司队";
/// What ends a place name: not a name anywhere.
const PLACE_ENDINGS: &str = "省市区县路街镇乡村";
/// Words that begin with a surname character and are no names: places, brands, common words. A
/// value that is one of them (exactly) is not taken for a name, in a field or after a label.
const NOT_NAMES: &[&str] = &[
    "张家界",
    "高新",
    "高新区",
    "黄河",
    "黄河路",
    "万元",
    "周一",
    "周二",
    "周三",
    "周四",
    "周五",
    "周六",
    "周日",
    "周末",
    "未知",
    "不详",
    "本人",
    "国家",
    "国家秘密",
    "王府井",
    "常州",
    "高速",
    "石家庄",
    "金额",
    "时间",
    "明天",
    "今天",
    "林业",
    "马上",
    "江苏",
    "安全",
    "平安",
    "华为",
    "方正",
    "金山",
    "万科",
    "联想",
    "海尔",
    "格力",
    "中国",
    "中华",
    "江南",
    "东方",
    "温馨",
    "和平",
    "成功",
    "程序",
    "文件",
    "全部",
    "于是",
    "高兴",
    "夏天",
    "宋体",
    "钱包",
    "李子",
    "白天",
    "田野",
    "石头",
];

/// One of [`NOT_NAMES`]: a binary search (every name candidate asks, a scan of the list compared
/// each word in turn).
fn not_name(v: &[u8]) -> bool {
    static SORTED: OnceLock<Vec<&'static str>> = OnceLock::new();
    SORTED
        .get_or_init(|| {
            let mut v = NOT_NAMES.to_vec();
            v.sort_unstable();
            v
        })
        .binary_search_by(|w| w.as_bytes().cmp(v))
        .is_ok()
}

/// Whether `v` ends with one of the ideographs of `chars` (each three bytes in UTF-8), compared
/// as bytes.
fn ends_with_one_of(v: &[u8], chars: &str) -> bool {
    chars.as_bytes().chunks_exact(3).any(|c| v.ends_with(c))
}

/// End of the name starting at `p`, if the run of ideographs there is one. Not `in_field`: it stands
/// after a label in running text, where decoy words are refused.
fn name_at(t: &[u8], p: usize, in_field: bool) -> Option<(usize, Kept)> {
    let mut i = p;
    let mut n = 0;
    let mut dots = 0;
    let mut part = 0;
    loop {
        if ideo_at(t, i) {
            i += 3;
            n += 1;
            part += 1;
        } else if part > 0 && dots < 3 && (t[i..].starts_with("·".as_bytes()) || t[i..].starts_with("•".as_bytes()))
        {
            let len = if t[i] == 0xC2 { 2 } else { 3 };
            if !ideo_at(t, i + len) {
                break;
            }
            i += len;
            dots += 1;
            part = 0;
        } else {
            break;
        }
        if n > 16 {
            return None;
        }
    }
    // an ASCII letter or digit right after: a code, not a name; a `*`: a value masked already
    if t.get(i).is_some_and(|&b| b.is_ascii_alphanumeric() || b == b'*') || (p > 0 && t[p - 1] == b'*') {
        return None;
    }
    let v = &t[p..i];
    if dots > 0 {
        return (n >= 2).then_some((i, Kept::Unknown));
    }
    let surname = surname_len(v);
    let sl = surname / 3;
    if sl == 0 || !(2..=4).contains(&n) || !(1..=3).contains(&(n - sl)) {
        return None;
    }
    // a place or a common word is no name, even in a name field (`郑州市`, `黄山`, `华为`)
    if ends_with_one_of(v, PLACE_ENDINGS) || not_name(v) || divisions().at(v).is_some_and(|d| d.0 == v.len()) {
        return None;
    }
    if !in_field && ends_with_one_of(v, NOT_NAME_ENDINGS) {
        return None;
    }
    Some((i, u16::try_from(surname).map_or(Kept::Unknown, Kept::Surname)))
}

// ---------------------------------------------------------------------------------------------
// Addresses

/// The division names (GB/T 2260, full and short forms) by their first two characters (every
/// name has at least two). A match at a position is a bit test, and for the few positions that
/// pass it a probe of a small open-addressed table and a comparison of a few bytes: the whole
/// table is a few dozen KiB in three arrays (it is read for every address, between a
/// compressor's and a decompressor's tables when a document is rewritten; scattered across a
/// hash map of boxed names it cost three cache misses a lookup).
struct Divisions {
    /// open addressing by [`slot_hash`]: the first six bytes (bit 63 set: a used slot) and, in
    /// `groups`, the names beginning with them
    keys: Box<[u64]>,
    /// per slot: the first of its names in `names`, and how many there are
    groups: Box<[(u32, u32)]>,
    /// every name's bytes after its first six (`tails`: start, length) and level (0 province,
    /// 1 prefecture, 2 county); a slot's names are together, longest first
    names: Vec<(u32, u8, u8)>,
    tails: Vec<u8>,
    /// a 65,536-bit filter of the names' first two characters: most positions need no probe
    first: Box<[u64; 1024]>,
}

/// The filter bit of a name's first two characters (their UTF-8 bytes, as a number).
fn first_bit(k: u64) -> usize {
    (k.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 48) as usize
}

/// The first slot probed for a name's first two characters, in a table of `1 << bits` slots.
fn slot_hash(k: u64, bits: u32) -> usize {
    (k.wrapping_mul(0xD6E8_FEB8_6659_FD93) >> (64 - bits)) as usize
}

/// A name's first six bytes as a number, bit 63 set.
fn prefix_key(v: &[u8]) -> Option<u64> {
    let k: [u8; 6] = v.get(..6)?.try_into().ok()?;
    Some(u64::from_le_bytes([k[0], k[1], k[2], k[3], k[4], k[5], 0, 0x80]))
}

impl Divisions {
    /// The longest division name at the start of `v`: its length and level.
    fn at(&self, v: &[u8]) -> Option<(usize, u8)> {
        let key = prefix_key(v)?;
        let bit = first_bit(key);
        if self.first[bit / 64] >> (bit % 64) & 1 == 0 {
            return None;
        }
        let mask = self.keys.len() - 1;
        let mut i = slot_hash(key, self.keys.len().trailing_zeros());
        loop {
            match self.keys[i] {
                k if k == key => break,
                0 => return None,
                _ => i = (i + 1) & mask,
            }
        }
        let (first, n) = self.groups[i];
        let rest = &v[6..];
        self.names[first as usize..(first + n) as usize].iter().find_map(|&(at, len, level)| {
            let tail = &self.tails[at as usize..at as usize + usize::from(len)];
            // names are short: compared in line rather than by a `memcmp` call
            let same = rest.len() >= tail.len() && tail.iter().zip(rest).all(|(a, b)| a == b);
            same.then_some((6 + tail.len(), level))
        })
    }
}

fn divisions() -> &'static Divisions {
    static D: OnceLock<Divisions> = OnceLock::new();
    D.get_or_init(|| {
        let mut names: Vec<(String, u8)> = Vec::new();
        for (code, name) in gbt2260() {
            let level = if code.ends_with("0000") {
                0
            } else if code.ends_with("00") {
                1
            } else {
                2
            };
            names.push((name.to_string(), level));
            if let Some(short) = short_form(code, name) {
                names.push((short, level));
            }
        }
        names.sort();
        names.dedup_by(|a, b| a.0 == b.0);
        // by their first six bytes, longest first
        names.retain(|n| n.0.len() >= 6);
        names.sort_by(|a, b| a.0.as_bytes()[..6].cmp(&b.0.as_bytes()[..6]).then(b.0.len().cmp(&a.0.len())));
        let groups_n = names.chunk_by(|a, b| a.0.as_bytes()[..6] == b.0.as_bytes()[..6]).count();
        // at most half full: a probe finds its slot or an empty one within a step or two
        let bits = (groups_n * 2).next_power_of_two().trailing_zeros();
        let mut d = Divisions {
            keys: vec![0; 1 << bits].into_boxed_slice(),
            groups: vec![(0, 0); 1 << bits].into_boxed_slice(),
            names: Vec::with_capacity(names.len()),
            tails: Vec::new(),
            first: Box::new([0u64; 1024]),
        };
        for group in names.chunk_by(|a, b| a.0.as_bytes()[..6] == b.0.as_bytes()[..6]) {
            let Some(key) = prefix_key(group[0].0.as_bytes()) else { continue };
            let mut i = slot_hash(key, bits);
            while d.keys[i] != 0 {
                i = (i + 1) & ((1 << bits) - 1);
            }
            d.keys[i] = key;
            d.groups[i] = (d.names.len() as u32, group.len() as u32);
            for (n, level) in group {
                let tail = &n.as_bytes()[6..];
                // names are a few dozen bytes at most
                d.names.push((d.tails.len() as u32, tail.len() as u8, *level));
                d.tails.extend_from_slice(tail);
            }
            let bit = first_bit(key);
            d.first[bit / 64] |= 1 << (bit % 64);
        }
        d
    })
}

/// The GB/T 2260 divisions: (six-digit code, name), in code order.
pub(crate) fn gbt2260() -> impl Iterator<Item = (&'static str, &'static str)> {
    include_str!("../data/gbt2260.tsv").lines().filter(|l| !l.starts_with('#')).filter_map(|l| l.split_once('\t'))
}

/// The common short form of a province or prefecture (`河南`, `郑州`, `广西`, `延边`); counties
/// have none (a two-character county name alone is too often a word).
fn short_form(code: &str, name: &str) -> Option<String> {
    let county = !code.ends_with("00");
    if county {
        return None;
    }
    let cs: Vec<char> = name.chars().collect();
    let strip = |suffix: &str| name.strip_suffix(suffix).map(str::to_string);
    let short = if name.ends_with("自治区") || name.ends_with("自治州") || name.ends_with("特别行政区") {
        // 广西壮族自治区 → 广西, 内蒙古自治区 → 内蒙古, 延边朝鲜族自治州 → 延边
        Some(if name.starts_with("内蒙古") { "内蒙古".to_string() } else { cs[..2].iter().collect() })
    } else {
        strip("省").or_else(|| strip("市")).or_else(|| strip("地区")).or_else(|| strip("盟"))
    };
    short.filter(|s| s.chars().count() >= 2)
}

/// Bytes of the administrative divisions `v` begins with, down to the county or district
/// (`河南省郑州市金水区`, `郑州金水区`); 0 when it begins with none.
pub fn division_len(v: &[u8]) -> usize {
    let d = divisions();
    let mut at = 0;
    let mut next = 0; // the level the next division must be at least
    while next <= 2 {
        match d.at(&v[at..]) {
            // province, then prefecture, then county: a name below the county (a street named
            // after a place, `中山路`) is the street's
            Some((n, level)) if level >= next => {
                at += n;
                next = level + 1;
            }
            _ => break,
        }
    }
    at
}

/// Words of one or two ideographs looked for a character at a time: a character whose last byte
/// no word's first character ends with is passed over at the cost of one bit test, the others
/// are compared as numbers.
struct Marks<const N: usize> {
    words: [&'static str; N],
    /// each word's first character as a number (its three UTF-8 bytes)
    firsts: [u32; N],
    /// bit `b & 63` for the last byte `b` of each word's first character
    last: u64,
}

const fn char_code(b: &[u8]) -> u32 {
    (b[0] as u32) << 16 | (b[1] as u32) << 8 | b[2] as u32
}

impl<const N: usize> Marks<N> {
    const fn new(words: [&'static str; N]) -> Marks<N> {
        let mut last = 0u64;
        let mut firsts = [0u32; N];
        let mut i = 0;
        while i < N {
            let b = words[i].as_bytes();
            last |= 1 << (b[2] & 63);
            firsts[i] = char_code(b);
            i += 1;
        }
        Marks { words, firsts, last }
    }

    /// The first of the words (in their order) that starts at `p`: its first character is compared
    /// as a number, the rest only where that matches.
    #[inline]
    fn word_at(&self, t: &[u8], p: usize) -> Option<&'static str> {
        let c = char_code(t.get(p..p + 3)?);
        self.words.iter().zip(&self.firsts).find(|&(w, &f)| f == c && t[p..].starts_with(w.as_bytes())).map(|(w, _)| *w)
    }

    #[inline]
    fn at(&self, t: &[u8], p: usize) -> bool {
        self.word_at(t, p).is_some()
    }
}

/// What marks the street or house part of an address.
const STREET_MARKS: Marks<17> = Marks::new([
    "路", "街", "道", "巷", "号", "栋", "幢", "单元", "室", "村", "组", "弄", "里", "楼", "小区", "苑", "胡同",
]);

/// Whether `v` holds one of `marks`, read a character at a time.
fn has_mark<const N: usize>(v: &[u8], marks: &Marks<N>) -> bool {
    let mut i = 0;
    while i + 3 <= v.len() {
        if !ideo_at(v, i) {
            i += 1;
            continue;
        }
        if marks.last >> (v[i + 2] & 63) & 1 != 0 && marks.at(v, i) {
            return true;
        }
        i += 3;
    }
    false
}

/// Street parts a standalone address must have before its house number.
const STREETS: Marks<12> = Marks::new(["路", "街", "道", "巷", "村", "组", "弄", "里", "胡同", "小区", "苑", "社区"]);

/// What a village's part of an address holds before a group number.
const VILLAGES: Marks<2> = Marks::new(["村", "社区"]);

#[inline]
fn is_address_byte(t: &[u8], i: usize) -> usize {
    if ideo_at(t, i) {
        3
    } else if t[i].is_ascii_alphanumeric() || matches!(t[i], b'-' | b'#') {
        1
    } else {
        0
    }
}

/// End of the address starting at `p` in an address field or after an address label, and its
/// divisions' length.
fn address_at(t: &[u8], p: usize) -> Option<(usize, Kept)> {
    let mut i = p;
    let mut n = 0;
    let mut run = 0; // ASCII letters and digits in a row
    while i < t.len() && n < MAX_ADDRESS {
        let b = t[i];
        if b.is_ascii_alphanumeric() {
            run += 1;
            if run > MAX_NUMBER {
                // an ID or phone number after the address is a value of its own
                i -= run - 1;
                break;
            }
            i += 1;
        } else {
            // an ideograph, or `-`, `#`, and `(` `)` inside an address, e.g. `（东区）`
            match b {
                0xE4..=0xE9 if ideo_at(t, i) => i += 3,
                b'-' | b'#' | b'(' | b')' => i += 1,
                _ => break,
            }
            run = 0;
        }
        n += 1;
    }
    // an ASCII run that goes on into a word (`…85号chen_jing@…`) is that word's, and trailing
    // letters are no part of a house number
    let mut run = i;
    while run > p && t[run - 1].is_ascii_alphanumeric() {
        run -= 1;
    }
    if run < i && t.get(i).is_some_and(|&b| matches!(b, b'_' | b'@' | b'.')) {
        i = run;
    }
    while i > p && (t[i - 1].is_ascii_alphabetic() || matches!(t[i - 1], b'(' | b'-' | b'#')) {
        i -= 1;
    }
    let v = &t[p..i];
    if n < 4 {
        return None;
    }
    let dl = division_len(v);
    let street = has_mark(&v[dl..], &STREET_MARKS);
    (street || (dl > 0 && v.len() - dl >= 6)).then_some((i, u16::try_from(dl).map_or(Kept::Unknown, Kept::Division)))
}

/// An address without a field or label around the house number at `a0`: a division chain, a
/// street part and the number (`河南省郑州市金水区文化路85号…`). Looks back no further than `floor`.
fn standalone_address(t: &[u8], a0: usize, floor: usize) -> Option<(usize, usize)> {
    // back over the address characters before the house number
    let mut back = a0;
    let mut n = 0;
    while back > floor && n < MAX_ADDRESS {
        let len = if back >= 3 && ideo_at(t, back - 3) {
            3
        } else if is_address_byte(t, back - 1) == 1 {
            1
        } else {
            0
        };
        if len == 0 {
            break;
        }
        back -= len;
        n += 1;
    }
    // no street part at all: no address (checked before the divisions, which cost more)
    if !has_mark(&t[back..a0], &STREETS) {
        return None;
    }
    // the last division before the house number, then the divisions that end where it starts
    let mut s = usize::MAX;
    let mut first_end = 0;
    let mut chain: [(usize, usize); 8] = [(0, 0); 8];
    let mut k = 0;
    // leftmost-longest, character by character
    let d = divisions();
    let mut i = back;
    while i < a0 {
        match d.at(&t[i..a0]) {
            Some((n, _)) => {
                chain[k % 8] = (i, i + n);
                k += 1;
                i += n;
            }
            None => i += if ideo_at(t, i) { 3 } else { 1 },
        }
    }
    if k == 0 {
        return None;
    }
    for j in (k.saturating_sub(8)..k).rev() {
        let (ds, de) = chain[j % 8];
        if s == usize::MAX {
            (s, first_end) = (ds, de);
        } else if de == s {
            s = ds;
        }
    }
    // a street part between the divisions and the number
    if !ideo_at(t, first_end) || !has_mark(&t[first_end..a0], &STREETS) {
        return None;
    }
    // a group number (`3组`) is a village's: the street part names the village
    if t[a0..].starts_with("组".as_bytes()) && !has_mark(&t[first_end..a0], &VILLAGES) {
        return None;
    }
    let a1 = a0 + 3;
    Some((s, house_end(t, a1)))
}

/// Past the first house number: further numbered parts (`3号楼2单元1501室`).
fn house_end(t: &[u8], mut i: usize) -> usize {
    const UNITS: Marks<12> = Marks::new(["号楼", "号院", "号", "栋", "幢", "单元", "层", "楼", "室", "户", "座", "弄"]);
    if t[i..].starts_with("院".as_bytes()) {
        i += 3;
    }
    // a few numbered parts at most (building, unit, floor, room): an address stays short
    for _ in 0..4 {
        let mut j = i;
        while j < t.len() && j - i <= MAX_NUMBER && (t[j].is_ascii_alphanumeric() || t[j] == b'-') {
            j += 1;
        }
        if j == i || j - i > MAX_NUMBER {
            return i;
        }
        match UNITS.word_at(t, j) {
            Some(u) => i = j + u.len(),
            // a bare number after a unit (`2单元1501`)
            None if t[i..j].iter().all(u8::is_ascii_digit)
                && t[j..].first().is_none_or(|&b| b != b'_' && b != b'.' && b != b'@') =>
            {
                return j;
            }
            None => return i,
        }
    }
    i
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields() -> Fields {
        let mut f = Fields::default();
        let s = |v: &[&str]| v.iter().map(|x| (*x).to_string()).collect::<Vec<_>>();
        f.add(0, Kind::Name, &s(&["xm", "name", "姓名", "*_name"]), &s(&["姓名", "联系人"])).unwrap();
        f.add(1, Kind::Address, &s(&["zz", "address", "地址"]), &s(&["地址", "住址"])).unwrap();
        f
    }

    /// A header as forms write one names the field of the key within it; a key that only
    /// contains a field's does not.
    #[test]
    fn headers_in_a_forms_dress() {
        let f = fields();
        for h in [
            "姓 名",
            "姓　名",
            " 姓名 ",
            "*姓名",
            "姓名*",
            "＊姓名",
            "姓名（必填）",
            "姓名(中文)",
            "姓名【必填】",
            "姓名：",
            "* 姓　名（必填）：",
            "Name (required)",
            "address:",
            "地 址",
        ] {
            assert!(f.names_field(h.as_bytes()), "{h}");
        }
        for h in ["姓名地址", "（姓名）", "法人姓名称", "name x", "姓名x", "*", "（）", "", "申请人(姓名"]
        {
            assert!(!f.names_field(h.as_bytes()), "{h}");
        }
        let mut buf = [0u8; MAX_KEY];
        assert_eq!(header_key("姓名".as_bytes(), &mut buf), None);
        assert_eq!(header_key(b"xm", &mut buf), None);
        assert_eq!(header_key("* 姓　名（必填）：".as_bytes(), &mut buf), Some("姓名".as_bytes()));
        assert_eq!(header_key(" 姓名".repeat(40).as_bytes(), &mut buf), None, "longer than any key");
        // in a CSV header row and an HTML table header, as in a sheet
        let t = "姓 名（必填）,备注\n张伟,张伟\n".as_bytes();
        let cols = f.columns(t, true);
        assert_eq!(cols.slots, [1, 0]);
    }

    /// Keys of every length, short and long, in one table that grows as they come: each is
    /// found in any ASCII case with its own rules' bits, and no near miss is.
    #[test]
    fn field_keys_of_every_length() {
        let mut f = Fields::default();
        let keys: Vec<String> =
            (1..=MAX_KEY).map(|n| (0..n).map(|i| (b'a' + ((i * 7 + n) % 26) as u8) as char).collect()).collect();
        let bit = |i: usize| 1u64 << (i % 8);
        for slot in 0..8 {
            let mine: Vec<String> =
                keys.iter().enumerate().filter(|(i, _)| i % 8 == slot).map(|k| k.1.clone()).collect();
            f.add(slot as u32, Kind::Other, &mine, &[]).unwrap();
        }
        f.add(8, Kind::Other, &["姓名".to_string(), "Ab".to_string()], &[]).unwrap();
        let want = |k: &[u8]| {
            keys.iter().position(|x| x.as_bytes().eq_ignore_ascii_case(k)).map_or(0, bit)
                | if k == "姓名".as_bytes() || k.eq_ignore_ascii_case(b"ab") { 1 << 8 } else { 0 }
        };
        for (i, k) in keys.iter().enumerate() {
            assert_eq!(f.slots_of(k.as_bytes()), bit(i), "{k}");
            assert_eq!(f.slots_of(k.to_ascii_uppercase().as_bytes()), bit(i), "{k}");
            let mut near = k.clone().into_bytes();
            near[0] = b'0';
            assert_eq!(f.slots_of(&near), 0, "{k}");
            let longer = format!("{k}z");
            assert_eq!(f.slots_of(longer.as_bytes()), want(longer.as_bytes()), "{longer}");
        }
        // keys alike in their first eight bytes and in what the filter reads, half of them a field's
        let alike: Vec<String> = (0..400).map(|i| format!("customer{i:03}x")).collect();
        let even: Vec<String> = alike.iter().step_by(2).cloned().collect();
        f.add(9, Kind::Other, &even, &[]).unwrap();
        for (i, k) in alike.iter().enumerate() {
            assert_eq!(f.slots_of(k.as_bytes()), if i % 2 == 0 { 1 << 9 } else { 0 }, "{k}");
        }
        assert_eq!(f.slots_of("姓名".as_bytes()), 1 << 8);
        assert_eq!(f.slots_of(b"aB"), 1 << 8);
        assert_eq!(f.slots_of("姓".as_bytes()), 0);
    }

    /// The JSON shortcut finds the key the general reading finds, at every value position and
    /// every floor: keys empty, spaced, escaped, too long, or cut by the floor.
    #[test]
    fn json_keys_read_at_once_as_in_general() {
        let long = "k".repeat(MAX_KEY + 3);
        let text = format!(
            r#"{{"xm":"张伟","":"李四", "zz" :"郑州","a\"b":"王五",{{"{long}":"赵六","{}":"钱七"}}":"孙八"}}"#,
            "j".repeat(MAX_KEY)
        );
        let t = text.as_bytes();
        let mut shortcut = 0;
        for p in 0..=t.len() {
            for lo in 0..=p {
                assert_eq!(key_within(t, lo, p), key_read_back(t, lo, p), "value at {p}, floor {lo}");
                shortcut += usize::from(p >= lo + 3 && t[p - 3..p] == *b"\":\"");
            }
        }
        assert!(shortcut > 100);
    }

    /// The endings are compared three bytes at a time: each must be one ideograph of three.
    #[test]
    fn name_endings_are_three_byte_ideographs() {
        for chars in [PLACE_ENDINGS, NOT_NAME_ENDINGS] {
            assert!(chars.chars().all(|c| c.len_utf8() == 3 && ideo_at(c.to_string().as_bytes(), 0)), "{chars}");
        }
        assert!(ends_with_one_of("郑州市".as_bytes(), PLACE_ENDINGS));
        assert!(!ends_with_one_of("张伟".as_bytes(), NOT_NAME_ENDINGS));
    }

    fn found(text: &str) -> Vec<(u32, String)> {
        let mut out = Vec::new();
        let mut noted = Vec::new();
        for_each_candidate(text.as_bytes(), |p, h| noted.push(p << 1 | usize::from(h)));
        let c = Coords { raw: text.as_bytes(), orig: &|p| p, floor: &|p, d| p.saturating_sub(d) };
        fields().scan(text.as_bytes(), &Place::start(), &noted, &c, &mut Lazy::default(), &mut out, &mut Vec::new());
        out.iter().map(|h| (h.rule, text[h.start..h.end].to_string())).collect()
    }

    #[test]
    fn names_by_key_and_label() {
        assert_eq!(found(r#"{"xm":"张伟","age":3}"#), [(0, "张伟".into())]);
        assert_eq!(found(r#"{"user_name" : "欧阳娜娜"}"#), [(0, "欧阳娜娜".into())]);
        assert_eq!(found("<NAME>李娜</NAME>"), [(0, "李娜".into())]);
        assert_eq!(found("<p name=\"王芳\"/>"), [(0, "王芳".into())]);
        assert_eq!(found("xm=王芳&age=3"), [(0, "王芳".into())]);
        assert_eq!(found("本案联系人:王芳,电话"), [(0, "王芳".into())]);
        assert_eq!(found("姓名 阿依古丽·买买提"), [(0, "阿依古丽·买买提".into())]);
        assert_eq!(found("xm,age\n张伟,3\n李四,4"), [(0, "张伟".into()), (0, "李四".into())]);
        assert_eq!(found("id\txm\n1\t张伟\n"), [(0, "张伟".into())]);
        assert!(found(r#"{"city":"张家界"}"#).is_empty());
        assert!(found("联系人:张家界旅游局").is_empty());
        assert!(found("联系人:高新区").is_empty());
        assert!(found("周一到张家界").is_empty());
    }

    /// The candidates the built-in pass notes (AVX2 and portable) are the ones this pass finds alone.
    #[test]
    fn noted_candidates_equal_the_own_pass() {
        use crate::prefilter::{Marks, Portable, for_each_hot_run};
        let alphabet: Vec<&str> =
            vec!["a", "1", "\"", ":", ",", " ", "\n", "=", ">", "张", "号", "室", "组", "的", "伟", "·", "，", "x"];
        let mut r = crate::synthetic::Rng(7);
        for len in [0, 1, 5, 63, 64, 65, 130, 300] {
            for _ in 0..40 {
                let t: String = (0..len).map(|_| alphabet[(r.next() % alphabet.len() as u64) as usize]).collect();
                let t = t.as_bytes();
                let mut own = Vec::new();
                for_each_candidate(t, |p, h| own.push((p, h)));
                let filter = |marks: &Marks| -> Vec<(usize, bool)> {
                    marks
                        .values
                        .iter()
                        .map(|&v| (v >> 1, v & 1 == 1))
                        .filter(|&(p, h)| if h { HOUSE.at(t, p) } else { ideo_at(t, p) })
                        .collect()
                };
                let mut marks = Marks { want_values: true, ..Marks::default() };
                for_each_hot_run::<true>(Portable, t, &mut marks, |_, _, _| {});
                assert_eq!(filter(&marks), own, "{:?}", String::from_utf8_lossy(t));
                #[cfg(target_arch = "x86_64")]
                if let Some(v3) = pulp::x86::V3::try_new() {
                    let mut marks = Marks { want_values: true, ..Marks::default() };
                    v3.vectorize(|| for_each_hot_run::<true>(v3, t, &mut marks, |_, _, _| {}));
                    assert_eq!(filter(&marks), own, "{:?}", String::from_utf8_lossy(t));
                }
            }
        }
    }

    #[test]
    fn html_table_columns() {
        let html = "<table><thead><tr><th>编号</th><th><b>姓名</b></th><th>地址</th></tr></thead>\
            <tbody><tr><td>1</td><td>张伟</td><td>郑州市金水区文化路85号</td></tr>\
            <tr><td>2</td><TD class=\"x\">欧阳娜娜</TD><td>无</td></tr></tbody></table><p>张家界</p>";
        assert_eq!(found(html), [(0, "张伟".into()), (1, "郑州市金水区文化路85号".into()), (0, "欧阳娜娜".into())]);
        // a table without a header row names nothing, nor does another table's header row
        assert!(found("<table><tr><td>张伟</td></tr></table>").is_empty());
        let two = "<table><tr><th>姓名</th></tr><tr><td>张伟</td></tr></table><table><tr><td>黄晓明</td></tr></table>";
        assert_eq!(found(two), [(0, "张伟".into())]);
        // a key/value table: the header cell in the same row
        assert_eq!(
            found("<table><tr><th>姓名</th><td>李娜</td></tr><tr><th>备注</th><td>王芳</td></tr></table>"),
            [(0, "李娜".into())]
        );
    }

    #[test]
    fn values_laid_out_otherwise() {
        assert_eq!(found("<xm>\n    张伟\n</xm>"), [(0, "张伟".into())]);
        assert_eq!(found("<input type=\"text\" name=\"xm\" value=\"李娜\">"), [(0, "李娜".into())]);
        assert_eq!(found("id, xm\n1, 王芳\n"), [(0, "王芳".into())]);
        assert_eq!(found("id,xm\n1,王芳\n\n2,李娜\n"), [(0, "王芳".into()), (0, "李娜".into())]);
    }

    #[test]
    fn multipart_field() {
        let body = "--b\r\nContent-Disposition: form-data; name=\"xm\"\r\n\r\n张伟\r\n--b--\r\n";
        assert_eq!(found(body), [(0, "张伟".into())]);
    }

    #[test]
    fn addresses() {
        // (text, the address found in it)
        let found_in = [
            (
                r#"{"zz":"河南省郑州市金水区文化路85号3号楼2单元1501室"}"#,
                "河南省郑州市金水区文化路85号3号楼2单元1501室",
            ),
            ("住址:郑州金水区文化路85号", "郑州金水区文化路85号"),
            ("他家住在河南省郑州市金水区文化路85号院,门口", "河南省郑州市金水区文化路85号院"),
            ("郑州大学老师家住金水区文化路85号", "金水区文化路85号"),
            // a village's group number ends an address as a house number does
            ("他家在河南省信阳市平桥区五里店街道张湾村3组,电话", "河南省信阳市平桥区五里店街道张湾村3组"),
            ("住在固始县城关镇李庄村12组", "固始县城关镇李庄村12组"),
        ];
        for (text, address) in found_in {
            assert_eq!(found(text), [(1, address.to_string())], "{text}");
        }
        let none = [
            "豫政办〔2019〕40号",
            "河南省第3号文件",
            // a group that is no village's is no address
            "河南省郑州市代表分成3组讨论",
            "北京市朝阳区第一小组3组",
            "全班分为3组",
        ];
        for text in none {
            assert!(found(text).is_empty(), "{text}");
        }
    }

    #[test]
    fn every_division_is_found_whole_and_nothing_shorter_or_cut() {
        let d = divisions();
        let mut n = 0;
        for (code, name) in gbt2260() {
            let level = if code.ends_with("0000") {
                0
            } else if code.ends_with("00") {
                1
            } else {
                2
            };
            let text = format!("{name}文化路1号");
            // the longest name at the start: this one, or one it begins (`朝阳区` in `朝阳区…`
            // never is: names are sorted longest first within their first two characters)
            let (len, l) = d.at(text.as_bytes()).unwrap_or_else(|| panic!("{name} not found"));
            assert!(len >= name.len() && text[..len].starts_with(name), "{name}: {}", &text[..len]);
            if len == name.len() {
                assert_eq!(l, level, "{name}");
            }
            // cut before its last character, a name is not this one
            let cut = &name[..name.len() - name.chars().last().map_or(0, char::len_utf8)];
            if let Some((len, _)) = d.at(cut.as_bytes()) {
                assert!(len <= cut.len(), "{name} found in {cut}");
            }
            n += 1;
        }
        assert!(n > 3000, "{n} divisions");
        // the short forms too, and words that share a name's first two characters are not names
        assert_eq!(d.at("河南人".as_bytes()), Some(("河南".len(), 0)));
        assert_eq!(d.at("金水区".as_bytes()), Some(("金水区".len(), 2)));
        assert_eq!(d.at("金水路".as_bytes()), None);
        assert_eq!(d.at("郑州大学".as_bytes()), Some(("郑州".len(), 1)));
        assert_eq!(d.at("广西壮族自治区".as_bytes()), Some(("广西壮族自治区".len(), 0)));
        assert_eq!(d.at("文化".as_bytes()), None);
        assert_eq!(d.at("河".as_bytes()), None);
    }

    #[test]
    fn division_and_surname_lengths() {
        assert_eq!(division_len("河南省郑州市金水区文化路".as_bytes()), "河南省郑州市金水区".len());
        assert_eq!(division_len("郑州金水区文化路".as_bytes()), "郑州金水区".len());
        assert_eq!(division_len("文化路".as_bytes()), 0);
        // a street named after a place is the street's
        assert_eq!(division_len("广东省广州市越秀区中山路100号".as_bytes()), "广东省广州市越秀区".len());
        assert_eq!(division_len("北京市朝阳区朝阳路1号".as_bytes()), "北京市朝阳区".len());
        assert_eq!(surname_len("欧阳娜娜".as_bytes()), 6);
        assert_eq!(surname_len("张伟".as_bytes()), 3);
        assert_eq!(surname_len("的确".as_bytes()), 0);
    }
}
