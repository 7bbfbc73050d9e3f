//! OOXML parts (xlsx, docx, pptx): text units with their locations, edits written back in place.
//!
//! A part is read once with quick-xml. Every text node is kept as the byte range it has in the
//! part, so that only the characters of a finding change and every tag, attribute and run keeps
//! its bytes. Text nodes inside one paragraph (`w:p`, `a:p`), shared string (`si`), inline string
//! (`is`) or comment text join into one unit: Word splits a paragraph into runs anywhere, so a
//! value may lie across several `<w:r>`. A masked value keeps its character count, so each run
//! gets back the masked characters of the ones it held, in its own formatting; a replacement of
//! another length (a label, a token) goes into the run where the value began.
//!
//! In worksheets a numeric cell (`<c><v>13800138000</v></c>`) holding a value that changes becomes
//! an inline string cell; shared-string indexes and formulas are not text.

use std::io::{BufRead, Read, Write};
use std::ops::Range;

use quick_xml::events::{BytesStart, Event};

use super::{DocError, Edit, FieldTest, Inspector, Kind, Part, Shape, cell_ref};

/// Shared strings named by cell up to this index (the table is one entry per string: a made-up
/// index must not make it large); past it a finding is named by its part and number.
const MAX_SHARED_NAMED: usize = 1 << 21;

/// The most text (or markup) held inside one unit before it is cut (see `rewrite_part`).
const MAX_UNIT: usize = 16 << 20;

/// Text gathered before the units so far are inspected and written out: bounds what a part of
/// any size holds in memory (units are never split).
const BATCH: usize = 128 << 10;

/// A part is read and parsed this many bytes at a time.
const BLOCK: usize = 128 << 10;

/// What the package is, and what its sheets are called.
#[derive(Debug)]
pub(super) struct Package {
    pub kind: Kind,
    /// worksheet part → sheet name, in workbook order
    pub sheets: Vec<(String, String)>,
    /// the shared-string part, where the workbook's relationships put it
    pub shared: String,
}

impl Package {
    /// An OOXML package, told by its `[Content_Types].xml` and main part; `None` for other zips.
    /// `read` gives the bytes of a small part by name (the workbook and its relationships).
    pub fn of(names: &[String], mut read: impl FnMut(&str) -> Option<Vec<u8>>) -> Option<Package> {
        let has = |n: &str| names.iter().any(|x| x == n);
        if !has("[Content_Types].xml") {
            return None;
        }
        let kind = if has("xl/workbook.xml") {
            Kind::Xlsx
        } else if has("word/document.xml") {
            Kind::Docx
        } else if has("ppt/presentation.xml") {
            Kind::Pptx
        } else {
            Kind::Zip
        };
        let mut sheets = Vec::new();
        let mut shared = SHARED_STRINGS.to_string();
        if kind == Kind::Xlsx {
            if let (Some(wb), Some(rels)) = (read("xl/workbook.xml"), read("xl/_rels/workbook.xml.rels")) {
                let targets = targets(&rels);
                sheets = sheet_names(&wb, &targets);
                if let Some((_, part, _)) = targets.iter().find(|t| t.2.ends_with("/sharedStrings")) {
                    shared = part.clone();
                }
            }
        }
        Some(Package { kind, sheets, shared })
    }

    /// Whether `name` is one of the workbook's worksheets: by the workbook's relationships, or
    /// where Excel puts them.
    pub fn is_sheet(&self, name: &str) -> bool {
        (self.kind == Kind::Xlsx && name.starts_with("xl/worksheets/")) || self.sheets.iter().any(|(p, _)| p == name)
    }

    fn sheet_name(&self, part: &str) -> Option<&str> {
        self.sheets.iter().find(|(p, _)| p == part).map(|(_, n)| n.as_str())
    }
}

/// Where Excel puts the shared strings.
const SHARED_STRINGS: &str = "xl/sharedStrings.xml";

/// The workbook's relationships: id, the part it points to (a path in the archive), its type.
fn targets(rels: &[u8]) -> Vec<(String, String, String)> {
    let mut targets = Vec::new();
    each_start(rels, |e| {
        if e.local_name().as_ref() == b"Relationship" {
            if let (Some(id), Some(t)) = (attr(e, b"Id"), attr(e, b"Target")) {
                let t = t.trim_start_matches('/');
                let path = if t.starts_with("xl/") { t.to_string() } else { format!("xl/{t}") };
                targets.push((id, path, attr(e, b"Type").unwrap_or_default()));
            }
        }
    });
    targets
}

/// Sheet names by worksheet part, from the workbook and its relationships.
fn sheet_names(wb: &[u8], targets: &[(String, String, String)]) -> Vec<(String, String)> {
    let mut sheets = Vec::new();
    each_start(wb, |e| {
        if e.local_name().as_ref() == b"sheet" {
            let name = attr(e, b"name");
            let rid = e
                .attributes()
                .flatten()
                .find(|a| a.key.local_name().as_ref() == b"id")
                .and_then(|a| unescaped(&a.value));
            let part = rid.and_then(|r| targets.iter().find(|(id, _, _)| *id == r).map(|(_, p, _)| p.clone()));
            if let (Some(name), Some(part)) = (name, part) {
                sheets.push((part, name));
            }
        }
    });
    sheets
}

/// For each shared string a worksheet shows, the first cell showing it: `(index, row, column)`
/// triples added to `refs` (kept only where no earlier sheet showed the string).
pub(super) fn shared_cells(xml: impl BufRead, sheet: u32, refs: &mut Vec<Option<(u32, u32, u32)>>) {
    let mut reader = quick_xml::Reader::from_reader(xml);
    let mut buf = Vec::new();
    let mut cell: Option<(u32, u32)> = None;
    let mut in_v = false;
    let mut places = Places::default();
    loop {
        match reader.read_event_into(&mut buf) {
            Ok(Event::Start(e)) => match e.local_name().as_ref() {
                b"row" => places.row(attr(&e, b"r").and_then(|r| r.parse().ok())),
                b"c" => {
                    let (mut shared, mut rc) = (false, None);
                    for a in e.attributes().with_checks(false).flatten() {
                        match a.key.as_ref() {
                            b"t" => shared = a.value.as_ref() == b"s",
                            b"r" => rc = Some(parse_ref(&a.value).unwrap_or((0, 0))),
                            _ => {}
                        }
                    }
                    let rc = places.cell(rc);
                    cell = Some(rc).filter(|_| shared);
                }
                b"v" => in_v = true,
                _ => {}
            },
            Ok(Event::End(e)) => match e.local_name().as_ref() {
                b"c" => cell = None,
                b"v" => in_v = false,
                _ => {}
            },
            Ok(Event::Text(t)) if in_v => {
                if let (Some((row, col)), Some(i)) =
                    (cell, std::str::from_utf8(&t).ok().and_then(|s| s.trim().parse::<usize>().ok()))
                {
                    if i < MAX_SHARED_NAMED {
                        if refs.len() <= i {
                            refs.resize(i + 1, None);
                        }
                        refs[i].get_or_insert((sheet, row, col));
                    }
                }
            }
            Ok(Event::Eof) | Err(_) => break,
            _ => {}
        }
        buf.clear();
    }
}

/// `B12` → (row 11, column 1), zero-based.
/// One pass, as this runs for every cell: up to three letters, then up to nine digits.
fn parse_ref(r: &[u8]) -> Option<(u32, u32)> {
    let (mut col, mut row, mut letters) = (0u32, 0u32, 0);
    while let Some(&b) = r.get(letters) {
        // ASCII letters, either case, to 1..=26 (no other byte lands there)
        let l = (b | 0x20).wrapping_sub(b'a');
        if l >= 26 {
            break;
        }
        if letters == 3 {
            return None;
        }
        col = col * 26 + u32::from(l) + 1;
        letters += 1;
    }
    let digits = &r[letters..];
    if letters == 0 || digits.is_empty() || digits.len() > 9 {
        return None;
    }
    for &d in digits {
        let v = d.wrapping_sub(b'0');
        if v > 9 {
            return None;
        }
        row = row * 10 + u32::from(v);
    }
    Some((row.checked_sub(1)?, col - 1))
}

/// A cell's place where its `r` may be left out (it is optional: Dynamics, SSRS and SpreadJS
/// exports leave it out): the row after the last, the column after the last cell's.
#[derive(Debug, Clone, Copy, Default)]
struct Places {
    /// the row being read (zero-based), and whether a row began
    row: u32,
    rows: bool,
    /// the column after the last cell's
    next_col: u32,
}

impl Places {
    /// A `<row>` begins, with its `r` (one-based) if it has one.
    fn row(&mut self, r: Option<u32>) {
        self.row = match r {
            Some(r) => r.saturating_sub(1),
            None if self.rows => self.row.saturating_add(1),
            None => 0,
        };
        self.rows = true;
        self.next_col = 0;
    }

    /// A cell begins, with its `r` if it has one: its (row, column).
    fn cell(&mut self, rc: Option<(u32, u32)>) -> (u32, u32) {
        let rc = rc.unwrap_or((self.row, self.next_col));
        self.next_col = rc.1.saturating_add(1);
        rc
    }
}

/// A cell start tag's (row, column) when it has no `r`.
const NO_REF: (u32, u32) = (u32::MAX, u32::MAX);

/// A `<row>` tag's `r` (its bytes after the name).
fn row_number(attributes: &[u8]) -> Option<u32> {
    cell_attributes(attributes).find(|(k, _)| *k == b"r").and_then(|(_, v)| std::str::from_utf8(v).ok()?.parse().ok())
}

/// The attributes of a start tag (its bytes after the name), as (name, raw value): read in place,
/// for the one tag every cell has. A malformed rest ends the list.
fn cell_attributes(a: &[u8]) -> Attributes<'_> {
    Attributes { a, i: 0 }
}

/// See [`cell_attributes`]. Spans here are a few bytes: they are walked by index, not searched by
/// `memchr` (a call per search, costlier than such a span), and the walk inlines into its caller.
struct Attributes<'a> {
    a: &'a [u8],
    i: usize,
}

impl<'a> Iterator for Attributes<'a> {
    type Item = (&'a [u8], &'a [u8]);

    #[inline]
    fn next(&mut self) -> Option<Self::Item> {
        let (a, n) = (self.a, self.a.len());
        // white space in a tag is ' ', tab, CR or LF: bytes below '!' (no other is allowed there)
        let skip = |mut i: usize| {
            while i < n && a[i] <= b' ' {
                i += 1;
            }
            i
        };
        let mut i = skip(self.i);
        let name_at = i;
        while i < n && a[i] != b'=' && a[i] > b' ' {
            i += 1;
        }
        let name = &a[name_at..i];
        i = skip(i);
        if i >= n || a[i] != b'=' || name.is_empty() {
            self.i = n;
            return None;
        }
        i = skip(i + 1);
        let quote = match a.get(i) {
            Some(&q @ (b'"' | b'\'')) => q,
            _ => {
                self.i = n;
                return None;
            }
        };
        let start = i + 1;
        let mut end = start;
        while end < n && a[end] != quote {
            end += 1;
        }
        if end >= n {
            self.i = n;
            return None;
        }
        self.i = end + 1;
        Some((name, &a[start..end]))
    }
}

