//! Built-in validated detectors: one pass over the normalized text proposes candidates (digit
//! chains, alphanumeric tokens, dotted quads, `@`), and the validators in [`super::validate`] decide.
//!
//! This is the prefilter-plus-validator design. The pass classifies 64 bytes at a time with SIMD
//! compares (AVX2 where the CPU has it, chosen at run time; SSE2/NEON otherwise) and decides with bit operations which digit runs are worth a look (see
//! [`super::prefilter`]); the rest (ids, amounts, times: most numbers in API JSON) cost no branch.
//! A run worth a look costs a few comparisons unless it has the length of an identifier.
//!
//! Boundaries: a candidate must not touch an ASCII letter or digit, `*` or `_` on either side (so a
//! digit run inside a longer run, a hex string or an already-masked `410105********123X` never
//! matches), and must not be part of a dotted number (`6.1.7601.22753`, `3.1415926535`).

use super::Hit;
use super::prefilter::{Classify, Marks, Portable, alnum_end, digits_end, for_each_hot_run};
use super::validate;

/// The built-in detectors a rule can name with `detector: {builtin: NAME}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Builtin {
    CnIdCard,
    CnIdCard15,
    CnMobile,
    CnLandline,
    CnPassport,
    CnUscc,
    CnPlate,
    BankCard,
    Email,
    Ipv4,
    CnHkMacauPermit,
    /// Found by [`super::fields`]: in a name field or after a name label.
    CnName,
    /// Found by [`super::fields`]: in an address field, after a label, or with a house number.
    CnAddress,
}

impl Builtin {
    pub const ALL: [Builtin; 13] = [
        Self::CnIdCard,
        Self::CnIdCard15,
        Self::CnMobile,
        Self::CnLandline,
        Self::CnPassport,
        Self::CnUscc,
        Self::CnPlate,
        Self::BankCard,
        Self::Email,
        Self::Ipv4,
        Self::CnHkMacauPermit,
        Self::CnName,
        Self::CnAddress,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Self::CnIdCard => "cn_id_card",
            Self::CnIdCard15 => "cn_id_card_15",
            Self::CnMobile => "cn_mobile",
            Self::CnLandline => "cn_landline",
            Self::CnPassport => "cn_passport",
            Self::CnUscc => "cn_uscc",
            Self::CnPlate => "cn_plate",
            Self::BankCard => "bank_card",
            Self::Email => "email",
            Self::Ipv4 => "ipv4",
            Self::CnHkMacauPermit => "cn_hk_macau_permit",
            Self::CnName => "cn_name",
            Self::CnAddress => "cn_address",
        }
    }

    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|b| b.name() == name)
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// Which rule (if any) each built-in detector reports as.
#[derive(Debug, Clone, Default)]
pub(crate) struct Builtins {
    rule_of: [Option<u32>; Builtin::ALL.len()],
}

const MAX_GROUPS: usize = 12;

impl Builtins {
    pub fn set(&mut self, b: Builtin, rule: u32) -> Option<u32> {
        self.rule_of[b.index()].replace(rule)
    }

    /// No detector of this pass is on (names and addresses are found by [`super::fields`]).
    pub fn is_empty(&self) -> bool {
        self.rule_of[..Builtin::CnName.index()].iter().all(Option::is_none)
    }

    #[inline]
    pub(crate) fn rule(&self, b: Builtin) -> Option<u32> {
        self.rule_of[b.index()]
    }

    /// Run every enabled built-in detector over `t`. `marks` is scratch space (the `@` positions,
    /// and the value candidates of [`super::fields`] when it asks), kept by the caller so that a
    /// scan does not allocate.
    pub fn scan(&self, t: &[u8], marks: &mut Marks, out: &mut Vec<Hit>) {
        if self.is_empty() {
            marks.values_done = false;
            return;
        }
        // the same pass, with 32-byte compares where the CPU has AVX2 (decided at run time)
        // the value candidates only where asked: a rule set without field rules pays nothing
        #[cfg(target_arch = "x86_64")]
        if let Some(v3) = pulp::x86::V3::try_new() {
            return match marks.want_values {
                true => v3.vectorize(|| self.scan_with::<true>(v3, t, marks, out)),
                false => v3.vectorize(|| self.scan_with::<false>(v3, t, marks, out)),
            };
        }
        match marks.want_values {
            true => self.scan_with::<true>(Portable, t, marks, out),
            false => self.scan_with::<false>(Portable, t, marks, out),
        }
    }

    #[inline(always)]
    fn scan_with<const V: bool>(&self, c: impl Classify, t: &[u8], marks: &mut Marks, out: &mut Vec<Hit>) {
        let base = out.len();
        let mut resume = 0;
        for_each_hot_run::<V>(c, t, marks, |s, run_end, dead| {
            if s >= resume && !dead {
                resume = self.at_digit(t, s, run_end, out).max(s + 1);
            }
        });
        if let Some(rule) = self.rule(Builtin::Email) {
            let digit_hits = out.len();
            scan_emails(t, &marks.at, rule, base..digit_hits, out);
        }
    }

