//! Scan, mask and stream any bytes: no panic, and streaming in two pieces equals whole scanning.
#![no_main]

use dlpgate_engine::stream::{StreamFinding, scan_whole};
use dlpgate_engine::{Action, HashKey, RuleSet, StreamScanner, Transformer, default_rules};
use libfuzzer_sys::fuzz_target;
use std::sync::OnceLock;

fn rules() -> &'static RuleSet {
    static R: OnceLock<RuleSet> = OnceLock::new();
    R.get_or_init(|| default_rules().expect("default rules"))
}

fuzz_target!(|data: &[u8]| {
    if data.len() > 1 << 16 {
        return;
    }
    let rules = rules();
    let tr = Transformer::new(HashKey::new(b"fuzz-key-0123456789"));
    let mut decide = |_: &StreamFinding, _: &[u8]| Action::Mask;
    let mut whole = Vec::new();
    let a = scan_whole(rules, &tr, data, &mut whole, &mut decide);
    let cut = data.first().map_or(0, |b| *b as usize * data.len() / 256);
    let mut sc = StreamScanner::new();
    let mut out = Vec::new();
    let mut n = 0;
    let mut count = |_: &StreamFinding, _: &[u8]| {
        n += 1;
        Action::Mask
    };
    sc.push(rules, &tr, &data[..cut], &mut out, &mut count);
    sc.push(rules, &tr, &data[cut..], &mut out, &mut count);
    sc.finish(rules, &tr, &mut out, &mut count);
    assert_eq!(n, a.len());
    assert_eq!(out, whole);
});