fn each_start(xml: &[u8], mut f: impl FnMut(&BytesStart<'_>)) {
    let mut reader = quick_xml::Reader::from_reader(xml);
    loop {
        match reader.read_event() {
            Ok(Event::Start(e) | Event::Empty(e)) => f(&e),
            Ok(Event::Eof) | Err(_) => break,
            _ => {}
        }
    }
}

fn attr(e: &BytesStart<'_>, name: &[u8]) -> Option<String> {
    e.try_get_attribute(name).ok().flatten().and_then(|a| unescaped(&a.value))
}

/// Whether an entry is an XML part (scanned as markup, never as plain text).
pub(super) fn is_xml_part(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    lower.ends_with(".xml") || lower.ends_with(".rels") || lower.ends_with(".vml")
}

/// Parts that hold structure, not content: never rewritten.
pub(super) fn structural(name: &str) -> bool {
    name == "[Content_Types].xml"
        || name.ends_with(".rels")
        || name.contains("/theme/")
        || name.contains("/_rels/")
        || matches!(
            name.rsplit('/').next().unwrap_or(""),
            "styles.xml"
                | "settings.xml"
                | "fontTable.xml"
                | "webSettings.xml"
                | "numbering.xml"
                | "calcChain.xml"
                | "presProps.xml"
                | "viewProps.xml"
                | "tableStyles.xml"
        )
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    /// structure, not content: copied as it is
    Skip,
    /// `xl/workbook.xml`: sheet names (attributes)
    Workbook,
    /// a worksheet: cells
    Sheet,
    /// `xl/sharedStrings.xml`
    Shared,
    /// any other content part: every text node
    Text,
}

/// A text node (or attribute value) of the part: its bytes in the part (stream offsets, escaped)
/// and its text in the batch (unescaped).
#[derive(Debug)]
struct Node {
    raw: Range<u64>,
    text: Range<u32>,
    /// the numeric cell (index into the batch's cells) it is the value of, or `u32::MAX`
    cell: u32,
    /// an attribute value (quotes must be escaped too)
    attribute: bool,
    /// a sheet's name (whose new value must be one Excel allows)
    sheet_name: bool,
}

/// A numeric cell: its whole element and its start tag (stream offsets).
#[derive(Debug)]
struct Cell {
    element: Range<u64>,
    tag: Range<u64>,
}

/// Where a unit is, named only when a finding asks.
#[derive(Debug, Clone, Copy)]
enum Loc {
    /// the part itself
    Part,
    /// a worksheet cell (row, column)
    Cell(u32, u32),
    /// a shared string (its index)
    Shared(u32),
    /// a paragraph (its number, from 1)
    Paragraph(u32),
    SheetName,
    /// a string item of a pivot cache: the index of its cache field (`u32::MAX`: not known)
    PivotItem(u32),
}

/// The first cell showing each shared string, noted while the worksheets are rewritten (they come
/// before the shared strings in the files Office writes): `(sheet << 40) | (row << 16) | column`.
/// Kept in blocks of [`SEEN_BLOCK`] entries: a table of any length grows without a copy.
#[derive(Debug, Default)]
pub(super) struct SharedSeen(std::cell::RefCell<Vec<Box<[u64]>>>);

/// Shared strings per block of [`SharedSeen`].
const SEEN_BLOCK: usize = 8192;

impl SharedSeen {
    fn note(&self, index: usize, sheet: u32, row: u32, col: u32) {
        if index >= MAX_SHARED_NAMED {
            return;
        }
        let mut v = self.0.borrow_mut();
        let (b, i) = (index / SEEN_BLOCK, index % SEEN_BLOCK);
        while v.len() <= b {
            v.push(vec![u64::MAX; SEEN_BLOCK].into_boxed_slice());
        }
        if let Some(slot) = v[b].get_mut(i).filter(|s| **s == u64::MAX) {
            *slot = (u64::from(sheet) << 40) | (u64::from(row) << 16) | u64::from(col & 0xFFFF);
        }
    }

    /// (sheet, row, column) of the first cell showing shared string `index`.
    pub(super) fn get(&self, index: usize) -> Option<(u32, u32, u32)> {
        let v = *self.0.borrow().get(index / SEEN_BLOCK)?.get(index % SEEN_BLOCK)?;
        (v != u64::MAX).then_some(((v >> 40) as u32, ((v >> 16) & 0xFF_FFFF) as u32, (v & 0xFFFF) as u32))
    }
}

/// The first cell showing a shared string: (sheet, row, column); `None` when no sheet shows it.
pub(super) type SharedRef<'a> = dyn Fn(u32) -> Option<(u32, u32, u32)> + 'a;

/// Column headers of each worksheet: the text of its first row's cells. A cell below the first
/// row stands in its column's field (`姓名`, `address`): the engine reads names and addresses by it.
#[derive(Debug, Default)]
pub(super) struct Headers {
    /// per sheet, in workbook order: the header row, and (column, text) sorted by column
    sheets: Vec<(u32, Vec<ColumnHeader>)>,
}

/// A column and its header's text.
type ColumnHeader = (u32, Vec<u8>);

impl Headers {
    /// No sheet has a header.
    pub fn is_empty(&self) -> bool {
        self.sheets.iter().all(|(_, cols)| cols.is_empty())
    }

    /// The header of the cell at (`sheet`, `row`, `col`), for a cell below the header row.
    pub fn get(&self, sheet: u32, row: u32, col: u32) -> Option<&[u8]> {
        let (header_row, cols) = self.sheets.get(sheet as usize)?;
        if row <= *header_row {
            return None;
        }
        cols.binary_search_by_key(&col, |c| c.0).ok().map(|i| cols[i].1.as_slice())
    }

    /// From each sheet's first row (see [`first_row`]) and the shared strings they show: the
    /// headers that name a field (`fields`); the others would change nothing.
    pub fn new(rows: Vec<FirstRow>, shared: &[Vec<u8>], fields: &FieldTest<'_>) -> Headers {
        let sheets = rows
            .into_iter()
            .map(|(row, cells)| {
                let mut cols: Vec<ColumnHeader> = cells
                    .into_iter()
                    .filter_map(|(col, cell)| match cell {
                        HeaderCell::Shared(i) => shared.get(i).map(|t| (col, t.clone())),
                        HeaderCell::Text(t) => Some((col, t)),
                    })
                    .filter(|(_, t)| fields(t))
                    .collect();
                cols.sort_by_key(|c| c.0);
                (row, cols)
            })
            .collect();
        Headers { sheets }
    }
}

/// A header cell: a shared string's index, or its own text.
#[derive(Debug)]
pub(super) enum HeaderCell {
    Shared(usize),
    Text(Vec<u8>),
}

/// A sheet's first row: its index and its text cells by column.
pub(super) type FirstRow = (u32, Vec<(u32, HeaderCell)>);

/// The first row of a worksheet, read no further than its end.
pub(super) fn first_row(xml: impl BufRead) -> FirstRow {
    let mut reader = quick_xml::Reader::from_reader(xml);
    let mut buf = Vec::new();
    let mut row = None;
    let mut cells = Vec::new();
    // the cell being read: its column and type (`s`, `inlineStr`, `str`), and its text so far
    let mut cell: Option<(u32, Vec<u8>)> = None;
    let mut text = Vec::new();
    let mut in_text = false;
    let mut places = Places::default();
    loop {
        match reader.read_event_into(&mut buf) {
            Ok(Event::Start(e)) => match e.local_name().as_ref() {
                b"row" if row.is_none() => {
                    row = Some(attr(&e, b"r").and_then(|r| r.parse::<u32>().ok()).map_or(0, |r| r.saturating_sub(1)));
                }
                b"c" => {
                    let rc = attr(&e, b"r").map(|r| parse_ref(r.as_bytes()).unwrap_or((0, 0)));
                    let col = places.cell(rc).1;
                    cell = Some((col, attr(&e, b"t").unwrap_or_default().into_bytes()));
                    text.clear();
                }
                b"v" | b"t" => in_text = true,
                _ => {}
            },
            Ok(Event::End(e)) => match e.local_name().as_ref() {
                b"row" => break,
                b"v" | b"t" => in_text = false,
                b"c" => {
                    if let Some((col, t)) = cell.take() {
                        let value = String::from_utf8_lossy(&text).trim().to_string();
                        match t.as_slice() {
                            b"s" => {
                                if let Ok(i) = value.parse::<usize>() {
                                    cells.push((col, HeaderCell::Shared(i)));
                                }
                            }
                            b"inlineStr" | b"str" if !value.is_empty() => {
                                cells.push((col, HeaderCell::Text(value.into_bytes())));
                            }
                            _ => {}
                        }
                    }
                }
                _ => {}
            },
            Ok(Event::Text(t)) if in_text && cell.is_some() => text.extend_from_slice(&t),
            Ok(Event::GeneralRef(r)) if in_text && cell.is_some() => {
                if let Some(c) = unescaped(format!("&{};", String::from_utf8_lossy(&r)).as_bytes()) {
                    text.extend_from_slice(c.as_bytes());
                }
            }
            Ok(Event::Eof) | Err(_) => break,
            _ => {}
        }
        buf.clear();
    }
    (row.unwrap_or(0), cells)
}

/// The first `n` shared strings (each `si`'s text runs together).
pub(super) fn shared_prefix(xml: impl BufRead, n: usize) -> Vec<Vec<u8>> {
    let mut reader = quick_xml::Reader::from_reader(xml);
    let mut buf = Vec::new();
    let mut out: Vec<Vec<u8>> = Vec::new();
    let (mut in_si, mut in_t, mut in_reading) = (false, false, false);
    // (the last one wanted is read to its end)
    while out.len() < n || in_si {
        match reader.read_event_into(&mut buf) {
            Ok(Event::Start(e)) => match e.local_name().as_ref() {
                b"si" => {
                    in_si = true;
                    out.push(Vec::new());
                }
                // a phonetic reading's text is not the string's
                b"rPh" => in_reading = true,
                b"t" => in_t = in_si && !in_reading,
                _ => {}
            },
            Ok(Event::Empty(e)) if e.local_name().as_ref() == b"si" => out.push(Vec::new()),
            Ok(Event::End(e)) => match e.local_name().as_ref() {
                b"si" => in_si = false,
                b"rPh" => in_reading = false,
                b"t" => in_t = false,
                _ => {}
            },
            Ok(Event::Text(t)) if in_t => {
                if let Some(last) = out.last_mut() {
                    last.extend_from_slice(&t);
                }
            }
            Ok(Event::GeneralRef(r)) if in_t => {
                if let (Some(last), Some(c)) =
                    (out.last_mut(), unescaped(format!("&{};", String::from_utf8_lossy(&r)).as_bytes()))
                {
                    last.extend_from_slice(c.as_bytes());
                }
            }
            Ok(Event::Eof) | Err(_) => break,
            _ => {}
        }
        buf.clear();
    }
    for s in &mut out {
        let t = String::from_utf8_lossy(s).trim().to_string();
        *s = t.into_bytes();
    }
    out
}

/// The part's bytes from the last write on, read block by block. The markup of each block is
/// parsed in place (events borrow from here, nothing is copied per event), and the rewrite copies
/// it out with the edits spliced in.
struct Window<R> {
    input: R,
    /// the bytes held are `room[..len]`; the rest was written by earlier reads and is reused as it
    /// is (a read into a fresh `Vec`'s spare room zeroes it first, every block)
    room: Vec<u8>,
    len: usize,
    /// stream offset of `room[0]`
    base: u64,
    /// the part is read to its end
    eof: bool,
}

impl<R: Read> Window<R> {
    /// Read `n` more bytes (or what is left of the part).
    fn more(&mut self, n: usize) -> std::io::Result<()> {
        let want = self.len + n;
        if self.room.len() < want {
            self.room.resize(want, 0);
        }
        while self.len < want {
            match self.input.read(&mut self.room[self.len..want]) {
                Ok(0) => break,
                Ok(got) => self.len += got,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        self.eof = self.len < want;
        Ok(())
    }
}

impl<R> Window<R> {
    /// The bytes held.
    fn held(&self) -> &[u8] {
        &self.room[..self.len]
    }

    fn bytes(&self, r: Range<u64>) -> &[u8] {
        let s = usize::try_from(r.start.saturating_sub(self.base)).unwrap_or(usize::MAX).min(self.len);
        let e = usize::try_from(r.end.saturating_sub(self.base)).unwrap_or(usize::MAX).min(self.len);
        &self.room[s..e.max(s)]
    }

    /// Let go of the bytes before stream offset `upto` (written out).
    fn release(&mut self, upto: u64) {
        let n = usize::try_from(upto.saturating_sub(self.base)).unwrap_or(usize::MAX).min(self.len);
        self.room.copy_within(n..self.len, 0);
        self.len -= n;
        self.base += n as u64;
    }
}

/// The units of one batch.
#[derive(Debug, Default)]
struct Batch {
    text: Vec<u8>,
    nodes: Vec<Node>,
    cells: Vec<Cell>,
    units: Vec<(u32, Loc)>,
    /// Room reused from batch to batch for the rewrite: the new bytes of the nodes and cells that
    /// change (`replaced` ranges into `arena`), and the batch's output, written at once.
    arena: Vec<u8>,
    replaced: Vec<(Range<u64>, Range<usize>)>,
    cells_done: Vec<bool>,
    scratch: Vec<u8>,
    out: Vec<u8>,
}

impl Batch {
    /// Begin a new unit: a line of its own.
    fn unit(&mut self, loc: Loc) {
        if !self.text.is_empty() {
            self.text.push(b'\n');
        }
        self.units.push((self.text.len() as u32, loc));
    }

    fn node(&mut self, raw: Range<u64>, value: &[u8], cell: u32, attribute: bool) {
        let t0 = self.text.len() as u32;
        self.text.extend_from_slice(value);
        self.nodes.push(Node { raw, text: t0..self.text.len() as u32, cell, attribute, sheet_name: false });
    }

    /// Where text offset `at` is. The engine asks in text order, mostly: `hint` (the unit of the
    /// last answer) is tried first, then its successor, before a binary search.
    fn loc(&self, at: usize, hint: &std::cell::Cell<usize>) -> Loc {
        let holds = |i: usize| {
            self.units.get(i).is_some_and(|u| u.0 as usize <= at)
                && self.units.get(i + 1).is_none_or(|u| u.0 as usize > at)
        };
        let h = hint.get();
        let i = if holds(h) {
            h
        } else if holds(h + 1) {
            h + 1
        } else {
            match self.units.partition_point(|(s, _)| *s as usize <= at).checked_sub(1) {
                Some(i) => i,
                None => return Loc::Part,
            }
        };
        hint.set(i);
        self.units.get(i).map_or(Loc::Part, |u| u.1)
    }
}

/// Writes the first `n` bytes of the part as it came (read again from the archive).
pub(super) type Replay<'a> = dyn FnMut(u64, &mut dyn Write) -> std::io::Result<()> + 'a;

/// Rewrite one XML part of `package` from `input` to `out`; whether anything changed. Nothing is
/// written until the first change (a part without findings costs no compression): then `replay`
/// writes what went before, and the rest follows as it is read. `shared` names shared strings by
/// cell.
#[allow(clippy::too_many_arguments)]
pub(super) fn rewrite_part(
    package: &Package,
    name: &str,
    input: impl Read,
    out: &mut dyn Write,
    replay: &mut Replay<'_>,
    here: &str,
    (shared, seen, headers): (&SharedRef<'_>, &SharedSeen, &Headers),
    inspect: &mut Inspector<'_>,
    unmaskable: &mut bool,
) -> Result<bool, DocError> {
    let role = match name {
        _ if structural(name) => Role::Skip,
        "xl/workbook.xml" => Role::Workbook,
        _ if package.kind == Kind::Xlsx && name == package.shared => Role::Shared,
        _ if package.is_sheet(name) => Role::Sheet,
        _ => Role::Text,
    };
    let sheet = package.sheet_name(name).unwrap_or(here).to_string();
    let mut win = Window { input, room: Vec::new(), len: 0, base: 0, eof: false };
    let mut batch = Batch::default();
    let mut changed = false;
    // unit elements open around the current position; paragraphs and shared strings so far
    let (mut depth, mut paragraphs, mut shared_n) = (0usize, 0u32, 0u32);
    let mut cell: Option<CellRead> = None;
    // the cell being read shows a shared string
    let mut shared_cell = false;
    let sheet_index = package.sheets.iter().position(|(p, _)| p == name).unwrap_or(0) as u32;
    let (mut in_v, mut in_f) = (false, false);
    let mut places = Places::default();
    // a pivot cache keeps a copy of its source's values, as attributes (`<s v="张伟"/>`): its
    // field names, and the field being read
    let pivot_part = role == Role::Text && name.starts_with("xl/pivotCache/");
    let (mut pivot, mut pivot_field): (Vec<Vec<u8>>, u32) = (Vec::new(), u32::MAX);
    // its numbers (`<n v="13800138000"/>`, a numeric field's `minValue`/`maxValue`), which cannot
    // be masked in place (a number becomes no text there): read, as the text of an `.xls` is
    let mut numbers = PivotNumbers::default();
    // a run of text and entity events: where it began
    let mut pending: Option<u64> = None;
    // stream offsets: markup parsed up to `pos`, the part written up to `written`
    let (mut pos, mut written) = (0u64, 0u64);
    let corrupt = |e: &dyn std::fmt::Display| DocError::Corrupt(format!("{here}: {e}"));
    'blocks: loop {
        // this round parses up to the last `<` read: every tag before it is whole (a comment or
        // CDATA section cut there fails to parse, and is read again with the next block)
        let from = usize::try_from(pos - win.base).unwrap_or(usize::MAX).min(win.len);
        if !win.eof {
            // what is still unparsed at least doubles: markup read again round after round
            // costs its length a few times over, not its square
            win.more(BLOCK.max(win.len - from)).map_err(|e| corrupt(&e))?;
        }
        if win.len - from > MAX_UNIT {
            return Err(DocError::Limit("XML text or markup past 16 MiB without a tag"));
        }
        let cut = match memchr::memrchr(b'<', &win.held()[from..]) {
            _ if win.eof => win.len,
            Some(i) if i > 0 => from + i,
            _ => continue,
        };
        let mut at = from;
        loop {
            // Excel's commonest shapes (a cell's start tag; a shared string; a cell's value or
            // inline string, and the cell's end) are read in one step: the same as their tokens,
            // read one by one
            if role == Role::Sheet && cell.is_none() && pending.is_none() && forms_in_one_step() {
                if let Some((t, rc, len)) = plain_cell(&win.held()[at..cut]) {
                    let start = pos;
                    at += len;
                    pos += len as u64;
                    // a cell opened: no unit ends here, nothing to write yet
                    (cell, shared_cell) = open_cell(&mut batch, &mut places, t, rc, start..pos);
                    continue;
                }
            }
            let fast = match role {
                _ if !forms_in_one_step() => None,
                Role::Shared if depth == 0 && pending.is_none() => plain_element(&win.held()[at..cut], Form::Shared),
                Role::Sheet if depth == 0 && cell.is_some() && pending.is_none() && !in_v && !in_f => {
                    plain_element(&win.held()[at..cut], Form::Value)
                        .or_else(|| plain_element(&win.held()[at..cut], Form::Inline))
                }
                _ => None,
            };
            let reading = Reading { role, in_v, in_f, cell, shared_cell, depth };
            let (end, boundary, eof) = if let Some((form, text, len)) = fast {
                let start = pos;
                at += len;
                pos += len as u64;
                let run = start + text.start as u64..start + text.end as u64;
                let raw = win.bytes(run.clone());
                if form == Form::Shared {
                    // `<si>` opens the unit, `<t>` holds its text, `</si>` ends it
                    batch.unit(Loc::Shared(shared_n));
                    text_run(&mut batch, raw, run, Reading { depth: 1, ..reading }, seen, sheet_index);
                    shared_n += 1;
                } else {
                    if form == Form::Value {
                        // `<v>` holds the cell's value
                        text_run(&mut batch, raw, run, Reading { in_v: true, ..reading }, seen, sheet_index);
                    } else {
                        // `<is>` opens the cell's unit, `<t>` holds its text, `</is>` ends it
                        batch.unit(cell.map_or(Loc::Part, |c| Loc::Cell(c.0, c.1)));
                        text_run(&mut batch, raw, run, Reading { depth: 1, ..reading }, seen, sheet_index);
                        paragraphs += 1;
                    }
                    // `</c>` ends the cell
                    close_cell(&mut batch, cell.take(), pos);
                }
                (pos, true, false)
            } else {
                let (tok, len) = match token(&win.held()[at..cut], win.eof) {
                    Ok(Some(t)) => t,
                    // cut short at the end of the round: read again with more
                    Ok(None) => break,
                    Err(e) => return Err(corrupt(&e)),
                };
                at += len;
                let start = pos;
                let end = pos + len as u64;
                pos = end;
                if tok == Tok::Text {
                    pending.get_or_insert(start);
                    continue;
                }
                if let Some(s) = pending.take() {
                    // the text run `s..start` ended: keep it when it is content here
                    let raw = win.bytes(s..start);
                    text_run(&mut batch, raw, s..start, reading, seen, sheet_index);
                }
                let mut boundary = false;
                match tok {
                    Tok::Start(name, attributes) => {
                        let local = local_name(name);
                        if role == Role::Sheet && local == b"row" {
                            places.row(row_number(attributes));
                        } else if role == Role::Sheet && local == b"c" {
                            // `r` and `t` read in place: this runs for every cell
                            let (mut t, mut rc) = (None, NO_REF);
                            for (key, value) in cell_attributes(attributes) {
                                cell_attribute(key, value, &mut t, &mut rc);
                            }
                            (cell, shared_cell) = open_cell(&mut batch, &mut places, t, rc, start..end);
                        } else if pivot_part && matches!(local, b"cacheField" | b"s" | b"n" | b"sharedItems") {
                            let tag = win.bytes(start..end).to_vec();
                            pivot_item(local, &tag, start, &mut batch, &mut pivot, &mut pivot_field, &mut numbers);
                        } else if local == b"v" {
                            in_v = true;
                        } else if local == b"f" || local == b"rPh" {
                            // a formula's text, or a phonetic reading, is no content of the cell
                            in_f = true;
                        } else if unit_element(local) && role != Role::Skip {
                            if depth > 0 {
                                // a paragraph within a paragraph (a Word text box, anchored in a
                                // run): a text of its own, not joined to the digits around it
                                batch.text.push(b'\n');
                            }
                            if depth == 0 {
                                batch.unit(match (role, cell) {
                                    (_, Some(c)) => Loc::Cell(c.0, c.1),
                                    (Role::Shared, _) => Loc::Shared(shared_n),
                                    _ => Loc::Paragraph(paragraphs + 1),
                                });
                            }
                            depth += 1;
                        }
                    }
                    Tok::End(name) => {
                        let local = local_name(name);
                        if role == Role::Sheet && local == b"c" {
                            close_cell(&mut batch, cell.take(), end);
                            boundary = depth == 0;
                        } else if pivot_part && local == b"cacheField" {
                            pivot_field = u32::MAX;
                        } else if local == b"v" {
                            in_v = false;
                        } else if local == b"f" || local == b"rPh" {
                            in_f = false;
                        } else if unit_element(local) && depth > 0 && role != Role::Skip {
                            depth -= 1;
                            if depth > 0 {
                                batch.text.push(b'\n');
                            }
                            if depth == 0 {
                                if local == b"si" {
                                    shared_n += 1;
                                } else {
                                    paragraphs += 1;
                                }
                                boundary = cell.is_none();
                            }
                        } else {
                            boundary = depth == 0 && cell.is_none();
                        }
                    }
                    Tok::Empty(name, attributes) => {
                        let local = local_name(name);
                        if depth > 0 && matches!(local, b"tab" | b"br" | b"cr") {
                            // a tab or break between runs separates words
                            batch.text.push(b' ');
                        } else if role == Role::Sheet && local == b"row" {
                            places.row(row_number(attributes));
                        } else if role == Role::Sheet && local == b"c" {
                            // an empty cell still takes its column
                            let r = cell_attributes(attributes).find(|(k, _)| *k == b"r");
                            places.cell(r.map(|(_, v)| parse_ref(v).unwrap_or((0, 0))));
                            cell = None;
                        } else if pivot_part && matches!(local, b"cacheField" | b"s" | b"n" | b"sharedItems") {
                            let tag = win.bytes(start..end).to_vec();
                            pivot_item(local, &tag, start, &mut batch, &mut pivot, &mut pivot_field, &mut numbers);
                            if local == b"cacheField" {
                                // a field without items
                                pivot_field = u32::MAX;
                            }
                        } else if role == Role::Workbook && local == b"sheet" {
                            // a sheet name: an attribute value of the tag
                            let tag = win.bytes(start..end).to_vec();
                            if let Some((raw, value)) = attribute_value(&tag, start, b"name") {
                                batch.unit(Loc::SheetName);
                                batch.node(raw, value.as_bytes(), u32::MAX, true);
                                if let Some(n) = batch.nodes.last_mut() {
                                    n.sheet_name = true;
                                }
                            }
                        } else if local == b"si" && depth == 0 && role == Role::Shared {
                            shared_n += 1;
                        }
                    }
                    Tok::Text | Tok::Other | Tok::Eof => {}
                }
                (end, boundary, tok == Tok::Eof)
            };
            let held = usize::try_from(end - written).unwrap_or(usize::MAX);
            // a unit (a paragraph, a string) far larger than any real one is cut rather than held
            // whole: a value across the cut may be missed, memory stays bounded
            let overgrown = cell.is_none() && (batch.text.len() >= MAX_UNIT || held >= MAX_UNIT);
            if eof
                || overgrown
                // markup held for a batch is bounded too: a sheet's text is a fraction of its bytes
                || (boundary && (batch.text.len() >= BATCH || held >= if batch.nodes.is_empty() { BATCH } else { 2 * BATCH }))
            {
                let namer = Namer { package, sheet: &sheet, sheet_index, here, shared, headers, pivot: &pivot };
                changed |= flush(&win, &mut written, &mut batch, end, (out, &mut *replay, changed), &namer, inspect)?;
            }
            if eof {
                break 'blocks;
            }
        }
        win.release(written);
    }
    if !numbers.text.is_empty() {
        let locate = |_: usize| format!("{here} pivot item");
        let field = |at: usize| {
            let i = numbers.starts.partition_point(|&(s, _)| s <= at).checked_sub(1)?;
            pivot.get(numbers.starts[i].1 as usize).map(Vec::as_slice)
        };
        let part = Part { text: &numbers.text, locate: &locate, maskable: false, shape: Shape::Units(Some(&field)) };
        *unmaskable |= !inspect(&part).is_empty();
    }
    Ok(changed)
}

/// A pivot cache's numbers, each a unit of its own: their text, and where each starts with the
/// index of its cache field.
#[derive(Debug, Default)]
struct PivotNumbers {
    text: Vec<u8>,
    starts: Vec<(usize, u32)>,
}

/// Where a run of text stands.
#[derive(Debug, Clone, Copy)]
struct Reading {
    role: Role,
    /// inside `<v>`; inside `<f>` or `<rPh>` (a formula, a phonetic reading: not the cell's text)
    in_v: bool,
    in_f: bool,
    /// the cell around it
    cell: Option<CellRead>,
    /// that cell shows a shared string
    shared_cell: bool,
    /// unit elements open around it
    depth: usize,
}

/// The cell being read: (row, column, scanned, numeric cell index in the batch).
type CellRead = (u32, u32, bool, u32);

/// A run of text that ended (its raw bytes, at stream offsets `at`): noted when it is a shared
/// string's index, and kept for the engine when it is content here.
#[inline(always)]
fn text_run(
    batch: &mut Batch,
    raw: &[u8],
    at: Range<u64>,
    Reading { role, in_v, in_f, cell, shared_cell, depth }: Reading,
    seen: &SharedSeen,
    sheet_index: u32,
) {
    let scanned = match role {
        Role::Skip | Role::Workbook => false,
        Role::Sheet | Role::Shared if in_f => false,
        Role::Sheet if in_v => cell.is_some_and(|c| c.2),
        _ => true,
    };
    if role == Role::Sheet && in_v && shared_cell {
        // a shared string's index: remember the first cell that shows it
        if let (Some(c), Some(i)) = (cell, ascii_number(raw)) {
            seen.note(i, sheet_index, c.0, c.1);
        }
    }
    if scanned && !raw.iter().all(u8::is_ascii_whitespace) {
        // copied once, into the batch (unescaped only where there is an entity); bytes that are
        // not UTF-8 are scanned too: the engine reads bytes
        let value: Option<std::borrow::Cow<'_, [u8]>> =
            if raw.contains(&b'&') { unescaped(raw).map(|v| v.into_bytes().into()) } else { Some(raw.into()) };
        if let Some(value) = value {
            if depth == 0 {
                // a unit of its own
                batch.unit(cell.map_or(Loc::Part, |c| Loc::Cell(c.0, c.1)));
            }
            let numeric = if in_v { cell.map_or(u32::MAX, |c| c.3) } else { u32::MAX };
            // a number written as a double (`1.3800138E10`, `13800138000.0`: Apache POI's way) is
            // read as the whole number it is; a change rewrites the cell whole anyway
            match (numeric != u32::MAX).then(|| whole_number(&value)).flatten() {
                Some(digits) => batch.node(at, &digits, numeric, false),
                None => batch.node(at, &value, numeric, false),
            }
        }
    }
}

/// The digits of a whole number of up to 19 digits written with a decimal point or an exponent
/// (`1.3800138E10`, `1.3800138E+10`, `13800138000.0`); `None` for plain digits and for anything
/// else (a fraction, a sign, a value too large for an identifier).
fn whole_number(v: &[u8]) -> Option<Vec<u8>> {
    let (mantissa, exp) = match v.iter().position(|&b| b == b'e' || b == b'E') {
        Some(i) => {
            let e = &v[i + 1..];
            let e = e.strip_prefix(b"+").unwrap_or(e);
            if e.is_empty() || e.len() > 2 || !e.iter().all(u8::is_ascii_digit) {
                return None;
            }
            (&v[..i], e.iter().fold(0usize, |a, &b| a * 10 + usize::from(b - b'0')))
        }
        None => (v, 0),
    };
    let (int, frac) = match mantissa.iter().position(|&b| b == b'.') {
        Some(i) => (&mantissa[..i], &mantissa[i + 1..]),
        None if exp > 0 => (mantissa, &b""[..]),
        // plain digits: read as they are
        None => return None,
    };
    if int.is_empty() || !int.iter().chain(frac).all(u8::is_ascii_digit) {
        return None;
    }
    let point = int.len() + exp;
    if point > 19 {
        // (nothing longer is an identifier: not copied)
        return None;
    }
    let mut digits: Vec<u8> = int.iter().chain(frac).copied().collect();
    if point < digits.len() {
        // past the point only zeros: a whole number
        if !digits[point..].iter().all(|&b| b == b'0') {
            return None;
        }
        digits.truncate(point);
    } else {
        digits.resize(point, b'0');
    }
    let lead = digits.iter().take_while(|&&b| b == b'0').count().min(digits.len() - 1);
    digits.drain(..lead);
    Some(digits)
}

/// The cell a start tag (at stream offsets `tag`) opens, given its `t` and its `r` as (row,
/// column): the cell being read (row, column, scanned, numeric cell index in the batch) and whether
/// it shows a shared string.
#[inline(always)]
fn open_cell(
    batch: &mut Batch,
    places: &mut Places,
    t: Option<&[u8]>,
    rc: (u32, u32),
    tag: Range<u64>,
) -> (Option<CellRead>, bool) {
    let (row, col) = places.cell((rc != NO_REF).then_some(rc));
    let numeric = matches!(t, None | Some(b"n"));
    let scanned = matches!(t, None | Some(b"n" | b"str" | b"inlineStr" | b"d"));
    let idx = if numeric {
        batch.cells.push(Cell { element: tag.start..tag.start, tag });
        batch.cells.len() as u32 - 1
    } else {
        u32::MAX
    };
    (Some((row, col, scanned, idx)), t == Some(b"s"))
}

/// A cell's attribute `key` with its raw `value`: its `t` and its `r` as (row, column) kept.
#[inline(always)]
fn cell_attribute<'a>(key: &[u8], value: &'a [u8], t: &mut Option<&'a [u8]>, rc: &mut (u32, u32)) {
    match key {
        b"t" => *t = Some(value),
        b"r" => *rc = parse_ref(value).unwrap_or((0, 0)),
        // (left `NO_REF` when the cell has none: see [`Places`])
        _ => {}
    }
}

/// The cell being read ended at stream offset `end`: a numeric cell's element is known whole.
#[inline(always)]
fn close_cell(batch: &mut Batch, cell: Option<CellRead>, end: u64) {
    if let Some(c) = cell.and_then(|c| batch.cells.get_mut(c.3 as usize)) {
        c.element = c.tag.start..end;
    }
}

/// A cell's start tag read: its `t`, its `r` as (row, column), and its length.
type CellTag<'a> = (Option<&'a [u8]>, (u32, u32), usize);

/// A cell's start tag as Excel writes it at the start of `b`: `<c`, then attributes, each after a
/// white space character, as `name="value"` (or `'value'`), then `>`. Its `t`, its `r` as (row,
/// column), and its length; `None` for any other tag, which is read as a token. Where it answers,
/// [`plain_token`] reads the same tag and [`cell_attributes`] the same attributes.
#[inline]
fn plain_cell(b: &[u8]) -> Option<CellTag<'_>> {
    if b.len() < 3 || b[0] != b'<' || b[1] != b'c' || !xml_space(b[2]) {
        return None;
    }
    let (mut t, mut rc) = (None, NO_REF);
    let mut i = 3;
    loop {
        let name_at = i;
        loop {
            match *b.get(i)? {
                b'=' => break,
                b'>' if i == name_at => return Some((t, rc, i + 1)),
                c if c <= b' ' || matches!(c, b'>' | b'/' | b'<' | b'"' | b'\'') => return None,
                _ => i += 1,
            }
        }
        let name = &b[name_at..i];
        let quote = *b.get(i + 1)?;
        if name.is_empty() || (quote != b'"' && quote != b'\'') {
            return None;
        }
        let v0 = i + 2;
        i = v0;
        while *b.get(i)? != quote {
            i += 1;
        }
        cell_attribute(name, &b[v0..i], &mut t, &mut rc);
        i += 1;
        match *b.get(i)? {
            b'>' => return Some((t, rc, i + 1)),
            c if xml_space(c) => i += 1,
            _ => return None,
        }
    }
}

