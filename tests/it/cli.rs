//! The offline command line: scan, mask, rules test.

use std::io::Write;
use std::process::{Command, Stdio};

use super::harness::{bin, tempdir};

fn run(args: &[&str], stdin: Option<&[u8]>) -> (i32, Vec<u8>, String) {
    let mut c = Command::new(bin())
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    if let Some(input) = stdin {
        // a process that fails before reading its input closes the pipe: its status and stderr
        // (asserted by the caller) say why, not this write
        let _ = c.stdin.take().expect("stdin").write_all(input);
    }
    drop(c.stdin.take());
    let out = c.wait_with_output().expect("wait");
    (out.status.code().unwrap_or(-1), out.stdout, String::from_utf8_lossy(&out.stderr).into_owned())
}

#[test]
fn scan_jsonl_reports_offsets_in_the_original_input() {
    let input = "身份证：１１０１０５１９４９１２３１００２Ｘ，电话 138-0013-8000\n".as_bytes();
    let (code, out, err) = run(&["scan", "--format", "jsonl", "-"], Some(input));
    assert_eq!(code, 0, "{err}");
    let lines: Vec<serde_json::Value> =
        String::from_utf8_lossy(&out).lines().map(|l| serde_json::from_str(l).expect("jsonl")).collect();
    assert_eq!(lines.len(), 2, "{lines:?}");
    for (v, rule, value) in
        [(&lines[0], "cn.id_card", "１１０１０５１９４９１２３１００２Ｘ"), (&lines[1], "cn.mobile", "138-0013-8000")]
    {
        assert_eq!(v["rule"], rule);
        for k in ["category", "level", "action"] {
            assert!(v[k].is_string(), "{k} missing: {v}");
        }
        let (s, e) = (v["start"].as_u64().expect("start") as usize, v["end"].as_u64().expect("end") as usize);
        assert_eq!(&input[s..e], value.as_bytes());
    }
    // never the raw value
    assert!(!String::from_utf8_lossy(&out).contains("138-0013-8000"));
}

#[test]
fn mask_streams_files_and_survives_binary_input() {
    let dir = tempdir("cli");
    let mut data = b"\xff\xfe\x00binary\x00 13800138000 \xc3\x28 tail".to_vec();
    data.extend(std::iter::repeat_n(b'x', 200_000));
    data.extend_from_slice(b"\n11010519491231002X\n");
    let path = dir.join("in.bin");
    std::fs::write(&path, &data).expect("write");
    let (code, out, err) = run(&["mask", path.to_str().expect("path")], None);
    assert_eq!(code, 0, "{err}");
    assert!(out.windows(11).all(|w| w != b"13800138000"));
    assert!(out.windows(18).any(|w| w == b"110105********002X"));
    assert_eq!(out.len(), data.len(), "masking keeps lengths of ASCII values");
    assert!(out.starts_with(b"\xff\xfe\x00binary\x00 138****8000 \xc3\x28"));
}

/// `mask` delivers what the gateway would: a rule that requires a context word still finds its
/// values next to one (and only there), though `mask` does not evaluate context for the others.
#[test]
fn mask_finds_values_that_require_context_only_next_to_it() {
    // the order number stands well past the context window of the permit's word
    let filler = "-".repeat(80);
    let input = format!("往来港澳通行证：C12345678\n{filler}\n订单编号 C12345678\n");
    let (code, out, err) = run(&["mask", "-"], Some(input.as_bytes()));
    assert_eq!(code, 0, "{err}");
    let out = String::from_utf8_lossy(&out);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines, ["往来港澳通行证：C*****678", filler.as_str(), "订单编号 C12345678"], "{out}");
}

#[test]
fn errors_are_one_line_with_a_non_zero_exit() {
    let (code, _, err) = run(&["scan", "/nonexistent/file"], None);
    assert_eq!(code, 1);
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(err.contains("/nonexistent/file"), "{err}");
}

#[test]
fn rules_test_counts_examples_and_fails_on_a_bad_rule() {
    let (code, out, err) = run(&["rules", "test", "rules"], None);
    assert_eq!(code, 0, "{err}");
    let out = String::from_utf8_lossy(&out);
    assert!(out.contains("cn.id_card") && out.contains("0 failure(s)"), "{out}");
    let dir = tempdir("rulestest");
    std::fs::write(
        dir.join("r.yaml"),
        "rules:\n  - id: t.kw\n    name: {en: T}\n    category: t\n    level: general\n    detector: {keywords: [abc]}\n    action: alert\n    examples: {match: [xyz]}\n",
    )
    .expect("rule");
    let (code, _, err) = run(&["rules", "test", dir.to_str().expect("dir")], None);
    assert_eq!(code, 1);
    assert!(err.contains("r.yaml:2: rule t.kw: example does not match"), "{err}");
    std::fs::write(dir.join("r.yaml"), "rules: []\n").expect("rule");
    let (code, _, err) = run(&["rules", "test", dir.to_str().expect("dir")], None);
    assert_eq!(code, 1, "zero rules must fail: {err}");
}

