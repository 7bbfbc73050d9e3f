//! Transforms: rewrite a finding's original bytes as `mask`, `redact` or `hash`.
//!
//! Each transform writes a clean rendering of the *normalized* value, so an evasive encoding
//! (`&#52;…`, `\u0034…`, full-width digits) is replaced as a whole and nothing of the raw value
//! survives in the output. Bytes outside findings are copied untouched.

use hmac::{Hmac, Mac};
use sha2::Sha256;

use super::{Action, Finding, Keep, Kept, MaskStyle, Rule, RuleSet, Scan};

/// Key for `hash` tokens and audit fingerprints: HMAC-SHA256, or HMAC-SM3 ([`HashKey::sm3`]).
/// Holds the MAC already keyed, so a fingerprint costs two hash blocks for a short value instead
/// of four.
#[derive(Clone)]
pub struct HashKey {
    mac: KeyedMac,
    /// The key itself, to key the other algorithm with.
    raw: std::sync::Arc<[u8]>,
}

#[derive(Clone)]
enum KeyedMac {
    Sha256(Hmac<Sha256>),
    Sm3(hmac_sm3::Hmac<sm3::Sm3>),
}

impl std::fmt::Debug for HashKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self.mac {
            KeyedMac::Sha256(_) => "HashKey(HMAC-SHA256, <redacted>)",
            KeyedMac::Sm3(_) => "HashKey(HMAC-SM3, <redacted>)",
        })
    }
}

impl HashKey {
    /// An HMAC-SHA256 key.
    pub fn new(key: impl AsRef<[u8]>) -> Self {
        let key = key.as_ref();
        match <Hmac<Sha256> as Mac>::new_from_slice(key) {
            Ok(mac) => Self { mac: KeyedMac::Sha256(mac), raw: key.into() },
            Err(_) => unreachable!("HMAC takes a key of any length"),
        }
    }

    /// The same key for HMAC-SM3 (GB/T 32905): tokens and fingerprints in 国密 algorithms.
    pub fn sm3(&self) -> Self {
        match <hmac_sm3::Hmac<sm3::Sm3> as hmac_sm3::KeyInit>::new_from_slice(&self.raw) {
            Ok(mac) => Self { mac: KeyedMac::Sm3(mac), raw: self.raw.clone() },
            Err(_) => unreachable!("HMAC takes a key of any length"),
        }
    }

    /// Read a key file; surrounding whitespace is ignored. Refuses keys shorter than 16 bytes.
    pub fn from_file(path: &std::path::Path) -> Result<Self, String> {
        let raw = std::fs::read(path).map_err(|e| format!("{}: cannot read key file: {e}", path.display()))?;
        let key = raw.trim_ascii();
        if key.len() < 16 {
            return Err(format!("{}: key must be at least 16 bytes, found {}", path.display(), key.len()));
        }
        Ok(Self::new(key))
    }

    /// Keyed fingerprint of a value: the first 16 hex digits of the HMAC over its canonical
    /// form (letters and digits only, uppercased), so `138-0013-8000` and `13800138000` agree.
    pub fn fingerprint(&self, value: &[u8]) -> String {
        let mut mac = self.mac.clone();
        let mut update = |b: &[u8]| match &mut mac {
            KeyedMac::Sha256(m) => m.update(b),
            KeyedMac::Sm3(m) => hmac_sm3::Mac::update(m, b),
        };
        // the canonical bytes go in by the block, not one call per byte
        let mut buf = [0u8; 64];
        let mut n = 0;
        for &b in value {
            if b.is_ascii_alphanumeric() || b >= 0x80 {
                buf[n] = b.to_ascii_uppercase();
                n += 1;
                if n == buf.len() {
                    update(&buf);
                    n = 0;
                }
            }
        }
        update(&buf[..n]);
        let out: [u8; 32] = match mac {
            KeyedMac::Sha256(m) => m.finalize().into_bytes().into(),
            KeyedMac::Sm3(m) => hmac_sm3::Mac::finalize(m).into_bytes().into(),
        };
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let mut s = String::with_capacity(16);
        for &b in out.iter().take(8) {
            s.push(HEX[usize::from(b >> 4)] as char);
            s.push(HEX[usize::from(b & 15)] as char);
        }
        s
    }
}

