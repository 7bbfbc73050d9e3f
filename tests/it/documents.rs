//! Office documents and archives through the real gateway: built at test time (synthetic values
//! with valid check digits), served by the real upstream, fetched or uploaded with curl, and read
//! back with independent readers (calamine for xlsx, zip + XML for docx and archives).

use std::io::{Cursor, Read, Write};

use super::gateway::{CARD, ID, ID_MASKED, MOBILE, setup};
use super::harness::*;

const MOBILE_MASKED: &str = "138****8000";

/// A zip of `(name, bytes)` entries, in order, deflated.
pub fn zip_of(entries: &[(&str, Vec<u8>)]) -> Vec<u8> {
    let mut w = zip::ZipWriter::new(Cursor::new(Vec::new()));
    let opts = zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Deflated);
    for (name, data) in entries {
        w.start_file(*name, opts).expect("entry");
        w.write_all(data).expect("write");
    }
    w.finish().expect("zip").into_inner()
}

/// An export workbook: sheet 导出数据 with a header row, an ID in a shared string, a mobile as an
/// inline string, a mobile stored as a number, a card in a shared string and a plain remark.
pub fn xlsx_package(shared: String, sheet: String) -> Vec<(&'static str, Vec<u8>)> {
    let ct = r#"<?xml version="1.0" encoding="UTF-8" standalone="yes"?>
<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types"><Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/><Default Extension="xml" ContentType="application/xml"/><Override PartName="/xl/workbook.xml" ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml"/><Override PartName="/xl/worksheets/sheet1.xml" ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.worksheet+xml"/><Override PartName="/xl/sharedStrings.xml" ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.sharedStrings+xml"/></Types>"#;
    let rels = r#"<?xml version="1.0" encoding="UTF-8" standalone="yes"?>
<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships"><Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/officeDocument" Target="xl/workbook.xml"/></Relationships>"#;
    let wb = r#"<?xml version="1.0" encoding="UTF-8" standalone="yes"?>
<workbook xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main" xmlns:r="http://schemas.openxmlformats.org/officeDocument/2006/relationships"><sheets><sheet name="导出数据" sheetId="1" r:id="rId1"/></sheets></workbook>"#;
    let wb_rels = r#"<?xml version="1.0" encoding="UTF-8" standalone="yes"?>
<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships"><Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/worksheet" Target="worksheets/sheet1.xml"/><Relationship Id="rId2" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/sharedStrings" Target="sharedStrings.xml"/></Relationships>"#;
    vec![
        ("[Content_Types].xml", ct.into()),
        ("_rels/.rels", rels.into()),
        ("xl/workbook.xml", wb.into()),
        ("xl/_rels/workbook.xml.rels", wb_rels.into()),
        ("xl/worksheets/sheet1.xml", sheet.into_bytes()),
        ("xl/sharedStrings.xml", shared.into_bytes()),
    ]
}

fn xlsx_entries() -> Vec<(&'static str, Vec<u8>)> {
    let shared = format!(
        r#"<?xml version="1.0" encoding="UTF-8" standalone="yes"?>
<sst xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main" count="6" uniqueCount="6"><si><t>姓名</t></si><si><t>身份证号</t></si><si><t>手机</t></si><si><t>张伟</t></si><si><t>{ID}</t></si><si><r><rPr><b/></rPr><t>卡号 {}</t></r><r><t>{}</t></r></si></sst>"#,
        &CARD[..8],
        &CARD[8..]
    );
    let sheet = format!(
        r#"<?xml version="1.0" encoding="UTF-8" standalone="yes"?>
<worksheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main"><sheetData><row r="1"><c r="A1" t="s"><v>0</v></c><c r="B1" t="s"><v>1</v></c><c r="C1" t="s"><v>2</v></c></row><row r="2"><c r="A2" t="s"><v>3</v></c><c r="B2" t="s"><v>4</v></c><c r="C2" t="inlineStr"><is><t>{MOBILE}</t></is></c><c r="D2"><v>{MOBILE}</v></c><c r="E2" t="s"><v>5</v></c><c r="F2"><v>42</v></c></row></sheetData></worksheet>"#
    );
    xlsx_package(shared, sheet)
}