/// Markup around a text as Excel writes it, read in one step by [`plain_element`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Form {
    /// a shared string: `<si>`, `<t>`, text, `</t>`, `</si>`
    Shared,
    /// a cell's value and the cell's end: `<v>`, text, `</v>`, `</c>`
    Value,
    /// a cell's inline string and the cell's end, as streaming writers write exports
    Inline,
}

impl Form {
    /// What opens it and what closes it.
    fn markup(self) -> (&'static [u8], &'static [u8]) {
        match self {
            Form::Shared => (b"<si><t>", b"</t></si>"),
            Form::Value => (b"<v>", b"</v></c>"),
            Form::Inline => (b"<is><t>", b"</t></is></c>"),
        }
    }
}

/// `form`'s opening markup, text without an entity reference, and its closing markup at the start
/// of `b`: the form, the text's range and the length of the whole. These are the tokens
/// [`plain_token`] reads there one by one, and the rewrite treats them as it treats those tokens
/// (`a_part_reads_the_same_with_forms_in_one_step`).
#[inline]
fn plain_element(b: &[u8], form: Form) -> Option<(Form, Range<usize>, usize)> {
    let (open, close) = form.markup();
    if !b.starts_with(open) {
        return None;
    }
    let end = find_any(b, open.len(), [b'<', b'&'])?;
    b[end..].starts_with(close).then_some((form, open.len()..end, end + close.len()))
}

