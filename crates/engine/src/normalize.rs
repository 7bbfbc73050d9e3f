//! Normalization: undo the usual evasions before matching, and remember where every normalized byte
//! came from so findings map back to byte offsets in the original input.
//!
//! What is folded or decoded:
//! - full-width ASCII (`１２３`, `＠`, `，`) → ASCII, ideographic space → space;
//! - zero-width characters (U+200B–U+200D, U+2060, U+FEFF, soft hyphen U+00AD) → removed;
//! - HTML numeric entities (`&#52;`, `&#x34;`) and `&amp; &lt; &gt; &quot; &apos; &nbsp;`;
//! - JSON escapes (`\u0034`, surrogate pairs, `\n`, `\"`, `\/` …);
//! - percent-encoding (`%34`, `%E6%9C%BA`).
//!
//! Decoding is one level deep (a decoded `%` is not decoded again) and never fails: anything that is
//! not a well-formed escape is left as it is. Input without any trigger byte is not copied at all.

use std::borrow::Cow;

/// A replaced stretch: `norm_len` normalized bytes at `norm` stand for `orig_len` original bytes at
/// `orig`. Bytes between segments map one to one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Seg {
    norm: usize,
    norm_len: usize,
    orig: usize,
    orig_len: usize,
}

/// Normalized text plus the map back to the original bytes.
#[derive(Debug)]
pub struct Normalized<'a> {
    /// The normalized bytes (borrowed from the input when nothing had to change).
    pub text: Cow<'a, [u8]>,
    segs: Vec<Seg>,
}

impl<'a> Normalized<'a> {
    /// Offset in the original input of the normalized byte at `pos` (a finding's start).
    pub fn orig_start(&self, pos: usize) -> usize {
        match self.seg_before(pos) {
            None => pos,
            Some(s) if pos < s.norm + s.norm_len => s.orig,
            Some(s) => s.orig + s.orig_len + (pos - s.norm - s.norm_len),
        }
    }

    /// Offset in the original input just past the normalized byte at `end - 1` (a finding's end).
    pub fn orig_end(&self, end: usize) -> usize {
        if end == 0 {
            return 0;
        }
        let last = end - 1;
        match self.seg_containing_or_before(last) {
            None => end,
            Some(s) if last < s.norm + s.norm_len => s.orig + s.orig_len,
            Some(s) => s.orig + s.orig_len + (end - s.norm - s.norm_len),
        }
    }

    /// Last segment starting at or before `pos` (zero-length removals at `pos` count as before).
    fn seg_before(&self, pos: usize) -> Option<&Seg> {
        let i = self.segs.partition_point(|s| s.norm <= pos);
        // skip zero-length segments that sit exactly at pos: they precede the byte
        if i == 0 { None } else { self.segs.get(i - 1) }
    }

    fn seg_containing_or_before(&self, pos: usize) -> Option<&Seg> {
        // a zero-length segment at `pos` precedes the byte, so it is "before" as well
        self.seg_before(pos)
    }

    /// The first normalized position at most `d` bytes of input before `pos`: a look back from
    /// `pos` that stays within `d` bytes of the input, whatever escapes shortened. One binary
    /// search over the replaced stretches (between them the text is the input, byte for byte).
    pub fn floor(&self, pos: usize, d: usize) -> usize {
        self.floor_near(pos, d, &std::cell::Cell::new(0))
    }

    /// [`floor`](Self::floor), for positions that mostly come in order: `hint` keeps where the
    /// last one was among the replaced stretches, so each costs the stretches it passes.
    pub fn floor_near(&self, pos: usize, d: usize, hint: &std::cell::Cell<usize>) -> usize {
        let lo = pos.saturating_sub(d);
        if self.segs.is_empty() {
            return lo;
        }
        let segs = &self.segs[..];
        // j: stretches starting at or before `pos` (as `seg_before` counts them)
        let mut j = hint.get().min(segs.len());
        if j > 0 && segs[j - 1].norm > pos {
            j = segs.partition_point(|s| s.norm <= pos);
        } else {
            let mut steps = 0;
            while j < segs.len() && segs[j].norm <= pos {
                j += 1;
                steps += 1;
                if steps == 64 {
                    j = segs.partition_point(|s| s.norm <= pos);
                    break;
                }
            }
        }
        hint.set(j);
        let orig = match j.checked_sub(1).map(|k| &segs[k]) {
            None => pos,
            Some(s) if pos < s.norm + s.norm_len => s.orig,
            Some(s) => s.orig + s.orig_len + (pos - s.norm - s.norm_len),
        };
        let want = orig.saturating_sub(d);
        // i: stretches whose input ends at or before `want`, walking back from j (they are few
        // within `d` bytes)
        let mut i = j;
        while i > 0 && segs[i - 1].orig + segs[i - 1].orig_len > want {
            i -= 1;
        }
        let q = match (i.checked_sub(1).map(|k| &segs[k]), segs.get(i)) {
            // `want` inside a replaced stretch: the first position after it
            (_, Some(s)) if s.orig < want => s.norm + s.norm_len,
            (None, _) => want,
            (Some(prev), _) => prev.norm + prev.norm_len + (want - prev.orig - prev.orig_len),
        };
        q.clamp(lo, pos)
    }