/// A one-sheet workbook (sheet `导出数据`) of these shared strings and sheet XML, in Excel's order.
pub fn xlsx_of(shared: &str, sheet: &str) -> Vec<u8> {
    zip_of(&xlsx_package(shared.to_string(), sheet.to_string()))
}

/// [`xlsx_entries`] in Excel's order: the worksheets before the shared strings.
pub fn xlsx() -> Vec<u8> {
    zip_of(&xlsx_entries())
}

/// The same workbook with its entries in name order, as Apache POI (and so EasyExcel) writes
/// them: the shared strings before the worksheets that show them.
pub fn xlsx_strings_first() -> Vec<u8> {
    let mut entries = xlsx_entries();
    entries.sort_by(|a, b| a.0.cmp(b.0));
    zip_of(&entries)
}

/// A Word document whose ID number is split over three runs, each with its own formatting.
pub fn docx() -> Vec<u8> {
    docx_of(&format!(
        r#"<w:p><w:r><w:t>公民身份号码：</w:t></w:r><w:r><w:rPr><w:b/></w:rPr><w:t>{}</w:t></w:r><w:r><w:rPr><w:i/></w:rPr><w:t>{}</w:t></w:r><w:r><w:rPr><w:u w:val="single"/></w:rPr><w:t>{}</w:t></w:r></w:p><w:p><w:r><w:t>无敏感内容的段落</w:t></w:r></w:p>"#,
        &ID[..4],
        &ID[4..12],
        &ID[12..]
    ))
}

/// A Word document whose body is `body` (paragraphs in the `w` namespace).
pub fn docx_of(body: &str) -> Vec<u8> {
    let ct = r#"<?xml version="1.0" encoding="UTF-8"?><Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types"><Default Extension="xml" ContentType="application/xml"/><Override PartName="/word/document.xml" ContentType="application/vnd.openxmlformats-officedocument.wordprocessingml.document.main+xml"/></Types>"#;
    let doc = format!(
        r#"<?xml version="1.0" encoding="UTF-8"?><w:document xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main" xmlns:wps="http://schemas.microsoft.com/office/word/2010/wordprocessingShape"><w:body>{body}</w:body></w:document>"#
    );
    zip_of(&[("[Content_Types].xml", ct.into()), ("word/document.xml", doc.into_bytes())])
}

/// A one-page PDF (standard font, no embedded text map) whose text is `text`.
pub fn pdf(text: &str) -> Vec<u8> {
    use lopdf::content::{Content, Operation};
    use lopdf::{Document, Object, Stream, dictionary};
    let mut doc = Document::with_version("1.5");
    let pages_id = doc.new_object_id();
    let font_id = doc.add_object(dictionary! {"Type" => "Font", "Subtype" => "Type1", "BaseFont" => "Courier"});
    let resources_id = doc.add_object(dictionary! {"Font" => dictionary! {"F1" => font_id}});
    let content = Content {
        operations: vec![
            Operation::new("BT", vec![]),
            Operation::new("Tf", vec!["F1".into(), 12.into()]),
            Operation::new("Td", vec![72.into(), 720.into()]),
            Operation::new("Tj", vec![Object::string_literal(text)]),
            Operation::new("ET", vec![]),
        ],
    };
    let content_id = doc.add_object(Stream::new(dictionary! {}, content.encode().expect("content")));
    let page_id = doc.add_object(dictionary! {"Type" => "Page", "Parent" => pages_id, "Contents" => content_id});
    doc.objects.insert(
        pages_id,
        Object::Dictionary(dictionary! {
            "Type" => "Pages", "Kids" => vec![page_id.into()], "Count" => 1,
            "Resources" => resources_id, "MediaBox" => vec![0.into(), 0.into(), 595.into(), 842.into()],
        }),
    );
    let catalog_id = doc.add_object(dictionary! {"Type" => "Catalog", "Pages" => pages_id});
    doc.trailer.set("Root", catalog_id);
    let mut out = Vec::new();
    doc.save_to(&mut out).expect("pdf");
    out
}