    /// Handle the digit run `s..run_end`; returns where scanning resumes.
    fn at_digit(&self, t: &[u8], s: usize, run_end: usize, out: &mut Vec<Hit>) -> usize {
        let prev = if s > 0 { t[s - 1] } else { b' ' };
        // fast exit: a short run with nothing that could extend it
        let next = t.get(run_end).copied().unwrap_or(b'"');
        if run_end - s < 5
            && !matches!(next, b' ' | b'-' | b')' | b'.')
            && !next.is_ascii_alphabetic()
            && !prev.is_ascii_alphabetic()
        {
            return run_end;
        }
        // part of a dotted number such as a version or a decimal: skip the run
        if prev == b'.' && s >= 2 && t[s - 2].is_ascii_digit() {
            return run_end;
        }
        // a mobile written with dots, 3.4.4 only: 136.7251.9917
        if run_end - s == 3 && t.get(run_end) == Some(&b'.') && !is_word(prev) {
            if let Some(end) = self.dotted_mobile(t, s, out) {
                return end;
            }
        }
        // dotted quad, not glued to a word (`v1.2.3.4`, `abc192.168.1.10`) and not a product's
        // version (`Chrome/120.0.0.0`, `Version/17.1.2.3`: a name, a slash, the numbers)
        if run_end < t.len() && t[run_end] == b'.' && run_end - s <= 3 && !is_word(prev) && !after_product(t, s) {
            if let Some(rule) = self.rule(Builtin::Ipv4) {
                if let Some(end) = ipv4_at(t, s) {
                    out.push(Hit { rule, start: s, end });
                    return end;
                }
            }
        }
        // letters, '*' or '_' adjacent: an alphanumeric token (USCC, passport, plate) or nothing
        if is_word(prev) || (run_end < t.len() && is_word(t[run_end]) && !is_x_suffix(t, run_end)) {
            return self.token(t, s, run_end, out);
        }
        // fast path: most digit runs (ids, amounts, dates, times) are too short to be anything
        let (digits, end) = Chain::measure(t, s, run_end);
        let glued = glued_to_next(t, end);
        if digits < 10 {
            if end - s == digits {
                if (5..=6).contains(&digits) {
                    self.plate_after_dot(t, s, end, out);
                }
                return end;
            }
            // the last group may start a token or a dotted number of its own (`1 192.168.1.10`)
            return if glued { last_group_start(t, s, end) } else { end };
        }
        if end == run_end || (end == run_end + 1 && digits == run_end - s) {
            // one group (the common case): classify the run directly
            if glued {
                return end;
            }
            let x = end == run_end + 1;
            if (10..=19).contains(&digits) {
                if let Some((rule, skip)) = self.classify(&t[s..run_end], x) {
                    out.push(Hit { rule, start: s + skip, end });
                }
            }
            return end;
        }
        let mut chain = Chain::build(t, s, run_end);
        let mut resume = chain.end;
        if glued {
            // the last group starts a token or a dotted number of its own (`13800138000 192.168.1.10`):
            // decide the groups before it, then resume at it
            resume = chain.pop().unwrap_or(chain.end);
        }
        if chain.digits >= 10 {
            let last_taken = self.chain_candidates(t, &chain, out);
            if chain.more {
                // more groups follow than one chain holds: go on after the last value found, or one
                // group further, so that a value across the limit is still seen whole
                let g = last_taken.map_or(1, |i| i + 1);
                resume = chain.g.get(g).map_or(chain.end, |g| g.0).min(chain.end);
            }
        }
        resume
    }

    fn dotted_mobile(&self, t: &[u8], s: usize, out: &mut Vec<Hit>) -> Option<usize> {
        let rule = self.rule(Builtin::CnMobile)?;
        let a = digits_end(t, s + 4);
        if a != s + 8 || t.get(a) != Some(&b'.') {
            return None;
        }
        let end = digits_end(t, a + 1);
        let after = t.get(end).copied().unwrap_or(b' ');
        if end != a + 5 || is_word(after) || (after == b'.' && t.get(end + 1).is_some_and(u8::is_ascii_digit)) {
            return None;
        }
        let mut d = [0u8; 11];
        d[..3].copy_from_slice(&t[s..s + 3]);
        d[3..7].copy_from_slice(&t[s + 4..s + 8]);
        d[7..].copy_from_slice(&t[a + 1..end]);
        if !validate::cn_mobile(&d) {
            return None;
        }
        out.push(Hit { rule, start: s, end });
        Some(end)
    }

