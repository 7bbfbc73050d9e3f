//! Engine throughput on the default rule set, with trivial baselines in the same run so the
//! figures read as ratios: a `memchr` pass, one ASCII ID regex, and one multi-pattern regex pass with
//! a pattern per kind of value (what a regex-only product runs).
//!
//! Inputs (synthetic, valid check digits, built outside the timed loop):
//! (a) API JSON with few findings, (b) PII-dense JSON (masked), (c) Chinese prose; 16 KiB and 4 MiB.
//!
//! Run: `cargo bench --bench engine` (add `-- --quick` for a short run), or
//! `RATIO=1 cargo bench --bench engine` for interleaved best-of-25 ratios against the regex pass.

#![allow(clippy::expect_used)]

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group};
use dlpgate_engine::synthetic::{Rng, card, id_card, mobile};
use dlpgate_engine::{Action, HashKey, Transformer, default_rules};
use std::hint::black_box;

/// (a) typical API JSON: ids, timestamps, amounts, status strings; one ID card per ~4 KiB.
fn api_json(size: usize) -> Vec<u8> {
    let mut r = Rng(1);
    let mut s = String::from("{\"code\":0,\"data\":[");
    let mut i = 0u64;
    while s.len() < size {
        let pii = if i % 24 == 0 { format!(",\"owner\":\"{}\"", id_card(&mut r)) } else { String::new() };
        s.push_str(&format!(
            "{{\"id\":{},\"orderNo\":\"ZZ{}\",\"status\":\"APPROVED\",\"amount\":{}.{:02},\"createdAt\":\"2024-05-{:02}T10:{:02}:00+08:00\",\"ts\":{},\"region\":\"河南省郑州市\"{pii}}},",
            1000 + i, r.digits(14), r.next() % 100000, r.next() % 100, 1 + r.next() % 28, r.next() % 60, 1_700_000_000_000 + r.next() % 1_000_000, ));
        i += 1;
    }
    s.push_str("{}]}");
    s.truncate(size);
    s.into_bytes()
}

/// (b) PII-dense JSON: every record carries an ID, a mobile, a card and an e-mail.
fn pii_json(size: usize) -> Vec<u8> {
    let mut r = Rng(2);
    let mut s = String::from("[");
    let mut i = 0;
    while s.len() < size {
        s.push_str(&format!(
            "{{\"name\":\"张三{i}\",\"sfzh\":\"{}\",\"lxdh\":\"{}\",\"yhkh\":\"{}\",\"email\":\"user{i}@example.com\"}},",
            id_card(&mut r), mobile(&mut r), card(&mut r)));
        i += 1;
    }
    s.truncate(size);
    s.into_bytes()
}

/// (c) Chinese prose with the occasional identifier and marking.
fn prose(size: usize) -> Vec<u8> {
    let mut r = Rng(3);
    let para = "根据《中华人民共和国数据安全法》和本市政务数据共享管理办法，各单位应当建立健全数据分类分级保护制度，保障数据的机密性、完整性和可用性。";
    let mut s = String::new();
    let mut i = 0;
    while s.len() < size {
        s.push_str(para);
        if i % 8 == 0 {
            s.push_str(&format!("联系人手机{}，身份证号{}。", mobile(&mut r), id_card(&mut r)));
        }
        s.push('\n');
        i += 1;
    }
    let mut b = s.into_bytes();
    b.truncate(size);
    b
}

/// What a regex-only product runs: one multi-pattern pass with a pattern per kind of value the
/// default rules find (no validation, no normalization), the reference the issue's targets are set
/// against ("one multi-pattern regex pass alone runs at about 300 MB/s").
fn multi_regex() -> regex_automata::meta::Regex {
    regex_automata::meta::Regex::new_many(&[
        r"(?-u:\b)[1-9][0-9]{5}(?:18|19|20)[0-9]{2}(?:0[1-9]|1[0-2])(?:0[1-9]|[12][0-9]|3[01])[0-9]{3}[0-9Xx](?-u:\b)",
        r"(?-u:\b)[1-9][0-9]{7}(?:0[1-9]|1[0-2])(?:0[1-9]|[12][0-9]|3[01])[0-9]{3}(?-u:\b)",
        r"(?-u:\b)(?:\+?86[- ]?)?1[3-9][0-9]{9}(?-u:\b)",
        r"(?-u:\b)0[1-9][0-9]{1,2}-?[2-8][0-9]{6,7}(?-u:\b)",
        r"(?-u:\b)[3-6][0-9]{12,18}(?-u:\b)",
        r"(?-u:\b)[0-9A-HJ-NPQRTUWXY]{2}[0-9]{6}[0-9A-HJ-NPQRTUWXY]{10}(?-u:\b)",
        r"(?-u:\b)[EGDSP][0-9]{8}(?-u:\b)",
        r"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}",
        r"(?-u:\b)(?:[0-9]{1,3}\.){3}[0-9]{1,3}(?-u:\b)",
        r"(?:京|津|沪|渝|冀|豫|云|辽|黑|湘|皖|鲁|新|苏|浙|赣|鄂|桂|甘|晋|蒙|陕|吉|闽|贵|粤|青|藏|川|宁|琼)[A-Z]·?[A-Z0-9]{5,6}",
        r"绝密|机密|秘密|内部资料|商业秘密|不得外传",
        r"-----BEGIN (?:RSA |EC |DSA |OPENSSH )?PRIVATE KEY-----|(?-u:\b)(?:AKIA[0-9A-Z]{16}|LTAI[0-9A-Za-z]{12,20})(?-u:\b)",
    ])
    .expect("multi-pattern regex")
}

