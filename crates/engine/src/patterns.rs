//! Regex detection: every regex rule compiled into one multi-pattern `regex-automata` meta regex, so
//! the text is searched once (linear time, size-limited), whatever the number of rules.

use regex_automata::meta::Regex;
use regex_automata::util::syntax;
use regex_automata::{Anchored, Input};

use super::Hit;
use super::validate::Validator;

/// Compiled size limit per rule set (bytes of NFA). Rules past it are refused at load.
pub const SIZE_LIMIT: usize = 8 << 20;

#[derive(Debug)]
pub(crate) struct PatternMatcher {
    re: Regex,
    rule_of: Vec<u32>,
    validator: Vec<Option<Validator>>,
    sources: Vec<String>,
}

/// Check one pattern alone, so a bad rule is reported with its own id.
pub(crate) fn check_one(pattern: &str, case_insensitive: bool) -> Result<(), String> {
    Regex::builder()
        .syntax(syntax::Config::new().case_insensitive(case_insensitive))
        .configure(Regex::config().nfa_size_limit(Some(SIZE_LIMIT / 8)))
        .build(pattern)
        .map(|_| ())
        .map_err(|e| {
            let msg = e.to_string();
            if msg.contains("exceeds size limit") || msg.contains("size limit") {
                format!("regex exceeds size limit of {} bytes", SIZE_LIMIT / 8)
            } else {
                format!("regex does not compile: {}", msg.lines().collect::<Vec<_>>().join(" "))
            }
        })
}

impl PatternMatcher {
    /// `entries`: (rule index, pattern, validator, case-insensitive).
    pub fn build(entries: &[(u32, String, Option<Validator>, bool)]) -> Result<Option<Self>, String> {
        if entries.is_empty() {
            return Ok(None);
        }
        // case-insensitivity is per pattern: fold it into the pattern with an inline flag
        let pats: Vec<String> =
            entries.iter().map(|(_, p, _, ci)| if *ci { format!("(?i:{p})") } else { p.clone() }).collect();
        let re = Regex::builder()
            .configure(Regex::config().nfa_size_limit(Some(SIZE_LIMIT)))
            .build_many(&pats)
            .map_err(|e| format!("regex set: {e}"))?;
        Ok(Some(Self {
            re,
            sources: pats,
            rule_of: entries.iter().map(|e| e.0).collect(),
            validator: entries.iter().map(|e| e.2).collect(),
        }))
    }

    pub fn scan(&self, t: &[u8], out: &mut Vec<Hit>) {
        for m in self.re.find_iter(t) {
            out.extend(self.hit(t, &m));
        }
    }

    /// The match starting at `p` (as the unanchored search would choose it, were it the leftmost):
    /// its end, and its hit unless a validator refuses it.
    pub fn at(&self, t: &[u8], p: usize) -> Option<(usize, Option<Hit>)> {
        let m = self.re.search(&Input::new(t).span(p..t.len()).anchored(Anchored::Yes))?;
        Some((m.end(), self.hit(t, &m)))
    }

    fn hit(&self, t: &[u8], m: &regex_automata::Match) -> Option<Hit> {
        let p = m.pattern().as_usize();
        if m.is_empty() || self.validator[p].is_some_and(|v| !v.check(&t[m.start()..m.end()])) {
            return None;
        }
        Some(Hit { rule: self.rule_of[p], start: m.start(), end: m.end() })
    }

    /// Every pattern as compiled (case-insensitive ones wrapped in `(?i:…)`).
    pub fn sources(&self) -> &[String] {
        &self.sources
    }
}