/// Renders findings. Holds the key for `hash`.
#[derive(Debug, Clone)]
pub struct Transformer {
    key: HashKey,
}

impl Transformer {
    pub fn new(key: HashKey) -> Self {
        Self { key }
    }

    /// Write the replacement for `value` under `action`. Returns false (and writes nothing) for
    /// actions that keep the original bytes (`allow`, `alert`, `block`).
    /// `kept`: what the detector worked out for a mask that keeps part of the value
    /// ([`Finding::kept`](crate::Finding::kept); [`Kept::Unknown`] for none).
    pub fn render(&self, rule: &Rule, action: Action, value: &[u8], kept: Kept, out: &mut Vec<u8>) -> bool {
        match action {
            Action::Mask => {
                mask_kept(value, &rule.mask, kept, out);
                true
            }
            Action::Redact => {
                out.extend_from_slice(rule.label.as_bytes());
                true
            }
            Action::Hash => {
                out.extend_from_slice(b"[h:");
                out.extend_from_slice(self.key.fingerprint(value).as_bytes());
                out.push(b']');
                true
            }
            Action::Allow | Action::Alert | Action::Block => false,
        }
    }

    /// Copy `input` to `out`, rewriting each finding whose action (from `decide`) rewrites.
    pub fn apply(
        &self,
        rules: &RuleSet,
        input: &[u8],
        scan: &Scan,
        mut decide: impl FnMut(&Finding) -> Action,
        out: &mut Vec<u8>,
    ) {
        let mut cursor = 0;
        for f in &scan.findings {
            let action = decide(f);
            if !action.rewrites() || f.start < cursor || f.end > input.len() {
                continue;
            }
            out.extend_from_slice(&input[cursor..f.start]);
            let rule = &rules.rules()[f.rule];
            self.render(rule, action, scan.value(f), f.kept(), out);
            cursor = f.end;
        }
        out.extend_from_slice(&input[cursor..]);
    }
}

/// A name: the surname kept (`张*`, `欧阳**`), or for a name with `·` the first character;
/// every other character masked, the dots kept.
fn mask_name(value: &[u8], surname: Option<usize>, out: &mut Vec<u8>) {
    let surname = surname.unwrap_or_else(|| super::fields::surname_len(value));
    let sl = surname.max(value.first().map_or(0, |&b| seq_len(b)));
    let sl = sl.min(value.len());
    out.extend_from_slice(&value[..sl]);
    let mut i = sl;
    while i < value.len() {
        let len = seq_len(value[i]).min(value.len() - i);
        let c = &value[i..i + len];
        if c == "·".as_bytes() || c == "•".as_bytes() {
            out.extend_from_slice(c);
        } else {
            out.push(b'*');
        }
        i += len;
    }
}

/// Length of the UTF-8 sequence starting with `b` (1 for ASCII and stray bytes).
fn seq_len(b: u8) -> usize {
    match b {
        0xC0..=0xDF => 2,
        0xE0..=0xEF => 3,
        0xF0..=0xF7 => 4,
        _ => 1,
    }
}

/// Keep `keep_head` and `keep_tail` characters, replace the other letters, digits and non-ASCII
/// characters with `*`, keep separators. When the value is too short for the style, at least
/// half of it is masked.
pub fn mask(value: &[u8], style: &MaskStyle, out: &mut Vec<u8>) {
    mask_kept(value, style, Kept::Unknown, out);
}

