//! Zip archives: entries read within limits, inspected by their own type, written back in order.

use std::collections::HashSet;
use std::io::{Cursor, Read, Write};

use super::ooxml::{self, Package};
use super::{DocError, Edit, Format, Inspector, Kind, Limits, Outcome, sniff, text_entry};

/// What is left of the limits while one document is read (nested archives share it).
#[derive(Debug)]
pub(super) struct Budget {
    limits: Limits,
    entries: usize,
    inflated: u64,
}

impl Budget {
    pub(super) fn new(limits: &Limits) -> Budget {
        Budget { limits: *limits, entries: 0, inflated: 0 }
    }
}

fn corrupt(e: impl std::fmt::Display) -> DocError {
    DocError::Corrupt(e.to_string())
}

/// One entry as read: its name and inflated bytes.
struct Entry {
    name: String,
    data: Vec<u8>,
}

/// Read every entry of the archive within the budget; refuses encrypted, duplicate and
/// overlapping entries before inflating anything.
fn read_all(ar: &mut zip::ZipArchive<Cursor<&[u8]>>, budget: &mut Budget) -> Result<Vec<Entry>, DocError> {
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
        let packed = f.compressed_size().max(1);
        if declared > 1 << 20 && declared / packed > budget.limits.max_ratio {
            return Err(DocError::Limit("archive entry compression ratio"));
        }
        let data = f.data_start().unwrap_or(f.header_start() + 30);
        spans.push((f.header_start(), data + f.compressed_size()));
    }
    // entries that share bytes (the "better zip bomb" overlaps them to multiply its output)
    spans.sort_unstable();
    if spans.windows(2).any(|w| w[1].0 < w[0].1) {
        return Err(DocError::Limit("overlapping archive entries"));
    }
    let mut out = Vec::with_capacity(n);
    for i in 0..n {
        let f = ar.by_index(i).map_err(corrupt)?;
        let name = f.name().to_string();
        if f.is_dir() {
            out.push(Entry { name, data: Vec::new() });
            continue;
        }
        let room = budget.limits.max_inflated.saturating_sub(budget.inflated);
        let packed = f.compressed_size().max(1);
        // a declared size may lie: the read itself is bounded
        let mut data = Vec::with_capacity(usize::try_from(f.size().min(room).min(64 << 20)).unwrap_or(0));
        f.take(room + 1).read_to_end(&mut data).map_err(corrupt)?;
        let len = data.len() as u64;
        if len > room {
            return Err(DocError::Limit("archive inflates past max_inflated"));
        }
        if len > 1 << 20 && len / packed > budget.limits.max_ratio {
            return Err(DocError::Limit("archive entry compression ratio"));
        }
        budget.inflated += len;
        out.push(Entry { name, data });
    }
    Ok(out)
}

/// Rewrite a zip (at nesting `depth`; `prefix` names it in locations). Entries the inspector does
/// not change are copied as they were, compressed bytes and all.
pub(super) fn rewrite(
    doc: &[u8],
    prefix: &str,
    depth: usize,
    budget: &mut Budget,
    inspect: &mut Inspector<'_>,
) -> Result<Outcome, DocError> {
    if depth > budget.limits.max_depth {
        return Err(DocError::Limit("archives nested too deep"));
    }
    let mut ar = zip::ZipArchive::new(Cursor::new(doc)).map_err(corrupt)?;
    let entries = read_all(&mut ar, budget)?;
    let package = Package::of(entries.iter().map(|e| (e.name.as_str(), e.data.as_slice())));
    let kind = package.as_ref().map_or(Kind::Zip, |p| p.kind);
    let mut changed: Vec<Option<Vec<u8>>> = vec![None; entries.len()];
    let mut unmaskable = false;
    for (i, e) in entries.iter().enumerate() {
        if e.data.is_empty() {
            continue;
        }
        let here = format!("{prefix}{}", e.name);
        let new = if let Some(p) = package.as_ref().filter(|p| ooxml::is_xml_part(&e.name) && p.kind != Kind::Zip) {
            ooxml::rewrite_part(p, &e.name, &e.data, &here, inspect)?
        } else if sniff(&e.data) == Some(Format::Zip) {
            let inner = rewrite(&e.data, &format!("{here}/"), depth + 1, budget, inspect)?;
            unmaskable |= inner.unmaskable;
            inner.bytes
        } else if sniff(&e.data).is_some() {
            // a legacy Office file or PDF inside: what it holds cannot be rewritten in place
            let inner = super::rewrite(&e.data, &budget.limits, inspect);
            match inner {
                Ok(o) => unmaskable |= o.unmaskable,
                Err(DocError::Unreadable(_)) => {}
                Err(e) => return Err(e),
            }
            None
        } else if text_entry(&e.name) || ooxml::is_xml_part(&e.name) {
            whole_text(&e.data, &here, inspect)
        } else {
            None
        };
        changed[i] = new;
    }
    if changed.iter().all(Option::is_none) {
        return Ok(Outcome { kind, bytes: None, unmaskable });
    }
    let mut w = zip::ZipWriter::new(Cursor::new(Vec::with_capacity(doc.len())));
    for (i, new) in changed.into_iter().enumerate() {
        match new {
            None => {
                let f = ar.by_index_raw(i).map_err(corrupt)?;
                w.raw_copy_file(f).map_err(corrupt)?;
            }
            Some(data) => {
                let f = ar.by_index_raw(i).map_err(corrupt)?;
                let mut opts = zip::write::SimpleFileOptions::default()
                    .compression_method(zip::CompressionMethod::Deflated)
                    .large_file(data.len() as u64 >= u64::from(u32::MAX));
                if let Some(t) = f.last_modified() {
                    opts = opts.last_modified_time(t);
                }
                if let Some(mode) = f.unix_mode() {
                    opts = opts.unix_permissions(mode);
                }
                let name = f.name().to_string();
                drop(f);
                w.start_file(name, opts).map_err(corrupt)?;
                w.write_all(&data).map_err(corrupt)?;
            }
        }
    }
    let bytes = w.finish().map_err(corrupt)?.into_inner();
    Ok(Outcome { kind, bytes: Some(bytes), unmaskable })
}

/// A text entry (CSV, JSON …) scanned whole; its new bytes, if anything changed.
fn whole_text(data: &[u8], here: &str, inspect: &mut Inspector<'_>) -> Option<Vec<u8>> {
    let edits = inspect(data, &|_| here.to_string(), true);
    apply(data, &edits)
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