    /// Try the whole chain, then shorter stretches of whole groups, longest first. Returns the last
    /// group that is part of a value.
    fn chain_candidates(&self, t: &[u8], c: &Chain, out: &mut Vec<Hit>) -> Option<usize> {
        let k = c.groups;
        let mut taken: [bool; MAX_GROUPS] = [false; MAX_GROUPS];
        // digits before each group: a stretch's length without looking at its bytes
        let mut before = [0usize; MAX_GROUPS + 1];
        for (g, &(a, b)) in c.g[..k].iter().enumerate() {
            before[g + 1] = before[g] + (b - a);
        }
        let mut canon = [0u8; 19];
        for len in (1..=k).rev() {
            for lo in 0..=(k - len) {
                let hi = lo + len - 1;
                let n = before[hi + 1] - before[lo];
                if !(10..=19).contains(&n) || taken[lo..=hi].iter().any(|&x| x) {
                    continue;
                }
                let mut at = 0;
                for &(a, b) in &c.g[lo..=hi] {
                    canon[at..at + (b - a)].copy_from_slice(&t[a..b]);
                    at += b - a;
                }
                let start = c.g[lo].0 - usize::from(lo == 0 && c.paren);
                // an X set apart from the digits is a check character only if it checks
                let with_x = hi == k - 1 && c.x;
                let (found, with_x) = match self.classify(&canon[..n], with_x) {
                    None if with_x && c.x_apart => (self.classify(&canon[..n], false), false),
                    found => (found, with_x),
                };
                let end = if with_x { c.end } else { c.g[hi].1 };
                if let Some((rule, skip)) = found {
                    let start = if skip == 0 { start } else { nth_digit_pos(t, start, skip) };
                    out.push(Hit { rule, start, end });
                    taken[lo..=hi].iter_mut().for_each(|x| *x = true);
                }
            }
        }
        taken[..k].iter().rposition(|&x| x)
    }

    /// Decide what a canonical digit string is. Returns the rule and how many leading digits are a
    /// country-code prefix that is not part of the value.
    fn classify(&self, d: &[u8], x: bool) -> Option<(u32, usize)> {
        let n = d.len();
        let ok = |b: Builtin, f: fn(&[u8]) -> bool, v: &[u8]| self.rule(b).filter(|_| f(v));
        if x {
            if n != 17 {
                return None;
            }
            let mut v = [0u8; 18];
            v[..17].copy_from_slice(d);
            v[17] = b'X';
            // 17 digits and X: an ID number, or the credit code of a government body or public
            // institution (`11…`/`12…`), whose check character can be X too
            return ok(Builtin::CnIdCard, validate::cn_id_card, &v)
                .or_else(|| ok(Builtin::CnUscc, validate::cn_uscc, &v))
                .map(|r| (r, 0));
        }
        let found = match n {
            18 => ok(Builtin::CnIdCard, validate::cn_id_card, d)
                .or_else(|| ok(Builtin::CnUscc, validate::cn_uscc, d))
                .or_else(|| ok(Builtin::BankCard, validate::bank_card, d)),
            15 => ok(Builtin::CnIdCard15, validate::cn_id_card_15, d)
                .or_else(|| ok(Builtin::BankCard, validate::bank_card, d))
                .or_else(|| {
                    if d.starts_with(b"0086") { ok(Builtin::CnMobile, validate::cn_mobile, &d[4..]) } else { None }
                }),
            11 => ok(Builtin::CnMobile, validate::cn_mobile, d)
                .or_else(|| ok(Builtin::CnLandline, validate::cn_landline, d)),
            10 | 12 => ok(Builtin::CnLandline, validate::cn_landline, d),
            13 if d.starts_with(b"86") => {
                return ok(Builtin::CnMobile, validate::cn_mobile, &d[2..]).map(|r| (r, 2));
            }
            _ => None,
        };
        if let Some(r) = found {
            let prefixed_mobile = n == 15 && d.starts_with(b"0086") && Some(r) == self.rule(Builtin::CnMobile);
            return Some((r, if prefixed_mobile { 4 } else { 0 }));
        }
        if (13..=19).contains(&n) {
            return ok(Builtin::BankCard, validate::bank_card, d).map(|r| (r, 0));
        }
        None
    }

    /// An alphanumeric token around the digit run `s..run_end`: USCC, passport or plate.
    fn token(&self, t: &[u8], s: usize, run_end: usize, out: &mut Vec<Hit>) -> usize {
        let te = alnum_end(t, run_end);
        let mut ts = s;
        while ts > 0 && t[ts - 1].is_ascii_alphanumeric() {
            ts -= 1;
        }
        // only these lengths are anything (plates 5–7, passports and permits 9, USCC 18)
        if !matches!(te - ts, 5..=7 | 9 | 18) {
            return te;
        }
        let before = if ts > 0 { t[ts - 1] } else { b' ' };
        let after = if te < t.len() { t[te] } else { b' ' };
        if matches!(before, b'*' | b'_') || matches!(after, b'*' | b'_') {
            return te;
        }
        let tok = &t[ts..te];
        let len = tok.len();
        if len == 18 {
            if let Some(rule) = self.rule(Builtin::CnUscc) {
                if validate::cn_uscc(tok) {
                    out.push(Hit { rule, start: ts, end: te });
                    return te;
                }
            }
        }
        if len == 9 {
            if let Some(rule) = self.rule(Builtin::CnPassport) {
                if validate::cn_passport(tok) {
                    out.push(Hit { rule, start: ts, end: te });
                    return te;
                }
            }
            if let Some(rule) = self.rule(Builtin::CnHkMacauPermit) {
                if validate::cn_hk_macau_permit(tok) {
                    out.push(Hit { rule, start: ts, end: te });
                    return te;
                }
            }
        }
        if let Some(rule) = self.rule(Builtin::CnPlate) {
            // 豫A12345 / 豫AD12345: province, then the whole token
            if (6..=7).contains(&len) && plate_letter(tok[0]) && plate_serial(&tok[1..]) && ends_with_province(&t[..ts])
            {
                out.push(Hit { rule, start: ts - 3, end: te });
                return te;
            }
            // 豫R·54S39: province, letter, dot, then the token
            if (5..=6).contains(&len) && plate_serial(tok) {
                if let Some(start) = plate_prefix_with_dot(&t[..ts]) {
                    out.push(Hit { rule, start, end: te });
                }
            }
        }
        te
    }

