//! Keyword detection: every keyword of every keyword rule in one Aho-Corasick automaton
//! (leftmost-longest, so `商业秘密` wins over `秘密`), with per-rule exclusions for the running-text
//! phrases that contain a keyword but are not one (`机密性`, `国家秘密`).

use aho_corasick::{AhoCorasick, AhoCorasickBuilder, Anchored, Input, MatchKind, StartKind};

use super::Hit;

/// Exclusion context for one keyword rule.
#[derive(Debug, Clone, Default)]
pub(crate) struct Exclusions {
    pub not_followed_by: Vec<String>,
    pub not_preceded_by: Vec<String>,
}

#[derive(Debug)]
pub(crate) struct KeywordMatcher {
    ac: AhoCorasick,
    /// pattern index → rule index
    rule_of: Vec<u32>,
    /// rule index → exclusions (sparse by rule)
    excl: Vec<(u32, Exclusions)>,
}

impl KeywordMatcher {
    /// `entries`: (rule index, keywords, exclusions, ASCII case-insensitive).
    pub fn build(entries: &[(u32, Vec<String>, Exclusions)], case_insensitive: bool) -> Result<Option<Self>, String> {
        let mut pats: Vec<&str> = Vec::new();
        let mut rule_of = Vec::new();
        let mut excl = Vec::new();
        for (rule, kws, ex) in entries {
            for k in kws {
                pats.push(k);
                rule_of.push(*rule);
            }
            if !ex.not_followed_by.is_empty() || !ex.not_preceded_by.is_empty() {
                excl.push((*rule, ex.clone()));
            }
        }
        if pats.is_empty() {
            return Ok(None);
        }
        let ac = AhoCorasickBuilder::new()
            .match_kind(MatchKind::LeftmostLongest)
            .ascii_case_insensitive(case_insensitive)
            .start_kind(StartKind::Both) // anchored searches for the shared literal pass
            .build(&pats)
            .map_err(|e| format!("keyword automaton: {e}"))?;
        Ok(Some(Self { ac, rule_of, excl }))
    }

    pub fn scan(&self, t: &[u8], out: &mut Vec<Hit>) {
        for m in self.ac.find_iter(t) {
            let hit = Hit { rule: self.rule_of[m.pattern().as_usize()], start: m.start(), end: m.end() };
            if !self.excluded(t, &hit) {
                out.push(hit);
            }
        }
    }

    /// The longest keyword starting at `p`.
    pub fn at(&self, t: &[u8], p: usize) -> Option<Hit> {
        let m = self.ac.find(Input::new(t).span(p..t.len()).anchored(Anchored::Yes))?;
        Some(Hit { rule: self.rule_of[m.pattern().as_usize()], start: m.start(), end: m.end() })
    }

    /// The rule's exclusions: the running-text phrases around the keyword that make it none.
    pub fn excluded(&self, t: &[u8], h: &Hit) -> bool {
        let Some((_, ex)) = self.excl.iter().find(|(r, _)| *r == h.rule) else { return false };
        let (before, after) = (&t[..h.start], &t[h.end..]);
        ex.not_followed_by.iter().any(|s| after.starts_with(s.as_bytes()))
            || ex.not_preceded_by.iter().any(|s| before.ends_with(s.as_bytes()))
    }
}
