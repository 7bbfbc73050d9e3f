//! Zip archives: entries checked before anything is inflated, inspected by their own type one at a
//! time, written back in order.
//!
//! An OOXML part is streamed: inflated, rewritten and recompressed into the new archive as it is
//! read (the new entry begins at the first change; a part without one is copied as it was), so a
//! workbook of any size holds one batch of text in memory, not its inflated XML. Other entries (CSV, JSON, nested
//! archives) are inflated whole, within the budget.

use std::cell::OnceCell;
use std::collections::HashSet;
use std::io::{Cursor, Read, Write};

use super::ooxml::{self, Package};
use super::{DocError, Edit, FieldTest, Format, Inspector, Kind, Limits, Outcome, sniff, text_entry};
use crate::charset::{self, Declared};

/// What is left of the limits while one document is read (nested archives share it), and what
/// the rules ask of its headers.
pub(super) struct Budget<'a> {
    limits: Limits,
    entries: usize,
    inflated: u64,
    /// which column headers are worth passing on (carried down nested archives with the limits)
    fields: &'a FieldTest<'a>,
}

impl<'a> Budget<'a> {
    pub(super) fn new(limits: &Limits, fields: &'a FieldTest<'a>) -> Budget<'a> {
        Budget { limits: *limits, entries: 0, inflated: 0, fields }
    }
}

fn corrupt(e: impl std::fmt::Display) -> DocError {
    DocError::Corrupt(e.to_string())
}

type Archive<'a> = zip::ZipArchive<Cursor<&'a [u8]>>;

/// Refuse, before inflating anything, what no reading should start on: too many entries,
/// encrypted, duplicate or overlapping entries, a declared ratio past the limit.
fn check(ar: &mut Archive<'_>, budget: &mut Budget<'_>) -> Result<(), DocError> {
    let n = ar.len();
    budget.entries += n;
    if budget.entries > budget.limits.max_entries {
        return Err(DocError::Limit("too many archive entries"));
    }
    let mut names = HashSet::with_capacity(n);
    let mut spans = Vec::with_capacity(n);
    for i in 0..n {
        let f = ar.by_index_raw(i).map_err(corrupt)?;
        if f.encrypted() {
            return Err(DocError::Encrypted);
        }
        if !names.insert(f.name().to_string()) {
            return Err(DocError::Limit("duplicate archive entry"));
        }
        let declared = f.size();
        if declared > 1 << 20 && declared / f.compressed_size().max(1) > budget.limits.max_ratio {
            return Err(DocError::Limit("archive entry compression ratio"));
        }
        let data = f.data_start().unwrap_or(f.header_start() + 30);
        spans.push((f.header_start(), data.saturating_add(f.compressed_size())));
    }
    // entries that share bytes (the "better zip bomb" overlaps them to multiply its output)
    spans.sort_unstable();
    if spans.windows(2).any(|w| w[1].0 < w[0].1) {
        return Err(DocError::Limit("overlapping archive entries"));
    }
    Ok(())
}

/// An entry's inflated bytes as they are read, counted against the budget: past the room left,
/// or past the ratio once over 1 MiB, reading fails (a declared size may lie).
struct Counted<R> {
    inner: R,
    read: u64,
    room: u64,
    packed: u64,
    ratio: u64,
    over: Option<&'static str>,
}

impl<R: Read> Read for Counted<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.read += n as u64;
        if self.read > self.room {
            self.over = Some("archive inflates past max_inflated");
        } else if self.read > 1 << 20 && self.read / self.packed > self.ratio {
            self.over = Some("archive entry compression ratio");
        }
        match self.over {
            Some(why) => Err(std::io::Error::other(why)),
            None => Ok(n),
        }
    }
}

fn counted<R: Read>(inner: R, packed: u64, budget: &Budget<'_>) -> Counted<R> {
    Counted {
        inner,
        read: 0,
        room: budget.limits.max_inflated.saturating_sub(budget.inflated),
        packed: packed.max(1),
        ratio: budget.limits.max_ratio,
        over: None,
    }
}