/// A presentation whose slide and notes hold a mobile split over two runs.
pub fn pptx() -> Vec<u8> {
    let ct = r#"<?xml version="1.0" encoding="UTF-8"?><Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types"><Default Extension="xml" ContentType="application/xml"/></Types>"#;
    let pres = r#"<?xml version="1.0" encoding="UTF-8"?><p:presentation xmlns:p="http://schemas.openxmlformats.org/presentationml/2006/main"/>"#;
    let slide = |what: &str| {
        format!(
            r#"<?xml version="1.0" encoding="UTF-8"?><p:sld xmlns:p="http://schemas.openxmlformats.org/presentationml/2006/main" xmlns:a="http://schemas.openxmlformats.org/drawingml/2006/main"><p:cSld><p:spTree><p:sp><p:txBody><a:p><a:r><a:rPr b="1"/><a:t>{what} 138</a:t></a:r><a:r><a:t>00138000</a:t></a:r></a:p></p:txBody></p:sp></p:spTree></p:cSld></p:sld>"#
        )
        .into_bytes()
    };
    zip_of(&[
        ("[Content_Types].xml", ct.into()),
        ("ppt/presentation.xml", pres.into()),
        ("ppt/slides/slide1.xml", slide("联系电话")),
        ("ppt/notesSlides/notesSlide1.xml", slide("备注")),
    ])
}

fn entry(zip: &[u8], name: &str) -> Vec<u8> {
    let mut ar = zip::ZipArchive::new(Cursor::new(zip)).expect("a zip");
    let mut f = ar.by_name(name).expect("entry");
    let mut v = Vec::new();
    f.read_to_end(&mut v).expect("read");
    v
}

fn names(zip: &[u8]) -> Vec<String> {
    let ar = zip::ZipArchive::new(Cursor::new(zip)).expect("a zip");
    ar.file_names().map(str::to_string).collect::<Vec<_>>()
}

/// Every cell of the first sheet, read with calamine.
pub fn cells(xlsx: &[u8]) -> (Vec<String>, Vec<Vec<String>>) {
    use calamine::Reader;
    let mut wb: calamine::Xlsx<_> = calamine::Xlsx::new(Cursor::new(xlsx.to_vec())).expect("calamine opens it");
    let sheets = wb.sheet_names().to_vec();
    let range = wb.worksheet_range(&sheets[0]).expect("sheet");
    let rows = range.rows().map(|r| r.iter().map(|c| c.to_string()).collect()).collect();
    (sheets, rows)
}

fn config(up: u16) -> String {
    format!(
        r#"
server: {{threads: 1, pid_file: "{{DIR}}/pid", upgrade_sock: "{{DIR}}/up.sock", grace_period_seconds: 1, graceful_shutdown_timeout_seconds: 1}}
listeners: [{{name: plain, addr: "127.0.0.1:{{HTTP}}"}}]
admin: {{addr: "127.0.0.1:{{ADMIN}}", token_file: admin.token}}
rules: {{dirs: [rules]}}
policies:
  - id: mask
  - id: strict
    overrides: [{{categories: [personal.id_number], action: block}}]
  - id: noblock
    overrides: [{{categories: [secret.marking, secret.credential], action: redact}}]
routes:
  - {{id: exports, path_prefix: /exports/, policy: mask, upstream: {{addrs: ["127.0.0.1:{up}"]}}}}
  - {{id: strict, path_prefix: /strict/, policy: strict, upstream: {{addrs: ["127.0.0.1:{up}"]}}}}
  - {{id: proxied, path_prefix: /proxied/, policy: noblock, upstream: {{addrs: ["127.0.0.1:{up}"]}}}}
  - {{id: alerting, path_prefix: /alerting/, policy: mask, upstream: {{addrs: ["127.0.0.1:{up}"]}}, inspect: {{on_unmaskable: alert}}}}
  - {{id: open, path_prefix: /open/, policy: mask, upstream: {{addrs: ["127.0.0.1:{up}"]}}, inspect: {{request: false, response: false}}}}
audit:
  fingerprint_key_file: fp.key
  sinks: [{{type: file, path: audit.jsonl}}]
"#
    )
}

