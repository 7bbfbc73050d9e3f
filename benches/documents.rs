//! Documents: an export workbook of 100,000 rows × 6 columns (name, ID number, mobile stored as a
//! number, bank card, address, amount) masked in place with the default rules, through the very
//! function the gateway calls for a response body (`scan_document`: policy decisions, finding log
//! with locations, rewrite). Reports the time per run (best of `RUNS`, default 3) on one core and
//! the peak memory above the input, measured in a fresh process that holds nothing but the
//! document when the scan begins (the gateway's allocator keeps freed memory for reuse: garbage
//! from building the fixture would blur the figure).
//!
//! Run: `cargo bench --bench documents` (`ROWS=…` to change the size, `HEADER=1` for a header
//! row: the names below `姓名` are then masked too; `EXCEL=1` for rows and cells as Excel writes
//! them, with spans and a style on every cell: about 1.2× the XML; `INLINE=1` for text written in
//! its cells as inline strings, as streaming writers write exports, rather than shared; `VARIED=1`
//! for names and addresses as varied as a real register's, from every district and county: about
//! 1.25× the bytes).

#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::io::{Cursor, Write};
use std::time::Instant;

use dlpgate::engine::synthetic::{self, Rng, card, id_card, mobile};
use dlpgate::gateway::inspect::{BodyRules, FindingLog, Scope, scan_document};
use dlpgate::policy::Direction;