#[cfg(test)]
thread_local! {
    /// Tests read parts token by token too, to compare.
    static TOKEN_BY_TOKEN: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Whether [`plain_element`] forms are read in one step (always, but in tests that compare).
#[inline(always)]
fn forms_in_one_step() -> bool {
    #[cfg(test)]
    return !TOKEN_BY_TOKEN.with(std::cell::Cell::get);
    #[cfg(not(test))]
    true
}

/// Names locations for findings.
struct Namer<'a> {
    package: &'a Package,
    sheet: &'a str,
    sheet_index: u32,
    here: &'a str,
    shared: &'a SharedRef<'a>,
    headers: &'a Headers,
    /// a pivot cache's field names, in order
    pivot: &'a [Vec<u8>],
}

impl Namer<'_> {
    fn name(&self, loc: Loc) -> String {
        match loc {
            Loc::Part => self.here.to_string(),
            Loc::Cell(r, c) => format!("{}!{}", self.sheet, cell_ref(r as usize, c as usize)),
            Loc::Shared(i) => (self.shared)(i)
                .and_then(|(s, r, c)| {
                    let (_, sheet) = self.package.sheets.get(s as usize)?;
                    Some(format!("{sheet}!{}", cell_ref(r as usize, c as usize)))
                })
                .unwrap_or_else(|| format!("{} string {}", self.here, i + 1)),
            Loc::Paragraph(n) => format!("{} ¶{n}", self.here),
            Loc::SheetName => format!("{} sheet name", self.here),
            Loc::PivotItem(_) => format!("{} pivot item", self.here),
        }
    }
}

