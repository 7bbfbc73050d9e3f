//! Documents: the containers that carry text in bulk exports, and how their text is masked in place.
//!
//! - [`sniff`] recognises a document by its bytes, never by its label: zip (`PK\x03\x04`), OOXML
//!   inside a zip (`[Content_Types].xml`), OLE2 (legacy `.xls`/`.doc`), `%PDF`;
//! - [`rewrite`] turns a document into text units with their locations (`导出数据!C17`,
//!   `word/document.xml ¶3`), hands each part's text to the caller's inspector in one piece, and
//!   writes the edits it returns back into the file: same entries in the same order, the changed
//!   ones recompressed, the others copied byte for byte;
//! - a zip is a container: its entries are read by their own type (CSV, JSON, text, XML, OOXML, a
//!   nested zip), within [`Limits`] against bombs (depth, entries, inflated size, ratio, overlapping
//!   or duplicate entries); an encrypted entry cannot be inspected and is an error;
//! - what cannot be masked in place (legacy `.xls`, read with calamine) is read and reported as
//!   [`Outcome::unmaskable`] when the inspector wanted a change, as is a PDF's text (lopdf); what
//!   cannot be read at all (`.doc`, encrypted or damaged PDFs) is [`DocError::Unreadable`].
//!
//! This layer knows no HTTP and no policy: the inspector decides (see `gateway::inspect`).

mod ooxml;
mod zipfile;

use std::fmt;

use crate::engine::{Action, Finding, Place, RuleSet, Scan, Transformer};

/// One change to a text: bytes `start..end` of the text given to the inspector become `with`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Edit {
    pub start: usize,
    pub end: usize,
    pub with: Vec<u8>,
}

/// What a document is, by its first bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// A zip archive (OOXML is told apart inside it).
    Zip,
    /// OLE2 compound file: legacy `.xls`, `.doc`, `.ppt`.
    Ole2,
    Pdf,
}

impl Format {
    pub fn as_str(self) -> &'static str {
        match self {
            Format::Zip => "zip",
            Format::Ole2 => "ole2",
            Format::Pdf => "pdf",
        }
    }
}

/// The longest signature [`sniff`] looks at: hold this many bytes before deciding.
pub const SNIFF_LEN: usize = 8;

/// Recognise a document by its first bytes (at least [`SNIFF_LEN`] of them, or the whole body).
pub fn sniff(head: &[u8]) -> Option<Format> {
    if head.starts_with(b"PK\x03\x04") || head.starts_with(b"PK\x05\x06") {
        Some(Format::Zip)
    } else if head.starts_with(&[0xD0, 0xCF, 0x11, 0xE0, 0xA1, 0xB1, 0x1A, 0xE1]) {
        Some(Format::Ole2)
    } else if head.starts_with(b"%PDF-") {
        Some(Format::Pdf)
    } else {
        None
    }
}

/// Limits on what a document may expand to (zip bombs), per route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Zip inside zip, counting the outer one as 1.
    pub max_depth: usize,
    /// Entries in all archives of the document together.
    pub max_entries: usize,
    /// Bytes all entries inflate to, together.
    pub max_inflated: u64,
    /// Inflated / compressed, per entry (entries under 1 MiB inflated are not held to it).
    pub max_ratio: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits { max_depth: 3, max_entries: 10_000, max_inflated: 512 << 20, max_ratio: 100 }
    }
}

/// Why a document could not be inspected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DocError {
    /// Past a limit: an archive bomb, or simply too much.
    Limit(&'static str),
    /// An encrypted entry: its content cannot be read.
    Encrypted,
    /// Damaged or not what it claims to be.
    Corrupt(String),
    /// A format whose text this gateway cannot read (PDF, `.doc`).
    Unreadable(Format),
}

impl fmt::Display for DocError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DocError::Limit(what) => write!(f, "document exceeds a limit: {what}"),
            DocError::Encrypted => f.write_str("encrypted archive entry"),
            DocError::Corrupt(why) => write!(f, "damaged document: {why}"),
            DocError::Unreadable(fmt) => write!(f, "{} text cannot be read", fmt.as_str()),
        }
    }
}

impl std::error::Error for DocError {}

/// The kind of document found, for metrics, logs and `dlpgate scan`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Xlsx,
    Docx,
    Pptx,
    /// Any other zip archive.
    Zip,
    Xls,
    Pdf,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Xlsx => "xlsx",
            Kind::Docx => "docx",
            Kind::Pptx => "pptx",
            Kind::Zip => "zip",
            Kind::Xls => "xls",
            Kind::Pdf => "pdf",
        }
    }
}

/// What [`rewrite`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    pub kind: Kind,
    /// The rewritten document, or `None` when nothing changed (the input stands as it is).
    pub bytes: Option<Vec<u8>>,
    /// The inspector asked for a change the format cannot take (legacy `.xls`): the values are
    /// still in the document.
    pub unmaskable: bool,
}