// the gateway binary's allocator (src/main.rs): the figures are the gateway's
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn xlsx(rows: usize) -> Vec<u8> {
    let mut r = Rng(7);
    let mut shared = String::from(
        r#"<?xml version="1.0" encoding="UTF-8" standalone="yes"?><sst xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main">"#,
    );
    let mut sheet = String::from(
        r#"<?xml version="1.0" encoding="UTF-8" standalone="yes"?><worksheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main"><sheetData>"#,
    );
    let surnames = ["张", "王", "李", "赵", "刘", "陈"];
    let mut si = 0;
    let header = std::env::var("HEADER").is_ok_and(|v| v == "1");
    let excel = std::env::var("EXCEL").is_ok_and(|v| v == "1");
    let inline = std::env::var("INLINE").is_ok_and(|v| v == "1");
    let varied = std::env::var("VARIED").is_ok_and(|v| v == "1");
    if excel {
        sheet = String::from(
            r#"<?xml version="1.0" encoding="UTF-8" standalone="yes"?>
<worksheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main" xmlns:r="http://schemas.openxmlformats.org/officeDocument/2006/relationships" xmlns:mc="http://schemas.openxmlformats.org/markup-compatibility/2006" mc:Ignorable="x14ac xr xr2 xr3" xmlns:x14ac="http://schemas.microsoft.com/office/spreadsheetml/2009/9/ac" xmlns:xr="http://schemas.microsoft.com/office/spreadsheetml/2014/revision" xmlns:xr2="http://schemas.microsoft.com/office/spreadsheetml/2015/revision2" xmlns:xr3="http://schemas.microsoft.com/office/spreadsheetml/2016/revision3" xr:uid="{00000000-0001-0000-0000-000000000000}"><dimension ref="A1:F100000"/><sheetViews><sheetView tabSelected="1" workbookViewId="0"/></sheetViews><sheetFormatPr defaultRowHeight="15" x14ac:dyDescent="0.25"/><cols><col min="1" max="1" width="10.7109375" customWidth="1"/><col min="2" max="4" width="22.7109375" customWidth="1"/><col min="5" max="5" width="48.7109375" customWidth="1"/></cols><sheetData>"#,
        );
    }
    if header {
        // a header row, as real exports have: the name column is then a name field, and its
        // names are masked too
        sheet.push_str(r#"<row r="1">"#);
        for (col, h) in
            ["A", "B", "C", "D", "E", "F"].iter().zip(["姓名", "身份证号", "手机号", "银行卡号", "地址", "金额"])
        {
            sheet.push_str(&format!(r#"<c r="{col}1" t="inlineStr"><is><t>{h}</t></is></c>"#));
        }
        sheet.push_str("</row>");
    }
    for row in (1 + usize::from(header))..=rows {
        let (name, addr) = if varied {
            // names and addresses as varied as a real register's: every district and county,
            // streets, buildings, villages
            (synthetic::name(&mut r), format!("{} 备注{}", synthetic::address(&mut r), r.digits(8)))
        } else {
            (
                format!("{}{}", surnames[row % 6], ["伟", "芳", "娜", "敏", "静"][row % 5]),
                format!(
                    "河南省郑州市金水区文化路{}号{}号楼{}单元{}室 备注{}",
                    r.next() % 300,
                    r.next() % 30,
                    r.next() % 6,
                    r.next() % 3000,
                    r.digits(8)
                ),
            )
        };
        let strings = [name, id_card(&mut r), card(&mut r), addr];
        // as Excel writes an export (`EXCEL=1`): row spans and height, a style on every cell
        let (spans, [sa, sb, sc, sd, se, sf]) = if excel {
            (
                r#" spans="1:6" x14ac:dyDescent="0.25""#,
                [r#" s="1""#, r#" s="2""#, r#" s="3""#, r#" s="2""#, r#" s="1""#, r#" s="4""#],
            )
        } else {
            ("", [""; 6])
        };
        // a text cell: a shared string, or (`INLINE=1`) the text itself
        let mut text = |col: &str, style: &str, i: usize| {
            if inline {
                format!(r#"<c r="{col}{row}"{style} t="inlineStr"><is><t>{}</t></is></c>"#, strings[i])
            } else {
                shared.push_str(&format!("<si><t>{}</t></si>", strings[i]));
                format!(r#"<c r="{col}{row}"{style} t="s"><v>{}</v></c>"#, si + i)
            }
        };
        let (a, b, d, e) = (text("A", sa, 0), text("B", sb, 1), text("D", sd, 2), text("E", se, 3));
        sheet.push_str(&format!(
            r#"<row r="{row}"{spans}>{a}{b}<c r="C{row}"{sc}><v>{}</v></c>{d}{e}<c r="F{row}"{sf}><v>{}.{:02}</v></c></row>"#,
            mobile(&mut r),
            r.next() % 100_000,
            r.next() % 100
        ));
        si += 4;
    }
    shared.push_str("</sst>");
    sheet.push_str("</sheetData></worksheet>");
    let parts: [(&str, String); 5] = [
        ("[Content_Types].xml", r#"<?xml version="1.0"?><Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types"/>"#.into()),
        ("xl/workbook.xml", r#"<?xml version="1.0"?><workbook xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main" xmlns:r="http://schemas.openxmlformats.org/officeDocument/2006/relationships"><sheets><sheet name="导出数据" sheetId="1" r:id="rId1"/></sheets></workbook>"#.into()),
        ("xl/_rels/workbook.xml.rels", r#"<?xml version="1.0"?><Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships"><Relationship Id="rId1" Type="worksheet" Target="worksheets/sheet1.xml"/></Relationships>"#.into()),
        ("xl/worksheets/sheet1.xml", sheet),
        ("xl/sharedStrings.xml", shared),
    ];
    let mut w = zip::ZipWriter::new(Cursor::new(Vec::new()));
    let opts = zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Deflated);
    for (name, data) in parts {
        w.start_file(name, opts).unwrap();
        w.write_all(data.as_bytes()).unwrap();
    }
    w.finish().unwrap().into_inner()
}

/// A `/proc/self/status` field in KiB (Linux; 0 elsewhere).
fn status_kib(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix(field)?.trim().trim_end_matches(" kB").trim().parse().ok())
        .unwrap_or(0)
}

/// The gateway's own path: a snapshot from a minimal config with the default rules, a route that
/// masks everything for an unknown caller, and the response scan of a whole document: the findings
/// counted and the new document's length.
fn scan(doc: &[u8]) -> (u64, usize) {
    let cfg = "listeners: [{addr: \"127.0.0.1:1\"}]\npolicies: [{id: p}]\nroutes: [{id: r, policy: p, upstream: {addrs: [\"127.0.0.1:2\"]}}]\n";
    let snap = dlpgate::config::load_str(std::path::Path::new("bench.yaml"), cfg).expect("config");
    let scope = Scope { snap: &snap, route: dlpgate::config::RouteId(0), dept: snap.unknown, dir: Direction::Response };
    let body_rules = BodyRules::of(&snap.routes[0].inspect);
    let mut log = FindingLog::default();
    let d = scan_document(scope, &mut log, doc, &body_rules).expect("scan");
    (log.entries.iter().map(|e| e.count).sum::<u64>(), d.bytes.map_or(0, |b| b.len()))
}

/// In the child process: scan the document in file `path` once; print the peak memory above what
/// the process held before (bytes).
fn measure_memory(path: &str) {
    let doc = std::fs::read(path).expect("document");
    // the rule set is compiled first: it is the gateway's whether or not a document comes
    let _ = scan(&xlsx(1));
    let _ = std::fs::write("/proc/self/clear_refs", "5");
    let rss0 = status_kib("VmRSS:");
    let _ = scan(&doc);
    println!("{}", status_kib("VmHWM:").saturating_sub(rss0) * 1024);
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return; // `cargo test --benches` lists benches; nothing to list here
    }
    if let Ok(path) = std::env::var("DOCUMENTS_BENCH_MEMORY") {
        return measure_memory(&path);
    }
    let rows: usize = std::env::var("ROWS").ok().and_then(|v| v.parse().ok()).unwrap_or(100_000);
    let runs: usize = std::env::var("RUNS").ok().and_then(|v| v.parse().ok()).unwrap_or(3);
    let doc = xlsx(rows);
    let mut best = f64::MAX;
    let (mut findings, mut out_len) = (0, 0);
    // interleaved with a baseline from the same run: every entry inflated and deflated again at
    // the gateway's level, nothing inspected (the least any in-place rewrite costs)
    let mut base = f64::MAX;
    for _ in 0..runs {
        let t0 = Instant::now();
        (findings, out_len) = scan(&doc);
        best = best.min(t0.elapsed().as_secs_f64());
        let t0 = Instant::now();
        std::hint::black_box(rezip(&doc));
        base = base.min(t0.elapsed().as_secs_f64());
    }
    // memory: one scan in a fresh process
    let path = std::env::temp_dir().join(format!("dlpgate-documents-bench-{}.xlsx", std::process::id()));
    std::fs::write(&path, &doc).expect("write the fixture");
    let child = std::process::Command::new(std::env::current_exe().expect("own path"))
        .env("DOCUMENTS_BENCH_MEMORY", &path)
        .output()
        .expect("memory run");
    let _ = std::fs::remove_file(&path);
    let extra: f64 = String::from_utf8_lossy(&child.stdout).trim().parse().expect("memory figure");
    let mb = doc.len() as f64 / 1e6;
    println!(
        "xlsx {rows} rows × 6 columns: {mb:.1} MB in, {:.1} MB out, {findings} findings; best of {runs}: {best:.3} s ({:.1} MB/s of file); peak memory above the input: {:.1} MB ({:.2}× the file); a plain re-zip: {base:.3} s ({:.2}×)",
        out_len as f64 / 1e6,
        mb / best,
        extra / 1e6,
        extra / doc.len() as f64,
        best / base,
    );
}

/// Every entry of `doc` inflated and deflated again at level 1, as the gateway stores what it
/// rewrites.
fn rezip(doc: &[u8]) -> Vec<u8> {
    let mut ar = zip::ZipArchive::new(Cursor::new(doc)).expect("zip");
    let mut w = zip::ZipWriter::new(Cursor::new(Vec::with_capacity(doc.len() * 3 / 2)));
    let opts = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated)
        .compression_level(Some(1));
    for i in 0..ar.len() {
        let mut f = ar.by_index(i).expect("entry");
        w.start_file(f.name().to_string(), opts).expect("start");
        std::io::copy(&mut f, &mut w).expect("copy");
    }
    w.finish().expect("finish").into_inner()
}
