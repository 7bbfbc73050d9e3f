//! Every synthetic sample document (tests/data, copied from the shared corpus): the default rules
//! must find every positive (evasions included) and flag no decoy except those tagged `contextual`.

use std::collections::HashMap;
use std::path::PathBuf;

use dlpgate::engine::stream::StreamFinding;
use dlpgate::engine::{Action, HashKey, RuleSet, StreamScanner, Transformer, default_rules};
use serde_json::Value;

fn data() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data")
}

struct Label {
    id: u64,
    start: usize,
    end: usize,
    ty: String,
    pos: bool,
    contextual: bool,
}

fn labels(doc: &str) -> Vec<Label> {
    let text = std::fs::read_to_string(data().join("labels").join(format!("{doc}.jsonl"))).unwrap_or_default();
    text.lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .map(|v| Label {
            id: v["id"].as_u64().unwrap_or(0),
            start: v["start"].as_u64().unwrap_or(0) as usize,
            end: v["end"].as_u64().unwrap_or(0) as usize,
            ty: v["type"].as_str().unwrap_or("").to_string(),
            pos: v["polarity"] == "pos",
            contextual: v["tags"].as_array().is_some_and(|t| t.iter().any(|x| x == "contextual")),
        })
        .collect()
}

fn rule_for(ty: &str) -> &'static str {
    match ty {
        "cn_id_card" => "cn.id_card",
        "cn_id_card_15" => "cn.id_card_15",
        "cn_mobile" => "cn.mobile",
        "bank_card" => "fin.bank_card",
        "cn_landline" => "cn.landline",
        "cn_passport" => "cn.passport",
        "cn_plate" => "cn.plate",
        "cn_uscc" => "cn.uscc",
        "email" => "net.email",
        "ipv4" => "net.ipv4",
        "secret_marking" => "secret.marking",
        other => panic!("unknown label type {other}"),
    }
}

fn docs() -> Vec<String> {
    let manifest: Value =
        serde_json::from_str(&std::fs::read_to_string(data().join("manifest.json")).unwrap_or_default())
            .unwrap_or(Value::Null);
    manifest["docs"]
        .as_array()
        .map(|d| d.iter().filter_map(|x| x["name"].as_str().map(String::from)).collect())
        .unwrap_or_default()
}

/// (rule id, start, end) found in a document, whole-buffer.
fn findings(rules: &RuleSet, bytes: &[u8]) -> Vec<(String, usize, usize)> {
    rules.scan(bytes).findings.iter().map(|f| (rules.rules()[f.rule].id.clone(), f.start, f.end)).collect()
}

fn overlaps(a: (usize, usize), b: (usize, usize)) -> bool {
    a.0 < b.1 && b.0 < a.1
}