/// A pivot cache's tag `t` (at stream offset `at`): a cache field (`name`: its field's name, the
/// header of the source column), a string item (`v`: a value of the field being read, masked in
/// place), or numbers (a number item's `v`, a field's `minValue` and `maxValue`: read only).
fn pivot_item(
    local: &[u8],
    t: &[u8],
    at: u64,
    batch: &mut Batch,
    names: &mut Vec<Vec<u8>>,
    field: &mut u32,
    numbers: &mut PivotNumbers,
) {
    let mut number = |v: String| {
        if numbers.text.len() < MAX_UNIT {
            numbers.starts.push((numbers.text.len(), *field));
            numbers.text.extend_from_slice(whole_number(v.as_bytes()).as_deref().unwrap_or(v.as_bytes()));
            numbers.text.push(b'\n');
        }
    };
    if local == b"cacheField" {
        *field = u32::try_from(names.len()).unwrap_or(u32::MAX);
        names.push(attribute_value(t, at, b"name").map(|(_, v)| v.into_bytes()).unwrap_or_default());
    } else if local == b"sharedItems" {
        for key in [&b"minValue"[..], b"maxValue"] {
            if let Some((_, v)) = attribute_value(t, at, key) {
                number(v);
            }
        }
    } else if local == b"n" {
        if let Some((_, v)) = attribute_value(t, at, b"v") {
            number(v);
        }
    } else if let Some((raw, value)) = attribute_value(t, at, b"v") {
        batch.unit(Loc::PivotItem(*field));
        batch.node(raw, value.as_bytes(), u32::MAX, true);
    }
}

/// Inspect the batch, and write the part up to stream offset `upto` with its edits; the batch and
/// the bytes written are let go. Whether anything changed.
fn flush<R>(
    win: &Window<R>,
    written: &mut u64,
    batch: &mut Batch,
    upto: u64,
    (out, replay, started): (&mut dyn Write, &mut Replay<'_>, bool),
    namer: &Namer<'_>,
    inspect: &mut Inspector<'_>,
) -> Result<bool, DocError> {
    let edits = if batch.nodes.is_empty() {
        Vec::new()
    } else {
        let (hint_l, hint_f) = (std::cell::Cell::new(0), std::cell::Cell::new(0));
        let locate = |at: usize| namer.name(batch.loc(at, &hint_l));
        // a cell's field is its column's header (a shared string's: of the first cell showing it)
        let field = |at: usize| match batch.loc(at, &hint_f) {
            Loc::Cell(r, c) => namer.headers.get(namer.sheet_index, r, c),
            // the cell the sheets read so far noted; where the strings come first (as Apache POI,
            // and so EasyExcel, writes them), the cell found by reading the sheets once before
            Loc::Shared(i) => (namer.shared)(i).and_then(|(s, r, c)| namer.headers.get(s, r, c)),
            // a pivot cache's item stands in its cache field (`姓名`), as a cell in its column
            Loc::PivotItem(i) => namer.pivot.get(i as usize).map(Vec::as_slice),
            _ => None,
        };
        // a workbook without header rows (or a document) has no fields: none is looked up
        let shape = if namer.headers.is_empty() && namer.pivot.is_empty() {
            Shape::Units(None)
        } else {
            Shape::Units(Some(&field))
        };
        inspect(&Part { text: &batch.text, locate: &locate, maskable: true, shape })
    };
    // the new bytes of each node (or whole numeric cell) that changed
    let Batch { text, nodes, cells, units, arena, replaced, cells_done, scratch, out: pending } = batch;
    if !edits.is_empty() {
        cells_done.clear();
        cells_done.resize(cells.len(), false);
        // nodes and edits are both in text order: one pass over each
        let mut first = 0;
        for n in nodes.iter() {
            let range = n.text.start as usize..n.text.end as usize;
            while edits.get(first).is_some_and(|e| e.end <= range.start) {
                first += 1;
            }
            if edits.get(first).is_none_or(|e| e.start >= range.end) {
                continue;
            }
            scratch.clear();
            if !node_text(text, range, &edits[first..], scratch) {
                continue;
            }
            // bytes that are not UTF-8 (from a node that was not) are written as replacement
            // characters; most masked values are ASCII (`138****8000`) and need no check
            let new = if scratch.is_ascii() { std::borrow::Cow::Borrowed(&scratch[..]) } else { lossy(scratch) };
            let a0 = arena.len();
            match cells.get(n.cell as usize).filter(|c| c.element.end > c.element.start) {
                Some(c) => {
                    if cells_done[n.cell as usize] {
                        continue;
                    }
                    cells_done[n.cell as usize] = true;
                    inline_cell(win.bytes(c.tag.clone()), &new, arena);
                    replaced.push((c.element.clone(), a0..arena.len()));
                }
                None => {
                    let new = if n.sheet_name { sheet_name_safe(new) } else { new };
                    escape_into(&new, n.attribute, arena);
                    replaced.push((n.raw.clone(), a0..arena.len()));
                }
            }
        }
        replaced.sort_by_key(|r| r.0.start);
    }
    let changed = !replaced.is_empty();
    let io = |e: std::io::Error| DocError::Corrupt(format!("{}: {e}", namer.here));
    if changed && !started {
        replay(*written, out).map_err(io)?;
    }
    if changed || started {
        // the batch's bytes with the new ones spliced in, written at once (each write is a
        // compressor call)
        let mut at = *written;
        pending.clear();
        for (range, bytes) in replaced.iter() {
            if range.start < at {
                continue; // inside a cell already rewritten whole
            }
            pending.extend_from_slice(win.bytes(at..range.start));
            pending.extend_from_slice(&arena[bytes.clone()]);
            at = range.end;
        }
        pending.extend_from_slice(win.bytes(at..upto));
        out.write_all(pending).map_err(io)?;
    }
    *written = upto;
    for v in [text, arena, scratch, pending] {
        v.clear();
    }
    nodes.clear();
    cells.clear();
    units.clear();
    replaced.clear();
    Ok(changed)
}

/// A token of an XML part as the rewrite reads it: a tag by its name (prefix and all) and the bytes
/// of its attributes; text and entity references alike as text; comments, CDATA, declarations and
/// processing instructions as other markup.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tok<'a> {
    Start(&'a [u8], &'a [u8]),
    Empty(&'a [u8], &'a [u8]),
    End(&'a [u8]),
    Text,
    Other,
    Eof,
}

/// The next token of `b` and its length; `None` when `b` ends before the token does and more is
/// to come (not `eof`). Tags and text without entity references, nearly every token of an Office
/// part, are read by [`plain_token`]; everything else, and anything malformed, by quick-xml.
fn token(b: &[u8], eof: bool) -> Result<Option<(Tok<'_>, usize)>, quick_xml::Error> {
    match plain_token(b) {
        Some(t) => Ok(Some(t)),
        None => parsed_token(b, eof),
    }
}

/// [`token`], read by quick-xml.
fn parsed_token(b: &[u8], eof: bool) -> Result<Option<(Tok<'_>, usize)>, quick_xml::Error> {
    let mut reader = quick_xml::Reader::from_reader(b);
    // an element may have begun before `b`
    reader.config_mut().check_end_names = false;
    reader.config_mut().allow_unmatched_ends = true;
    let ev = match reader.read_event() {
        Ok(ev) => ev,
        Err(_) if !eof => return Ok(None),
        Err(e) => return Err(e),
    };
    // what it read (quick-xml's position leaves out a byte order mark it skipped)
    let len = b.len() - reader.get_ref().len();
    let tok = match ev {
        // all it read was a byte order mark it skipped: text
        Event::Eof if len > 0 => Tok::Text,
        Event::Eof if !eof => return Ok(None),
        Event::Eof => Tok::Eof,
        Event::Text(_) | Event::GeneralRef(_) => Tok::Text,
        Event::Start(_) | Event::Empty(_) | Event::End(_) => tag(&b[..len]),
        _ => Tok::Other,
    };
    Ok(Some((tok, len)))
}

/// The token at the start of `b` when it is a tag (`<`, a name, attributes, `>` outside quotes)
/// or text up to a tag without an entity reference; `None` for anything else. Where it answers,
/// it answers as quick-xml does (`tokens_read_here_are_quick_xml_tokens`), in a few instructions a
/// byte: quick-xml calls `memchr` for each quote and each text node, costlier than the few bytes
/// such spans have, and tokenizing was a third of rewriting a workbook. One exception, on purpose:
/// a byte order mark before a tag is text here, where a new quick-xml reader skips it and reads
/// the tag with it (its bytes are kept either way).
fn plain_token(b: &[u8]) -> Option<(Tok<'_>, usize)> {
    if *b.first()? != b'<' {
        // text to the end of `b` is left to quick-xml (it is followed by the end of the part)
        let i = find_any(b, 0, [b'<', b'&'])?;
        return (b[i] == b'<').then_some((Tok::Text, i));
    }
    let end_tag = *b.get(1)? == b'/';
    let name_at = 1 + usize::from(end_tag);
    let first = *b.get(name_at)?;
    if !(first.is_ascii_alphabetic() || first == b'_') {
        return None;
    }
    // the name, to the first white space (or the end of the tag)
    let mut i = name_at + 1;
    loop {
        match *b.get(i)? {
            b'>' => break,
            c if xml_space(c) => break,
            b'"' | b'\'' => return None,
            _ => i += 1,
        }
    }
    let name_end = i;
    // the `>` outside quotes
    loop {
        match *b.get(i)? {
            b'>' => break,
            q @ (b'"' | b'\'') => {
                i += 1;
                while *b.get(i)? != q {
                    i += 1;
                }
            }
            _ => {}
        }
        i += 1;
    }
    Some((split_tag(b, name_end, i), i + 1))
}

/// Where the first byte of `set` is in `b` from `i` on, eight bytes at a time: spans here are a few
/// bytes to a few dozen, for which a `memchr` call costs more than the search.
#[inline]
fn find_any<const N: usize>(b: &[u8], mut i: usize, set: [u8; N]) -> Option<usize> {
    const LO: u64 = 0x0101_0101_0101_0101;
    const HI: u64 = 0x8080_8080_8080_8080;
    while let Some(w) = b.get(i..i + 8) {
        let w = u64::from_le_bytes(w.try_into().ok()?);
        // the high bit of each byte equal to one of `set`: exact up to the first such byte
        let hit = set.iter().fold(0, |hit, &c| {
            let x = w ^ (LO * u64::from(c));
            hit | (x.wrapping_sub(LO) & !x & HI)
        });
        if hit != 0 {
            return Some(i + (hit.trailing_zeros() / 8) as usize);
        }
        i += 8;
    }
    b.get(i..)?.iter().position(|c| set.contains(c)).map(|p| i + p)
}

/// A whole tag (`<` to `>`, from quick-xml) as a token: see [`split_tag`].
fn tag(raw: &[u8]) -> Tok<'_> {
    let close = raw.len().saturating_sub(1);
    let name_at = (1 + usize::from(raw.get(1) == Some(&b'/'))).min(close);
    let name_end = raw[name_at..close].iter().position(|&c| xml_space(c)).map_or(close, |p| name_at + p);
    split_tag(raw, name_end, close)
}

/// XML white space (all quick-xml takes for it).
fn xml_space(c: u8) -> bool {
    matches!(c, b' ' | b'\t' | b'\r' | b'\n')
}

/// The tag `b[..=close]` (`b[close]` is its `>`) as a token, named and split as quick-xml does:
/// the name runs from after `<` or `</` to `name_end` (the first white space, or `close`); an end
/// tag's name loses white space after it (unless it is nothing else); `/` before `>` makes a start
/// tag empty.
// inlined into `plain_token`, which runs for every tag (a call costs 4 % of a workbook)
#[inline(always)]
fn split_tag(b: &[u8], name_end: usize, close: usize) -> Tok<'_> {
    let end_tag = b.get(1) == Some(&b'/');
    let name_at = (1 + usize::from(end_tag)).min(close);
    if end_tag {
        let mut e = close;
        while e > name_at && xml_space(b[e - 1]) {
            e -= 1;
        }
        return Tok::End(&b[name_at..if e == name_at { close } else { e }]);
    }
    let empty = close > name_at && b[close - 1] == b'/';
    let content_end = close - usize::from(empty);
    let cut = name_end.min(content_end);
    let (name, attributes) = (&b[name_at..cut], &b[cut..content_end]);
    if empty { Tok::Empty(name, attributes) } else { Tok::Start(name, attributes) }
}

