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

use std::collections::HashMap;
use std::ops::Range;

use quick_xml::events::{BytesStart, Event};

use super::{DocError, Edit, Inspector, Kind, locate_in};

/// What the package is, and what locations in it are called.
#[derive(Debug)]
pub(super) struct Package {
    pub kind: Kind,
    /// worksheet part → sheet name
    sheets: HashMap<String, String>,
    /// shared string index → the first cell that shows it (`Sheet1!C17`)
    shared_refs: HashMap<usize, String>,
}

impl Package {
    /// An OOXML package, told by its `[Content_Types].xml` and main part; `None` for other zips.
    pub fn of<'a>(entries: impl Iterator<Item = (&'a str, &'a [u8])>) -> Option<Package> {
        let parts: HashMap<&str, &[u8]> = entries.collect();
        parts.get("[Content_Types].xml")?;
        let kind = if parts.contains_key("xl/workbook.xml") {
            Kind::Xlsx
        } else if parts.contains_key("word/document.xml") {
            Kind::Docx
        } else if parts.contains_key("ppt/presentation.xml") {
            Kind::Pptx
        } else {
            Kind::Zip
        };
        let mut p = Package { kind, sheets: HashMap::new(), shared_refs: HashMap::new() };
        if kind == Kind::Xlsx {
            p.sheets = sheet_names(&parts);
            for (part, name) in &p.sheets {
                if let Some(xml) = parts.get(part.as_str()) {
                    shared_cells(xml, name, &mut p.shared_refs);
                }
            }
        }
        Some(p)
    }
}

/// Sheet names by worksheet part, from the workbook and its relationships.
fn sheet_names(parts: &HashMap<&str, &[u8]>) -> HashMap<String, String> {
    let mut targets = HashMap::new();
    if let Some(rels) = parts.get("xl/_rels/workbook.xml.rels") {
        each_start(rels, |e| {
            if e.local_name().as_ref() == b"Relationship" {
                if let (Some(id), Some(t)) = (attr(e, b"Id"), attr(e, b"Target")) {
                    let t = t.trim_start_matches('/');
                    let path = if t.starts_with("xl/") { t.to_string() } else { format!("xl/{t}") };
                    targets.insert(id, path);
                }
            }
        });
    }
    let mut sheets = HashMap::new();
    if let Some(wb) = parts.get("xl/workbook.xml") {
        each_start(wb, |e| {
            if e.local_name().as_ref() == b"sheet" {
                let name = attr(e, b"name");
                let rid = e
                    .attributes()
                    .flatten()
                    .find(|a| a.key.local_name().as_ref() == b"id")
                    .and_then(|a| unescaped(&a.value));
                if let (Some(name), Some(part)) = (name, rid.and_then(|r| targets.get(&r))) {
                    sheets.insert(part.clone(), name);
                }
            }
        });
    }
    sheets
}

