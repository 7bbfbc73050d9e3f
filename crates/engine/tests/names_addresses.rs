//! Issue 14: recall and false positives of `cn.name` and `cn.address` on a labelled set of our own.
//!
//! The set is synthetic (`synthetic::name`, `synthetic::address`: made-up names under real
//! surnames, made-up streets under real GB/T 2260 divisions) and built the same on every run:
//! 2,400 names and 1,200 addresses, each in a record (JSON, CSV, XML, form, multipart) or after a
//! label in running text, and decoy words that begin with a surname or hold a division name, in
//! running text and in fields that are not name or address fields. Run with `--nocapture` for the
//! table; the targets are asserted.
#![allow(clippy::expect_used)]

use dlpgate_engine::synthetic::{Rng, address, name};
use dlpgate_engine::{RuleSet, default_rules};

#[derive(Default)]
struct Tally {
    found: usize,
    total: usize,
}

impl Tally {
    fn rate(&self) -> f64 {
        self.found as f64 / self.total.max(1) as f64
    }
}

/// Whether a finding of `rule` covers exactly `value`, which stands at `text[at..]`.
fn finds(rules: &RuleSet, rule: &str, text: &str, value: &str) -> bool {
    let at = text.find(value).expect("value in its text");
    let r = rules.rule_index(rule).expect("rule");
    rules.scan(text.as_bytes()).findings.iter().any(|f| f.rule == r && f.start == at && f.end == at + value.len())
}

const NAME_KEYS: &[&str] = &["xm", "name", "姓名", "customer_name", "KHMC", "lxr", "applicant_name", "联系人", "hzxm"];
const ADDRESS_KEYS: &[&str] = &["zz", "address", "家庭住址", "jtzz", "home_address", "联系地址", "hjdz", "residence"];
const NAME_LABELS: &[&str] = &["姓名：", "联系人：", "申请人: ", "户主：", "经办人 ", "法定代表人："];
const ADDRESS_LABELS: &[&str] = &["家庭住址：", "住址：", "联系地址: ", "户籍地：", "家住"];