    fn plate_after_dot(&self, t: &[u8], s: usize, end: usize, out: &mut Vec<Hit>) {
        let Some(rule) = self.rule(Builtin::CnPlate) else { return };
        let len = end - s;
        if (5..=6).contains(&len) && !t.get(end).is_some_and(|b| is_word(*b)) {
            if let Some(start) = plate_prefix_with_dot(&t[..s]) {
                out.push(Hit { rule, start, end });
            }
        }
    }
}

/// Digits joined by single spaces or hyphens: `110105 1949 1231 002X`, `138-0013-8000`,
/// `(0371)6512 3456`.
#[derive(Debug)]
struct Chain {
    g: [(usize, usize); MAX_GROUPS],
    groups: usize,
    digits: usize,
    /// a trailing `X`/`x` check character follows the last group
    x: bool,
    /// ... after a space or hyphen (`002 X`): it may as well be a word of its own
    x_apart: bool,
    /// the first group is an area code in parentheses: `(0371)`
    paren: bool,
    /// the chain holds `MAX_GROUPS` groups and more follow
    more: bool,
    end: usize,
}

impl Chain {
    /// Digits and end of the chain starting at `s` (its first group ends at `first_end`), without
    /// recording its groups.
    #[inline]
    fn measure(t: &[u8], s: usize, first_end: usize) -> (usize, usize) {
        let mut i = s;
        let mut digits = 0;
        let mut groups = 0;
        loop {
            let e = if i == s { first_end } else { digits_end(t, i) };
            digits += e - i;
            groups += 1;
            if groups == MAX_GROUPS || e + 1 >= t.len() {
                return (digits, x_end(t, e));
            }
            match next_group(t, s, e, groups) {
                Some(n) => i = n,
                None => return (digits, x_end(t, e)),
            }
        }
    }

    /// The chain starting at `s`, whose first group ends at `first_end`.
    fn build(t: &[u8], s: usize, first_end: usize) -> Chain {
        let mut c = Chain {
            g: [(0, 0); MAX_GROUPS],
            groups: 0,
            digits: 0,
            x: false,
            x_apart: false,
            paren: false,
            more: false,
            end: s,
        };
        let mut i = s;
        loop {
            let e = if i == s { first_end } else { digits_end(t, i) };
            c.g[c.groups] = (i, e);
            c.groups += 1;
            c.digits += e - i;
            c.end = e;
            if e + 1 >= t.len() {
                break;
            }
            let Some(n) = next_group(t, s, e, c.groups) else { break };
            if c.groups == MAX_GROUPS {
                c.more = true;
                break;
            }
            c.paren |= t[e] == b')';
            i = n;
        }
        let end = x_end(t, c.end);
        if end > c.end {
            c.x = true;
            c.x_apart = end == c.end + 2;
            c.end = end;
        }
        c
    }

    /// Drop the last group; returns where it started, or `None` for a chain of one group.
    fn pop(&mut self) -> Option<usize> {
        if self.groups < 2 {
            return None;
        }
        self.groups -= 1;
        let (s, e) = self.g[self.groups];
        self.digits -= e - s;
        self.x = false;
        self.x_apart = false;
        self.end = self.g[self.groups - 1].1;
        Some(s)
    }
}

/// Whether the digits that end at `end` run on into a word or a dotted number.
#[inline]
fn glued_to_next(t: &[u8], end: usize) -> bool {
    match t.get(end) {
        Some(&b) if is_word(b) => true,
        Some(b'.') => t.get(end + 1).is_some_and(u8::is_ascii_digit),
        _ => false,
    }
}

/// Where to resume after the chain `s..end` that runs on into a word or a dotted number: at its last
/// digit group, or past it when it has only one group (`123X.5`).
fn last_group_start(t: &[u8], s: usize, end: usize) -> usize {
    let mut i = end;
    if i > s && matches!(t[i - 1], b'X' | b'x') {
        i -= 1;
    }
    while i > s && t[i - 1].is_ascii_digit() {
        i -= 1;
    }
    if i > s { i } else { end }
}

/// `X`/`x` right after a digit run and not followed by another word character.
/// Where the group after the one ending at `e` starts, when a separator joins them: one space or
/// hyphen, two spaces (`110105  19491231`), or the `)` after an area code in parentheses.
#[inline]
fn next_group(t: &[u8], s: usize, e: usize, groups: usize) -> Option<usize> {
    let digit_at = |i: usize| t.get(i).is_some_and(u8::is_ascii_digit);
    match t.get(e)? {
        b' ' if t.get(e + 1) == Some(&b' ') && digit_at(e + 2) => Some(e + 2),
        b' ' | b'-' if digit_at(e + 1) => Some(e + 1),
        b')' if groups == 1 && s > 0 && t[s - 1] == b'(' && t[s] == b'0' && digit_at(e + 1) => Some(e + 1),
        _ => None,
    }
}