/// Nested zips `depth` deep around one CSV.
fn nested(depth: usize) -> Vec<u8> {
    let mut z = zip_of(&[("a.csv", format!("id\n{ID}\n").into_bytes())]);
    for _ in 1..depth {
        z = zip_of(&[("inner.zip", z)]);
    }
    z
}

/// 200 MiB of zeros in one entry: a ratio near 1000.
fn bomb() -> Vec<u8> {
    let mut w = zip::ZipWriter::new(Cursor::new(Vec::new()));
    let opts =
        zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Deflated).large_file(true);
    w.start_file("zeros.csv", opts).expect("entry");
    let mb = vec![b'0'; 1 << 20];
    for _ in 0..200 {
        w.write_all(&mb).expect("write");
    }
    w.finish().expect("zip").into_inner()
}

/// A zip whose entry claims to be encrypted (general-purpose flag bit 0, local and central).
fn encrypted() -> Vec<u8> {
    let mut z = zip_of(&[("a.csv", format!("id\n{ID}\n").into_bytes())]);
    for sig in [&b"PK\x03\x04"[..], &b"PK\x01\x02"[..]] {
        let at = z.windows(4).position(|w| w == sig).expect("header");
        let flag = if sig[2] == 3 { at + 6 } else { at + 8 };
        z[flag] |= 1;
    }
    z
}

fn serve() -> Upstream {
    Upstream::start(|req| {
        let name = req.path.rsplit('/').next().unwrap_or("").to_string();
        let (body, ct) = match name.as_str() {
            "export.xlsx" => (xlsx(), "application/octet-stream"),
            "labelled.xlsx" => (xlsx(), "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"),
            "poi.xlsx" => (xlsx_strings_first(), "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"),
            "text.json" => (xlsx(), "application/json"),
            "report.docx" => (docx(), "application/vnd.openxmlformats-officedocument.wordprocessingml.document"),
            "csvs.zip" => (
                zip_of(&[
                    ("people.csv", format!("name,id,mobile\n张伟,{ID},{MOBILE}\n").into_bytes()),
                    ("readme.txt", b"no values here\n".to_vec()),
                    ("photo.bin", vec![0x89, b'P', b'N', b'G', 1, 2, 3]),
                ]),
                "application/zip",
            ),
            "bomb.zip" => (bomb(), "application/zip"),
            "named.zip" => {
                (zip_of(&[(&format!("名单_{ID}.csv"), format!("id\n{ID}\n").into_bytes())]), "application/zip")
            }
            "nested.zip" => (nested(5), "application/zip"),
            "ok-nested.zip" => (nested(2), "application/zip"),
            "encrypted.zip" => (encrypted(), "application/zip"),
            "export.xls" => (include_bytes!("../data/export.xls").to_vec(), "application/vnd.ms-excel"),
            "clean.xls" => (include_bytes!("../data/clean.xls").to_vec(), "application/vnd.ms-excel"),
            "report.pdf" => (pdf(&format!("ID {ID}")), "application/pdf"),
            "clean.pdf" => (pdf("no values here"), "application/pdf"),
            "slides.pptx" => (pptx(), "application/octet-stream"),
            _ => (b"{}".to_vec(), "application/json"),
        };
        let mut headers = vec![("content-type".to_string(), ct.to_string())];
        if name == "export.xlsx" {
            // a file name that itself holds an ID number
            let file = format!("attachment; filename*=UTF-8''%E5%AF%BC%E5%87%BA_{ID}.xlsx");
            headers.push(("content-disposition".into(), file));
        }
        Reply { headers, ..Reply::json(body) }
    })
}