/// `b` as UTF-8: as it is when it is, with replacement characters where it is not.
fn lossy(b: &[u8]) -> std::borrow::Cow<'_, [u8]> {
    match std::str::from_utf8(b) {
        Ok(_) => std::borrow::Cow::Borrowed(b),
        Err(_) => std::borrow::Cow::Owned(String::from_utf8_lossy(b).into_owned().into_bytes()),
    }
}

/// `b` escaped for XML text (`attribute`: for an attribute value, quotes too) onto `out`; most
/// values need no escaping, and are copied as they are.
fn escape_into(b: &[u8], attribute: bool, out: &mut Vec<u8>) {
    // a short value is searched byte by byte: cheaper than a `memchr` call
    let special = if b.len() < 32 {
        b.iter().any(|&c| matches!(c, b'<' | b'>' | b'&') || (attribute && matches!(c, b'"' | b'\'')))
    } else {
        memchr::memchr3(b'<', b'>', b'&', b).is_some() || (attribute && memchr::memchr2(b'"', b'\'', b).is_some())
    };
    if !special {
        out.extend_from_slice(b);
        return;
    }
    let s = String::from_utf8_lossy(b);
    if attribute {
        out.extend_from_slice(quick_xml::escape::escape(s.as_ref()).as_bytes());
    } else {
        out.extend_from_slice(quick_xml::escape::partial_escape(s.as_ref()).as_bytes());
    }
}