/// The end of a chain whose last group ends at `e`, with its `X` check character: right after the
/// digits, or after one space or hyphen (`110105 19491231 002 X`).
#[inline]
fn x_end(t: &[u8], e: usize) -> usize {
    if is_x_suffix(t, e) {
        e + 1
    } else if matches!(t.get(e), Some(b' ' | b'-')) && is_x_suffix(t, e + 1) {
        e + 2
    } else {
        e
    }
}

fn is_x_suffix(t: &[u8], e: usize) -> bool {
    matches!(t.get(e), Some(b'X' | b'x')) && !t.get(e + 1).is_some_and(|b| is_word(*b))
}

#[inline]
fn is_word(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'*' || b == b'_'
}

/// Position of the `n`-th digit (0-based) counting from `start`, skipping separators.
fn nth_digit_pos(t: &[u8], start: usize, n: usize) -> usize {
    let mut seen = 0;
    let mut i = start;
    while i < t.len() {
        if t[i].is_ascii_digit() {
            if seen == n {
                return i;
            }
            seen += 1;
        }
        i += 1;
    }
    i
}

/// Whether the run at `s` follows a product token and a slash (`Chrome/`, `Safari/`,
/// `Version/`): a user agent's version, not an address. A URL's `//` is not a product.
fn after_product(t: &[u8], s: usize) -> bool {
    if s < 2 || t[s - 1] != b'/' {
        return false;
    }
    let name = t[..s - 1].iter().rev().take_while(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_')).count();
    name > 0 && t[s - 1 - name..s - 1].iter().any(u8::is_ascii_alphabetic)
}

/// A dotted quad starting at `s`; returns its end when it is a whole, valid IPv4 address.
fn ipv4_at(t: &[u8], s: usize) -> Option<usize> {
    let mut i = s;
    for part in 0..4 {
        let e = digits_end(t, i);
        if e == i || e - i > 3 {
            return None;
        }
        i = e;
        if part < 3 {
            if t.get(i) != Some(&b'.') {
                return None;
            }
            i += 1;
        }
    }
    let after = t.get(i).copied().unwrap_or(b' ');
    if is_word(after) || (after == b'.' && t.get(i + 1).is_some_and(u8::is_ascii_digit)) {
        return None;
    }
    validate::ipv4(&t[s..i]).then_some(i)
}

const PROVINCES: &str = "京津沪渝冀豫云辽黑湘皖鲁新苏浙赣鄂桂甘晋蒙陕吉闽贵粤青藏川宁琼";

fn ends_with_province(t: &[u8]) -> bool {
    t.len() >= 3 && std::str::from_utf8(&t[t.len() - 3..]).is_ok_and(|c| PROVINCES.contains(c))
}

fn plate_letter(b: u8) -> bool {
    b.is_ascii_uppercase() && b != b'I' && b != b'O'
}

/// 5–6 characters, uppercase letters (no I/O) or digits, at least three digits.
fn plate_serial(s: &[u8]) -> bool {
    (5..=6).contains(&s.len())
        && s.iter().all(|&b| b.is_ascii_digit() || plate_letter(b))
        && s.iter().filter(|b| b.is_ascii_digit()).count() >= 3
}

/// `豫R·` right before the serial (middle dot U+00B7 or bullet U+2022); returns the plate start.
fn plate_prefix_with_dot(t: &[u8]) -> Option<usize> {
    let n = t.len();
    let dot_len = if t.ends_with("·".as_bytes()) {
        2
    } else if t.ends_with("•".as_bytes()) {
        3
    } else {
        return None;
    };
    let letter_at = n.checked_sub(dot_len + 1)?;
    if !plate_letter(t[letter_at]) || !ends_with_province(&t[..letter_at]) {
        return None;
    }
    Some(letter_at - 3)
}

fn is_local(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'%' | b'+' | b'-')
}

/// File extensions that follow `@2x` in asset names (`logo@2x.png`), never a top-level domain here.
const ASSET_TLDS: &[&[u8]] = &[b"png", b"jpg", b"jpeg", b"gif", b"webp", b"svg", b"ico", b"bmp", b"avif"];

/// End of the domain that starts at `ds`, and where its top-level label starts. The domain ends with
/// the last wholly alphabetic label of two or more letters. Without one, text glued to the address
/// (`a@163.com-1380013…`, `a@163.com1380…`) is cut where the letters of the first label that starts
/// with two of them end.
fn domain_end(t: &[u8], ds: usize) -> Option<(usize, usize)> {
    let limit = t.len().min(ds + 255);
    let mut i = ds;
    let mut strong = None;
    let mut weak = None;
    let mut first = true;
    loop {
        let ls = i;
        // a label: letters and digits (eight bytes at a time), and hyphens
        let within = &t[..limit];
        i = alnum_end(within, i);
        while i < limit && t[i] == b'-' {
            i = alnum_end(within, i + 1);
        }
        if i == ls {
            break; // empty label: `..`, a trailing dot, or no domain at all
        }
        if !first {
            let alpha = t[ls..i].iter().take_while(|b| b.is_ascii_alphabetic()).count();
            if alpha == i - ls && alpha >= 2 {
                strong = Some((i, ls));
            } else if alpha >= 2 && weak.is_none() {
                weak = Some((ls + alpha, ls));
            }
        } else if t[ls] == b'-' {
            return None;
        }
        first = false;
        if i + 1 < limit && t[i] == b'.' {
            i += 1;
        } else {
            break;
        }
    }
    strong.or(weak)
}

