//! One literal pass for the keyword and regex rules together.
//!
//! Each of the two detectors would search the whole text for its own literals (Aho-Corasick's
//! Teddy for keywords, the meta regex's prefilter for regexes): two passes that, on typical text,
//! find nothing. When every regex has a finite set of prefix literals (every match starts with one
//! of them, as `AKIA…`, `-----BEGIN …`), one automaton over the keywords and those prefixes finds
//! every position where either detector could match, and each detector runs anchored at those
//! positions only. The hits are exactly those of the separate passes (leftmost-longest keywords,
//! leftmost-first regexes, both non-overlapping); `tests::shared_pass_equals_separate_passes`
//! checks that. A regex without such literals (`\d{6}…`), or whose matches have no bound, keeps
//! the separate passes.

use aho_corasick::{AhoCorasick, AhoCorasickBuilder, Input, MatchKind};
use regex_syntax::hir::literal::{ExtractKind, Extractor};

use super::Hit;
use super::keywords::KeywordMatcher;
use super::patterns::PatternMatcher;

/// Prefix literals shorter than this would make the shared pass stop too often.
const MIN_PREFIX: usize = 3;
/// Longest match a regex may have for the shared pass (the streaming window's size).
const MAX_MATCH: usize = super::stream::WINDOW;
/// More literals than this: the shared automaton would be slower than the two passes.
const MAX_LITERALS: usize = 256;

/// Regex prefix literals are cut to this many bytes (and deduplicated): the automaton only has to
/// find where a match may start; the anchored regex decides.
const PREFIX_BYTES: usize = 8;

#[derive(Debug)]
pub(crate) struct SharedPass {
    ac: AhoCorasick,
    /// Patterns below this index are regex prefixes; from it on, keywords, longest first.
    regex_literals: usize,
    /// Rule of each keyword pattern (index minus `regex_literals`).
    keyword_rule: Vec<u32>,
}

impl SharedPass {
    /// `keywords`: (rule, keyword) for every keyword, in the keyword matcher's order (matched ASCII
    /// case-insensitively when `ci`); `regexes`: every regex as the pattern set compiles it.
    /// `None` when the shared pass cannot stand in for both passes.
    pub fn build(keywords: &[(u32, &str)], regexes: &[String], ci: bool) -> Option<Self> {
        if keywords.is_empty() || regexes.is_empty() {
            return None; // one pass anyway
        }
        // Leftmost-first reports, among the literals that start at a position, the first listed:
        // - regex prefixes first, so a keyword reported at a position means no regex starts there;
        // - then keywords, longest first (stable, so ties keep the matcher's order): a reported
        //   keyword is the one the leftmost-longest keyword matcher would choose there.
        let mut lits: Vec<Vec<u8>> = Vec::new();
        for p in regexes {
            let hir = regex_syntax::Parser::new().parse(p).ok()?;
            // an anchored search at every candidate must stay cheap: bounded matches only (an
            // unbounded one could rescan a long run at each candidate inside it)
            if hir.properties().maximum_len().is_none_or(|m| m > MAX_MATCH) {
                return None;
            }
            let mut seq = Extractor::new().kind(ExtractKind::Prefix).extract(&hir);
            seq.keep_first_bytes(PREFIX_BYTES);
            seq.dedup();
            // `None`: infinite (a match may start with anything)
            for l in seq.literals()? {
                if l.as_bytes().len() < MIN_PREFIX {
                    return None;
                }
                lits.push(l.as_bytes().to_vec());
            }
        }
        let regex_literals = lits.len();
        let mut kws = keywords.to_vec();
        kws.sort_by_key(|(_, k)| std::cmp::Reverse(k.len()));
        lits.extend(kws.iter().map(|(_, k)| k.as_bytes().to_vec()));
        if lits.len() > MAX_LITERALS {
            return None;
        }
        let ac = AhoCorasickBuilder::new().match_kind(MatchKind::LeftmostFirst).ascii_case_insensitive(ci).build(&lits);
        Some(Self { ac: ac.ok()?, regex_literals, keyword_rule: kws.iter().map(|(r, _)| *r).collect() })
    }

    /// Keyword and regex hits of `t`, as [`KeywordMatcher::scan`] and [`PatternMatcher::scan`]
    /// would give them.
    pub fn scan(&self, k: &KeywordMatcher, re: &PatternMatcher, t: &[u8], out: &mut Vec<Hit>) {
        // each detector's matches do not overlap: the next may start where the last ended
        let (mut kw_next, mut re_next) = (0, 0);
        let mut pos = 0;
        while pos < t.len() {
            // the leftmost position at or after `pos` where some literal starts
            let Some(m) = self.ac.find(Input::new(t).span(pos..t.len())) else { break };
            let c = m.start();
            let regex_prefix = m.pattern().as_usize() < self.regex_literals;
            if c >= kw_next {
                let kw = match m.pattern().as_usize().checked_sub(self.regex_literals) {
                    Some(i) => Some(Hit { rule: self.keyword_rule[i], start: c, end: m.end() }),
                    // a regex prefix starts here; a keyword may as well
                    None => k.at(t, c),
                };
                if let Some(hit) = kw {
                    kw_next = hit.end;
                    if !k.excluded(t, &hit) {
                        out.push(hit);
                    }
                }
            }
            if c >= re_next && regex_prefix {
                if let Some((end, hit)) = re.at(t, c) {
                    re_next = end;
                    out.extend(hit);
                }
            }
            pos = c + 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::RuleSet;
    use std::path::PathBuf;

    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> usize {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            (self.0 >> 11) as usize
        }
        fn pick<'a>(&mut self, xs: &[&'a str]) -> &'a str {
            xs[self.next() % xs.len()]
        }
    }

    /// Keyword rules next to regex rules, some case-insensitive, with literals that overlap (a
    /// literal that starts inside another: `密gh` and `ghp_`, `xoxb-` and `-----BEGIN`), and two
    /// rules with the same keyword (the first rule wins, as in the keyword matcher).
    const EXTRA: &str = r#"