/// Entry `i` inflated whole, within the budget.
fn read_entry(ar: &mut Archive<'_>, i: usize, budget: &mut Budget<'_>) -> Result<Vec<u8>, DocError> {
    let f = ar.by_index(i).map_err(corrupt)?;
    let packed = f.compressed_size();
    let cap = usize::try_from(f.size().min(64 << 20)).unwrap_or(0);
    let mut r = counted(f, packed, budget);
    let mut data = Vec::with_capacity(cap);
    let res = r.read_to_end(&mut data);
    budget.inflated += r.read;
    match (res, r.over) {
        (_, Some(why)) => Err(DocError::Limit(why)),
        (Err(e), None) => Err(corrupt(e)),
        (Ok(_), None) => Ok(data),
    }
}

/// How a rewritten entry is stored: deflated (fast level: the gateway pays for it per response),
/// with the original's time and permissions.
fn options(f: &zip::read::ZipFile<'_, Cursor<&[u8]>>) -> zip::write::SimpleFileOptions {
    let mut opts = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated)
        .compression_level(Some(1))
        .large_file(f.size() >= u64::from(u32::MAX));
    if let Some(t) = f.last_modified() {
        opts = opts.last_modified_time(t);
    }
    if let Some(mode) = f.unix_mode() {
        opts = opts.unix_permissions(mode);
    }
    opts
}

/// The first cell of any sheet showing each shared string (read only when a finding in the
/// shared strings asks where it is).
fn shared_refs(doc: &[u8], package: &Package) -> Vec<Option<(u32, u32, u32)>> {
    let mut refs = Vec::new();
    let Ok(mut ar) = zip::ZipArchive::new(Cursor::new(doc)) else { return refs };
    let mut read: Vec<&str> = Vec::new();
    for (k, (part, _)) in package.sheets.iter().enumerate() {
        // a part named by many sheets is read once; at most 256 sheets
        if read.contains(&part.as_str()) || read.len() >= 256 {
            continue;
        }
        read.push(part);
        if let Ok(f) = ar.by_name(part) {
            // bounded like any read of the archive
            let r = f.take(512 << 20);
            ooxml::shared_cells(std::io::BufReader::new(r), k as u32, &mut refs);
        }
    }
    refs
}

/// Each worksheet's column headers: its first row, and the shared strings that shows (read from
/// the start of the shared-string table, no further than the highest one needed).
fn column_headers(doc: &[u8], package: &Package, budget: &mut Budget<'_>) -> ooxml::Headers {
    /// A first row, or the strings it shows, larger than this is no header row.
    const MAX_READ: u64 = 1 << 20;
    /// Sheets read for their headers (a workbook may name one part many times).
    const MAX_SHEETS: usize = 256;
    let Ok(mut ar) = zip::ZipArchive::new(Cursor::new(doc)) else { return ooxml::Headers::default() };
    let mut rows: Vec<ooxml::FirstRow> = Vec::new();
    let mut seen: Vec<&str> = Vec::new();
    for (part, _) in &package.sheets {
        // each sheet keeps its place (headers are by sheet index); a part named again, or past
        // the cap, is not read again
        if seen.contains(&part.as_str()) || seen.len() >= MAX_SHEETS {
            rows.push((0, Vec::new()));
            continue;
        }
        seen.push(part);
        rows.push(match ar.by_name(part) {
            Ok(f) => {
                let packed = f.compressed_size();
                let mut r = counted(f.take(MAX_READ), packed, budget);
                let row = ooxml::first_row(std::io::BufReader::new(&mut r));
                budget.inflated += r.read;
                if r.over.is_some() {
                    // past a limit: the rewrite that follows refuses the document
                    return ooxml::Headers::default();
                }
                row
            }
            Err(_) => (0, Vec::new()),
        });
    }
    let need = rows
        .iter()
        .flat_map(|r| r.1.iter())
        .filter_map(|(_, c)| match c {
            ooxml::HeaderCell::Shared(i) if *i < 1 << 16 => Some(i + 1),
            _ => None,
        })
        .max()
        .unwrap_or(0);
    let shared = match ar.by_name(&package.shared) {
        Ok(f) if need > 0 => {
            let packed = f.compressed_size();
            let mut r = counted(f.take(MAX_READ), packed, budget);
            let s = ooxml::shared_prefix(std::io::BufReader::new(&mut r), need);
            budget.inflated += r.read;
            s
        }
        _ => Vec::new(),
    };
    ooxml::Headers::new(rows, &shared, budget.fields)
}