/// One text of a document, as the inspector is given it.
pub struct Part<'a> {
    pub text: &'a [u8],
    /// Names the location of any byte offset of the text (`导出数据!C17`).
    pub locate: &'a dyn Fn(usize) -> String,
    /// Edits can be written back (`false` for legacy formats and PDF).
    pub maskable: bool,
    pub shape: Shape<'a>,
}

/// How a text is laid out, for field context.
#[derive(Clone, Copy)]
pub enum Shape<'a> {
    /// A file as it came (a CSV, JSON or text entry of an archive): read as the gateway reads a body,
    /// its first line a possible header row.
    File,
    /// Units a line each (cells, paragraphs, names); the field a unit stands in, by offset, where
    /// the format says (a spreadsheet cell's column header).
    Units(Option<&'a dyn Fn(usize) -> Option<&'a [u8]>>),
}

/// The caller's inspector: given a part's text, returns the edits to make, sorted and not
/// overlapping.
pub type Inspector<'a> = dyn FnMut(&Part<'_>) -> Vec<Edit> + 'a;

/// Whether a column header names a field of some rule (`姓名`, `address`): only such headers are
/// passed on with the cells below them (a workbook whose headers name none asks nothing per cell).
pub type FieldTest<'a> = dyn Fn(&[u8]) -> bool + 'a;

/// A name (a file, an archive entry, a path) as the rules should read it: `_` is the separator it
/// is there, where the engine would otherwise take it for part of a word (`导出_110105…X.xlsx`).
/// Same length as `name`, so offsets found in it apply to the name.
pub fn name_view(name: &str) -> Vec<u8> {
    name.bytes().map(|b| if b == b'_' { b' ' } else { b }).collect()
}

/// The edits an inspector returns for one text: every finding of `rules`, its action from
/// `decide` (given the finding and its normalized value), rendered by `tr` where the action
/// rewrites. Where the format cannot be rewritten (`maskable` false) a rewriting action still
/// yields an edit, with nothing to write: that is how [`Outcome::unmaskable`] learns of it.
/// The one place where the gateway and `dlpgate scan`/`mask` turn findings into edits.
pub fn edits(
    rules: &RuleSet,
    tr: &Transformer,
    part: &Part<'_>,
    decide: &mut dyn FnMut(&Finding, &[u8]) -> Action,
) -> Vec<Edit> {
    let place = match part.shape {
        Shape::File => Place::start(),
        Shape::Units(field_at) => Place { field_at, ..Place::default() },
    };
    // a document is inspected batch by batch: the thread's scan room serves them all
    let mut scan = Scan::take_room();
    rules.scan_at(part.text, &place, &mut scan);
    let maskable = part.maskable;
    let mut out = Vec::with_capacity(scan.findings.len());
    for f in &scan.findings {
        let value = scan.value(f);
        let action = decide(f, value);
        if !action.rewrites() {
            continue;
        }
        let mut with = Vec::with_capacity(if maskable { value.len() + 8 } else { 0 });
        if maskable {
            tr.render(&rules.rules()[f.rule], action, value, f.kept(), &mut with);
        }
        out.push(Edit { start: f.start, end: f.end, with });
    }
    scan.give_room();
    out
}

/// Read `doc`, let `inspect` decide on every text in it, and write the edits back.
pub fn rewrite(
    doc: &[u8],
    limits: &Limits,
    fields: &FieldTest<'_>,
    inspect: &mut Inspector<'_>,
) -> Result<Outcome, DocError> {
    match sniff(doc) {
        Some(Format::Zip) => {
            let mut budget = zipfile::Budget::new(limits, fields);
            zipfile::rewrite(doc, "", 1, &mut budget, inspect)
        }
        Some(Format::Ole2) => read_xls(doc, inspect),
        Some(Format::Pdf) => read_pdf(doc, inspect),
        None => Err(DocError::Corrupt("not a document".into())),
    }
}

/// A PDF's text, page by page (lopdf; fonts with a `ToUnicode` map or a standard encoding). Nothing
/// can be written back. A PDF that does not parse, is encrypted or panics the reader is unreadable.
fn read_pdf(doc: &[u8], inspect: &mut Inspector<'_>) -> Result<Outcome, DocError> {
    let read = || -> Option<Vec<(u32, String)>> {
        let d = lopdf::Document::load_mem(doc).ok()?;
        if d.is_encrypted() {
            return None;
        }
        Some(d.get_pages().keys().map(|&n| (n, d.extract_text(&[n]).unwrap_or_default())).collect())
    };
    // a reader of untrusted input must not take the gateway down with it
    let pages = std::panic::catch_unwind(std::panic::AssertUnwindSafe(read))
        .ok()
        .flatten()
        .ok_or(DocError::Unreadable(Format::Pdf))?;
    let mut text = Vec::new();
    let mut locs = Vec::new();
    for (n, page) in pages {
        locs.push((text.len(), format!("page {n}")));
        text.extend_from_slice(page.as_bytes());
        text.push(b'\n');
    }
    let locate = |at: usize| locate_in(&locs, at);
    let edits = inspect(&Part { text: &text, locate: &locate, maskable: false, shape: Shape::Units(None) });
    Ok(Outcome { kind: Kind::Pdf, bytes: None, unmaskable: !edits.is_empty() })
}