rules:
  - id: t.kw
    name: {en: kw}
    category: t
    level: general
    detector: {keywords: [password, pass, 口令, 口令表, 密gh], case_insensitive: true, not_followed_by: [word]}
    action: mask
    examples: {match: [PASSWORD]}
  - id: t.kw2
    name: {en: kw2}
    category: t
    level: general
    detector: {keywords: [PASS, 口令表, secret], case_insensitive: true}
    action: mask
    examples: {match: [secret]}
  - id: t.re
    name: {en: re}
    category: t
    level: general
    detector: {regex: '(?-u:\b(?:passwd|token)=[A-Za-z0-9]{6,12}\b)', case_insensitive: true}
    action: mask
    examples: {match: ["TOKEN=abc123"]}
  - id: t.re2
    name: {en: re2}
    category: t
    level: general
    detector: {regex: 'pass(?:port|code):[A-Z][0-9]{4}'}
    action: mask
    examples: {match: ["passcode:E1234"]}
"#;

    fn sets() -> Vec<RuleSet> {
        let mut sources: Vec<(PathBuf, String)> =
            crate::DEFAULT_RULE_FILES.iter().map(|(p, t)| (PathBuf::from(p), (*t).to_string())).collect();
        let default = RuleSet::from_sources(&sources).expect("default rules");
        sources.push((PathBuf::from("extra.yaml"), EXTRA.to_string()));
        let extra = RuleSet::from_sources(&sources).expect("extra rules");
        vec![default, extra]
    }

    #[test]
    fn the_default_rules_take_the_shared_pass() {
        for set in sets() {
            assert!(set.shared.is_some());
        }
        // a regex that may start with anything keeps the separate passes
        let kw = [(0, "机密")];
        assert!(SharedPass::build(&kw, &[r"\d{6}".to_string()], false).is_none());
        assert!(SharedPass::build(&kw, &["ab+".to_string()], false).is_none(), "prefix shorter than 3");
        assert!(SharedPass::build(&kw, &["abc+".to_string()], false).is_none(), "unbounded");
        assert!(SharedPass::build(&kw, &["abc[a-z]{0,40}".to_string()], false).is_some());
        assert!(SharedPass::build(&kw, &["abc[a-z]{0,400}".to_string()], false).is_none(), "longer than the window");
    }

    #[test]
    fn shared_pass_equals_separate_passes() {
        let frags = [
            "绝密",
            "机密",
            "秘密",
            "机密性",
            "国家秘密",
            "商业秘密",
            "内部资料",
            "内部",
            "不得外传",
            "保守",
            "★",
            "密",
            "AKIA",
            "ABCDEFGHIJKLMNOP",
            "AKIAABCDEFGHIJKLMNOP",
            "LTAI",
            "0123456789ab",
            "ghp_",
            "0123456789abcdefghijklmnopqrstuvwxyz",
            "xoxb-",
            "12345-abcde",
            "-----BEGIN ",
            "RSA ",
            "PRIVATE KEY-----",
            "-----",
            "xoxb-----BEGIN RSA PRIVATE KEY-----",
            "密ghp_0123456789abcdefghijklmnopqrstuvwxyz",
            "password",
            "PassWord",
            "pass",
            "word",
            "口令",
            "口令表",
            "passwd=",
            "TOKEN=",
            "token=",
            "abc123",
            "passport:",
            "passcode:",
            "E",
            "1234",
            "secret",
            " ",
            "_",
            "-",
            "=",
            ":",
            "\n",
            "a",
            "Z",
            "9",
            "数据",
            "，",
        ];
        let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
        let sets = sets();
        let mut compared = 0;
        let mut nonempty = 0;
        for _ in 0..6000 {
            let n = 1 + rng.next() % 24;
            let doc: String = (0..n).map(|_| rng.pick(&frags)).collect();
            let t = doc.as_bytes();
            for set in &sets {
                let (Some(sp), Some(k), Some(p)) = (&set.shared, &set.keywords, &set.patterns) else {
                    panic!("shared pass expected");
                };
                let mut a = Vec::new();
                sp.scan(k, p, t, &mut a);
                let mut b = Vec::new();
                k.scan(t, &mut b);
                p.scan(t, &mut b);
                let key = |h: &Hit| (h.start, h.end, h.rule);
                a.sort_by_key(key);
                b.sort_by_key(key);
                assert_eq!(a, b, "{doc:?}");
                compared += 1;
                nonempty += usize::from(!a.is_empty());
            }
        }
        assert!(nonempty > compared / 3, "the documents must exercise matches: {nonempty} of {compared}");
    }
}