/// `mask --department` shows what the gateway would deliver to that department: the same input
/// comes out with the ID number in clear for public security (cleared by its policy) and masked
/// for civil affairs.
#[test]
fn mask_as_a_department_applies_its_clearance_and_the_route_policy() {
    use super::gateway::{ID, ID_MASKED, config, residents};
    let dir = super::gateway::setup("mask-as");
    let cfg = dir.join("dlpgate.yaml");
    let text = config(1, "none", "allow")
        .replace("{HTTP}", "18001")
        .replace("{HTTPS}", "18002")
        .replace("{ADMIN}", "18003")
        .replacen(
            "  - {id: down,",
            "  - {id: raw, path_prefix: /raw/, policy: mask, upstream: {addrs: [\"127.0.0.1:1\"]}, inspect: {response: false}}\n  - {id: down,",
            1,
        );
    assert!(text.contains("id: raw"));
    std::fs::write(&cfg, text.replace("{DIR}", &dir.display().to_string())).expect("config");
    let c = cfg.display().to_string();
    let body = residents();
    let (code, out, err) = run(&["mask", "--department", "public-security", "-c", &c, "-"], Some(body.as_bytes()));
    assert_eq!(code, 0, "{err}");
    let out = String::from_utf8_lossy(&out);
    assert!(out.contains(ID), "cleared for ID numbers on the first route: {out}");
    let (code, out, err) =
        run(&["mask", "--department", "civil", "-c", &c, "--route", "stream", "-"], Some(body.as_bytes()));
    assert_eq!(code, 0, "{err}");
    let out = String::from_utf8_lossy(&out);
    assert!(out.contains(ID_MASKED) && !out.contains(ID), "{out}");
    // a route that does not inspect responses delivers them as they are, to anyone
    let (code, out, err) =
        run(&["mask", "--department", "civil", "-c", &c, "--route", "raw", "-"], Some(body.as_bytes()));
    assert_eq!(code, 0, "{err}");
    assert_eq!(String::from_utf8_lossy(&out), body);
    let (code, _, err) = run(&["mask", "--department", "nobody", "-c", &c, "-"], Some(b"x"));
    assert_eq!(code, 1);
    assert!(err.contains("unknown department \"nobody\" (known: public-security, civil"), "{err}");
    let (code, _, err) = run(&["mask", "--department", "civil", "--rules", "rules", "-c", &c, "-"], Some(b"x"));
    assert_eq!(code, 2, "--rules comes from the configuration with --department: {err}");
}

/// A gzip file (a log shipper's upload, a `.gz` export) is read decoded, as the gateway decodes a
/// gzip body, and masked as identity, as the gateway sends it on by default.
#[test]
fn gzip_input_is_decoded_like_a_gzip_body() {
    let dir = tempdir("cli-gz");
    let text = "line one\n身份证 11010519491231002X 电话 13800138000\n";
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(text.as_bytes()).expect("gzip");
    let gz = e.finish().expect("gzip");
    let path = dir.join("export.log.gz");
    std::fs::write(&path, &gz).expect("write");
    let (code, out, err) = run(&["mask", path.to_str().expect("path")], None);
    assert_eq!(code, 0, "{err}");
    let out = String::from_utf8_lossy(&out);
    assert!(out.contains("110105********002X") && out.contains("138****8000"), "{out}");
    assert!(out.starts_with("line one\n"), "{out}");
    let (code, out, err) = run(&["scan", "--format", "jsonl", "-"], Some(&gz));
    assert_eq!(code, 0, "{err}");
    assert_eq!(String::from_utf8_lossy(&out).lines().count(), 2, "{}", String::from_utf8_lossy(&out));
}

/// Text in GBK (Excel's CSV on a Chinese Windows) and UTF-16 ("Unicode text") is read as the
/// gateway reads a body in that charset: the names and markings in it are found, and `mask` writes
/// it back in its own charset; gzip first, then the charset. Bytes that are not the charset's are
/// an error, not a guess.
#[test]
fn gbk_and_utf16_files_are_read_in_their_charset() {
    let dir = tempdir("cli-charset");
    let gbk = |s: &str| encoding_rs::GBK.encode(s).0.into_owned();
    let csv = "姓名,身份证号,备注\r\n张伟,11010519491231002X,内部资料\r\n";
    let path = dir.join("名单.csv");
    std::fs::write(&path, gbk(csv)).expect("write");
    let (code, out, err) = run(&["scan", path.to_str().expect("path")], None);
    assert_eq!(code, 0, "{err}");
    let out = String::from_utf8_lossy(&out);
    for rule in ["cn.name", "cn.id_card", "secret.marking"] {
        assert!(out.contains(&format!("\t{rule}\t")), "{rule}: {out}");
    }
    assert!(out.ends_with("3 finding(s) in gb18030 text\n"), "{out}");
    let (code, out, err) = run(&["mask", path.to_str().expect("path")], None);
    assert_eq!(code, 0, "{err}");
    assert_eq!(out, gbk("姓名,身份证号,备注\r\n张*,110105********002X,[密级标识]\r\n"));
    // UTF-16 from stdin, gzipped
    let text = "姓名\t手机\r\n张伟\t13800138000\r\n";
    let u16 = |s: &str| [&[0xFF, 0xFE][..], &s.encode_utf16().flat_map(u16::to_le_bytes).collect::<Vec<_>>()].concat();
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(&u16(text)).expect("gzip");
    let (code, out, err) = run(&["mask", "-"], Some(&e.finish().expect("gzip")));
    assert_eq!(code, 0, "{err}");
    assert_eq!(out, u16("姓名\t手机\r\n张*\t138****8000\r\n"));
    // GBK that goes bad after its first 4 KiB
    let bad = [gbk(&csv.repeat(200)), b"\xFF\r\n".to_vec()].concat();
    std::fs::write(&path, bad).expect("write");
    let (code, _, err) = run(&["mask", path.to_str().expect("path")], None);
    assert_ne!(code, 0);
    assert!(err.contains("not gb18030 text"), "{err}");
}