/// Record, for each shared string a worksheet shows, the first cell showing it.
fn shared_cells(xml: &[u8], sheet: &str, refs: &mut HashMap<usize, String>) {
    let mut reader = quick_xml::Reader::from_reader(xml);
    let mut cell: Option<String> = None;
    let mut in_v = false;
    loop {
        match reader.read_event() {
            Ok(Event::Start(e)) => match e.local_name().as_ref() {
                b"c" => cell = (attr(&e, b"t").as_deref() == Some("s")).then(|| attr(&e, b"r").unwrap_or_default()),
                b"v" => in_v = true,
                _ => {}
            },
            Ok(Event::End(e)) => match e.local_name().as_ref() {
                b"c" => cell = None,
                b"v" => in_v = false,
                _ => {}
            },
            Ok(Event::Text(t)) if in_v => {
                if let (Some(r), Ok(i)) = (cell.as_ref(), std::str::from_utf8(&t).unwrap_or("").trim().parse::<usize>())
                {
                    refs.entry(i).or_insert_with(|| format!("{sheet}!{r}"));
                }
            }
            Ok(Event::Eof) | Err(_) => break,
            _ => {}
        }
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
fn structural(name: &str) -> bool {
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
    /// `xl/workbook.xml`: sheet names (attributes)
    Workbook,
    /// a worksheet: cells
    Sheet,
    /// `xl/sharedStrings.xml`
    Shared,
    /// any other content part: every text node
    Text,
}

/// A text node (or attribute value) of the part.
#[derive(Debug)]
struct Node {
    /// its bytes in the part, escaped
    raw: Range<usize>,
    /// its text in the unit buffer, unescaped
    text: Range<usize>,
    /// the numeric cell it is the value of (index into `cells`), if any
    cell: Option<usize>,
    /// an attribute value (quotes must be escaped too)
    attribute: bool,
}

/// A numeric cell: its whole element and start tag.
#[derive(Debug)]
struct Cell {
    element: Range<usize>,
    tag: Range<usize>,
}

/// Elements whose text nodes form one unit.
fn unit_element(local: &[u8]) -> bool {
    matches!(local, b"p" | b"si" | b"is" | b"text" | b"comment")
}

/// Rewrite one XML part of `package`; its new bytes, if anything changed.
pub(super) fn rewrite_part(
    package: &Package,
    name: &str,
    xml: &[u8],
    here: &str,
    inspect: &mut Inspector<'_>,
) -> Result<Option<Vec<u8>>, DocError> {
    if structural(name) {
        return Ok(None);
    }
    let role = match name {
        "xl/workbook.xml" => Role::Workbook,
        "xl/sharedStrings.xml" => Role::Shared,
        _ if package.kind == Kind::Xlsx && name.starts_with("xl/worksheets/") => Role::Sheet,
        _ => Role::Text,
    };
    let sheet = package.sheets.get(name).map_or_else(|| here.to_string(), Clone::clone);
    let mut reader = quick_xml::Reader::from_reader(xml);
    let mut nodes: Vec<Node> = Vec::new();
    let mut cells: Vec<Cell> = Vec::new();
    let mut text: Vec<u8> = Vec::new();
    let mut locs: Vec<(usize, String)> = Vec::new();
    // unit elements open around the current position; paragraphs and shared strings so far
    let (mut depth, mut paragraphs, mut shared) = (0usize, 0usize, 0usize);
    // the cell being read: (reference, scanned, numeric cell index)
    let mut cell: Option<(String, bool, Option<usize>)> = None;
    let (mut in_v, mut in_f) = (false, false);
    // a run of text and entity events: where it began
    let mut pending: Option<usize> = None;
    let mut pos = 0usize;
    loop {
        let ev = reader.read_event().map_err(|e| DocError::Corrupt(format!("{here}: {e}")))?;
        let end = usize::try_from(reader.buffer_position()).unwrap_or(xml.len()).min(xml.len());
        let start = pos;
        pos = end;
        let is_text = matches!(ev, Event::Text(_) | Event::GeneralRef(_));
        if is_text {
            pending.get_or_insert(start);
            continue;
        }
        if let Some(s) = pending.take() {
            // the text run `s..start` ended: keep it when it is content here
            let scanned = match role {
                Role::Workbook => false,
                Role::Sheet if in_f => false,
                Role::Sheet if in_v => cell.as_ref().is_some_and(|c| c.1),
                _ => true,
            };
            if scanned {
                if let Some(value) = unescaped(&xml[s..start]) {
                    if !value.trim().is_empty() {
                        if depth == 0 {
                            // a unit of its own
                            let loc = match (&cell, role) {
                                (Some((r, ..)), _) => format!("{sheet}!{r}"),
                                _ => here.to_string(),
                            };
                            start_unit(&mut text, &mut locs, loc);
                        }
                        let t0 = text.len();
                        text.extend_from_slice(value.as_bytes());
                        let numeric = if in_v { cell.as_ref().and_then(|c| c.2) } else { None };
                        nodes.push(Node { raw: s..start, text: t0..text.len(), cell: numeric, attribute: false });
                    }
                }
            }
        }
        match ev {
            Event::Start(e) => {
                let local = e.local_name();
                let local = local.as_ref();
                if role == Role::Sheet && local == b"c" {
                    let t = attr(&e, b"t");
                    let r = attr(&e, b"r").unwrap_or_default();
                    let numeric = matches!(t.as_deref(), None | Some("n"));
                    let scanned = matches!(t.as_deref(), None | Some("n" | "str" | "inlineStr" | "d"));
                    let idx = numeric.then(|| {
                        cells.push(Cell { element: start..start, tag: start..end });
                        cells.len() - 1
                    });
                    cell = Some((r, scanned, idx));
                } else if local == b"v" {
                    in_v = true;
                } else if local == b"f" {
                    in_f = true;
                } else if unit_element(local) {
                    if depth == 0 {
                        let loc = match (role, &cell) {
                            (_, Some((r, ..))) => format!("{sheet}!{r}"),
                            (Role::Shared, _) => package
                                .shared_refs
                                .get(&shared)
                                .cloned()
                                .unwrap_or_else(|| format!("{here} string {}", shared + 1)),
                            _ => format!("{here} ¶{}", paragraphs + 1),
                        };
                        start_unit(&mut text, &mut locs, loc);
                    }
                    depth += 1;
                }
            }
            Event::End(e) => {
                let local = e.local_name();
                let local = local.as_ref();
                if role == Role::Sheet && local == b"c" {
                    if let Some((_, _, Some(i))) = cell.take() {
                        if let Some(c) = cells.get_mut(i) {
                            c.element = c.tag.start..end;
                        }
                    }
                } else if local == b"v" {
                    in_v = false;
                } else if local == b"f" {
                    in_f = false;
                } else if unit_element(local) && depth > 0 {
                    depth -= 1;
                    if depth == 0 {
                        if local == b"si" {
                            shared += 1;
                        } else {
                            paragraphs += 1;
                        }
                    }
                }
            }
            Event::Empty(e) => {
                let local = e.local_name();
                let local = local.as_ref();
                if depth > 0 && matches!(local, b"tab" | b"br" | b"cr") {
                    // a tab or break between runs separates words
                    text.push(b' ');
                } else if role == Role::Sheet && local == b"c" {
                    cell = None;
                } else if role == Role::Workbook && local == b"sheet" {
                    // a sheet name: an attribute value of the start tag
                    if let Some((raw, value)) = attribute_value(xml, start..end, b"name") {
                        start_unit(&mut text, &mut locs, format!("{here} sheet name"));
                        let t0 = text.len();
                        text.extend_from_slice(value.as_bytes());
                        nodes.push(Node { raw, text: t0..text.len(), cell: None, attribute: true });
                    }
                } else if unit_element(local) && depth == 0 {
                    if local == b"si" {
                        shared += 1;
                    }
                }
            }
            Event::Eof => break,
            _ => {}
        }
    }
    if nodes.is_empty() {
        return Ok(None);
    }
    let edits = inspect(&text, &|at| locate_in(&locs, at), true);
    if edits.is_empty() {
        return Ok(None);
    }
    // the new text of each node that changed
    let mut replaced: Vec<(Range<usize>, Vec<u8>)> = Vec::new();
    let mut cells_done: Vec<bool> = vec![false; cells.len()];
    for n in &nodes {
        let Some(new) = node_text(&text, n.text.clone(), &edits) else { continue };
        let new = String::from_utf8_lossy(&new).into_owned();
        match n.cell.and_then(|i| cells.get(i).map(|c| (i, c))) {
            Some((i, c)) if c.element.end > c.element.start => {
                if !cells_done[i] {
                    cells_done[i] = true;
                    replaced.push((c.element.clone(), inline_cell(xml, c.tag.clone(), &new)));
                }
            }
            _ => {
                let esc =
                    if n.attribute { escape_attr(&new) } else { quick_xml::escape::partial_escape(&new).into_owned() };
                replaced.push((n.raw.clone(), esc.into_bytes()));
            }
        }
    }
    if replaced.is_empty() {
        return Ok(None);
    }
    replaced.sort_by_key(|r| r.0.start);
    let mut out = Vec::with_capacity(xml.len() + 64);
    let mut at = 0;
    for (range, bytes) in replaced {
        if range.start < at {
            continue; // inside a cell already rewritten whole
        }
        out.extend_from_slice(&xml[at..range.start]);
        out.extend_from_slice(&bytes);
        at = range.end;
    }
    out.extend_from_slice(&xml[at..]);
    Ok(Some(out))
}

/// Begin a new unit in the text: a line of its own, named `loc`.
fn start_unit(text: &mut Vec<u8>, locs: &mut Vec<(usize, String)>, loc: String) {
    if !text.is_empty() {
        text.push(b'\n');
    }
    locs.push((text.len(), loc));
}

fn unescaped(raw: &[u8]) -> Option<String> {
    let s = std::str::from_utf8(raw).ok()?;
    quick_xml::escape::unescape(s).ok().map(|c| c.into_owned())
}

fn escape_attr(s: &str) -> String {
    quick_xml::escape::escape(s).into_owned()
}

/// The value of attribute `name` in the tag at `tag`: its raw byte range and unescaped value.
fn attribute_value(xml: &[u8], tag: Range<usize>, name: &[u8]) -> Option<(Range<usize>, String)> {
    let t = &xml[tag.clone()];
    let mut i = 0;
    while let Some(p) = memchr::memmem::find(&t[i..], name) {
        let at = i + p;
        i = at + 1;
        let before_ok = at > 0 && t[at - 1].is_ascii_whitespace();
        let rest = &t[at + name.len()..];
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
        let vstart = at + name.len() + eq + 1 + q + 1;
        let vlen = memchr::memchr(quote, &t[vstart..])?;
        let value = unescaped(&t[vstart..vstart + vlen])?;
        return Some((tag.start + vstart..tag.start + vstart + vlen, value));
    }
    None
}

/// A cell whose number was masked, as an inline string cell: the start tag's attributes but `t`,
/// then `t="inlineStr"` and the text.
fn inline_cell(xml: &[u8], tag: Range<usize>, text: &str) -> Vec<u8> {
    let raw = &xml[tag];
    let inner = raw.strip_prefix(b"<").unwrap_or(raw);
    let inner = inner.strip_suffix(b">").unwrap_or(inner);
    let start = BytesStart::from_content(String::from_utf8_lossy(inner).into_owned(), 1);
    let mut out = b"<c".to_vec();
    for a in start.attributes().flatten() {
        if a.key.as_ref() == b"t" {
            continue;
        }
        out.push(b' ');
        out.extend_from_slice(a.key.as_ref());
        out.extend_from_slice(b"=\"");
        out.extend_from_slice(&a.value);
        out.push(b'"');
    }
    out.extend_from_slice(b" t=\"inlineStr\"><is><t>");
    out.extend_from_slice(quick_xml::escape::partial_escape(text).as_bytes());
    out.extend_from_slice(b"</t></is></c>");
    out
}

/// The new text of the node at `range` of the unit text, or `None` when no edit touches it.
///
/// An edit whose replacement has as many characters as the value it replaces is spread over the
/// nodes character by character (each run keeps the masked form of its own characters); any other
/// replacement goes whole into the node where the value starts, and the value's characters in
/// later nodes are removed.
fn node_text(text: &[u8], range: Range<usize>, edits: &[Edit]) -> Option<Vec<u8>> {
    let first = edits.partition_point(|e| e.end <= range.start);
    let touching = edits[first..].iter().take_while(|e| e.start < range.end);
    let mut out = Vec::new();
    let mut at = range.start;
    let mut changed = false;
    for e in touching {
        let (s, t) = (e.start.max(range.start), e.end.min(range.end));
        if s < at || s > t {
            continue;
        }
        out.extend_from_slice(&text[at..s]);
        let orig = &text[e.start..e.end];
        let orig_chars = char_count(orig);
        if orig_chars == char_count(&e.with) {
            let c0 = char_count(&text[e.start..s]);
            let c1 = c0 + char_count(&text[s..t]);
            out.extend_from_slice(char_slice(&e.with, c0, c1));
        } else if s == e.start {
            out.extend_from_slice(&e.with);
        }
        at = t;
        changed = true;
    }
    if !changed {
        return None;
    }
    out.extend_from_slice(&text[at..range.end]);
    Some(out)
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

    fn edit(start: usize, end: usize, with: &str) -> Edit {
        Edit { start, end, with: with.as_bytes().to_vec() }
    }

    #[test]
    fn a_masked_value_is_spread_over_the_runs_that_held_it() {
        // "ID 110105" held as "ID 11" | "01" | "05"
        let text = b"ID 110105";
        let e = [edit(3, 9, "11**05")];
        assert_eq!(node_text(text, 0..5, &e).as_deref(), Some(&b"ID 11"[..]));
        assert_eq!(node_text(text, 5..7, &e).as_deref(), Some(&b"**"[..]));
        assert_eq!(node_text(text, 7..9, &e).as_deref(), Some(&b"05"[..]));
    }

    #[test]
    fn a_label_goes_where_the_value_began() {
        let text = b"ID 110105";
        let e = [edit(3, 9, "[ID]")];
        assert_eq!(node_text(text, 0..5, &e).as_deref(), Some(&b"ID [ID]"[..]));
        assert_eq!(node_text(text, 5..7, &e).as_deref(), Some(&b""[..]));
        assert_eq!(node_text(text, 7..9, &e).as_deref(), Some(&b""[..]));
    }

    #[test]
    fn multibyte_characters_are_spread_by_character() {
        let text = "张伟".as_bytes();
        let e = [edit(0, 6, "张*")];
        assert_eq!(node_text(text, 0..3, &e).as_deref(), Some("张".as_bytes()));
        assert_eq!(node_text(text, 3..6, &e).as_deref(), Some("*".as_bytes()));
    }

    #[test]
    fn sheet_name_attribute_found() {
        let xml = br#"<sheet name="A&amp;B" sheetId="1"/>"#;
        let (r, v) = attribute_value(xml, 0..xml.len(), b"name").expect("name");
        assert_eq!(v, "A&B");
        assert_eq!(&xml[r], b"A&amp;B");
        assert!(attribute_value(br#"<sheet sheetname="x"/>"#, 0..20, b"name").is_none());
    }

    #[test]
    fn numeric_cell_becomes_inline_string() {
        let xml = br#"<c r="C17" s="2" t="n">"#;
        let out = inline_cell(xml, 0..xml.len(), "138****8000");
        assert_eq!(String::from_utf8_lossy(&out), r#"<c r="C17" s="2" t="inlineStr"><is><t>138****8000</t></is></c>"#);
    }
}