#[test]
fn default_rules_find_every_positive_and_no_decoy() {
    let rules = default_rules().expect("default rules compile");
    let listed = docs();
    let docs: Vec<String> = listed.iter().filter(|d| data().join("docs").join(d).exists()).cloned().collect();
    let missing: Vec<&String> = listed.iter().filter(|d| !docs.contains(d)).collect();
    println!(
        "documents: {} scanned, {} listed in the manifest but absent from the corpus: {missing:?}",
        docs.len(),
        listed.len()
    );
    assert!(docs.len() >= 35, "expected the sample documents in tests/data, found {}", docs.len());
    let (mut pos, mut found, mut decoys, mut flagged, mut contextual_flagged) = (0, 0, 0, 0, 0);
    let mut misses = Vec::new();
    let mut false_hits = Vec::new();
    let mut per_type: HashMap<String, (usize, usize)> = HashMap::new();
    for doc in &docs {
        let bytes = std::fs::read(data().join("docs").join(doc)).expect("sample doc");
        let got = findings(&rules, &bytes);
        for l in labels(doc) {
            let span = (l.start, l.end);
            if l.pos {
                pos += 1;
                let want = rule_for(&l.ty);
                let e = per_type.entry(l.ty.clone()).or_default();
                e.0 += 1;
                if got.iter().any(|(r, s, e)| r == want && overlaps((*s, *e), span)) {
                    found += 1;
                    e.1 += 1;
                } else {
                    misses.push(format!(
                        "{doc} #{} {} {:?}",
                        l.id,
                        l.ty,
                        String::from_utf8_lossy(&bytes[l.start..l.end])
                    ));
                }
            } else {
                decoys += 1;
                if let Some((r, _, _)) = got.iter().find(|(_, s, e)| overlaps((*s, *e), span)) {
                    if l.contextual {
                        contextual_flagged += 1;
                    } else {
                        flagged += 1;
                        false_hits.push(format!("{doc} #{} {} flagged by {r}", l.id, l.ty));
                    }
                }
            }
        }
    }
    let mut types: Vec<_> = per_type.into_iter().collect();
    types.sort();
    for (t, (n, f)) in &types {
        println!("recall {t:16} {f}/{n}");
    }
    println!("recall: {found}/{pos} positives; decoys flagged: {flagged}/{decoys} (+{contextual_flagged} contextual)");
    assert!(pos > 700, "too few positives ran: {pos}");
    assert!(misses.is_empty(), "missed positives:\n{}", misses.join("\n"));
    assert!(false_hits.is_empty(), "decoys flagged:\n{}", false_hits.join("\n"));
}

/// The straddling values of chunks.jsonl, fed in 4096-byte chunks: streaming finds exactly what
/// whole-buffer scanning finds and writes the same output.
#[test]
fn streaming_in_4k_chunks_equals_whole_buffer_on_samples() {
    let rules = default_rules().expect("default rules compile");
    let tr = Transformer::new(HashKey::new(b"test-key-0123456789"));
    let mut docs_run = 0;
    for line in std::fs::read_to_string(data().join("chunks.jsonl")).unwrap_or_default().lines() {
        let v: Value = serde_json::from_str(line).expect("chunks.jsonl line");
        let doc = v["doc"].as_str().unwrap_or_default();
        let size = v["chunk_size"].as_u64().unwrap_or(4096) as usize;
        let Ok(bytes) = std::fs::read(data().join("docs").join(doc)) else {
            println!("{doc}: listed in chunks.jsonl but absent from the corpus");
            continue;
        };
        let mut whole_out = Vec::new();
        let mut whole = Vec::new();
        let mut d1 = |f: &StreamFinding, _: &[u8]| {
            whole.push((f.rule, f.start, f.end));
            rules.rules()[f.rule].action.max(Action::Mask).min(Action::Hash)
        };
        dlpgate::engine::stream::scan_whole(&rules, &tr, &bytes, &mut whole_out, &mut d1);
        let mut sc = StreamScanner::new();
        let mut out = Vec::new();
        let mut streamed = Vec::new();
        let mut d2 = |f: &StreamFinding, _: &[u8]| {
            streamed.push((f.rule, f.start, f.end));
            rules.rules()[f.rule].action.max(Action::Mask).min(Action::Hash)
        };
        for chunk in bytes.chunks(size) {
            sc.push(&rules, &tr, chunk, &mut out, &mut d2);
        }
        sc.finish(&rules, &tr, &mut out, &mut d2);
        assert_eq!(streamed, whole, "{doc}: findings differ");
        assert!(out == whole_out, "{doc}: output differs");
        // every straddling label is among the findings
        let ls = labels(doc);
        for id in v["label_ids"].as_array().into_iter().flatten() {
            let l = ls.iter().find(|l| Some(l.id) == id.as_u64()).expect("label id");
            if l.pos {
                assert!(
                    streamed.iter().any(|(_, s, e)| (*s as usize) < l.end && l.start < (*e as usize)),
                    "{doc}: straddling label #{} missed",
                    l.id
                );
            }
        }
        docs_run += 1;
    }
    assert!(docs_run > 0, "chunks.jsonl ran nothing");
}