    /// [`floor`](Self::floor) by its definition (a binary search over positions), for tests.
    #[cfg(test)]
    fn floor_slow(&self, pos: usize, d: usize) -> usize {
        let lo = pos.saturating_sub(d);
        let want = self.orig_start(pos).saturating_sub(d);
        let (mut a, mut b) = (lo, pos);
        while a < b {
            let m = a + (b - a) / 2;
            if self.orig_start(m) >= want { b = m } else { a = m + 1 }
        }
        a
    }

    /// True when the text is the input itself.
    pub fn is_identity(&self) -> bool {
        self.segs.is_empty()
    }
}

/// Bytes that may start something to normalize.
#[inline]
fn is_trigger(b: u8) -> bool {
    matches!(b, b'%' | b'&' | b'\\' | 0xEF | 0xE2 | 0xE3 | 0xC2)
}

/// Finds the next trigger byte with three memchr searches, each remembered until passed, so the
/// whole input is searched once per kind of trigger.
#[derive(Default)]
struct TriggerFinder {
    next: [Option<Option<usize>>; 3],
}

impl TriggerFinder {
    fn next(&mut self, s: &[u8], from: usize) -> Option<usize> {
        let mut best: Option<usize> = None;
        for k in 0..3 {
            let stale = match self.next[k] {
                None => true,
                Some(Some(p)) => p < from,
                Some(None) => false,
            };
            if stale {
                let rest = s.get(from..).unwrap_or(&[]);
                let found = match k {
                    0 => memchr::memchr3(b'%', b'&', b'\\', rest),
                    1 => memchr::memchr3(0xEF, 0xE2, 0xE3, rest),
                    _ => memchr::memchr(0xC2, rest),
                };
                self.next[k] = Some(found.map(|p| p + from));
            }
            if let Some(Some(p)) = self.next[k] {
                best = Some(best.map_or(p, |b| b.min(p)));
            }
        }
        best
    }
}

/// Normalize `input`. Never fails and never panics.
pub fn normalize(input: &[u8]) -> Normalized<'_> {
    let mut finder = TriggerFinder::default();
    let first = match finder.next(input, 0) {
        None => {
            return Normalized { text: Cow::Borrowed(input), segs: Vec::new() };
        }
        Some(p) => p,
    };
    let mut out: Vec<u8> = Vec::with_capacity(input.len());
    let mut segs: Vec<Seg> = Vec::new();
    out.extend_from_slice(&input[..first]);
    let mut i = first;
    while i < input.len() {
        let b = input[i];
        if !is_trigger(b) {
            // copy the identity run up to the next trigger
            let next = finder.next(input, i).unwrap_or(input.len());
            out.extend_from_slice(&input[i..next]);
            i = next;
            continue;
        }
        let mut buf = [0u8; 4];
        match decode_at(input, i, &mut buf) {
            Some((consumed, produced)) => {
                segs.push(Seg { norm: out.len(), norm_len: produced, orig: i, orig_len: consumed });
                out.extend_from_slice(&buf[..produced]);
                i += consumed;
            }
            None => {
                out.push(b);
                i += 1;
            }
        }
    }
    if segs.is_empty() {
        return Normalized { text: Cow::Borrowed(input), segs };
    }
    Normalized { text: Cow::Owned(out), segs }
}

/// Try to decode one escape or foldable character at `i`. Returns (bytes consumed, bytes produced).
fn decode_at(s: &[u8], i: usize, out: &mut [u8; 4]) -> Option<(usize, usize)> {
    let b = *s.get(i)?;
    match b {
        b'%' => {
            let v = hex2(s.get(i + 1..i + 3)?)?;
            out[0] = v;
            Some((3, 1))
        }
        b'&' => decode_entity(s, i, out),
        b'\\' => decode_json_escape(s, i, out),
        0xEF | 0xE2 | 0xE3 | 0xC2 => {
            let (c, len) = utf8_char(s, i)?;
            fold_char(c, out).map(|n| (len, n))
        }
        _ => None,
    }
}