/// A legacy `.xls`: every cell read (calamine), none can be written back.
fn read_xls(doc: &[u8], inspect: &mut Inspector<'_>) -> Result<Outcome, DocError> {
    // a reader of untrusted input must not take the gateway down with it
    let read = || xls_text(doc);
    let x = std::panic::catch_unwind(std::panic::AssertUnwindSafe(read))
        .ok()
        .flatten()
        .ok_or(DocError::Unreadable(Format::Ole2))?;
    let locate = |at: usize| locate_in(&x.locs, at);
    // a cell's field: its column's header (the sheet's first row)
    let field = |at: usize| {
        let i = x.locs.partition_point(|(s, _)| *s <= at).checked_sub(1)?;
        x.field.get(i).copied().flatten().map(|h| x.headers[h].as_bytes())
    };
    let edits = inspect(&Part { text: &x.text, locate: &locate, maskable: false, shape: Shape::Units(Some(&field)) });
    Ok(Outcome { kind: Kind::Xls, bytes: None, unmaskable: !edits.is_empty() })
}

/// The cells of a legacy workbook.
struct XlsText {
    /// every cell's text, a line each
    text: Vec<u8>,
    /// where each line starts, and its cell
    locs: Vec<(usize, String)>,
    /// each line's column header (index into `headers`), below the header row
    field: Vec<Option<usize>>,
    /// the texts of each sheet's first row
    headers: Vec<String>,
}

/// Every cell's text of a legacy workbook, a line each, where each line is, and its column's header.
fn xls_text(doc: &[u8]) -> Option<XlsText> {
    use calamine::{Reader, Xls};
    let mut book: Xls<_> = Xls::new(std::io::Cursor::new(doc)).ok()?;
    let mut x = XlsText { text: Vec::new(), locs: Vec::new(), field: Vec::new(), headers: Vec::new() };
    for name in book.sheet_names() {
        let Ok(range) = book.worksheet_range(&name) else { continue };
        let (r0, c0) = range.start().unwrap_or((0, 0));
        let mut columns: Vec<Option<usize>> = Vec::new();
        for (r, row) in range.rows().enumerate() {
            for (c, cell) in row.iter().enumerate() {
                let v = cell_text(cell);
                if v.is_empty() {
                    continue;
                }
                if r == 0 {
                    columns.resize(columns.len().max(c + 1), None);
                    columns[c] = Some(x.headers.len());
                    x.headers.push(v.clone());
                }
                x.locs.push((x.text.len(), format!("{name}!{}", cell_ref(r0 as usize + r, c0 as usize + c))));
                x.field.push(if r == 0 { None } else { columns.get(c).copied().flatten() });
                x.text.extend_from_slice(v.as_bytes());
                x.text.push(b'\n');
            }
        }
    }
    Some(x)
}

fn cell_text(cell: &calamine::Data) -> String {
    use calamine::Data;
    match cell {
        Data::Empty => String::new(),
        Data::String(s) => s.clone(),
        // a whole number stored as a float (a mobile, an old ID number) reads as its digits
        Data::Float(f) if f.fract() == 0.0 && f.abs() < 1e17 => format!("{}", *f as i64),
        other => other.to_string(),
    }
}

/// The name of the location holding byte `at`, from `(start, name)` pairs in order.
fn locate_in(locs: &[(usize, String)], at: usize) -> String {
    let i = locs.partition_point(|(s, _)| *s <= at);
    i.checked_sub(1).and_then(|i| locs.get(i)).map(|(_, n)| n.clone()).unwrap_or_default()
}

/// `A1`-style reference of a zero-based row and column.
pub fn cell_ref(row: usize, col: usize) -> String {
    let mut letters = Vec::new();
    let mut c = col + 1;
    while c > 0 {
        letters.push(b'A' + ((c - 1) % 26) as u8);
        c = (c - 1) / 26;
    }
    letters.reverse();
    format!("{}{}", String::from_utf8_lossy(&letters), row + 1)
}