/// [`mask`], with what the detector worked out about the value: the surname or divisions a
/// `keep: surname` or `keep: division` mask keeps are not looked up again.
pub fn mask_kept(value: &[u8], style: &MaskStyle, kept: Kept, out: &mut Vec<u8>) {
    match style.keep {
        Some(Keep::Surname) => {
            let surname = match kept {
                Kept::Surname(n) => Some(usize::from(n)),
                _ => None,
            };
            return mask_name(value, surname, out);
        }
        Some(Keep::Division) => {
            // the divisions down to the district, then a fixed mask that does not tell the length
            let keep = match kept {
                Kept::Division(n) => usize::from(n).min(value.len()),
                _ => super::fields::division_len(value),
            };
            out.extend_from_slice(&value[..keep]);
            out.extend_from_slice(b"****");
            return;
        }
        None => {}
    }
    let (body, kept) = match style.keep_from {
        Some(c) if c.is_ascii() => match memchr::memchr(c as u8, value) {
            Some(p) => value.split_at(p),
            None => (value, &[][..]),
        },
        Some(c) => {
            let mut buf = [0u8; 4];
            let pat = c.encode_utf8(&mut buf).as_bytes();
            match memchr::memmem::find(value, pat) {
                Some(p) => value.split_at(p),
                None => (value, &[][..]),
            }
        }
        None => (value, &[][..]),
    };
    if super::prefilter::all_ascii_alphanumeric(body) {
        // fast path: plain ASCII value; copy it, then star the middle
        let n = body.len();
        let (head, tail) = kept_counts(style, n);
        let at = out.len();
        out.extend_from_slice(body);
        out[at + head..at + n - tail].fill(b'*');
        out.extend_from_slice(kept);
        return;
    }
    if body.is_ascii() {
        // ASCII with separators (`0371-6588-1234`): a byte is a character, no sequence lengths
        let n = body.iter().filter(|b| b.is_ascii_alphanumeric()).count();
        let (head, tail) = kept_counts(style, n);
        let at = out.len();
        out.extend_from_slice(body);
        let mut k = 0;
        for b in out[at..].iter_mut().filter(|b| b.is_ascii_alphanumeric()) {
            k += 1;
            if k > head && k <= n - tail {
                *b = b'*';
            }
        }
        out.extend_from_slice(kept);
        return;
    }
    mask_chars(body, style, out);
    out.extend_from_slice(kept);
}

/// How many of `n` characters a style keeps at the head and the tail: when the value is too short
/// for the style, at most a quarter at each end.
fn kept_counts(style: &MaskStyle, n: usize) -> (usize, usize) {
    let (head, tail) = (style.keep_head, style.keep_tail);
    if head + tail >= n { (head.min(n / 4), tail.min(n / 4)) } else { (head, tail) }
}