/// E-mail addresses around each `@`. `earlier` are the digit hits already in `out`, in order: a local
/// part never reaches back into one of them or into the previous address, or a run of local-part
/// characters longer than 64 would start inside that value and hide it.
fn scan_emails(t: &[u8], ats: &[usize], rule: u32, earlier: std::ops::Range<usize>, out: &mut Vec<Hit>) {
    let mut floor = 0;
    let mut next_earlier = earlier.start;
    for &at in ats {
        while next_earlier < earlier.end && out[next_earlier].start < at {
            floor = floor.max(out[next_earlier].end.min(at));
            next_earlier += 1;
        }
        let mut ls = at;
        while ls > floor && at - ls < 64 && is_local(t[ls - 1]) {
            ls -= 1;
        }
        while ls < at && matches!(t[ls], b'.' | b'-' | b'+') {
            ls += 1;
        }
        if ls == at {
            continue;
        }
        let Some((de, tld)) = domain_end(t, at + 1) else { continue };
        if ASSET_TLDS.iter().any(|a| t[tld..de].eq_ignore_ascii_case(a)) {
            continue;
        }
        out.push(Hit { rule, start: ls, end: de });
        floor = de;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::prefilter::all_ascii_alphanumeric;

    fn all() -> Builtins {
        let mut b = Builtins::default();
        for (i, x) in Builtin::ALL.iter().enumerate() {
            b.set(*x, i as u32);
        }
        b
    }

    fn found(text: &str) -> Vec<(&'static str, String)> {
        let mut out = Vec::new();
        all().scan(text.as_bytes(), &mut Marks::default(), &mut out);
        out.sort_by_key(|h| h.start);
        out.into_iter().map(|h| (Builtin::ALL[h.rule as usize].name(), text[h.start..h.end].to_string())).collect()
    }

    #[test]
    fn table() {
        let cases: &[(&str, &[(&str, &str)])] = &[
            ("身份证11010519491231002X。", &[("cn_id_card", "11010519491231002X")]),
            // a browser's version is no address; a URL's host is
            ("Mozilla/5.0 Chrome/120.0.0.0 Safari/537.36", &[]),
            ("Version/17.1.2.3 Mobile", &[]),
            ("http://10.20.30.40/api", &[("ipv4", "10.20.30.40")]),
            ("peer 10.20.30.40:443", &[("ipv4", "10.20.30.40")]),
            // government bodies and public institutions: all digits and an X check character
            ("code 12110105876232860X,", &[("cn_uscc", "12110105876232860X")]),
            ("code 11410102264847564x,", &[("cn_uscc", "11410102264847564x")]),
            ("id: 110105 1949 1231 002x", &[("cn_id_card", "110105 1949 1231 002x")]),
            // grouped forms: 6-8-4 with two spaces, 6-8-3-1, 3-3-4-4-4 with a hyphen before the X
            ("id: 110105  19491231  002x,", &[("cn_id_card", "110105  19491231  002x")]),
            ("id: 110105 19491231 002 X,", &[("cn_id_card", "110105 19491231 002 X")]),
            ("id: 110 105 1949 1231 002-X,", &[("cn_id_card", "110 105 1949 1231 002-X")]),
            // an x set apart that checks nothing is a word of its own (found by the property test)
            ("tel 13800138000 x机密", &[("cn_mobile", "13800138000")]),
            ("tel 138-0013-8000,", &[("cn_mobile", "138-0013-8000")]),
            ("tel 136.7251.9917;", &[("cn_mobile", "136.7251.9917")]),
            ("v 136.7251.9917.1", &[]),
            ("+8615580931802", &[("cn_mobile", "15580931802")]),
            ("0086 13807748556", &[("cn_mobile", "13807748556")]),
            ("(0374)3099770", &[("cn_landline", "(0374)3099770")]),
            ("order 2023120115512937100001", &[]),
            ("410105********123X", &[]),
            ("bd35980d13790230388db413e10036e5", &[]),
            ("ZZ20230108040129", &[]),
            ("v6.1.7601.22753 and 15.12.29.19.23", &[]),
            ("host 192.168.1.10:80", &[("ipv4", "192.168.1.10")]),
            ("pi=3.14159265358979323", &[]),
            ("card 6217 9907 8969 2948 627", &[("bank_card", "6217 9907 8969 2948 627")]),
            ("信用代码91410700425648857P", &[("cn_uscc", "91410700425648857P")]),
            ("护照E02360901", &[("cn_passport", "E02360901")]),
            (
                "车牌豫F07963,豫R·54S39 青D·54346",
                &[("cn_plate", "豫F07963"), ("cn_plate", "豫R·54S39"), ("cn_plate", "青D·54346")],
            ),
            ("mail a.b@henan.gov.cn logo@2x.png", &[("email", "a.b@henan.gov.cn")]),
            (
                "x@163.com-E02360901138001380001E02360901-abc6212265658323320978y@163.com",
                &[("email", "x@163.com"), ("email", "E02360901138001380001E02360901-abc6212265658323320978y@163.com")],
            ),
            ("13800138000 192.168.1.10", &[("cn_mobile", "13800138000"), ("ipv4", "192.168.1.10")]),
            ("13800138000 1.5", &[("cn_mobile", "13800138000")]),
            ("138-0013-8000-1234chen@163.com", &[("cn_mobile", "138-0013-8000"), ("email", "1234chen@163.com")]),
            ("a@163.com13800138000192.168.1.10x", &[("email", "a@163.com")]),
            ("a@mail.example-1.com.", &[("email", "a@mail.example-1.com")]),
            ("a@b..com a@.com a@com", &[]),
            ("v1.2.3.4 8000abc192.168.1.10 abc192.168.1.10", &[]),
            (
                "6217 9907 8969 2948 627 6217 9907 8969 2948 627 6217 9907 8969 2948 627",
                &[
                    ("bank_card", "6217 9907 8969 2948 627"),
                    ("bank_card", "6217 9907 8969 2948 627"),
                    ("bank_card", "6217 9907 8969 2948 627"),
                ],
            ),
            ("123X.5 1X-2", &[]),
            ("1 192.168.1.10 2-3 10.0.0.1", &[("ipv4", "192.168.1.10"), ("ipv4", "10.0.0.1")]),
            ("a@b.com-xyz@c.com", &[("email", "a@b.com"), ("email", "xyz@c.com")]),
            ("chen@163.com13800138000", &[("email", "chen@163.com")]),
            ("豫政办〔2019〕40号", &[]),
        ];
        let mut ran = 0;
        for (text, want) in cases {
            let got = found(text);
            let want: Vec<(&str, String)> = want.iter().map(|(a, b)| (*a, b.to_string())).collect();
            assert_eq!(got, want, "text {text:?}");
            ran += 1;
        }
        assert_eq!(ran, cases.len());
    }

    /// The runs worth a look, one byte at a time: the definition `for_each_hot_run` implements.
    fn hot_runs_scalar(t: &[u8]) -> Vec<(usize, usize)> {
        let word = |b: u8| b.is_ascii_alphanumeric() || b == b'*' || b == b'_';
        let mut v = Vec::new();
        let mut i = 0;
        while i < t.len() {
            if !t[i].is_ascii_digit() {
                i += 1;
                continue;
            }
            let s = i;
            while i < t.len() && t[i].is_ascii_digit() {
                i += 1;
            }
            let prev = if s > 0 { t[s - 1] } else { b' ' };
            let next = t.get(i).copied().unwrap_or(b'"');
            let len = i - s;
            if word(prev)
                || matches!(prev, 0xB7 | 0xA2)
                || word(next)
                || matches!(next, b' ' | b'-' | b')')
                || len >= 10
                || (next == b'.' && len <= 3)
            {
                v.push((s, i));
            }
        }
        v
    }

    /// Deterministic xorshift bytes from `alphabet`, built of whole UTF-8 pieces.
    fn random_docs(pieces: &[&str], count: usize, seed: u64) -> Vec<Vec<u8>> {
        let mut x = seed;
        (0..count)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                let len = (x % 200) as usize;
                let mut v = Vec::new();
                for _ in 0..len {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    v.extend_from_slice(pieces[(x % pieces.len() as u64) as usize].as_bytes());
                }
                v
            })
            .collect()
    }

    #[test]
    fn skipping_boring_runs_changes_no_finding() {
        // every run through `at_digit`, one after the other: what the scan did before it skipped runs
        let mut b = all();
        b.rule_of[Builtin::Email.index()] = None; // digit detectors only
        let every_run = |t: &[u8]| {
            let mut out = Vec::new();
            let mut i = 0;
            while i < t.len() {
                if t[i].is_ascii_digit() && (i == 0 || !t[i - 1].is_ascii_digit()) {
                    i = b.at_digit(t, i, digits_end(t, i), &mut out).max(i + 1);
                } else {
                    i += 1;
                }
            }
            out
        };
        let pieces = [
            "0",
            "1",
            "3",
            "8",
            "9",
            "138",
            "0013",
            "8000",
            "110105",
            "1949",
            "1231",
            "002",
            "6222",
            "0212",
            "4101",
            "19690814392",
            " ",
            "-",
            ".",
            ")",
            "(",
            "X",
            "x",
            "a",
            "Z",
            "E",
            "_",
            "*",
            "·",
            "•",
            "豫",
            "A",
            "+86",
            "0086",
            ":",
            "\"",
            ",",
            "T",
            "91350100M000100Y43",
            "192.168.1.10",
            "  ",
            " X",
        ];
        let mut docs = random_docs(&pieces, 4000, 0x9E37_79B9_7F4A_7C15);
        // chained values with a separator or a group at every offset around the window edges
        for v in [
            "138 0013 8000",
            "110105 1949 1231 002X",
            "1 3 8 0 0 1 3 8 0 0 0",
            "12-34 5678 90",
            "a1 234 56789 0",
            "110105  19491231  002x",
            "110105 19491231 002 X",
            "110 105 1949 1231 002-X",
        ] {
            for pad in 40..130 {
                let mut d = vec![b'"'; pad];
                d.extend_from_slice(v.as_bytes());
                d.push(b'"');
                docs.push(d);
            }
        }
        for (k, t) in docs.iter().enumerate() {
            let mut got = Vec::new();
            b.scan(t, &mut Marks::default(), &mut got);
            assert_eq!(got, every_run(t), "doc {k}: {:?}", String::from_utf8_lossy(t));
        }
    }

    #[test]
    fn alnum_end_stops_at_every_other_byte() {
        for b in 0..=255u8 {
            for at in 0..20 {
                let mut v = vec![b'a'; 20];
                v[at] = b;
                let want = if b.is_ascii_alphanumeric() { 20 } else { at };
                assert_eq!(alnum_end(&v, 0), want, "byte {b:#04x} at {at}");
            }
        }
        assert_eq!(alnum_end(b"Zz09", 0), 4);
        for b in 0..=255u8 {
            for len in [1, 7, 8, 9, 17, 18, 19] {
                for at in 0..len {
                    let mut v = vec![b'7'; len];
                    v[at] = b;
                    assert_eq!(all_ascii_alphanumeric(&v), b.is_ascii_alphanumeric(), "byte {b:#04x} at {at} of {len}");
                }
            }
        }
    }

    #[test]
    fn hot_runs_match_the_scalar_definition() {
        let mut cases: Vec<Vec<u8>> = vec![
            b"".to_vec(),
            b"7".to_vec(),
            b"{\"id\":1000,\"no\":\"ZZ12345678901234\",\"at\":\"2024-05-12T10:34:00+08:00\",\"ts\":1700000123456}"
                .to_vec(),
            "豫R·54S39 和 1.2.3.4 与 136.7251.9917 (0371)6512 3456 a1 1_ *12".as_bytes().to_vec(),
            vec![b'9'; 64],
            vec![b'9'; 130],
        ];
        // runs across window edges, at the very start and end, of every length up to 70
        for len in 1..70 {
            for at in [0, 1, 54, 55, 60, 63, 64, 65, 120, 127, 128] {
                for (before, after) in [(b'"', b'"'), (b'a', b','), (b' ', b'.'), (b':', b'-'), (0xB7, b'x')] {
                    let mut v = vec![b'"'; at];
                    if at > 0 {
                        v[at - 1] = before;
                    }
                    v.extend(std::iter::repeat_n(b'5', len));
                    v.push(after);
                    cases.push(v.clone());
                    v.pop();
                    cases.push(v);
                }
            }
        }
        // pseudo-random bytes drawn mostly from the interesting classes
        let alphabet = b"0123456789012345678901234567890123456789 -).,:\"aZ*_@\xb7\xa2\xe4";
        let mut x = 0x2545_f491_4f6c_dd1du64;
        for _ in 0..2000 {
            let len = (x % 300) as usize;
            let v: Vec<u8> = (0..len)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    alphabet[(x % alphabet.len() as u64) as usize]
                })
                .collect();
            cases.push(v);
        }
        fn check(c: impl Classify, t: &[u8]) {
            let mut got = Vec::new();
            let mut marks = Marks::default();
            for_each_hot_run::<true>(c, t, &mut marks, |s, e, _| got.push((s, e)));
            let want: Vec<usize> = t.iter().enumerate().filter(|&(_, &b)| b == b'@').map(|(i, _)| i).collect();
            assert_eq!(marks.at, want, "@ positions in {:?}", String::from_utf8_lossy(t));
            assert_eq!(got, hot_runs_scalar(t), "input {:?}", String::from_utf8_lossy(t));
        }
        for t in &cases {
            check(Portable, t);
            #[cfg(target_arch = "x86_64")]
            if let Some(v3) = pulp::x86::V3::try_new() {
                check(v3, t);
            }
        }
    }

    /// The AVX2 classifier gives the portable one's bitmaps for every byte value in every position.
    #[test]
    #[cfg(target_arch = "x86_64")]
    fn avx2_classify_equals_portable() {
        let Some(v3) = pulp::x86::V3::try_new() else {
            eprintln!("no AVX2 on this CPU: only the portable classifier runs here");
            return;
        };
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        let mut windows = Vec::new();
        for b in 0..=255u8 {
            windows.push([b; 64]);
        }
        for _ in 0..20_000 {
            let mut w = [0u8; 64];
            for byte in &mut w {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                // half the bytes from the classes the bitmaps are about, half anything
                const EDGES: &[u8] = b"09/:@`az{AZ[*_ -).\xb7\xa2";
                *byte = if x & 1 == 0 { EDGES[(x >> 8) as usize % EDGES.len()] } else { (x >> 16) as u8 };
            }
            windows.push(w);
        }
        for w in &windows {
            assert_eq!(v3.vectorize(|| v3.classify::<true>(w)), Portable.classify::<true>(w), "window {w:?}");
        }
    }
}
