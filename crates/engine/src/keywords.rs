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

    /// Keywords written with spaces between their ideographs (`绝 密`, `内 部资料`, a full-width
    /// space normalized to one): at each join of two ideographs by one or two spaces (`values`, the
    /// candidates the built-in pass noted: `p << 1` for an ideograph after a delimiter), the stretch
    /// of ideographs and such spaces around it is read without its spaces. Only hits that span a
    /// space are added: the others are the ordinary pass's.
    pub fn scan_spaced(&self, t: &[u8], values: &[usize], out: &mut Vec<Hit>) {
        const MAX_CHARS: usize = 8;
        let ideo = |i: usize| {
            i + 3 <= t.len() && (0xE4..=0xE9).contains(&t[i]) && t[i + 1] & 0xC0 == 0x80 && t[i + 2] & 0xC0 == 0x80
        };
        // the join at `p` (an ideograph after spaces): where the spaces before it begin
        let join = |p: usize| -> Option<usize> {
            let q =
                (1..=2).map(|n| p.checked_sub(n)).take_while(|q| q.is_some_and(|q| t[q] == b' ')).flatten().last()?;
            (q >= 3 && ideo(q - 3)).then_some(q)
        };
        // the end of the last hit: a join inside it is looked at no more
        let mut done = 0;
        for &v in values {
            let p = v >> 1;
            if v & 1 == 1 || p < done {
                continue;
            }
            let Some(q) = join(p) else { continue };
            // back over ideographs and joins, then forward
            let mut s = q - 3;
            let mut n = 1;
            while n < MAX_CHARS && s >= 3 {
                if ideo(s - 3) {
                    s -= 3;
                } else if let Some(j) = join(s).filter(|&j| j >= 3) {
                    s = j - 3;
                } else {
                    break;
                }
                n += 1;
            }
            let mut e = p;
            let mut m = 0;
            while m < MAX_CHARS && e < t.len() {
                if ideo(e) {
                    e += 3;
                } else if t[e] == b' ' && (ideo(e + 1) || (t.get(e + 1) == Some(&b' ') && ideo(e + 2))) {
                    e += if t[e + 1] == b' ' { 2 } else { 1 };
                    continue;
                } else {
                    break;
                }
                m += 1;
            }
            // the stretch without its spaces, and where each of its bytes came from
            let mut buf = [0u8; 3 * 2 * MAX_CHARS + 3];
            let mut from = [0usize; 3 * 2 * MAX_CHARS + 3];
            let mut len = 0;
            for i in (s..e).filter(|&i| t[i] != b' ') {
                if len == buf.len() {
                    break;
                }
                buf[len] = t[i];
                from[len] = i;
                len += 1;
            }
            for m in self.ac.find_iter(&buf[..len]) {
                let (a, b) = (from[m.start()], from[m.end() - 1] + 1);
                let rule = self.rule_of[m.pattern().as_usize()];
                let hit = Hit { rule, start: a, end: b };
                // the exclusions read the stretch without its spaces too (`国 家 秘 密`)
                let plain = Hit { rule, start: m.start(), end: m.end() };
                if b - a > m.end() - m.start()
                    && a >= done
                    && !self.excluded(t, &hit)
                    && !self.excluded(&buf[..len], &plain)
                {
                    out.push(hit);
                    done = b;
                }
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
        // a space between the keyword and the phrase does not make it another (`国家 秘密`)
        let (before, after) = (t[..h.start].trim_ascii_end(), t[h.end..].trim_ascii_start());
        ex.not_followed_by.iter().any(|s| after.starts_with(s.as_bytes()))
            || ex.not_preceded_by.iter().any(|s| before.ends_with(s.as_bytes()))
    }
}