/// Rewrite a zip (at nesting `depth`; `prefix` names it in locations). Entries the inspector does
/// not change are copied as they were, compressed bytes and all.
pub(super) fn rewrite(
    doc: &[u8],
    prefix: &str,
    depth: usize,
    budget: &mut Budget<'_>,
    inspect: &mut Inspector<'_>,
) -> Result<Outcome, DocError> {
    if depth > budget.limits.max_depth {
        return Err(DocError::Limit("archives nested too deep"));
    }
    let mut ar = zip::ZipArchive::new(Cursor::new(doc)).map_err(corrupt)?;
    check(&mut ar, budget)?;
    let names: Vec<String> = ar.file_names().map(str::to_string).collect();
    // file_names() is in no particular order: the package is told from the set of names
    let package = Package::of(&names, |n| {
        let i = ar.index_for_name(n)?;
        (ar.by_index_raw(i).ok()?.size() <= 16 << 20).then_some(())?;
        read_entry(&mut ar, i, budget).ok()
    });
    let kind = package.as_ref().map_or(Kind::Zip, |p| p.kind);
    // shared strings are named by the first cell showing them: noted while the sheets are read
    // when they come first (as Office writes them), else found by reading the sheets again
    let seen = ooxml::SharedSeen::default();
    let order: Vec<&str> = (0..ar.len()).filter_map(|i| ar.name_for_index(i)).collect();
    let at = |n: &str| order.iter().position(|x| *x == n);
    let sheets_first = package.as_ref().is_some_and(|p| p.sheets.iter().all(|(part, _)| at(part) < at(&p.shared)));
    drop(order);
    let refs = OnceCell::new();
    let shared = |i: u32| {
        let p = package.as_ref()?;
        let (s, r, c) = if sheets_first {
            seen.get(i as usize)?
        } else {
            refs.get_or_init(|| shared_refs(doc, p)).get(i as usize).copied().flatten()?
        };
        Some((s, r, c))
    };
    let headers = match package.as_ref() {
        Some(p) if p.kind == Kind::Xlsx => column_headers(doc, p, budget),
        _ => ooxml::Headers::default(),
    };
    // rewritten entries are stored at a fast level: room for them to come out larger
    let mut w = zip::ZipWriter::new(Cursor::new(Vec::with_capacity(doc.len() + doc.len() / 2)));
    let (mut changed, mut unmaskable) = (false, false);
    for i in 0..ar.len() {
        let (name, empty, opts) = {
            let f = ar.by_index_raw(i).map_err(corrupt)?;
            (f.name().to_string(), f.is_dir() || f.size() == 0, options(&f))
        };
        let here = format!("{prefix}{name}");
        // an archive's own entry names are content too (`名单_110105….csv`); a package's are
        // structure and stay as they are
        let renamed = if package.as_ref().is_some_and(|p| p.kind != Kind::Zip) {
            None
        } else {
            let view = super::name_view(&name);
            let locate = |_: usize| format!("{here} (entry name)");
            let edits = inspect(&super::Part {
                text: &view,
                locate: &locate,
                maskable: true,
                shape: super::Shape::Units(None),
            });
            apply(name.as_bytes(), &edits).map(|n| String::from_utf8_lossy(&n).into_owned())
        };
        let mut new: Option<Vec<u8>> = None;
        if empty {
            // nothing to read
        } else if package.as_ref().is_some_and(|p| p.kind != Kind::Zip) && ooxml::structural(&name) {
            // styles, themes, relationships: copied as they are, unread
        } else if let Some(p) = package.as_ref().filter(|p| p.kind != Kind::Zip && ooxml::is_xml_part(&name)) {
            // streamed straight into the new archive: its entry begins at the first change
            let mut entry = Lazy { w: &mut w, name: &name, opts, started: false };
            let f = ar.by_index(i).map_err(corrupt)?;
            let packed = f.compressed_size();
            let mut r = counted(f, packed, budget);
            let mut replay = |n: u64, out: &mut dyn Write| {
                let mut again = zip::ZipArchive::new(Cursor::new(doc)).map_err(std::io::Error::other)?;
                let f = again.by_index(i).map_err(std::io::Error::other)?;
                std::io::copy(&mut f.take(n), out).map(|_| ())
            };
            let res = ooxml::rewrite_part(
                p,
                &name,
                &mut r,
                &mut entry,
                &mut replay,
                &here,
                (&shared, &seen, &headers),
                inspect,
                &mut unmaskable,
            );
            budget.inflated += r.read;
            if let Some(why) = r.over {
                return Err(DocError::Limit(why));
            }
            if res? {
                changed = true;
                continue;
            }
        } else {
            let data = read_entry(&mut ar, i, budget)?;
            new = match sniff(&data) {
                Some(Format::Zip) => {
                    let inner = rewrite(&data, &format!("{here}/"), depth + 1, budget, inspect)?;
                    unmaskable |= inner.unmaskable;
                    inner.bytes
                }
                Some(_) => {
                    // a legacy Office file or PDF inside: what it holds cannot be rewritten in place
                    match super::rewrite(&data, &budget.limits, budget.fields, inspect) {
                        Ok(o) => unmaskable |= o.unmaskable,
                        Err(DocError::Unreadable(_)) => {}
                        Err(e) => return Err(e),
                    }
                    None
                }
                // text by its name, or by its bytes whatever it is called (`.vcf`, `.eml`, `.dat`,
                // no extension): images and other binary entries are copied unread
                None if text_entry(&name) || ooxml::is_xml_part(&name) => whole_text(&data, &here, true, inspect)?,
                None if charset::is_text(&data) => whole_text(&data, &here, false, inspect)?,
                None => None,
            };
        }
        let out_name = renamed.as_deref().unwrap_or(&name);
        changed |= renamed.is_some();
        match new {
            Some(data) => {
                w.start_file(out_name, opts).map_err(corrupt)?;
                w.write_all(&data).map_err(corrupt)?;
                changed = true;
            }
            None => {
                let f = ar.by_index_raw(i).map_err(corrupt)?;
                w.raw_copy_file_rename(f, out_name).map_err(corrupt)?;
            }
        }
    }
    if !changed {
        return Ok(Outcome { kind, bytes: None, unmaskable });
    }
    let bytes = w.finish().map_err(corrupt)?.into_inner();
    Ok(Outcome { kind, bytes: Some(bytes), unmaskable })
}