/// Fold one Unicode scalar: full-width ASCII and ideographic space to ASCII, zero-width to nothing.
fn fold_char(c: u32, out: &mut [u8; 4]) -> Option<usize> {
    match c {
        0xFF01..=0xFF5E => {
            out[0] = (c - 0xFF01 + 0x21) as u8;
            Some(1)
        }
        0x3000 => {
            out[0] = b' ';
            Some(1)
        }
        0x200B..=0x200D | 0x2060 | 0xFEFF | 0x00AD => Some(0),
        _ => None,
    }
}

fn decode_entity(s: &[u8], i: usize, out: &mut [u8; 4]) -> Option<(usize, usize)> {
    let rest = s.get(i + 1..)?;
    let semi = rest.iter().take(10).position(|&c| c == b';')?;
    let body = &rest[..semi];
    let consumed = semi + 2;
    let c: u32 = if let Some(num) = body.strip_prefix(b"#") {
        if let Some(hex) = num.strip_prefix(b"x").or_else(|| num.strip_prefix(b"X")) {
            parse_radix(hex, 16)?
        } else {
            parse_radix(num, 10)?
        }
    } else {
        match body {
            b"amp" => '&' as u32,
            b"lt" => '<' as u32,
            b"gt" => '>' as u32,
            b"quot" => '"' as u32,
            b"apos" => '\'' as u32,
            b"nbsp" => ' ' as u32,
            _ => return None,
        }
    };
    encode_folded(c, out).map(|n| (consumed, n))
}

fn decode_json_escape(s: &[u8], i: usize, out: &mut [u8; 4]) -> Option<(usize, usize)> {
    let e = *s.get(i + 1)?;
    let simple = match e {
        b'n' => Some(b'\n'),
        b't' => Some(b'\t'),
        b'r' => Some(b'\r'),
        b'"' => Some(b'"'),
        b'/' => Some(b'/'),
        b'\\' => Some(b'\\'),
        b'b' | b'f' => Some(b' '),
        _ => None,
    };
    if let Some(c) = simple {
        out[0] = c;
        return Some((2, 1));
    }
    if e != b'u' {
        return None;
    }
    let hi = parse_radix(s.get(i + 2..i + 6)?, 16)?;
    if (0xD800..0xDC00).contains(&hi) {
        // surrogate pair
        if s.get(i + 6..i + 8)? != b"\\u" {
            return None;
        }
        let lo = parse_radix(s.get(i + 8..i + 12)?, 16)?;
        if !(0xDC00..0xE000).contains(&lo) {
            return None;
        }
        let c = 0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00);
        return encode_folded(c, out).map(|n| (12, n));
    }
    encode_folded(hi, out).map(|n| (6, n))
}

/// UTF-8 encode `c` after folding; None for invalid scalars.
fn encode_folded(c: u32, out: &mut [u8; 4]) -> Option<usize> {
    if let Some(n) = fold_char(c, out) {
        return Some(n);
    }
    let ch = char::from_u32(c)?;
    Some(ch.encode_utf8(out).len())
}

fn parse_radix(digits: &[u8], radix: u32) -> Option<u32> {
    if digits.is_empty() || digits.len() > 7 {
        return None;
    }
    let mut v: u32 = 0;
    for &d in digits {
        v = v * radix + (d as char).to_digit(radix)?;
    }
    Some(v)
}

fn hex2(h: &[u8]) -> Option<u8> {
    let hi = (*h.first()? as char).to_digit(16)?;
    let lo = (*h.get(1)? as char).to_digit(16)?;
    Some((hi * 16 + lo) as u8)
}