/// A Word text box is a paragraph anchored inside another one's run: its text is a text of its
/// own, not joined to the digits around its anchor (`编号 2023` in the box, a mobile after it).
#[test]
fn word_text_boxes_are_texts_of_their_own() {
    let dir = tempdir("cli-txbx");
    let path = dir.join("letter.docx");
    let body = r#"<w:p><w:r><w:t>联系电话</w:t></w:r><w:r><w:drawing><wps:txbx><w:txbxContent><w:p><w:r><w:t>编号 2023</w:t></w:r></w:p><w:p><w:r><w:t>62</w:t></w:r></w:p></w:txbxContent></wps:txbx></w:drawing></w:r><w:r><w:t>13800138000</w:t></w:r></w:p>"#;
    std::fs::write(&path, super::documents::docx_of(body)).expect("docx");
    let (code, out, err) = run(&["scan", path.to_str().expect("path")], None);
    assert_eq!(code, 0, "{err}");
    let out = String::from_utf8_lossy(&out);
    assert!(out.contains("\tcn.mobile\t") && out.ends_with("1 finding(s) in docx\n"), "{out}");
    let masked = dir.join("masked.docx");
    let (code, _, err) = run(&["mask", path.to_str().expect("path"), "-o", masked.to_str().expect("path")], None);
    assert_eq!(code, 0, "{err}");
    let mut zip = zip::ZipArchive::new(std::io::Cursor::new(std::fs::read(&masked).expect("masked"))).expect("zip");
    let mut xml = String::new();
    std::io::Read::read_to_string(&mut zip.by_name("word/document.xml").expect("part"), &mut xml).expect("read");
    assert!(xml.contains("<w:t>编号 2023</w:t>") && xml.contains("<w:t>62</w:t>"), "{xml}");
    assert!(xml.contains("<w:t>138****8000</w:t></w:r></w:p></w:body>"), "{xml}");
}