/// An entry of the new archive that begins only when something is written to it.
struct Lazy<'a, 'w> {
    w: &'a mut zip::ZipWriter<Cursor<Vec<u8>>>,
    name: &'w str,
    opts: zip::write::SimpleFileOptions,
    started: bool,
}

impl Write for Lazy<'_, '_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if !self.started {
            self.w.start_file(self.name, self.opts).map_err(std::io::Error::other)?;
            self.started = true;
        }
        self.w.write(buf)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.w.flush()
    }
}

/// A text entry (CSV, JSON …) scanned whole; its new bytes, if anything changed. Text in GBK or
/// UTF-16 (as Excel saves CSV and "Unicode text" on a Chinese Windows) is scanned as UTF-8 and
/// written back in its own charset. One that goes bad past its start cannot be read: an error
/// for a text by its name (its values would pass unread), scanned as it is for an entry only
/// taken for text by its bytes (which may be text, then binary).
fn whole_text(
    data: &[u8],
    here: &str,
    by_name: bool,
    inspect: &mut Inspector<'_>,
) -> Result<Option<Vec<u8>>, DocError> {
    let locate = |_: usize| here.to_string();
    let mut scan = |text: &[u8]| {
        let edits = inspect(&super::Part { text, locate: &locate, maskable: true, shape: super::Shape::File });
        apply(text, &edits)
    };
    Ok(match charset::decode_whole(Declared::Unknown, data) {
        Ok(Some((c, text))) => scan(&text).map(|out| charset::encode(c, &out)),
        Ok(None) => scan(data),
        Err(_) if by_name => return Err(DocError::Corrupt(format!("{here}: text in no charset it starts in"))),
        Err(_) => scan(data),
    })
}

/// `data` with `edits` applied (sorted, not overlapping); `None` when there are none.
pub(super) fn apply(data: &[u8], edits: &[Edit]) -> Option<Vec<u8>> {
    if edits.is_empty() {
        return None;
    }
    let mut out = Vec::with_capacity(data.len());
    let mut at = 0;
    for e in edits {
        if e.start < at || e.end > data.len() || e.start > e.end {
            continue;
        }
        out.extend_from_slice(&data[at..e.start]);
        out.extend_from_slice(&e.with);
        at = e.end;
    }
    out.extend_from_slice(&data[at..]);
    Some(out)
}