fn start(name: &str) -> (Gateway, Upstream) {
    let up = serve();
    let dir = setup(name);
    let gw = start_gateway(&dir, &config(up.port));
    (gw, up)
}

fn get(gw: &Gateway, path: &str) -> Resp {
    curl(&[&format!("http://127.0.0.1:{}{path}", gw.http)])
}

#[test]
fn xlsx_exports_are_masked_in_place_whatever_their_label() {
    let (gw, _up) = start("xlsx");
    let original = cells(&xlsx()).1;
    // (poi.xlsx: its shared strings come before the sheet, so the column of `张伟` is known only
    // from a sheet read ahead)
    for path in ["/exports/export.xlsx", "/exports/labelled.xlsx", "/exports/text.json", "/exports/poi.xlsx"] {
        let r = get(&gw, path);
        assert_eq!(r.status, 200, "{path}: {}", r.text());
        assert_eq!(r.header("content-length").and_then(|l| l.parse().ok()), Some(r.body.len()), "{path}");
        assert!(r.header("etag").is_none(), "{path}");
        let (sheets, rows) = cells(&r.body);
        assert_eq!(sheets, ["导出数据"], "{path}");
        // header row and the plain number untouched; the name under its column header `姓名`
        // (a shared string, named by its column) keeps its surname (issue 14)
        assert_eq!(rows[0], original[0], "{path}");
        assert_eq!(rows[1][0], "张*", "{path}");
        assert_eq!(rows[1][5], "42", "{path}");
        // shared string, inline string, numeric cell (now a string), card across two runs
        assert_eq!(rows[1][1], ID_MASKED, "{path}");
        assert_eq!(rows[1][2], MOBILE_MASKED, "{path}");
        assert_eq!(rows[1][3], MOBILE_MASKED, "{path}");
        assert!(!rows[1][4].contains(&CARD[8..]) && rows[1][4].starts_with("卡号 6212"), "{path}: {}", rows[1][4]);
        // same entries, same order
        let served = if path.ends_with("poi.xlsx") { xlsx_strings_first() } else { xlsx() };
        assert_eq!(names(&r.body), names(&served), "{path}");
        let raw = String::from_utf8_lossy(&entry(&r.body, "xl/worksheets/sheet1.xml")).into_owned();
        assert!(!raw.contains(MOBILE) && !raw.contains(ID), "{path}");
    }
    let audit = wait_for_file(&gw.dir.join("audit.jsonl"), |t| t.lines().count() >= 3);
    assert!(!audit.contains(ID) && !audit.contains(MOBILE) && !audit.contains(CARD), "raw value in audit: {audit}");
    assert!(audit.contains("导出数据!B2") && audit.contains("导出数据!D2"), "locations: {audit}");
    let first: serde_json::Value = serde_json::from_str(audit.lines().next().unwrap_or("")).expect("event");
    assert_eq!(first["document"], "xlsx", "{first}");
    assert_eq!(first["file"], format!("导出_{ID_MASKED}.xlsx"), "{first}");
    let m = curl(&[&format!("http://127.0.0.1:{}/metrics", gw.admin)]).text();
    // (each series exists from the start, at zero)
    assert!(
        m.lines()
            .filter(|l| l.starts_with("dlpgate_uninspected_total") && l.contains("exports"))
            .all(|l| l.ends_with(" 0")),
        "{m}"
    );
    assert!(m.lines().any(|l| l.starts_with("dlpgate_findings_total") && l.contains("cn.id_card")), "{m}");
}