/// Mask `body` a character at a time (any UTF-8): letters, digits and non-ASCII characters
/// count; the style's head and tail are kept.
fn mask_chars(body: &[u8], style: &MaskStyle, out: &mut Vec<u8>) {
    let significant = |b: u8| b.is_ascii_alphanumeric() || b >= 0x80;
    // first pass: count significant characters
    let mut n = 0;
    let mut i = 0;
    while i < body.len() {
        let len = seq_len(body[i]).min(body.len() - i);
        n += usize::from(significant(body[i]));
        i += len;
    }
    let (head, tail) = kept_counts(style, n);
    // second pass: write, replacing the middle characters
    let mut k = 0;
    let mut i = 0;
    while i < body.len() {
        let b = body[i];
        let len = seq_len(b).min(body.len() - i);
        if significant(b) {
            if k < head || k >= n - tail {
                out.extend_from_slice(&body[i..i + len]);
            } else {
                out.push(b'*');
            }
            k += 1;
        } else {
            out.extend_from_slice(&body[i..i + len]);
        }
        i += len;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(v: &str, head: usize, tail: usize, from: Option<char>) -> String {
        let mut out = Vec::new();
        mask(v.as_bytes(), &MaskStyle { keep_head: head, keep_tail: tail, keep_from: from, keep: None }, &mut out);
        String::from_utf8(out).unwrap_or_default()
    }

    /// ASCII values are masked by byte, others by character: the same result wherever both apply
    /// (letters, digits, separators, keep counts longer than the value).
    #[test]
    fn ascii_masks_are_the_character_masks() {
        let values = ["0371-6588-1234", "138 0013 8000", "a-b", "-", "", "ab_cd.ef", "1", "(0371)65881234", "x--y--z"];
        for v in values {
            for (head, tail) in [(0, 0), (3, 4), (6, 4), (1, 0), (0, 9), (20, 20)] {
                let style = MaskStyle { keep_head: head, keep_tail: tail, keep_from: None, keep: None };
                let (mut by_byte, mut by_char) = (Vec::new(), Vec::new());
                mask(v.as_bytes(), &style, &mut by_byte);
                mask_chars(v.as_bytes(), &style, &mut by_char);
                assert_eq!(String::from_utf8_lossy(&by_byte), String::from_utf8_lossy(&by_char), "{v} {head} {tail}");
            }
        }
    }

    #[test]
    fn mask_styles() {
        assert_eq!(m("41010219690814392X", 6, 4, None), "410102********392X");
        assert_eq!(m("138-0013-8000", 3, 4, None), "138-****-8000");
        assert_eq!(m("chen_jing@163.com", 2, 0, Some('@')), "ch**_****@163.com");
        assert_eq!(m("豫F07963", 2, 1, None), "豫F****3");
        assert_eq!(m("机密", 0, 0, None), "**");
        assert_eq!(m("ab", 3, 4, None), "**");
    }

    #[test]
    fn names_keep_the_surname_and_addresses_the_divisions() {
        let by = |v: &str, keep| {
            let mut out = Vec::new();
            mask(v.as_bytes(), &MaskStyle { keep: Some(keep), ..MaskStyle::default() }, &mut out);
            String::from_utf8(out).unwrap_or_default()
        };
        assert_eq!(by("张伟", Keep::Surname), "张*");
        assert_eq!(by("欧阳娜娜", Keep::Surname), "欧阳**");
        assert_eq!(by("阿依古丽·买买提", Keep::Surname), "阿***·***");
        assert_eq!(by("河南省郑州市金水区文化路85号3号楼2单元1501室", Keep::Division), "河南省郑州市金水区****");
        assert_eq!(by("郑州金水区文化路85号", Keep::Division), "郑州金水区****");
        assert_eq!(by("文化路85号", Keep::Division), "****");
    }

    #[test]
    fn fingerprint_is_keyed_and_canonical() {
        let k1 = HashKey::new(b"0123456789abcdef");
        let k2 = HashKey::new(b"fedcba9876543210");
        assert_eq!(k1.fingerprint(b"138-0013-8000"), k1.fingerprint(b"13800138000"));
        assert_ne!(k1.fingerprint(b"13800138000"), k2.fingerprint(b"13800138000"));
        assert_eq!(k1.fingerprint(b"x").len(), 16);
        // pinned: HMAC-SHA256 of the canonical form, first 8 bytes in hex (Python's hmac agrees)
        assert_eq!(k1.fingerprint(b"138-0013-8000"), "523ecb4056848964");
        assert_eq!(k1.fingerprint("110105194912310021x 居民".as_bytes()), "8e912771ef674bbe");
        // a canonical form longer than one buffer
        let long: Vec<u8> = (0..200u8).map(|i| b'a' + i % 26).collect();
        let want: String = long.iter().map(|b| b.to_ascii_uppercase() as char).collect();
        assert_eq!(k1.fingerprint(&long), k1.fingerprint(want.as_bytes()));
    }
}

#[cfg(test)]
mod hmac_tests {
    use super::HashKey;

    /// Issue 17: the same key as HMAC-SM3 gives other tokens, equally canonical, and agrees with
    /// HMAC-SM3 computed from its definition.
    #[test]
    fn sm3_fingerprints_are_hmac_sm3() {
        let k = HashKey::new(b"fingerprint-key-0123456789abcdef");
        let sm3 = k.sm3();
        assert_ne!(k.fingerprint(b"13800138000"), sm3.fingerprint(b"13800138000"));
        assert_eq!(sm3.fingerprint(b"138-0013-8000"), sm3.fingerprint(b"13800138000"));
        // RFC 2104 over SM3 (GB/T 32905), by hand
        use sm3::Digest;
        let key = b"fingerprint-key-0123456789abcdef";
        let mut block = [0u8; 64];
        block[..key.len()].copy_from_slice(key);
        let inner = sm3::Sm3::new().chain_update(block.map(|b| b ^ 0x36)).chain_update(b"13800138000").finalize();
        let outer = sm3::Sm3::new().chain_update(block.map(|b| b ^ 0x5c)).chain_update(inner).finalize();
        let hex: String = outer.iter().take(8).map(|b| format!("{b:02x}")).collect();
        assert_eq!(sm3.fingerprint(b"13800138000"), hex);
    }
}