/// Decode the UTF-8 character at `i` (2 or 3 bytes only; that is all the folds need).
fn utf8_char(s: &[u8], i: usize) -> Option<(u32, usize)> {
    let b0 = *s.get(i)? as u32;
    if b0 & 0xE0 == 0xC0 {
        let b1 = *s.get(i + 1)? as u32;
        if b1 & 0xC0 != 0x80 {
            return None;
        }
        return Some((((b0 & 0x1F) << 6) | (b1 & 0x3F), 2));
    }
    if b0 & 0xF0 == 0xE0 {
        let b1 = *s.get(i + 1)? as u32;
        let b2 = *s.get(i + 2)? as u32;
        if b1 & 0xC0 != 0x80 || b2 & 0xC0 != 0x80 {
            return None;
        }
        return Some((((b0 & 0x0F) << 12) | ((b1 & 0x3F) << 6) | (b2 & 0x3F), 3));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trigger_finder_finds_every_trigger_in_order() {
        let mut seed = 0x2545_F491_4F6C_DD1Du64;
        let mut rnd = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        let triggers = [b'%', b'&', b'\\', 0xEF, 0xE2, 0xE3, 0xC2];
        // one trigger alone, anywhere from the first byte to the last
        let b = 8 * 1024;
        for &t in &triggers {
            for pos in [0, 1, b - 1, b, 3 * b + 9] {
                let mut s = vec![b'a'; 3 * b + 10];
                s[pos] = t;
                let mut f = TriggerFinder::default();
                assert_eq!(f.next(&s, 0), Some(pos), "trigger {t:#x} at {pos}");
                assert_eq!(f.next(&s, pos + 1), None);
            }
        }
        for round in 0..300 {
            // sparse to dense
            let len = (rnd() % (3 * 8 * 1024 + 100)) as usize;
            let density = [0, 2, 50, 5000, 40_000][round % 5];
            let s: Vec<u8> = (0..len)
                .map(|_| {
                    if density > 0 && rnd() % density == 0 {
                        triggers[(rnd() % 7) as usize]
                    } else {
                        b'a' + (rnd() % 26) as u8
                    }
                })
                .collect();
            // the normalizer's pattern: ask again a little past each hit
            let mut f = TriggerFinder::default();
            let mut from = 0;
            let mut hits = 0;
            loop {
                let want = (from..len).find(|&i| is_trigger(s[i]));
                let got = f.next(&s, from);
                assert_eq!(got, want, "round {round}, from {from}");
                let Some(p) = got else { break };
                hits += 1;
                from = p + 1 + (rnd() % 3) as usize;
            }
            if density == 2 {
                assert!(hits > len / 8, "round {round}: {hits} hits in {len} bytes");
            }
        }
    }

    fn norm(s: &str) -> String {
        String::from_utf8_lossy(&normalize(s.as_bytes()).text).into_owned()
    }

    #[test]
    fn folds_and_decodes() {
        let cases = [
            ("abc 123", "abc 123"),
            ("１３８００１３８０００", "13800138000"),
            ("a＠b．com", "a@b.com"),
            ("13\u{200b}8\u{feff}00", "13800"),
            ("&#52;&#x31;&amp;", "41&"),
            ("\\u0034\\u0031x", "41x"),
            ("\\u673a\\u5bc6", "机密"),
            ("%E6%9C%BA%E5%AF%86", "机密"),
            ("50% off &foo; \\q", "50% off &foo; \\q"),
            ("\\ud83d\\ude00", "😀"),
        ];
        let mut ran = 0;
        for (input, want) in cases {
            assert_eq!(norm(input), want, "input {input:?}");
            ran += 1;
        }
        assert_eq!(ran, cases.len());
    }

    #[test]
    fn offsets_map_back() {
        let input = "ID:&#52;&#49;x";
        let n = normalize(input.as_bytes());
        assert_eq!(&*n.text, b"ID:41x");
        assert_eq!(n.orig_start(3), 3);
        assert_eq!(n.orig_end(5), 13);
        assert_eq!(n.orig_start(5), 13);
        assert_eq!(n.orig_end(6), 14);
        let zw = "1\u{200b}2";
        let n = normalize(zw.as_bytes());
        assert_eq!(&*n.text, b"12");
        assert_eq!(n.orig_start(0), 0);
        assert_eq!(n.orig_end(2), zw.len());
        assert_eq!(n.orig_start(1), 4);
    }

    #[test]
    fn floor_agrees_with_its_definition() {
        let pieces = ["a", "&#49;", "%E6%9C%BA", "\\u0031", "\u{200b}", "１", "，", "张", "&amp;", "\n", "%4"];
        let mut r = crate::synthetic::Rng(11);
        for _ in 0..300 {
            let n = (r.next() % 80) as usize;
            let text: String = (0..n).map(|_| pieces[(r.next() % pieces.len() as u64) as usize]).collect();
            let norm = normalize(text.as_bytes());
            for pos in 0..=norm.text.len() {
                for d in [0, 1, 3, 7, 16, 40] {
                    assert_eq!(norm.floor(pos, d), norm.floor_slow(pos, d), "{text:?} pos {pos} d {d}");
                }
            }
            // in order, and out of order, with one hint
            let hint = std::cell::Cell::new(0);
            let len = norm.text.len();
            for pos in (0..=len).chain((0..=len).rev()).chain((0..=len).step_by(3)) {
                assert_eq!(norm.floor_near(pos, 16, &hint), norm.floor_slow(pos, 16), "{text:?} pos {pos}");
            }
        }
    }

    #[test]
    fn truncated_escapes_do_not_panic() {
        for s in ["%", "%4", "&#", "&#5", "\\", "\\u00", "\\ud83d", "\u{ff11}"] {
            let b = s.as_bytes();
            for cut in 0..=b.len() {
                let _ = normalize(&b[..cut]);
            }
        }
    }
}