/// Issue 14 offline: `mask` and `scan` read names and addresses by their field as the gateway
/// does, in a CSV file (its header row), an xlsx (its column headers) and from stdin; a security
/// team's own keys go in a rule file, with examples in that field.
#[test]
fn names_and_addresses_offline_and_a_teams_own_fields() {
    let dir = tempdir("cli-names");
    let csv = dir.join("residents.csv");
    std::fs::write(&csv, "编号,姓名,家庭住址\n1,张伟,河南省郑州市金水区文化路85号\n2,欧阳娜娜,郑州金水区花园路12号\n")
        .expect("csv");
    let (code, out, err) = run(&["mask", csv.to_str().expect("path")], None);
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        String::from_utf8_lossy(&out),
        "编号,姓名,家庭住址\n1,张*,河南省郑州市金水区****\n2,欧阳**,郑州金水区****\n"
    );
    let (code, out, err) = run(&["scan", "--format", "jsonl", csv.to_str().expect("path")], None);
    assert_eq!(code, 0, "{err}");
    let rules: Vec<String> = String::from_utf8_lossy(&out)
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .map(|v| v["rule"].as_str().unwrap_or("").to_string())
        .collect();
    assert_eq!(rules, ["cn.name", "cn.address", "cn.name", "cn.address"]);
    assert!(!String::from_utf8_lossy(&out).contains("张伟"));
    // an xlsx: the name under its column header `姓名`
    let xlsx = dir.join("export.xlsx");
    std::fs::write(&xlsx, super::documents::xlsx()).expect("xlsx");
    let masked = dir.join("masked.xlsx");
    let (code, _, err) = run(&["mask", xlsx.to_str().expect("path"), "-o", masked.to_str().expect("path")], None);
    assert_eq!(code, 0, "{err}");
    let (_, rows) = super::documents::cells(&std::fs::read(&masked).expect("masked"));
    assert_eq!((rows[0][0].as_str(), rows[1][0].as_str()), ("姓名", "张*"));
    // ... also where `姓名` is the last shared string a header row shows (as xlsxwriter writes a
    // sheet whose last column, or only column, holds names)
    let sst = |strings: &[&str]| {
        let si: String = strings.iter().map(|t| format!("<si><t>{t}</t></si>")).collect();
        format!(
            r#"<?xml version="1.0" encoding="UTF-8" standalone="yes"?><sst xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main">{si}</sst>"#
        )
    };
    let sheet = |rows: &[&[usize]]| {
        let mut x = String::from(
            r#"<?xml version="1.0" encoding="UTF-8" standalone="yes"?><worksheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main"><sheetData>"#,
        );
        for (r, row) in rows.iter().enumerate() {
            x += &format!("<row r=\"{}\">", r + 1);
            for (c, i) in row.iter().enumerate() {
                x += &format!("<c r=\"{}{}\" t=\"s\"><v>{i}</v></c>", (b'A' + c as u8) as char, r + 1);
            }
            x += "</row>";
        }
        x + "</sheetData></worksheet>"
    };
    for (strings, rows, cell, rule) in [
        (&["姓名", "张伟"][..], &[&[0usize][..], &[1]][..], "导出数据!A2", "cn.name"),
        // a phonetic reading (`<rPh>`, as Excel keeps for East Asian text) is not part of the value
        (
            &["姓名", "张伟</t><rPh sb=\"0\" eb=\"1\"><t>ZW</t></rPh><t>"][..],
            &[&[0usize][..], &[1]][..],
            "导出数据!A2",
            "cn.name",
        ),
        (
            &["手机", "13800138000</t><rPh sb=\"0\" eb=\"1\"><t>ZZ</t></rPh><t>"][..],
            &[&[0usize][..], &[1]][..],
            "导出数据!A2",
            "cn.mobile",
        ),
        (&["手机", "姓名", "13800138000", "张伟"][..], &[&[0usize, 1][..], &[2, 3]][..], "导出数据!B2", "cn.name"),
        // a header as an import template writes one: spaced out, marked required, with a note
        (&["*姓　名（必填）", "张伟"][..], &[&[0usize][..], &[1]][..], "导出数据!A2", "cn.name"),
    ] {
        std::fs::write(&xlsx, super::documents::xlsx_of(&sst(strings), &sheet(rows))).expect("xlsx");
        let (code, out, err) = run(&["scan", xlsx.to_str().expect("path")], None);
        assert_eq!(code, 0, "{err}");
        let out = String::from_utf8_lossy(&out);
        assert!(out.contains(&format!("{cell}\t{rule}\t")), "{strings:?}: {out}");
    }
    // cells and rows without `r` (it is optional): placed after the cell and row before them
    let no_r = sheet(&[&[0, 1], &[2, 3]]).replace(" r=\"1\"", "").replace(" r=\"2\"", "");
    let no_r = ["A", "B"]
        .iter()
        .fold(no_r, |x, c| x.replace(&format!(" r=\"{c}1\""), "").replace(&format!(" r=\"{c}2\""), ""));
    assert!(!no_r.contains(" r="), "{no_r}");
    std::fs::write(&xlsx, super::documents::xlsx_of(&sst(&["手机", "姓名", "13800138000", "张伟"]), &no_r))
        .expect("xlsx");
    let (code, out, err) = run(&["scan", xlsx.to_str().expect("path")], None);
    assert_eq!(code, 0, "{err}");
    let out = String::from_utf8_lossy(&out);
    assert!(out.contains("导出数据!A2\tcn.mobile\t") && out.contains("导出数据!B2\tcn.name\t"), "{out}");
    // parts where the workbook's relationships put them, not where Excel does
    let moved: Vec<(&str, Vec<u8>)> = super::documents::xlsx_package(sst(&["姓名", "张伟"]), sheet(&[&[0], &[1]]))
        .into_iter()
        .map(|(name, bytes)| {
            let text = String::from_utf8(bytes)
                .expect("utf-8")
                .replace("worksheets/sheet1.xml", "/xl/sheets/Export.xml")
                .replace("/xl//xl/sheets", "/xl/sheets")
                .replace("sharedStrings.xml", "strings.xml");
            let name = match name {
                "xl/worksheets/sheet1.xml" => "xl/sheets/Export.xml",
                "xl/sharedStrings.xml" => "xl/strings.xml",
                n => n,
            };
            (name, text.into_bytes())
        })
        .collect();
    std::fs::write(&xlsx, super::documents::zip_of(&moved)).expect("xlsx");
    let (code, out, err) = run(&["scan", xlsx.to_str().expect("path")], None);
    assert_eq!(code, 0, "{err}");
    assert!(String::from_utf8_lossy(&out).contains("导出数据!A2\tcn.name\t"), "{}", String::from_utf8_lossy(&out));
    // a sheet named by a value: masked with the stars Excel allows in a sheet name (full width)
    let named: Vec<(&str, Vec<u8>)> = super::documents::xlsx_package(sst(&["备注"]), sheet(&[&[0]]))
        .into_iter()
        .map(|(name, bytes)| match name {
            "xl/workbook.xml" => {
                (name, String::from_utf8(bytes).expect("utf-8").replace("导出数据", "13800138000").into_bytes())
            }
            _ => (name, bytes),
        })
        .collect();
    std::fs::write(&xlsx, super::documents::zip_of(&named)).expect("xlsx");
    let (code, _, err) = run(&["mask", xlsx.to_str().expect("path"), "-o", masked.to_str().expect("path")], None);
    assert_eq!(code, 0, "{err}");
    let (sheets, _) = super::documents::cells(&std::fs::read(&masked).expect("masked"));
    assert_eq!(sheets, ["138＊＊＊＊8000"]);
    // a mobile number stored as a double, as Apache POI writes one: found, and masked as text
    let poi_number = sheet(&[&[0]])
        .replace("</row></sheetData>", "</row><row r=\"2\"><c r=\"A2\"><v>1.3800138E10</v></c></row></sheetData>");
    std::fs::write(&xlsx, super::documents::xlsx_of(&sst(&["手机"]), &poi_number)).expect("xlsx");
    let (code, out, err) = run(&["scan", xlsx.to_str().expect("path")], None);
    assert_eq!(code, 0, "{err}");
    assert!(String::from_utf8_lossy(&out).contains("导出数据!A2\tcn.mobile\t"), "{}", String::from_utf8_lossy(&out));
    let (code, _, err) = run(&["mask", xlsx.to_str().expect("path"), "-o", masked.to_str().expect("path")], None);
    assert_eq!(code, 0, "{err}");
    let (_, rows) = super::documents::cells(&std::fs::read(&masked).expect("masked"));
    assert_eq!(rows[1][0], "138****8000");
    // ... in a sheet that binds the namespace to a prefix (`x:c`, as .NET writers do): the inline
    // string takes the prefix too, or readers would show the cell empty
    let prefixed = ["worksheet", "sheetData", "row", "c", "v"].iter().fold(poi_number, |x, t| {
        x.replace(&format!("<{t}>"), &format!("<x:{t}>"))
            .replace(&format!("<{t} "), &format!("<x:{t} "))
            .replace(&format!("</{t}>"), &format!("</x:{t}>"))
    });
    let prefixed = prefixed.replace("<x:worksheet xmlns=", "<x:worksheet xmlns:x=");
    assert!(!prefixed.contains("<c") && prefixed.contains("<x:c r=\"A2\"><x:v>"), "{prefixed}");
    std::fs::write(&xlsx, super::documents::xlsx_of(&sst(&["手机"]), &prefixed)).expect("xlsx");
    let (code, _, err) = run(&["mask", xlsx.to_str().expect("path"), "-o", masked.to_str().expect("path")], None);
    assert_eq!(code, 0, "{err}");
    let mut zip = zip::ZipArchive::new(std::io::Cursor::new(std::fs::read(&masked).expect("masked"))).expect("zip");
    let mut part = String::new();
    std::io::Read::read_to_string(&mut zip.by_name("xl/worksheets/sheet1.xml").expect("sheet"), &mut part)
        .expect("read");
    assert!(part.contains(r#"<x:c r="A2" t="inlineStr"><x:is><x:t>138****8000</x:t></x:is></x:c>"#), "{part}");
    // a pivot table's cache: a copy of its source's values, in attributes, under its fields' names
    let def = r#"<?xml version="1.0" encoding="UTF-8" standalone="yes"?><pivotCacheDefinition xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main" recordCount="2"><cacheFields count="3"><cacheField name="姓名" numFmtId="0"><sharedItems count="2"><s v="张伟"/><s v="郑州市"/></sharedItems></cacheField><cacheField name="备注" numFmtId="0"><sharedItems count="1"><s v="王芳"/></sharedItems></cacheField><cacheField name="证件" numFmtId="0"><sharedItems/></cacheField></cacheFields></pivotCacheDefinition>"#;
    let records = r#"<?xml version="1.0" encoding="UTF-8" standalone="yes"?><pivotCacheRecords xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main" count="1"><r><x v="0"/><x v="0"/><s v="11010519491231002X"/></r></pivotCacheRecords>"#;
    let mut pivoted = super::documents::xlsx_package(sst(&["备注"]), sheet(&[&[0]]));
    pivoted.push(("xl/pivotCache/pivotCacheDefinition1.xml", def.into()));
    pivoted.push(("xl/pivotCache/pivotCacheRecords1.xml", records.into()));
    std::fs::write(&xlsx, super::documents::zip_of(&pivoted)).expect("xlsx");
    let (code, out, err) = run(&["scan", xlsx.to_str().expect("path")], None);
    assert_eq!(code, 0, "{err}");
    let out = String::from_utf8_lossy(&out);
    assert!(out.contains("pivotCacheDefinition1.xml pivot item\tcn.name\t"), "{out}");
    assert!(out.contains("pivotCacheRecords1.xml pivot item\tcn.id_card\t"), "{out}");
    assert!(out.ends_with("2 finding(s) in xlsx\n"), "a name under 备注, a place under 姓名: {out}");
    let (code, _, err) = run(&["mask", xlsx.to_str().expect("path"), "-o", masked.to_str().expect("path")], None);
    assert_eq!(code, 0, "{err}");
    let mut zip = zip::ZipArchive::new(std::io::Cursor::new(std::fs::read(&masked).expect("masked"))).expect("zip");
    let mut part = |name: &str| {
        let mut text = String::new();
        std::io::Read::read_to_string(&mut zip.by_name(name).expect(name), &mut text).expect("read");
        text
    };
    assert_eq!(part("xl/pivotCache/pivotCacheDefinition1.xml"), def.replace("张伟", "张*"));
    assert_eq!(
        part("xl/pivotCache/pivotCacheRecords1.xml"),
        records.replace("11010519491231002X", "110105********002X")
    );
    // ... and its numbers, which cannot be masked in place (a number item holds no text): found,
    // and the workbook is one `mask` refuses, as the gateway does by default
    let numeric = def.replace(
        r#"<cacheField name="证件" numFmtId="0"><sharedItems/></cacheField>"#,
        r#"<cacheField name="手机" numFmtId="0"><sharedItems containsNumber="1" minValue="13800138000" maxValue="1.3900139E10"/></cacheField>"#,
    );
    let numeric_records = records.replace(r#"<s v="11010519491231002X"/>"#, r#"<n v="1.3800138E10"/>"#);
    assert!(numeric != def && numeric_records != records);
    pivoted.truncate(pivoted.len() - 2);
    pivoted.push(("xl/pivotCache/pivotCacheDefinition1.xml", numeric.into_bytes()));
    pivoted.push(("xl/pivotCache/pivotCacheRecords1.xml", numeric_records.into_bytes()));
    std::fs::write(&xlsx, super::documents::zip_of(&pivoted)).expect("xlsx");
    let (code, out, err) = run(&["scan", xlsx.to_str().expect("path")], None);
    assert_eq!(code, 0, "{err}");
    let out = String::from_utf8_lossy(&out);
    assert_eq!(out.matches("pivot item\tcn.mobile\t").count(), 3, "{out}");
    let (code, _, err) = run(&["mask", xlsx.to_str().expect("path"), "-o", masked.to_str().expect("path")], None);
    assert_ne!(code, 0);
    assert!(err.contains("cannot be masked in place"), "{err}");
    // ... also where the shared strings come before the sheet (as Apache POI writes them)
    std::fs::write(&xlsx, super::documents::xlsx_strings_first()).expect("xlsx");
    let (code, out, err) = run(&["scan", xlsx.to_str().expect("path")], None);
    assert_eq!(code, 0, "{err}");
    assert!(String::from_utf8_lossy(&out).contains("导出数据!A2\tcn.name\t"), "{}", String::from_utf8_lossy(&out));
    // ... and in a CSV's header row
    let (_, out, _) = run(&["mask", "-"], Some("序号,姓 名（必填）,备注\n1,张伟,张伟\n".as_bytes()));
    assert_eq!(String::from_utf8_lossy(&out), "序号,姓 名（必填）,备注\n1,张*,张伟\n");
    // a team's own key: names under `dwfzr` (a unit's responsible person) once a rule names it
    let input = r#"{"dwfzr":"李秀英","bz":"李秀英"}"#.as_bytes();
    let (_, out, _) = run(&["mask", "-"], Some(input));
    assert_eq!(String::from_utf8_lossy(&out), r#"{"dwfzr":"李秀英","bz":"李秀英"}"#);
    let rules_dir = dir.join("rules");
    std::fs::create_dir_all(&rules_dir).expect("dir");
    let own = "rules:\n  - id: local.responsible\n    name: {zh: 负责人姓名}\n    category: personal.name\n    level: important\n    detector: {builtin: cn_name}\n    fields: [dwfzr, \"*_fzr\"]\n    action: mask\n    mask: {keep: surname}\n    examples:\n      in_field:\n        - field: DWFZR\n          match: [李秀英]\n          no_match: [郑州市]\n";
    std::fs::write(rules_dir.join("local.yaml"), own).expect("rule");
    let (code, out, err) = run(&["mask", "--rules", rules_dir.to_str().expect("dir"), "-"], Some(input));
    assert_eq!(code, 0, "{err}");
    assert_eq!(String::from_utf8_lossy(&out), r#"{"dwfzr":"李**","bz":"李秀英"}"#);
    let (code, out, err) = run(&["rules", "test", rules_dir.to_str().expect("dir")], None);
    assert_eq!(code, 0, "{err}");
    assert!(String::from_utf8_lossy(&out).contains("local.responsible"), "{}", String::from_utf8_lossy(&out));
    // beside the shipped rules, whose name rule uses the same detector: each finds its own fields
    let shipped = concat!(env!("CARGO_MANIFEST_DIR"), "/rules");
    let both = ["--rules", shipped, "--rules", rules_dir.to_str().expect("dir")];
    let (code, out, err) =
        run(&[&["mask"][..], &both, &["-"]].concat(), Some(r#"{"dwfzr":"李秀英","xm":"王芳"}"#.as_bytes()));
    assert_eq!(code, 0, "{err}");
    assert_eq!(String::from_utf8_lossy(&out), r#"{"dwfzr":"李**","xm":"王*"}"#);
    let (code, out, err) = run(
        &[&["scan", "--format", "jsonl"][..], &both, &["-"]].concat(),
        Some(r#"{"dwfzr":"李秀英","xm":"王芳"}"#.as_bytes()),
    );
    assert_eq!(code, 0, "{err}");
    let rules: Vec<String> = String::from_utf8_lossy(&out)
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).expect("json")["rule"].as_str().unwrap_or("").to_string())
        .collect();
    assert_eq!(rules, ["local.responsible", "cn.name"]);
    let (code, out, err) = run(&["rules", "test", shipped, rules_dir.to_str().expect("dir")], None);
    assert_eq!(code, 0, "{err}");
    assert!(String::from_utf8_lossy(&out).contains("0 failure(s)"), "{}", String::from_utf8_lossy(&out));
    // an in_field example that fails is reported with its field
    std::fs::write(rules_dir.join("local.yaml"), own.replace("match: [李秀英]", "match: [李秀英, 郑州市金水区]"))
        .expect("rule");
    let (code, _, err) = run(&["rules", "test", rules_dir.to_str().expect("dir")], None);
    assert_eq!(code, 1);
    assert!(err.contains("example does not match: \"郑州市金水区\" in field \"DWFZR\""), "{err}");
}

/// One engine, two doors: a saved form body (or query string) is read by `scan` and `mask` as
/// the gateway reads one sent as `application/x-www-form-urlencoded` (`+` a space, the rewrite
/// form-encoded; see `form_bodies_and_queries_read_plus_as_space` in the gateway's tests), from a
/// file or stdin; JSON and prose with a `+` stay text.
#[test]
fn form_data_is_read_as_the_gateway_reads_a_form_body() {
    let dir = tempdir("cli-form");
    let form = dir.join("body.txt");
    std::fs::write(&form, "phone=138+0013+8000&name=a+b\n").expect("form");
    let (code, out, err) = run(&["mask", form.to_str().expect("path")], None);
    assert_eq!(code, 0, "{err}");
    assert_eq!(String::from_utf8_lossy(&out), "phone=138+****+8000&name=a+b\n", "what the gateway forwards");
    let (code, out, err) = run(&["scan", form.to_str().expect("path")], None);
    assert_eq!(code, 0, "{err}");
    let out = String::from_utf8_lossy(&out);
    assert!(out.starts_with("6-19\tcn.mobile\t") && out.ends_with("1 finding(s) in form data\n"), "{out}");
    // a name in its field, percent-encoded: the kept surname goes back encoded
    let body = "xm=%E5%BC%A0%E4%BC%9F&id=110105+1949+1231+002x&card=6217+9907+8969+2948+627";
    let (code, out, err) = run(&["mask", "-"], Some(body.as_bytes()));
    assert_eq!(code, 0, "{err}");
    assert_eq!(String::from_utf8_lossy(&out), "xm=%E5%BC%A0*&id=110105+****+****+002x&card=6217+99**+****+***8+627");
    // not form data: the `+` is a plus
    for text in [r#"{"tel":"138+0013+8000"}"#, "tel = 138+0013+8000", "a,b=138+0013+8000"] {
        let (code, out, err) = run(&["scan", "-"], Some(text.as_bytes()));
        assert_eq!(code, 0, "{err}");
        assert_eq!(String::from_utf8_lossy(&out), "0 finding(s)\n", "{text}");
    }
    // a rule's examples as form data, for `rules test`
    let rules_dir = dir.join("rules");
    std::fs::create_dir_all(&rules_dir).expect("dir");
    let rule = "rules:\n  - id: local.phone\n    name: {zh: 电话}\n    category: personal.phone\n    level: important\n    detector: {builtin: cn_mobile}\n    action: mask\n    examples:\n      in_form:\n        match: [\"tel=138+0013+8000\"]\n        no_match: [\"tel=138+0013+80001\"]\n";
    std::fs::write(rules_dir.join("local.yaml"), rule).expect("rule");
    let (code, out, err) = run(&["rules", "test", rules_dir.to_str().expect("dir")], None);
    assert_eq!(code, 0, "{err}");
    assert!(String::from_utf8_lossy(&out).contains("1 rule(s), 2 example(s), 0 failure(s)"), "{err}");
    std::fs::write(rules_dir.join("local.yaml"), rule.replace("[\"tel=138+0013+8000\"]", "[\"tel=138+0013+800\"]"))
        .expect("rule");
    let (code, _, err) = run(&["rules", "test", rules_dir.to_str().expect("dir")], None);
    assert_eq!(code, 1);
    assert!(err.contains("example does not match: \"tel=138+0013+800\" as form data"), "{err}");
    // `scan --format jsonl` weighs context words for every finding in form data, as for text
    let body = format!("note=%E6%89%8B%E6%9C%BA+13800138000&pad={}&x=13900139000", "x".repeat(200));
    let (code, out, err) = run(&["scan", "--format", "jsonl", "-"], Some(body.as_bytes()));
    assert_eq!(code, 0, "{err}");
    let context: Vec<bool> = String::from_utf8_lossy(&out)
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).expect("json")["context"].as_bool().expect("context"))
        .collect();
    assert_eq!(context, [true, false], "the mobile after 手机 has its context word, the other none");
    // a form longer than the first bytes the input is told by
    let long = format!("pad={}&phone=138+0013+8000", "x".repeat(100_000));
    let (code, out, err) = run(&["mask", "-"], Some(long.as_bytes()));
    assert_eq!(code, 0, "{err}");
    assert!(String::from_utf8_lossy(&out).ends_with("&phone=138+****+8000"), "{err}");
}

/// A captured multipart upload is read part by part, as the gateway reads one: a form field's
/// value by its field name, a text part scanned, an image part untouched, an uploaded workbook
/// inspected inside; `scan` reports offsets in the body and a workbook's cells under its file name.
#[test]
fn multipart_bodies_are_read_part_by_part() {
    let xlsx = super::documents::xlsx();
    let png = b"\x89PNG\r\n\x1a\n 13800138000 \x00\xff".to_vec();
    let mut body = Vec::new();
    let part = |body: &mut Vec<u8>, head: &str, content: &[u8]| {
        body.extend_from_slice(format!("--b0undary\r\n{head}\r\n\r\n").as_bytes());
        body.extend_from_slice(content);
        body.extend_from_slice(b"\r\n");
    };
    part(&mut body, "Content-Disposition: form-data; name=\"xm\"", "张伟".as_bytes());
    part(&mut body, "Content-Disposition: form-data; name=\"note\"", b"tel 13800138000");
    part(
        &mut body,
        "Content-Disposition: form-data; name=\"pic\"; filename=\"a.png\"\r\nContent-Type: image/png",
        &png,
    );
    part(
        &mut body,
        "Content-Disposition: form-data; name=\"f\"; filename=\"export.xlsx\"\r\nContent-Type: application/octet-stream",
        &xlsx,
    );
    body.extend_from_slice(b"--b0undary--\r\n");
    let (code, out, err) = run(&["mask", "-"], Some(&body));
    assert_eq!(code, 0, "{err}");
    let text = String::from_utf8_lossy(&out);
    assert!(text.contains("name=\"xm\"\r\n\r\n张*\r\n") && text.contains("tel 138****8000\r\n"), "{text:.400}");
    assert!(out.windows(png.len()).any(|w| w == png.as_slice()), "the image goes through byte for byte");
    let start = out.windows(4).position(|w| w == b"PK\x03\x04").expect("the workbook part");
    let end = start + out[start..].windows(12).position(|w| w == b"\r\n--b0undary").expect("its end");
    let (_, rows) = super::documents::cells(&out[start..end]);
    assert_eq!((rows[0][0].as_str(), rows[1][0].as_str()), ("姓名", "张*"), "the workbook is masked inside");
    let (code, out, err) = run(&["scan", "--format", "jsonl", "-"], Some(&body));
    assert_eq!(code, 0, "{err}");
    let found: Vec<serde_json::Value> =
        String::from_utf8_lossy(&out).lines().map(|l| serde_json::from_str(l).expect("jsonl")).collect();
    let at = |rule: &str| found.iter().find(|v| v["rule"] == rule && v["location"].is_null()).expect(rule).clone();
    for (rule, value) in [("cn.name", "张伟".as_bytes()), ("cn.mobile", b"13800138000".as_slice())] {
        let v = at(rule);
        let (s, e) = (v["start"].as_u64().expect("start") as usize, v["end"].as_u64().expect("end") as usize);
        assert_eq!(&body[s..e], value, "{v}");
    }
    assert!(found.iter().any(|v| v["location"].as_str().is_some_and(|l| l.starts_with("export.xlsx: "))), "{found:?}");
    let in_text = found.iter().filter(|v| v["rule"] == "cn.mobile" && v["location"].is_null()).count();
    assert_eq!(in_text, 1, "the note's, not the image's: {found:?}");
    let (_, out, _) = run(&["scan", "-"], Some(&body));
    assert!(String::from_utf8_lossy(&out).ends_with(" finding(s) in multipart data\n"));
}

/// A document piped in (`curl … | dlpgate mask --department … -`) is inspected inside, as one
/// named on the command line is, not masked as text.
#[test]
fn documents_on_stdin_are_inspected_inside() {
    let xlsx = super::documents::xlsx();
    let (code, out, err) = run(&["mask", "-"], Some(&xlsx));
    assert_eq!(code, 0, "{err}");
    let (_, rows) = super::documents::cells(&out);
    assert_eq!((rows[0][0].as_str(), rows[1][0].as_str()), ("姓名", "张*"));
    let (code, out, err) = run(&["scan", "-"], Some(&xlsx));
    assert_eq!(code, 0, "{err}");
    assert!(String::from_utf8_lossy(&out).contains("finding(s) in xlsx"), "{}", String::from_utf8_lossy(&out));
}

/// The README's rule examples load and pass `rules test` as printed.
#[test]
fn the_readmes_rule_examples_pass_rules_test() {
    let readme =
        std::fs::read_to_string(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md")).expect("README.md");
    let blocks: Vec<&str> = readme
        .split("```yaml\n")
        .skip(1)
        .filter_map(|b| b.split("```").next())
        .filter(|b| b.starts_with("rules:"))
        .collect();
    assert!(blocks.len() >= 2, "{blocks:?}");
    for (i, block) in blocks.iter().enumerate() {
        let dir = tempdir("readme-rules");
        std::fs::write(dir.join("r.yaml"), block).expect("rule");
        let (code, out, err) = run(&["rules", "test", dir.to_str().expect("dir")], None);
        assert_eq!(code, 0, "block {i}: {err}\n{block}");
        assert!(String::from_utf8_lossy(&out).contains("0 failure(s)"), "block {i}");
    }
}