/// Whether an archive entry of this name is text to scan whole (CSV, JSON, plain text, markup).
fn text_entry(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    let ext = lower.rsplit_once('.').map_or("", |(_, e)| e);
    matches!(
        ext,
        "csv"
            | "tsv"
            | "txt"
            | "json"
            | "ndjson"
            | "jsonl"
            | "xml"
            | "html"
            | "htm"
            | "md"
            | "log"
            | "sql"
            | "yaml"
            | "yml"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_by_their_bytes() {
        assert_eq!(sniff(b"PK\x03\x04rest"), Some(Format::Zip));
        assert_eq!(sniff(&[0xD0, 0xCF, 0x11, 0xE0, 0xA1, 0xB1, 0x1A, 0xE1, 0]), Some(Format::Ole2));
        assert_eq!(sniff(b"%PDF-1.7\n"), Some(Format::Pdf));
        assert_eq!(sniff(b"{\"a\":1}"), None);
        assert_eq!(sniff(b"PK"), None);
    }

    #[test]
    fn cell_references() {
        assert_eq!(cell_ref(0, 0), "A1");
        assert_eq!(cell_ref(16, 2), "C17");
        assert_eq!(cell_ref(0, 25), "Z1");
        assert_eq!(cell_ref(0, 26), "AA1");
        assert_eq!(cell_ref(9, 701), "ZZ10");
        assert_eq!(cell_ref(0, 702), "AAA1");
    }

    fn zip_of(entries: &[(&str, &str)]) -> Vec<u8> {
        use std::io::Write;
        let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
        for (name, data) in entries {
            w.start_file(*name, zip::write::SimpleFileOptions::default()).expect("entry");
            w.write_all(data.as_bytes()).expect("write");
        }
        w.finish().expect("zip").into_inner()
    }

    fn read(zip: &[u8], name: &str) -> String {
        use std::io::Read;
        let mut ar = zip::ZipArchive::new(std::io::Cursor::new(zip)).expect("zip");
        let mut s = String::new();
        ar.by_name(name).expect("entry").read_to_string(&mut s).expect("read");
        s
    }

    /// Every content part is read: headers, footers, footnotes, comments, properties; structure
    /// (styles, relationships) is left alone even where it holds the same characters.
    #[test]
    fn every_content_part_of_a_package_is_inspected() {
        let parts = [
            ("[Content_Types].xml", "<Types/>"),
            (
                "word/document.xml",
                "<w:document><w:body><w:p><w:r><w:t>body SECRET</w:t></w:r></w:p></w:body></w:document>",
            ),
            ("word/header1.xml", "<w:hdr><w:p><w:r><w:t>SECRET head</w:t></w:r></w:p></w:hdr>"),
            ("word/footer1.xml", "<w:ftr><w:p><w:r><w:t>foot SECRET</w:t></w:r></w:p></w:ftr>"),
            (
                "word/footnotes.xml",
                "<w:footnotes><w:footnote><w:p><w:r><w:t>SECRET</w:t></w:r></w:p></w:footnote></w:footnotes>",
            ),
            (
                "word/comments.xml",
                "<w:comments><w:comment><w:p><w:r><w:t>see SECRET</w:t></w:r></w:p></w:comment></w:comments>",
            ),
            ("docProps/core.xml", "<cp:coreProperties><dc:creator>SECRET</dc:creator></cp:coreProperties>"),
            ("word/styles.xml", "<w:styles><w:name>SECRET</w:name></w:styles>"),
            ("word/_rels/document.xml.rels", "<Relationships><x>SECRET</x></Relationships>"),
        ];
        let doc = zip_of(&parts);
        let mut seen = Vec::new();
        let mut inspect = |part: &Part<'_>| {
            memchr::memmem::find_iter(part.text, b"SECRET")
                .map(|at| {
                    seen.push((part.locate)(at));
                    Edit { start: at, end: at + 6, with: b"******".to_vec() }
                })
                .collect()
        };
        let out = rewrite(&doc, &Limits::default(), &|_| true, &mut inspect).expect("rewrite");
        assert_eq!(out.kind, Kind::Docx);
        let bytes = out.bytes.expect("changed");
        for (name, original) in &parts[1..7] {
            assert_eq!(read(&bytes, name), original.replace("SECRET", "******"), "{name}");
        }
        for (name, original) in &parts[7..] {
            assert_eq!(read(&bytes, name), *original, "{name} is structure");
        }
        assert!(seen.contains(&"word/document.xml ¶1".to_string()), "{seen:?}");
        assert!(seen.contains(&"docProps/core.xml".to_string()), "{seen:?}");
    }

    #[test]
    fn locations_by_offset() {
        let locs = vec![(0, "a".to_string()), (5, "b".to_string())];
        assert_eq!(locate_in(&locs, 0), "a");
        assert_eq!(locate_in(&locs, 4), "a");
        assert_eq!(locate_in(&locs, 5), "b");
        assert_eq!(locate_in(&locs, 99), "b");
    }
}