/// A rewritten sheet name as Excel allows one: `* ? / \ [ ] :` (a mask's stars, a label's
/// brackets) become their full-width forms, or no reader opens the workbook.
fn sheet_name_safe(name: std::borrow::Cow<'_, [u8]>) -> std::borrow::Cow<'_, [u8]> {
    if !name.iter().any(|b| b"*?/\\[]:".contains(b)) {
        return name;
    }
    let mut out = Vec::with_capacity(name.len() + 16);
    for &b in name.iter() {
        match b {
            b'*' => out.extend_from_slice("＊".as_bytes()),
            b'?' => out.extend_from_slice("？".as_bytes()),
            b'/' => out.extend_from_slice("／".as_bytes()),
            b'\\' => out.extend_from_slice("＼".as_bytes()),
            b'[' => out.extend_from_slice("［".as_bytes()),
            b']' => out.extend_from_slice("］".as_bytes()),
            b':' => out.extend_from_slice("：".as_bytes()),
            _ => out.push(b),
        }
    }
    std::borrow::Cow::Owned(out)
}

/// The number written in ASCII digits in `b`, around which there may be whitespace.
fn ascii_number(b: &[u8]) -> Option<usize> {
    let b = b.trim_ascii();
    if b.is_empty() || b.len() > 12 {
        return None;
    }
    b.iter().try_fold(0usize, |n, &d| d.is_ascii_digit().then(|| n * 10 + usize::from(d - b'0')))
}

/// An element's name without its namespace prefix (`w:p` → `p`): what quick-xml's `local_name`
/// gives, without a `memchr` call for a name of a few bytes (this runs for every tag).
fn local_name(name: &[u8]) -> &[u8] {
    name.iter().position(|&b| b == b':').map_or(name, |i| &name[i + 1..])
}

/// Elements whose text nodes form one unit.
fn unit_element(local: &[u8]) -> bool {
    matches!(local, b"p" | b"si" | b"is" | b"text" | b"comment")
}

fn unescaped(raw: &[u8]) -> Option<String> {
    let s = std::str::from_utf8(raw).ok()?;
    quick_xml::escape::unescape(s).ok().map(|c| c.into_owned())
}

/// The value of attribute `name` in the tag `t` (which starts at stream offset `at`): its raw byte
/// range (stream offsets) and unescaped value.
fn attribute_value(t: &[u8], at: u64, name: &[u8]) -> Option<(Range<u64>, String)> {
    let mut i = 0;
    while let Some(p) = memchr::memmem::find(&t[i..], name) {
        let k = i + p;
        i = k + 1;
        let before_ok = k > 0 && t[k - 1].is_ascii_whitespace();
        let rest = &t[k + name.len()..];
        let eq = rest.iter().position(|b| !b.is_ascii_whitespace())?;
        if !before_ok || rest.get(eq) != Some(&b'=') {
            continue;
        }
        let after = &rest[eq + 1..];
        let q = after.iter().position(|b| !b.is_ascii_whitespace())?;
        let quote = *after.get(q)?;
        if quote != b'"' && quote != b'\'' {
            return None;
        }
        let vstart = k + name.len() + eq + 1 + q + 1;
        let vlen = memchr::memchr(quote, &t[vstart..])?;
        let value = unescaped(&t[vstart..vstart + vlen])?;
        return Some((at + vstart as u64..at + (vstart + vlen) as u64, value));
    }
    None
}

/// A cell whose number was masked, as an inline string cell: the start tag's attributes but `t`,
/// then `t="inlineStr"` and the text.
fn inline_cell(raw: &[u8], text: &[u8], out: &mut Vec<u8>) {
    let inner = raw.strip_prefix(b"<").unwrap_or(raw);
    let inner = inner.strip_suffix(b">").unwrap_or(inner);
    // the attributes follow the element's name, whose prefix (`x:c` in a sheet that binds the
    // spreadsheet namespace to `x`) the new elements take too: unprefixed, they would be in no
    // namespace a reader knows, and the cell would read empty
    let name_end = inner.iter().position(u8::is_ascii_whitespace).unwrap_or(inner.len());
    let (name, attributes) = inner.split_at(name_end);
    let prefix = &name[..name.iter().position(|&b| b == b':').map_or(0, |p| p + 1)];
    let tag = |out: &mut Vec<u8>, open: &[u8], local: &[u8]| {
        out.extend_from_slice(open);
        out.extend_from_slice(prefix);
        out.extend_from_slice(local);
    };
    tag(out, b"<", b"c");
    for (key, value) in cell_attributes(attributes) {
        if key == b"t" {
            continue;
        }
        out.push(b' ');
        out.extend_from_slice(key);
        out.extend_from_slice(b"=\"");
        out.extend_from_slice(value);
        out.push(b'"');
    }
    out.extend_from_slice(b" t=\"inlineStr\">");
    tag(out, b"<", b"is>");
    tag(out, b"<", b"t>");
    escape_into(text, false, out);
    tag(out, b"</", b"t>");
    tag(out, b"</", b"is>");
    tag(out, b"</", b"c>");
}

/// The new text of the node at `range` of the unit text, or `None` when no edit touches it.
///
/// An edit whose replacement has as many characters as the value it replaces is spread over the
/// nodes character by character (each run keeps the masked form of its own characters); any other
/// replacement goes whole into the node where the value starts, and the value's characters in
/// later nodes are removed.
fn node_text(text: &[u8], range: Range<usize>, edits: &[Edit], out: &mut Vec<u8>) -> bool {
    // the caller passes the edits from the first that may touch the node on: skipped linearly
    let touching = edits.iter().skip_while(|e| e.end <= range.start).take_while(|e| e.start < range.end);
    let mut at = range.start;
    let mut changed = false;
    for e in touching {
        let (s, t) = (e.start.max(range.start), e.end.min(range.end));
        if s < at || s > t {
            continue;
        }
        out.extend_from_slice(&text[at..s]);
        at = t;
        changed = true;
        if (s, t) == (e.start, e.end) {
            // the value is all in this node (the usual case): its replacement goes whole
            out.extend_from_slice(&e.with);
            continue;
        }
        let orig = &text[e.start..e.end];
        let orig_chars = char_count(orig);
        if orig_chars == char_count(&e.with) {
            let c0 = char_count(&text[e.start..s]);
            let c1 = c0 + char_count(&text[s..t]);
            out.extend_from_slice(char_slice(&e.with, c0, c1));
        } else if s == e.start {
            out.extend_from_slice(&e.with);
        }
    }
    if changed {
        out.extend_from_slice(&text[at..range.end]);
    }
    changed
}

fn char_count(b: &[u8]) -> usize {
    b.iter().filter(|&&c| (c & 0xC0) != 0x80).count()
}

/// Characters `from..to` of UTF-8 bytes `b`.
fn char_slice(b: &[u8], from: usize, to: usize) -> &[u8] {
    let mut starts = b.iter().enumerate().filter(|(_, c)| (**c & 0xC0) != 0x80).map(|(i, _)| i);
    let s = starts.clone().nth(from).unwrap_or(b.len());
    let e = starts.nth(to).unwrap_or(b.len());
    &b[s..e.max(s)]
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn node(text: &[u8], range: Range<usize>, edits: &[Edit]) -> Option<Vec<u8>> {
        let mut out = Vec::new();
        node_text(text, range, edits, &mut out).then_some(out)
    }

    fn edit(start: usize, end: usize, with: &str) -> Edit {
        Edit { start, end, with: with.as_bytes().to_vec() }
    }

    /// `SECRET` masked wherever it is in a unit's text.
    fn mask_secret(part: &Part<'_>) -> Vec<Edit> {
        memchr::memmem::find_iter(part.text, b"SECRET")
            .map(|at| Edit { start: at, end: at + 6, with: b"******".to_vec() })
            .collect()
    }

    /// `xml` rewritten as a Word document's body: whether it changed, and the new part.
    fn rewrite_docx(xml: &str, inspect: &mut Inspector<'_>) -> Result<(bool, Vec<u8>), DocError> {
        let package = Package { kind: Kind::Docx, sheets: Vec::new(), shared: SHARED_STRINGS.into() };
        let mut out = Vec::new();
        let mut replay = |n: u64, w: &mut dyn Write| w.write_all(&xml.as_bytes()[..n as usize]);
        let shared = (&(|_| None) as &SharedRef<'_>, &SharedSeen::default(), &Headers::default());
        let changed = rewrite_part(
            &package,
            "word/document.xml",
            xml.as_bytes(),
            &mut out,
            &mut replay,
            "doc",
            shared,
            inspect,
            &mut false,
        )?;
        Ok((changed, out))
    }

    #[test]
    fn a_masked_value_is_spread_over_the_runs_that_held_it() {
        // "ID 110105" held as "ID 11" | "01" | "05"
        let text = b"ID 110105";
        let e = [edit(3, 9, "11**05")];
        assert_eq!(node(text, 0..5, &e).as_deref(), Some(&b"ID 11"[..]));
        assert_eq!(node(text, 5..7, &e).as_deref(), Some(&b"**"[..]));
        assert_eq!(node(text, 7..9, &e).as_deref(), Some(&b"05"[..]));
    }

    #[test]
    fn a_label_goes_where_the_value_began() {
        let text = b"ID 110105";
        let e = [edit(3, 9, "[ID]")];
        assert_eq!(node(text, 0..5, &e).as_deref(), Some(&b"ID [ID]"[..]));
        assert_eq!(node(text, 5..7, &e).as_deref(), Some(&b""[..]));
        assert_eq!(node(text, 7..9, &e).as_deref(), Some(&b""[..]));
    }

    #[test]
    fn multibyte_characters_are_spread_by_character() {
        let text = "张伟".as_bytes();
        let e = [edit(0, 6, "张*")];
        assert_eq!(node(text, 0..3, &e).as_deref(), Some("张".as_bytes()));
        assert_eq!(node(text, 3..6, &e).as_deref(), Some("*".as_bytes()));
    }

    #[test]
    fn sheet_name_attribute_found() {
        let xml = br#"<sheet name="A&amp;B" sheetId="1"/>"#;
        let (r, v) = attribute_value(xml, 100, b"name").expect("name");
        assert_eq!(v, "A&B");
        assert_eq!(&xml[r.start as usize - 100..r.end as usize - 100], b"A&amp;B");
        assert!(attribute_value(br#"<sheet sheetname="x"/>"#, 0, b"name").is_none());
    }

    #[test]
    fn cell_references_parse() {
        assert_eq!(parse_ref(b"A1"), Some((0, 0)));
        assert_eq!(parse_ref(b"C17"), Some((16, 2)));
        assert_eq!(parse_ref(b"AA10"), Some((9, 26)));
        assert_eq!(parse_ref(b"A0"), None);
        assert_eq!(parse_ref(b"17"), None);
        assert_eq!(parse_ref(b"ABCD1"), None);
        assert_eq!(parse_ref(b"A99999999999"), None);
        assert_eq!(parse_ref(b"xfd1048576"), Some((1_048_575, 16_383)));
        // bytes next to the letters' (`@`, `[`, `` ` ``, `{`) and a letter after the digits
        for r in [&b"@1"[..], b"[1", b"`1", b"{1", b"A1B", b"A 1"] {
            assert_eq!(parse_ref(r), None, "{}", String::from_utf8_lossy(r));
        }
    }

    #[test]
    fn cell_attributes_are_read_in_place() {
        let all: Vec<_> = cell_attributes(br#" r="C17" s = '2'  t="inlineStr""#).collect();
        assert_eq!(all, [(&b"r"[..], &b"C17"[..]), (b"s", b"2"), (b"t", b"inlineStr")]);
        // a value that is not closed ends the list
        assert_eq!(cell_attributes(br#" r="C17" t="s"#).count(), 1);
        assert_eq!(cell_attributes(b" r=C17").count(), 0);
        // any white space around names and `=`; an empty value; a name without a value ends it
        let all: Vec<_> = cell_attributes(b"\tr\n=\r\"A1\"\n\nt=''  s").collect();
        assert_eq!(all, [(&b"r"[..], &b"A1"[..]), (b"t", b"")]);
        assert_eq!(cell_attributes(b"  ").count(), 0);
        assert_eq!(cell_attributes(b" =\"x\"").count(), 0);
    }

    /// A part far larger than a batch: every value found and rewritten, whichever batch it falls
    /// in, and every other byte kept.
    #[test]
    fn large_parts_are_rewritten_batch_by_batch() {
        let mut xml = String::from("<w:document><w:body>");
        // a first batch without findings: written only once a later one changes
        for i in 0..10_000 {
            xml.push_str(&format!("<w:p><w:r><w:t>clean row {i} of a long paragraph</w:t></w:r></w:p>"));
        }
        for i in 0..20_000 {
            // the value split over two runs, one paragraph each
            xml.push_str(&format!(
                "<w:p><w:r><w:t>row {i} of a long paragraph SEC</w:t></w:r><w:r><w:t>RET end</w:t></w:r></w:p>"
            ));
        }
        xml.push_str("</w:body></w:document>");
        assert!(xml.len() > 2 * BATCH);
        let mut calls = 0;
        let mut inspect = |part: &Part<'_>| {
            calls += 1;
            mask_secret(part)
        };
        let (changed, out) = rewrite_docx(&xml, &mut inspect).expect("rewrite");
        assert!(changed);
        assert!(calls > 1, "one batch only");
        let expected = xml.replace("SEC</w:t>", "***</w:t>").replace("<w:t>RET end", "<w:t>*** end");
        assert_eq!(String::from_utf8(out).expect("utf-8"), expected);
    }

    /// Markup is parsed a block at a time, up to the last `<` read: a comment or CDATA section
    /// holding `<` that a block boundary cuts is read again whole with the next block.
    #[test]
    fn markup_cut_by_a_block_boundary_is_read_whole() {
        let mut xml = String::from("<w:document><w:body>");
        let mut i = 0;
        // paragraphs up to exactly `at` bytes
        let mut pad_to = |xml: &mut String, at: usize| {
            while xml.len() + 100 < at {
                xml.push_str(&format!("<w:p><w:r><w:t>row {i}</w:t></w:r></w:p>"));
                i += 1;
            }
            let fill = at - xml.len() - "<w:p><w:r><w:t></w:t></w:r></w:p>".len();
            xml.push_str(&format!("<w:p><w:r><w:t>{}</w:t></w:r></w:p>", "y".repeat(fill)));
        };
        // a comment with `<` inside across the first block boundary, a CDATA section across
        // the second
        pad_to(&mut xml, BLOCK - 20);
        let comment = xml.len();
        xml.push_str("<!-- a < b, and <w:t>SECRET</w:t> is no text here -->");
        assert!(comment < BLOCK && xml.len() > BLOCK);
        // the boundary right after `<z` inside the section
        pad_to(&mut xml, 2 * BLOCK - 32);
        xml.push_str("<w:p><w:r><w:t><![CDATA[x < y <z> ]]> SECRET</w:t></w:r></w:p>");
        assert_eq!(&xml[2 * BLOCK - 2..2 * BLOCK], "<z");
        xml.push_str("<w:p><w:r><w:t>last SECRET</w:t></w:r></w:p></w:body></w:document>");
        let (changed, out) = rewrite_docx(&xml, &mut mask_secret).expect("rewrite");
        assert!(changed);
        // the comment is not text: it stays as it was; the text after the CDATA is masked
        let expected = xml.replace("]]> SECRET", "]]> ******").replace("last SECRET", "last ******");
        assert_eq!(String::from_utf8(out).expect("utf-8"), expected);
    }

    /// A text node (or comment) larger than any unit, without an end, is refused rather than held.
    #[test]
    fn a_text_node_without_end_is_refused() {
        let mut xml = String::from("<w:document><w:body><w:p><w:r><w:t>");
        xml.push_str(&"x".repeat(MAX_UNIT + 2 * BLOCK));
        xml.push_str("</w:t></w:r></w:p></w:body></w:document>");
        let r = rewrite_docx(&xml, &mut |_: &Part<'_>| Vec::new());
        assert!(matches!(r, Err(DocError::Limit(_))), "{r:?}");
        // a comment that never ends, with tags inside: read again round after round, as far as
        // the limit
        let mut xml = String::from("<w:document><w:body><!-- ");
        while xml.len() < MAX_UNIT + 2 * BLOCK {
            xml.push_str("<w:p><w:t>SECRET</w:t></w:p>");
        }
        let r = rewrite_docx(&xml, &mut mask_secret);
        assert!(matches!(r, Err(DocError::Limit(_))), "{r:?}");
    }

    /// One paragraph larger than any real one is inspected in pieces, not held whole.
    #[test]
    fn an_overgrown_unit_is_cut() {
        let mut xml = String::from("<w:document><w:body><w:p>");
        while xml.len() < 2 * MAX_UNIT + 100 {
            xml.push_str("<w:r><w:t>text SECRET more text and more text</w:t></w:r>");
        }
        xml.push_str("</w:p></w:body></w:document>");
        let mut largest = 0;
        let mut inspect = |part: &Part<'_>| {
            largest = largest.max(part.text.len());
            mask_secret(part)
        };
        let (_, out) = rewrite_docx(&xml, &mut inspect).expect("rewrite");
        assert!(largest <= MAX_UNIT + 64, "a piece of {largest} bytes");
        assert_eq!(String::from_utf8(out).expect("utf-8"), xml.replace("SECRET", "******"));
    }

    /// XML-like bytes, well-formed or not: tags with prefixes, attributes in either quotes (holding
    /// `>` and the other quote), white space of every kind, text with and without entity
    /// references (good, bad, lone), comments, CDATA, declarations, and stray markup characters.
    fn xmlish() -> impl Strategy<Value = Vec<u8>> {
        let name = "(x:)?[a-zA-Z_\u{4e2d}][a-zA-Z0-9:._\u{4e2d}-]{0,5}";
        let ws = "[ \t\r\n]{0,2}";
        let value = "[a1 >/<&\u{4e2d}'\"]{0,6}";
        let attr = (ws, name, ws, ws, prop_oneof![Just('"'), Just('\'')], value, any::<bool>()).prop_map(
            |(w, n, w1, w2, q, v, close): (String, String, String, String, char, String, bool)| {
                let v: String = v.chars().filter(|&c| c != q).collect();
                let end = if close { q.to_string() } else { String::new() };
                format!("{w}{n}{w1}={w2}{q}{v}{end}")
            },
        );
        let piece = prop_oneof![
            4 => (name, prop::collection::vec(attr.clone(), 0..3), ws, prop_oneof![Just(">"), Just("/>")])
                .prop_map(|(n, a, w, close)| format!("<{n}{}{w}{close}", a.concat())),
            3 => (name, ws, prop::collection::vec(attr, 0..2)).prop_map(|(n, w, a)| format!("</{n}{w}{}>", a.concat())),
            4 => "[a1 \u{4e2d}\t\r\n>\"'/=]{1,20}",
            1 => prop_oneof![Just("&amp;"), Just("&#38;"), Just("&"), Just("&lt")].prop_map(String::from),
            1 => prop_oneof![
                Just("<!-- a > b <c> -->"),
                Just("<![CDATA[ <v>1</v> ]]>"),
                Just("<?xml version=\"1.0\"?>"),
                Just("<!DOCTYPE x>"),
                Just("<"),
                Just("< a>"),
                Just("<1>"),
                Just("</>"),
                Just("<a"),
                Just("<a/ >"),
                Just("<a/b>"),
                Just("<!-- open"),
                Just("<![CDATA[ open"),
                Just("<?pi open"),
                Just("<!DOCTYPE x [<!ENTITY e \"v\">]>"),
                Just("\u{FEFF}"),
            ]
            .prop_map(String::from),
        ];
        prop::collection::vec(piece, 0..24).prop_map(|p| p.concat().into_bytes())
    }

    /// What reading workbook part `name` gives (forms in one step, or `token_by_token`): the result,
    /// the part written, each batch's text with where its units are, and the shared strings noted.
    #[allow(clippy::type_complexity)]
    fn read_workbook_part(
        name: &str,
        xml: &[u8],
        token_by_token: bool,
    ) -> (Result<bool, String>, String, Vec<(Vec<u8>, Vec<String>)>, Vec<Option<(u32, u32, u32)>>) {
        TOKEN_BY_TOKEN.with(|c| c.set(token_by_token));
        let package = Package {
            kind: Kind::Xlsx,
            sheets: vec![("xl/worksheets/sheet1.xml".into(), "表".into())],
            shared: SHARED_STRINGS.into(),
        };
        let (mut out, mut seen_by_engine) = (Vec::new(), Vec::new());
        let mut replay = |n: u64, w: &mut dyn Write| w.write_all(&xml[..n as usize]);
        let seen = SharedSeen::default();
        let refs = (&(|_| None) as &SharedRef<'_>, &seen, &Headers::default());
        let mut inspect = |part: &Part<'_>| {
            // each unit's text and where it is; runs of three digits or more masked
            let units = std::iter::once(0).chain(memchr::memchr_iter(b'\n', part.text).map(|i| i + 1));
            seen_by_engine.push((part.text.to_vec(), units.map(|u| (part.locate)(u)).collect::<Vec<_>>()));
            let mut edits = Vec::new();
            let mut i = 0;
            while i < part.text.len() {
                let n = part.text[i..].iter().take_while(|c| c.is_ascii_digit()).count();
                if n >= 3 {
                    edits.push(Edit { start: i, end: i + n, with: vec![b'*'; n] });
                }
                i += n.max(1);
            }
            edits
        };
        let r = rewrite_part(&package, name, xml, &mut out, &mut replay, name, refs, &mut inspect, &mut false)
            .map_err(|e| e.to_string());
        TOKEN_BY_TOKEN.with(|c| c.set(false));
        let noted: Vec<_> = (0..4096).map(|i| seen.get(i)).collect();
        (r, String::from_utf8_lossy(&out).into_owned(), seen_by_engine, noted)
    }

    /// Parts far larger than a block read the same both ways: forms cut by the end of a round
    /// are read token by token or with the next round, never half.
    #[test]
    fn large_parts_read_the_same_with_forms_in_one_step() {
        let (mut sheet, mut strings) = (String::from("<worksheet><sheetData>"), String::from("<sst>"));
        for row in 1..12_000 {
            sheet.push_str(&format!(r#"<row r="{row}"><c r="A{row}" s="1" t="s"><v>{}</v></c>"#, row % 4096));
            sheet.push_str(&format!(r#"<c r="B{row}"><v>13{row:09}</v></c><c r="C{row}" t="inlineStr">"#));
            sheet.push_str(&format!("<is><t>卡 62{row:014}</t></is></c></row>"));
            strings.push_str(&format!("<si><t>号码 {row:06}</t></si>"));
        }
        sheet.push_str("</sheetData></worksheet>");
        strings.push_str("</sst>");
        for (name, xml) in [("xl/worksheets/sheet1.xml", sheet), ("xl/sharedStrings.xml", strings)] {
            assert!(xml.len() > 2 * BLOCK, "{name}: {} bytes", xml.len());
            let one_step = read_workbook_part(name, xml.as_bytes(), false);
            assert_eq!(one_step.0, Ok(true), "{name}");
            assert!(one_step.2.len() > 1, "{name}: one batch only");
            assert_eq!(one_step, read_workbook_part(name, xml.as_bytes(), true), "{name}");
        }
    }

    /// Markup as a workbook's sheets and shared strings hold it: the forms read in one step
    /// ([`Form`]), what comes close to them, and what breaks them.
    fn workbookish() -> impl Strategy<Value = Vec<u8>> {
        let text = "[0-9a \u{4e2d}\n]{0,12}";
        let piece = prop_oneof![
            4 => (0u32..4, 1u32..30, 0u8..6, 0u8..12).prop_map(|(c, r, t, form)| {
                let t = ["", " t=\"s\"", " t=\"inlineStr\"", " t=\"n\" s=\"1\"", " t=\"str\"", " t='s'"][t as usize];
                let r = format!("{}{r}", ["A", "B", "AB", "c"][c as usize]);
                match form {
                    // as Excel writes it, and what comes close
                    0..=4 => format!("<c r=\"{r}\"{t}>"),
                    5 => format!("<c{t} r='{r}' >"),
                    6 => format!("<c\tr=\"{r}\"{t} x14ac:dy=\"0.25\" t=\"n\">"),
                    7 => format!("<c  r=\"{r}\"{t}>"),
                    8 => format!("<c r = \"{r}\"{t}>"),
                    9 => format!("<c r=\"{r}\"{t}/>"),
                    10 => format!("<c r=\"{r}\"t=\"s\">"),
                    _ => format!("<cx r=\"{r}\"{t}>"),
                }
            }),
            3 => text.prop_map(|t| format!("<v>{t}</v></c>")),
            // a shared string's index
            2 => (0u32..12).prop_map(|i| format!("<v>{i}</v></c>")),
            2 => text.prop_map(|t| format!("<is><t>{t}</t></is></c>")),
            3 => text.prop_map(|t| format!("<si><t>{t}</t></si>")),
            1 => (text, 0u8..8).prop_map(|(t, v)| match v {
                0 => format!("<v>{t}&amp;1</v></c>"),
                1 => format!("<v>{t}</v>"),
                2 => format!("<x:v>{t}</x:v></c>"),
                3 => format!("<si><t xml:space=\"preserve\">{t}</t></si>"),
                4 => format!("<si><r><t>{t}</t></r></si>"),
                5 => format!("<is><t>{t}</t></is>"),
                6 => format!("<si><t>{t}</t>"),
                _ => format!("<f>SUM({t})</f>"),
            }),
            2 => prop_oneof![
                Just("<row r=\"3\">"),
                Just("</row>"),
                Just("</c>"),
                Just("<c/>"),
                Just("<v/>"),
                Just("</si>"),
                Just("<si/>"),
                Just("</v>"),
                Just("\n "),
                Just("<sheetData>"),
                Just("&lt;"),
                Just("<"),
                Just("<!-- <v>1</v> -->"),
            ]
            .prop_map(String::from),
            1 => text.prop_map(String::from),
        ];
        prop::collection::vec(piece, 0..24).prop_map(|p| p.concat().into_bytes())
    }

    /// Tokens as (token, start, end) from `next` (given where it is: the token and its length, or
    /// `None` at the end), ending with the error's start if there is one. Text tokens in a row are
    /// one (the rewrite reads them as one run: quick-xml splits text at entity references).
    fn tokens_of(mut next: impl FnMut(usize) -> Result<Option<(String, usize)>, ()>) -> Vec<(String, usize, usize)> {
        let (mut at, mut out) = (0, Vec::<(String, usize, usize)>::new());
        loop {
            match next(at) {
                Ok(None) => return out,
                Ok(Some((t, len))) => {
                    match out.last_mut() {
                        Some(last) if t == "Text" && last.0 == "Text" => last.2 = at + len,
                        _ => out.push((t, at, at + len)),
                    }
                    at += len;
                }
                Err(()) => {
                    out.push(("error".into(), at, at));
                    return out;
                }
            }
        }
    }

    proptest::proptest! {
        /// Where [`plain_token`] reads a token, quick-xml reads the same one.
        #[test]
        fn tokens_read_here_are_quick_xml_tokens(xml in xmlish()) {
            let mut at = 0;
            while let Some((t, len)) = plain_token(&xml[at..]).or_else(|| parsed_token(&xml[at..], true).ok().flatten()) {
                if t == Tok::Eof {
                    break;
                }
                // the one difference on purpose: a byte order mark before a tag (see `plain_token`)
                if let Some(p) = plain_token(&xml[at..]).filter(|_| !xml[at..].starts_with("\u{FEFF}".as_bytes())) {
                    let q = parsed_token(&xml[at..], true).ok().flatten();
                    proptest::prop_assert_eq!(Some(p), q, "at {} of {:?}", at, String::from_utf8_lossy(&xml));
                }
                at += len;
            }
        }

        /// A round cut at a `<` and read before the rest has come (not `eof`) gives the tokens the
        /// whole part gives up to there, and stops at or before the cut.
        #[test]
        fn a_round_cut_short_reads_a_prefix(xml in xmlish(), at in any::<prop::sample::Index>()) {
            let cuts: Vec<usize> = xml.iter().enumerate().filter(|(_, c)| **c == b'<').map(|(i, _)| i).collect();
            if cuts.is_empty() {
                return Ok(());
            }
            let cut = cuts[at.index(cuts.len())];
            let read = |b: &[u8], eof: bool| {
                tokens_of(|at| match token(&b[at..], eof) {
                    Ok(Some((Tok::Eof, _))) | Ok(None) => Ok(None),
                    Ok(Some((t, len))) => Ok(Some((format!("{t:?}"), len))),
                    Err(_) => Err(()),
                })
            };
            let whole = read(&xml, true);
            let part = read(&xml[..cut], false);
            proptest::prop_assert!(part.last().is_none_or(|t| t.2 <= cut));
            proptest::prop_assert!(part.iter().all(|t| t.0 != "error"), "{:?}", part);
            proptest::prop_assert_eq!(&whole[..part.len().min(whole.len())], &part[..]);
        }

        /// The word-at-a-time search finds what a byte-by-byte one finds.
        #[test]
        fn find_any_finds_the_first(
            b in prop::collection::vec(prop_oneof![Just(b'<'), Just(b'&'), Just(b'='), Just(b'\''), Just(0x80u8), Just(b'a'), any::<u8>()], 0..40),
            i in 0usize..40,
        ) {
            let naive = b.iter().enumerate().skip(i).find(|(_, c)| matches!(c, b'<' | b'&')).map(|(p, _)| p);
            proptest::prop_assert_eq!(find_any(&b, i, [b'<', b'&']), naive);
        }

        /// A workbook's part reads the same with the forms Excel writes read in one step as read
        /// token by token: the same texts and locations go to the engine, the same shared strings
        /// are noted, and the same part comes out (or the same error).
        #[test]
        fn a_part_reads_the_same_with_forms_in_one_step(xml in workbookish(), shared in any::<bool>()) {
            let name = if shared { "xl/sharedStrings.xml" } else { "xl/worksheets/sheet1.xml" };
            let (one_step, by_token) = (read_workbook_part(name, &xml, false), read_workbook_part(name, &xml, true));
            proptest::prop_assert_eq!(one_step, by_token, "{}", String::from_utf8_lossy(&xml));
        }

        /// A part read token by token (as the rewrite does) gives the tokens, offsets and errors
        /// one quick-xml reader gives over the whole part.
        #[test]
        fn a_part_reads_as_one_quick_xml_reader_reads_it(xml in xmlish()) {
            // a byte order mark is where the two differ on purpose (see `plain_token`; the rewrite
            // of parts holding one is tested apart)
            if memchr::memmem::find(&xml, "\u{FEFF}".as_bytes()).is_some() {
                return Ok(());
            }
            let ours = tokens_of(|at| match token(&xml[at..], true) {
                Ok(Some((Tok::Eof, _))) => Ok(None),
                Ok(Some((t, len))) => Ok(Some((format!("{t:?}"), len))),
                _ => Err(()),
            });
            let mut reader = quick_xml::Reader::from_reader(&xml[..]);
            reader.config_mut().check_end_names = false;
            reader.config_mut().allow_unmatched_ends = true;
            let theirs = tokens_of(|at| {
                let ev = reader.read_event().map_err(|_| ())?;
                let end = reader.buffer_position() as usize;
                let tok = match ev {
                    Event::Eof => return Ok(None),
                    Event::Text(_) | Event::GeneralRef(_) => Tok::Text,
                    Event::Start(_) | Event::Empty(_) | Event::End(_) => tag(&xml[at..end]),
                    _ => Tok::Other,
                };
                Ok(Some((format!("{tok:?}"), end - at)))
            });
            proptest::prop_assert_eq!(ours, theirs, "{:?}", String::from_utf8_lossy(&xml));
        }
    }

    #[test]
    fn a_byte_order_mark_is_kept_and_counted() {
        // at the start of the part, and at the start of a text node quick-xml reads
        let xml = "\u{FEFF}<w:document><w:body><w:p><w:r><w:t>代码 SECRET 在此</w:t></w:r></w:p><w:p><w:r><w:t>\u{FEFF}&amp; SECRET</w:t></w:r></w:p></w:body></w:document>";
        let (changed, out) = rewrite_docx(xml, &mut mask_secret).unwrap();
        assert!(changed);
        let out = String::from_utf8(out).unwrap();
        assert!(out.starts_with("\u{FEFF}<w:document>"), "{out}");
        assert!(out.contains("<w:t>代码 ****** 在此</w:t>"), "{out}");
        assert!(out.contains("<w:t>\u{FEFF}&amp; ******</w:t>"), "{out}");
    }

    #[test]
    fn only_headers_that_name_a_field_are_kept() {
        let rows = || {
            vec![(
                0,
                vec![(0, HeaderCell::Text("姓名".into())), (1, HeaderCell::Shared(0)), (2, HeaderCell::Shared(9))],
            )]
        };
        let shared = vec![b"\xe5\xa4\x87\xe6\xb3\xa8".to_vec()]; // 备注
        let name_only = |h: &[u8]| h == "姓名".as_bytes();
        let h = Headers::new(rows(), &shared, &name_only);
        assert_eq!(h.get(0, 1, 0), Some("姓名".as_bytes()));
        assert_eq!(h.get(0, 1, 1), None, "a header naming no field is dropped");
        assert_eq!(h.get(0, 0, 0), None, "the header row itself stands in no field");
        assert!(!h.is_empty());
        // headers that name no field: none is kept, and none is asked for per cell
        assert!(Headers::new(rows(), &shared, &|_| false).is_empty());
        assert_eq!(Headers::new(rows(), &shared, &|_| true).get(0, 5, 1), Some("备注".as_bytes()));
    }

    #[test]
    fn doubles_are_read_as_the_whole_numbers_they_are() {
        let w = |v: &str| whole_number(v.as_bytes()).map(|d| String::from_utf8(d).expect("digits"));
        for (v, want) in [
            ("1.3800138E10", Some("13800138000")),
            ("1.3800138E+10", Some("13800138000")),
            ("1.3800138e10", Some("13800138000")),
            ("13800138000.0", Some("13800138000")),
            ("6.222021234567894E15", Some("6222021234567894")),
            ("1E3", Some("1000")),
            ("0.0", Some("0")),
            ("13800138000", None),
            ("1.5", None),
            ("1.38001385E7", None),
            ("-1.3800138E10", None),
            ("1.3800138E-10", None),
            ("1.0E20", None),
            ("E10", None),
            ("1.2.3", None),
        ] {
            assert_eq!(w(v).as_deref(), want, "{v}");
        }
    }

    #[test]
    fn numeric_cell_becomes_inline_string() {
        let xml = br#"<c r="C17" s="2" t="n">"#;
        let mut out = Vec::new();
        inline_cell(xml, b"138****8000", &mut out);
        assert_eq!(String::from_utf8_lossy(&out), r#"<c r="C17" s="2" t="inlineStr"><is><t>138****8000</t></is></c>"#);
        // a sheet that binds the namespace to a prefix: the new elements are in it too
        out.clear();
        inline_cell(br#"<x:c r="C17" t="n">"#, b"138****8000", &mut out);
        assert_eq!(
            String::from_utf8_lossy(&out),
            r#"<x:c r="C17" t="inlineStr"><x:is><x:t>138****8000</x:t></x:is></x:c>"#
        );
    }
}