#[test]
fn a_value_split_over_word_runs_is_masked_run_by_run() {
    let (gw, _up) = start("docx");
    let r = get(&gw, "/exports/report.docx");
    assert_eq!(r.status, 200, "{}", r.text());
    let xml = String::from_utf8(entry(&r.body, "word/document.xml")).expect("utf-8");
    // the three runs keep their formatting and hold the masked characters they held
    let masked = ID_MASKED;
    for (fmt, part) in
        [("<w:b/>", &masked[..4]), ("<w:i/>", &masked[4..12]), ("<w:u w:val=\"single\"/>", &masked[12..])]
    {
        assert!(xml.contains(&format!("<w:rPr>{fmt}</w:rPr><w:t>{part}</w:t>")), "{fmt} {part}: {xml}");
    }
    assert!(xml.contains("无敏感内容的段落"));
    // the only change is the value's characters
    let before = String::from_utf8(entry(&docx(), "word/document.xml")).expect("utf-8");
    assert_eq!(xml.len(), before.len());
    assert_eq!(xml.replace(ID_MASKED.split_at(6).1.split_at(8).0, ""), xml.replace("********", ""));
}

#[test]
fn archives_are_inspected_entry_by_entry_and_bombs_refused() {
    let (gw, up) = start("zips");
    let r = get(&gw, "/exports/csvs.zip");
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(names(&r.body), ["people.csv", "readme.txt", "photo.bin"]);
    let csv = String::from_utf8(entry(&r.body, "people.csv")).expect("csv");
    // the CSV's header row names its columns: the name is masked too (issue 14)
    assert_eq!(csv, format!("name,id,mobile\n张*,{ID_MASKED},{MOBILE_MASKED}\n"));
    assert_eq!(entry(&r.body, "photo.bin"), [0x89, b'P', b'N', b'G', 1, 2, 3]);
    let r = get(&gw, "/exports/ok-nested.zip");
    let inner = entry(&r.body, "inner.zip");
    assert_eq!(String::from_utf8(entry(&inner, "a.csv")).expect("csv"), format!("id\n{ID_MASKED}\n"));
    // refused, and nothing of them reaches the client
    for (path, reason) in [
        ("/exports/bomb.zip", "archive exceeds its limits"),
        ("/exports/nested.zip", "archive exceeds its limits"),
        ("/exports/encrypted.zip", "encrypted archive entry"),
    ] {
        let r = get(&gw, path);
        assert_eq!(r.status, 502, "{path}");
        assert_eq!(r.json()["reason"], reason, "{path}: {}", r.text());
    }
    // a route that inspects nothing passes them as they are
    let r = get(&gw, "/open/encrypted.zip");
    assert_eq!((r.status, r.body.len()), (200, encrypted().len()));
    drop(up);
    let m = curl(&[&format!("http://127.0.0.1:{}/metrics", gw.admin)]).text();
    assert!(m.lines().any(|l| l.contains("dlpgate_uninspected_total") && l.contains("encrypted")), "{m}");
}