/// A value in a record of one of five formats, under `key`.
fn record(i: usize, key: &str, value: &str) -> String {
    match i % 5 {
        0 => format!(r#"{{"id":{i},"{key}":"{value}","status":"正常"}}"#),
        1 => format!("id,{key},status\n{i},{value},正常\n"),
        2 => format!("<row><id>{i}</id><{key}>{value}</{key}></row>"),
        3 => format!("id={i}&{key}={value}&status=1"),
        _ => format!(
            "--b\r\nContent-Disposition: form-data; name=\"id\"\r\n\r\n{i}\r\n--b\r\nContent-Disposition: form-data; name=\"{key}\"\r\n\r\n{value}\r\n--b--\r\n"
        ),
    }
}

/// Words that begin with a surname character or name a division, and are neither names nor addresses.
const DECOYS: &[&str] = &[
    "张家界",
    "高新区",
    "黄河路",
    "万元",
    "周一",
    "周末",
    "王府井",
    "石家庄",
    "常州",
    "高速公路",
    "金融",
    "林业局",
    "江苏",
    "安全",
    "明天",
    "方便",
    "平安",
    "成功",
    "程序",
    "文件",
    "全部",
    "时间",
    "和平",
    "马上",
    "向东",
    "于是",
    "高兴",
    "夏天",
    "宋体",
    "钱包",
    "李子",
    "白天",
    "田野",
    "石头",
    "郑州市",
    "金水区",
    "河南省",
    "黄山",
    "周口",
    "龙门",
    "温度",
    "华为",
];

#[test]
fn names_and_addresses_on_a_labelled_set() {
    let rules = default_rules().expect("default rules");
    let mut r = Rng(2026);
    let (mut name_fields, mut name_labels, mut addr_fields, mut addr_labels, mut addr_alone) =
        (Tally::default(), Tally::default(), Tally::default(), Tally::default(), Tally::default());
    let mut missed = Vec::new();
    for i in 0..2400 {
        let n = name(&mut r);
        let (text, tally) = if i % 3 == 2 {
            let label = NAME_LABELS[i % NAME_LABELS.len()];
            (format!("经核实，{label}{n}，于2024年3月提交申请。"), &mut name_labels)
        } else {
            (record(i, NAME_KEYS[i % NAME_KEYS.len()], &n), &mut name_fields)
        };
        tally.total += 1;
        if finds(&rules, "cn.name", &text, &n) {
            tally.found += 1;
        } else if missed.len() < 10 {
            missed.push(text);
        }
    }
    for i in 0..1200 {
        let a = address(&mut r);
        let (text, tally) = match i % 4 {
            0 | 1 => (record(i, ADDRESS_KEYS[i % ADDRESS_KEYS.len()], &a), &mut addr_fields),
            2 => (format!("登记信息：{}{a}，邮编450000。", ADDRESS_LABELS[i % ADDRESS_LABELS.len()]), &mut addr_labels),
            // on its own: only an address with a house number (or a village's group number) is one
            _ if a.contains('号') || a.ends_with('组') => (format!("该户现居于{a}，已核实。"), &mut addr_alone),
            _ => continue,
        };
        tally.total += 1;
        if finds(&rules, "cn.address", &text, &a) {
            tally.found += 1;
        } else if missed.len() < 20 {
            missed.push(text);
        }
    }
    // decoys: in running text and in fields that are not name or address fields
    let (name_rule, addr_rule) = (rules.rule_index("cn.name"), rules.rule_index("cn.address"));
    let mut decoys = Tally::default();
    let mut flagged = Vec::new();
    for (i, d) in DECOYS.iter().cycle().take(2000).enumerate() {
        let text = match i % 4 {
            0 => format!("本周我们去{d}参观，3号楼前集合。"),
            1 => format!(r#"{{"city":"{d}","remark":"{d}项目","no":"{i}号"}}"#),
            2 => format!("<title>{d}</title><org>{d}第{i}号文件</org>"),
            _ => format!("{d}，{d}。会议在{}号会议室召开。", i % 9 + 1),
        };
        decoys.total += 1;
        let hit =
            rules.scan(text.as_bytes()).findings.iter().any(|f| Some(f.rule) == name_rule || Some(f.rule) == addr_rule);
        if hit {
            decoys.found += 1;
            flagged.push(text);
        }
    }
    println!("kind                         recall   values");
    for (what, t) in [
        ("names in fields", &name_fields),
        ("names after a label", &name_labels),
        ("addresses in fields", &addr_fields),
        ("addresses after a label", &addr_labels),
        ("addresses on their own", &addr_alone),
    ] {
        println!("{what:28} {:.4}   {}", t.rate(), t.total);
    }
    println!("decoys flagged               {:.4}   {}", decoys.rate(), decoys.total);
    assert!(
        name_fields.total + name_labels.total >= 2000
            && addr_fields.total + addr_labels.total + addr_alone.total >= 1000
    );
    assert!(name_fields.rate() >= 0.98, "names in fields: {:.4}; missed e.g. {missed:?}", name_fields.rate());
    assert!(addr_fields.rate() >= 0.98, "addresses in fields: {:.4}; missed e.g. {missed:?}", addr_fields.rate());
    assert!(name_labels.rate() >= 0.9, "names after labels: {:.4}; missed e.g. {missed:?}", name_labels.rate());
    assert!(addr_labels.rate() >= 0.9, "addresses after labels: {:.4}; missed e.g. {missed:?}", addr_labels.rate());
    assert!(addr_alone.rate() >= 0.9, "addresses on their own: {:.4}; missed e.g. {missed:?}", addr_alone.rate());
    assert!(decoys.rate() <= 0.005, "decoys flagged: {:.4}: {flagged:?}", decoys.rate());
}

/// A name and an address split across chunks of a stream, at every split point, are found and
/// masked as in one piece; a CSV header in the first chunk names the columns of later chunks.
#[test]
fn streamed_names_and_addresses() {
    use dlpgate_engine::{Action, HashKey, StreamScanner, Transformer};
    let rules = default_rules().expect("default rules");
    let tr = Transformer::new(HashKey::new(b"stream-test-key-0123456789"));
    let body = r#"{"records":[{"xm":"欧阳娜娜","zz":"河南省郑州市金水区文化路85号3号楼2单元1501室"}]}"#;
    let mut whole = Vec::new();
    let mut sc = StreamScanner::new();
    sc.push(&rules, &tr, body.as_bytes(), &mut whole, &mut |_, _| Action::Mask);
    sc.finish(&rules, &tr, &mut whole, &mut |_, _| Action::Mask);
    let whole = String::from_utf8(whole).expect("utf-8");
    assert_eq!(whole, r#"{"records":[{"xm":"欧阳**","zz":"河南省郑州市金水区****"}]}"#);
    for cut in 1..body.len() {
        let mut out = Vec::new();
        let mut sc = StreamScanner::new();
        sc.push(&rules, &tr, &body.as_bytes()[..cut], &mut out, &mut |_, _| Action::Mask);
        sc.push(&rules, &tr, &body.as_bytes()[cut..], &mut out, &mut |_, _| Action::Mask);
        sc.finish(&rules, &tr, &mut out, &mut |_, _| Action::Mask);
        assert_eq!(String::from_utf8_lossy(&out), whole, "split at {cut}");
    }
    // a CSV header row, then enough rows that later ones arrive long after it
    let mut csv = String::from("编号,姓名,备注\n");
    for i in 0..400 {
        csv.push_str(&format!("{i},张伟,正常\n"));
    }
    let mut out = Vec::new();
    let mut sc = StreamScanner::new();
    for chunk in csv.as_bytes().chunks(97) {
        sc.push(&rules, &tr, chunk, &mut out, &mut |_, _| Action::Mask);
    }
    sc.finish(&rules, &tr, &mut out, &mut |_, _| Action::Mask);
    let out = String::from_utf8_lossy(&out);
    assert_eq!(out.matches("张*").count(), 400, "every row's name masked");
    assert!(out.starts_with("编号,姓名,备注\n"), "the header stays");
    // a wide row (its name far past the stream's usual lookback) and an HTML table of many rows,
    // in small chunks: read as the whole body is
    let mut wide = String::from("备注,编号,姓名\n");
    for i in 0..5 {
        wide.push_str(&format!("{},{i},李秀英\n", "说明".repeat(400)));
    }
    let mut html = String::from("<table><tr><th>编号</th><th>姓名</th></tr>");
    for i in 0..300 {
        html.push_str(&format!("<tr><td>{i}</td><td>王芳</td></tr>"));
    }
    html.push_str("</table>");
    for (body, masked, n) in [(wide.as_str(), "李**", 5), (html.as_str(), "王*", 300)] {
        let mut whole = Vec::new();
        rules.scan(body.as_bytes());
        dlpgate_engine::stream::scan_whole(&rules, &tr, body.as_bytes(), &mut whole, &mut |_, _| Action::Mask);
        let whole = String::from_utf8_lossy(&whole).into_owned();
        assert_eq!(whole.matches(masked).count(), n);
        for size in [7, 61, 500, 4096] {
            let mut out = Vec::new();
            let mut sc = StreamScanner::new();
            for chunk in body.as_bytes().chunks(size) {
                sc.push(&rules, &tr, chunk, &mut out, &mut |_, _| Action::Mask);
            }
            sc.finish(&rules, &tr, &mut out, &mut |_, _| Action::Mask);
            assert_eq!(String::from_utf8_lossy(&out), whole, "chunks of {size}");
        }
    }
}