fn bench(c: &mut Criterion) {
    let rules = default_rules().expect("default rules");
    let tr = Transformer::new(HashKey::new(b"bench-key-0123456789"));
    let id_re = regex::bytes::Regex::new(r"(?-u:\b)[0-9]{17}[0-9Xx](?-u:\b)").expect("regex");
    let multi_re = multi_regex();

    c.bench_function("compile/default_rules", |b| b.iter(|| black_box(default_rules().is_ok())));

    let inputs: Vec<(&str, Vec<u8>)> = vec![
        ("api_json_16k", api_json(16 << 10)),
        ("api_json_4m", api_json(4 << 20)),
        ("pii_json_16k", pii_json(16 << 10)),
        ("pii_json_4m", pii_json(4 << 20)),
        ("prose_16k", prose(16 << 10)),
        ("prose_4m", prose(4 << 20)),
    ];
    let mut g = c.benchmark_group("scan");
    g.sample_size(20);
    for (name, data) in &inputs {
        g.throughput(Throughput::Bytes(data.len() as u64));
        g.bench_with_input(BenchmarkId::new("baseline_memchr", name), data, |b, d| {
            b.iter(|| black_box(memchr::memchr_iter(b'"', d).count()))
        });
        g.bench_with_input(BenchmarkId::new("baseline_id_regex", name), data, |b, d| {
            b.iter(|| black_box(id_re.find_iter(d).count()))
        });
        g.bench_with_input(BenchmarkId::new("baseline_multi_regex", name), data, |b, d| {
            b.iter(|| black_box(multi_re.find_iter(d).count()))
        });
        g.bench_with_input(BenchmarkId::new("dlpgate_scan", name), data, |b, d| {
            let mut scan = dlpgate_engine::Scan::default();
            b.iter(|| {
                rules.scan_into(d, &mut scan);
                black_box(scan.findings.len())
            })
        });
        g.bench_with_input(BenchmarkId::new("dlpgate_mask", name), data, |b, d| {
            let mut scan = dlpgate_engine::Scan::default();
            let mut out = Vec::with_capacity(d.len());
            b.iter(|| {
                out.clear();
                rules.scan_into(d, &mut scan);
                tr.apply(&rules, d, &scan, |_| Action::Mask, &mut out);
                black_box(out.len())
            })
        });
    }
    g.finish();
}

/// `RATIO=1 cargo bench --bench engine`: scan, mask and the multi-pattern regex pass on the 4 MiB
/// inputs, interleaved, best of 25 rounds each. On a noisy machine (these are) the best of
/// interleaved rounds gives steadier ratios than criterion's separate runs.
fn ratios() {
    let rules = default_rules().expect("default rules");
    // the same set without the field rules (names, addresses): what they cost
    let plain = dlpgate_engine::RuleSet::from_sources(
        &dlpgate_engine::DEFAULT_RULE_FILES
            .iter()
            .filter(|(p, _)| !p.ends_with("personal.yaml"))
            .map(|(p, t)| (std::path::PathBuf::from(p), (*t).to_string()))
            .collect::<Vec<_>>(),
    )
    .expect("default rules without the field rules");
    let tr = Transformer::new(HashKey::new(b"bench-key-0123456789"));
    let multi_re = multi_regex();
    for (name, d) in
        [("api_json_4m", api_json(4 << 20)), ("pii_json_4m", pii_json(4 << 20)), ("prose_4m", prose(4 << 20))]
    {
        let mut scan = dlpgate_engine::Scan::default();
        let mut out = Vec::with_capacity(d.len());
        let mut best = [f64::MAX; 4];
        for _ in 0..25 {
            let t = std::time::Instant::now();
            plain.scan_into(&d, &mut scan);
            best[3] = best[3].min(t.elapsed().as_secs_f64());
            let t = std::time::Instant::now();
            rules.scan_into(&d, &mut scan);
            best[0] = best[0].min(t.elapsed().as_secs_f64());
            let t = std::time::Instant::now();
            out.clear();
            rules.scan_into(&d, &mut scan);
            tr.apply(&rules, &d, &scan, |_| Action::Mask, &mut out);
            best[1] = best[1].min(t.elapsed().as_secs_f64());
            let t = std::time::Instant::now();
            black_box(multi_re.find_iter(&d).count());
            best[2] = best[2].min(t.elapsed().as_secs_f64());
        }
        let mb = |s: f64| d.len() as f64 / s / 1e6;
        println!(
            "{name:12} scan {:5.0} MB/s  mask {:5.0} MB/s  multi-regex {:5.0} MB/s  scan {:.2}x  mask {:.2}x  scan without field rules {:5.0} MB/s",
            mb(best[0]),
            mb(best[1]),
            mb(best[2]),
            best[2] / best[0],
            best[2] / best[1],
            mb(best[3])
        );
    }
}

criterion_group!(benches, bench);

fn main() {
    if std::env::var_os("RATIO").is_some() {
        ratios();
        return;
    }
    benches();
    Criterion::default().configure_from_args().final_summary();
}