#[test]
fn uploaded_workbooks_are_masked_or_refused_before_the_upstream_sees_them() {
    let (gw, up) = start("upload");
    let f = gw.dir.join("export.xlsx");
    std::fs::write(&f, xlsx()).expect("write");
    let form = format!("file=@{};type=application/octet-stream", f.display());
    let r = curl(&["-F", &form, &format!("http://127.0.0.1:{}/exports/in", gw.http)]);
    assert_eq!(r.status, 200, "{}", r.text());
    let got = up.requests().last().cloned().expect("upstream got the upload");
    let body = got.body;
    let at = body.windows(4).position(|w| w == b"PK\x03\x04").expect("the file part");
    // the part ends before its closing delimiter line
    let tail = body[at..].windows(4).rposition(|w| w == b"\r\n--").expect("delimiter");
    let part = &body[at..at + tail];
    let rows = cells(part).1;
    assert_eq!(rows[1][1], ID_MASKED);
    assert_eq!(rows[1][3], MOBILE_MASKED);
    // a raw upload too, and where the policy blocks ID numbers nothing reaches the upstream
    let n = up.requests().len();
    let data = format!("@{}", f.display());
    let r = curl(&[
        "-H",
        "content-type: application/octet-stream",
        "--data-binary",
        &data,
        &format!("http://127.0.0.1:{}/strict/in", gw.http),
    ]);
    assert_eq!(r.status, 403, "{}", r.text());
    assert_eq!(r.json()["error"], "blocked_by_dlp");
    assert_eq!(up.requests().len(), n, "the upstream saw the blocked upload");
    // the same workbook as a file part of a form
    let r = curl(&["-F", &form, &format!("http://127.0.0.1:{}/strict/in", gw.http)]);
    assert_eq!(r.status, 403, "{}", r.text());
    assert_eq!(r.json()["rules"][0], "cn.id_card", "{}", r.text());
    assert_eq!(up.requests().len(), n, "the upstream saw the blocked form");
    // and the audit names the file the form gave
    let audit = wait_for_file(&gw.dir.join("audit.jsonl"), |t| t.lines().count() >= 3);
    assert!(audit.lines().any(|l| l.contains("\"file\":\"export.xlsx\"") && l.contains("dlp.block")), "{audit}");
}

#[test]
fn offline_mask_and_scan_handle_documents_as_the_gateway_does() {
    let dir = setup("doc-cli");
    let input = dir.join("export.xlsx");
    std::fs::write(&input, xlsx()).expect("write");
    let out = dir.join("out.xlsx");
    let rules = dir.join("rules");
    let st = std::process::Command::new(bin())
        .args(["mask", "--rules"])
        .arg(&rules)
        .arg("-o")
        .arg(&out)
        .arg(&input)
        .status()
        .expect("run");
    assert!(st.success());
    let rows = cells(&std::fs::read(&out).expect("out")).1;
    assert_eq!(rows[1][1], ID_MASKED);
    assert_eq!(rows[1][3], MOBILE_MASKED);
    let o = std::process::Command::new(bin())
        .args(["scan", "--format", "jsonl", "--rules"])
        .arg(&rules)
        .arg(&input)
        .output()
        .expect("run");
    let text = String::from_utf8_lossy(&o.stdout);
    let found: Vec<serde_json::Value> = text.lines().filter_map(|l| serde_json::from_str(l).ok()).collect();
    let at = |rule: &str| {
        found
            .iter()
            .filter(|f| f["rule"] == rule)
            .map(|f| f["location"].as_str().unwrap_or("").to_string())
            .collect::<Vec<_>>()
    };
    assert_eq!(at("cn.id_card"), ["导出数据!B2"], "{text}");
    assert!(at("cn.mobile").contains(&"导出数据!D2".to_string()), "{text}");
    assert!(!text.contains(ID), "raw value printed: {text}");
}

#[test]
fn files_that_cannot_be_masked_are_refused_unless_the_route_alerts() {
    let (gw, _up) = start("unmaskable");
    for path in ["/exports/export.xls", "/exports/report.pdf"] {
        let r = get(&gw, path);
        assert_eq!(r.status, 403, "{path}: {}", r.text());
        assert_eq!(r.json()["error"], "blocked_by_dlp", "{path}");
        assert!(!r.text().contains(ID), "{path}");
    }
    // nothing to mask: delivered as they are
    for (path, len) in [
        ("/exports/clean.xls", include_bytes!("../data/clean.xls").len()),
        ("/exports/clean.pdf", pdf("no values here").len()),
    ] {
        let r = get(&gw, path);
        assert_eq!((r.status, r.body.len()), (200, len), "{path}");
    }
    // on_unmaskable: alert delivers it and says so
    let r = get(&gw, "/alerting/export.xls");
    assert_eq!((r.status, r.body.len()), (200, include_bytes!("../data/export.xls").len()));
    let audit = wait_for_file(&gw.dir.join("audit.jsonl"), |t| t.lines().count() >= 3);
    let events: Vec<serde_json::Value> = audit.lines().filter_map(|l| serde_json::from_str(l).ok()).collect();
    let alert = events.iter().find(|e| e["route"] == "alerting").expect("alert event");
    assert_eq!(alert["action"], "alert", "{alert}");
    let ids =
        alert["findings"].as_array().and_then(|f| f.iter().find(|f| f["rule"] == "cn.id_card")).expect("id finding");
    assert_eq!(ids["locations"][0], "导出数据!B2", "{alert}");
    // the legacy sheet's names are read by their column header too
    let names =
        alert["findings"].as_array().and_then(|f| f.iter().find(|f| f["rule"] == "cn.name")).expect("name finding");
    assert_eq!(names["locations"][0], "导出数据!A2", "{alert}");
    let pdf_block = events.iter().find(|e| e["path"] == "/exports/report.pdf").expect("pdf event");
    assert_eq!(pdf_block["findings"][0]["locations"][0], "page 1", "{pdf_block}");
    assert!(!audit.contains(ID), "{audit}");
}

#[test]
fn slides_and_notes_are_masked_across_runs() {
    let (gw, _up) = start("pptx");
    let r = get(&gw, "/exports/slides.pptx");
    assert_eq!(r.status, 200, "{}", r.text());
    for part in ["ppt/slides/slide1.xml", "ppt/notesSlides/notesSlide1.xml"] {
        let xml = String::from_utf8(entry(&r.body, part)).expect("utf-8");
        assert!(xml.contains(r#"<a:rPr b="1"/><a:t>"#) && xml.contains(" 138</a:t>"), "{part}: {xml}");
        assert!(xml.contains("<a:t>****8000</a:t>"), "{part}: {xml}");
    }
}

#[test]
fn documents_on_pingoras_path_are_held_and_masked() {
    // a request with a body and no response block possible goes through Pingora's proxy path
    let (gw, _up) = start("pingora-path");
    let r = curl(&[
        "-H",
        "content-type: application/json",
        "--data",
        "{\"q\":1}",
        &format!("http://127.0.0.1:{}/proxied/export.xlsx", gw.http),
    ]);
    assert_eq!(r.status, 200, "{}", r.text());
    // Pingora's path: the head went out before the body was inspected, so the body is chunked
    assert!(r.header("content-length").is_none(), "{:?}", r.headers);
    let rows = cells(&r.body).1;
    assert_eq!(rows[1][1], ID_MASKED);
    assert_eq!(rows[1][3], MOBILE_MASKED);
    let r = curl(&["--data", "x=1", &format!("http://127.0.0.1:{}/proxied/bomb.zip", gw.http)]);
    assert!(r.exit != 0 || r.status >= 500, "a bomb on the proxy path must not complete: {}", r.status);
    assert!(r.body.len() < 1 << 20);
}

/// An entry or sheet name can hold a value too: locations in audit events are masked like paths.
#[test]
fn locations_never_carry_a_raw_value() {
    let (gw, _up) = start("named");
    let r = get(&gw, "/exports/named.zip");
    assert_eq!(r.status, 200, "{}", r.text());
    let audit = wait_for_file(&gw.dir.join("audit.jsonl"), |t| t.contains("locations"));
    assert!(audit.contains(&format!("名单_{ID_MASKED}.csv")), "{audit}");
    assert!(!audit.contains(ID), "raw value in audit: {audit}");
    // and the entry's own name, content like any other, is masked in the archive delivered
    assert_eq!(names(&r.body), [format!("名单_{ID_MASKED}.csv")]);
    assert_eq!(
        String::from_utf8(entry(&r.body, &format!("名单_{ID_MASKED}.csv"))).expect("csv"),
        format!("id\n{ID_MASKED}\n")
    );
}
