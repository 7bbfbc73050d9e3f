//! The prefilter of the built-in detectors: which digit runs of the normalized text are worth a
//! look, decided 64 bytes at a time from SIMD bitmaps (AVX2 where the CPU has it, chosen at run
//! time; SSE2/NEON through `wide` otherwise), plus the word-at-a-time (SWAR) class scans the
//! detectors use. It finds nothing itself: [`super::builtin`] looks at the runs it reports and the
//! validators decide.

/// High bit set in each byte of `w` that is an ASCII digit.
#[inline]
pub(crate) fn digit_mask(w: u64) -> u64 {
    const LO: u64 = 0x0101_0101_0101_0101;
    const HI: u64 = 0x8080_8080_8080_8080;
    let x = w & !HI; // clear top bits so the additions cannot carry across bytes
    let ge30 = x.wrapping_add(LO * (0x80 - 0x30));
    let ge3a = x.wrapping_add(LO * (0x80 - 0x3A));
    ge30 & !ge3a & !w & HI
}

#[inline]
pub(crate) fn load(t: &[u8], i: usize) -> u64 {
    let mut w = [0u8; 8];
    w.copy_from_slice(&t[i..i + 8]);
    u64::from_le_bytes(w)
}

/// High bit set in each byte of `w` that is an ASCII letter or digit.
#[inline]
pub(crate) fn alnum_mask(w: u64) -> u64 {
    const LO: u64 = 0x0101_0101_0101_0101;
    const HI: u64 = 0x8080_8080_8080_8080;
    let x = (w | (LO * 0x20)) & !HI; // fold case; clear top bits so additions cannot carry
    let ge61 = x.wrapping_add(LO * (0x80 - 0x61));
    let ge7b = x.wrapping_add(LO * (0x80 - 0x7B));
    digit_mask(w) | (ge61 & !ge7b & !w & HI)
}

/// Whether every byte of `v` is an ASCII letter or digit, eight bytes at a time.
pub(crate) fn all_ascii_alphanumeric(v: &[u8]) -> bool {
    const HI: u64 = 0x8080_8080_8080_8080;
    let words = v.chunks_exact(8);
    let rest = words.remainder();
    words.map(|c| load(c, 0)).all(|w| alnum_mask(w) == HI) && rest.iter().all(u8::is_ascii_alphanumeric)
}

/// End of the run of bytes of a class starting at `i`, eight bytes at a time: `mask` sets the high
/// bit of each byte of a word that is in the class, `is` tests one byte.
#[inline]
pub(crate) fn class_end(t: &[u8], mut i: usize, mask: impl Fn(u64) -> u64, is: impl Fn(&u8) -> bool) -> usize {
    const HI: u64 = 0x8080_8080_8080_8080;
    while i + 8 <= t.len() {
        let other = !mask(load(t, i)) & HI;
        if other != 0 {
            return i + (other.trailing_zeros() / 8) as usize;
        }
        i += 8;
    }
    while i < t.len() && is(&t[i]) {
        i += 1;
    }
    i
}

/// End of the run of ASCII letters and digits starting at `i`.
#[inline]
pub(crate) fn alnum_end(t: &[u8], i: usize) -> usize {
    class_end(t, i, alnum_mask, u8::is_ascii_alphanumeric)
}

/// End of the digit run starting at `i`.
#[inline]
pub(crate) fn digits_end(t: &[u8], i: usize) -> usize {
    class_end(t, i, digit_mask, u8::is_ascii_digit)
}

/// Bitmaps of one 64-byte window (bit `i` = byte `i`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Window {
    /// ASCII digits
    digit: u64,
    /// what makes the run after it worth a look: a word character (letter, digit, `*`, `_`), or the
    /// last byte of `·`/`•` (a plate's middle dot)
    prev_hot: u64,
    /// what makes the run before it worth a look: a word character or a chain separator (` `, `-`, `)`)
    next_hot: u64,
    dot: u64,
    /// ASCII letters and digits
    alnum: u64,
    /// what joins digit groups into a chain: ` `, `-`, `)`
    sep: u64,
    /// `@`, for the e-mail detector
    at: u64,
    /// first byte of an ideograph (`E4`–`E9`), for field context
    lead: u64,
    /// what may stand before a value: `"` `'` `>` `=` `:` `,` tab, newline, space
    delim: u64,
    /// `E5`–`E7`: the first byte of 号, 弄, 栋, 幢, 室, 组 (the house marks of `fields`)
    house_lead: u64,
}

/// Positions the pass notes on its way for the detectors that are not digit runs.
#[derive(Debug, Default)]
pub(crate) struct Marks {
    /// every `@` (for [`scan_emails`])
    pub at: Vec<usize>,
    /// note value candidates (when some rule has fields)
    pub want_values: bool,
    /// `p << 1`: an ideograph after a delimiter (or at 0), where a value may start;
    /// `p << 1 | 1`: an `E5`/`E6` byte after an ASCII digit, where a house number may end
    pub values: Vec<usize>,
    /// `values` was filled by this pass
    pub values_done: bool,
}

/// Value delimiters (`\t` `\n` ` ` `"` `'` `,` `:` `=` `>`) by nibble: each low nibble's classes,
/// each high nibble's class (1: `0x0_`, 2: `0x2_`, 4: `0x3_`); a byte is one when they share a bit.
const DELIM_LO: [u8; 16] = [2, 0, 2, 0, 0, 0, 0, 2, 0, 1, 5, 0, 2, 4, 4, 0];
const DELIM_HI: [u8; 16] = [1, 0, 2, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];

/// Computes a [`Window`]; one implementation per instruction set, all giving the same bitmaps.
pub(crate) trait Classify: Copy {
    /// `V`: also the bitmaps for value candidates (`lead`, `delim`, `house_lead`).
    fn classify<const V: bool>(self, w: &[u8; 64]) -> Window;
}

/// Sixteen bytes at a time: SSE2 (any x86-64) or NEON through `wide`, plain code elsewhere.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Portable;

impl Classify for Portable {
    #[inline(always)]
    fn classify<const V: bool>(self, w: &[u8; 64]) -> Window {
        Window::classify::<V>(w)
    }
}

/// Thirty-two bytes at a time with AVX2. Only reachable through `V3::try_new`, that is on a CPU
/// that has it, and only fast inside `V3::vectorize` (see [`Builtins::scan`]).
#[cfg(target_arch = "x86_64")]
impl Classify for pulp::x86::V3 {
    #[inline(always)]
    fn classify<const V: bool>(self, w: &[u8; 64]) -> Window {
        use std::arch::x86_64::__m256i;
        let (avx, avx2) = (self.avx, self.avx2);
        let splat = |b: u8| avx._mm256_set1_epi8(i8::from_ne_bytes([b]));
        let or = |a: __m256i, b: __m256i| avx2._mm256_or_si256(a, b);
        // (an older LLVM fused the two halves' masks into one 64-lane vector, which AVX2 lacks, and
        // took it apart byte by byte, so each mask went through `black_box`; the compiler in use
        // keeps them apart: 1.9 % fewer instructions on PII-dense JSON without it, and API JSON
        // scans at 2.3x the multi-regex baseline, as before)
        let bits = |v: __m256i| u64::from(u32::from_ne_bytes(avx2._mm256_movemask_epi8(v).to_ne_bytes()));
        let halves: [__m256i; 2] = pulp::cast(*w);
        let mut m = Window::default();
        let table = |t: [u8; 16]| -> __m256i {
            let mut both = [0u8; 32];
            both[..16].copy_from_slice(&t);
            both[16..].copy_from_slice(&t);
            pulp::cast(both)
        };
        let delim_lo = table(DELIM_LO);
        let delim_hi = table(DELIM_HI);
        for (j, x) in halves.into_iter().enumerate() {
            let eq = |b: u8| avx2._mm256_cmpeq_epi8(x, splat(b));
            let dx = avx2._mm256_sub_epi8(x, splat(b'0'));
            let digit = avx2._mm256_cmpeq_epi8(avx2._mm256_min_epu8(dx, splat(9)), dx);
            let lx = avx2._mm256_sub_epi8(or(x, splat(0x20)), splat(b'a'));
            let alpha = avx2._mm256_cmpeq_epi8(avx2._mm256_min_epu8(lx, splat(25)), lx);
            let alnum = or(digit, alpha);
            let word = or(alnum, or(eq(b'*'), eq(b'_')));
            let sep = or(eq(b' '), or(eq(b'-'), eq(b')')));
            let sh = 32 * j;
            m.digit |= bits(digit) << sh;
            m.prev_hot |= bits(or(word, or(eq(0xB7), eq(0xA2)))) << sh;
            m.next_hot |= bits(or(word, sep)) << sh;
            m.sep |= bits(sep) << sh;
            m.dot |= bits(eq(b'.')) << sh;
            m.alnum |= bits(alnum) << sh;
            m.at |= bits(eq(b'@')) << sh;
            if !V {
                continue;
            }
            let ix = avx2._mm256_sub_epi8(x, splat(0xE4));
            m.lead |= bits(avx2._mm256_cmpeq_epi8(avx2._mm256_min_epu8(ix, splat(5)), ix)) << sh;
            // the delimiters by nibble lookup: three classes by high nibble (0: tab, newline;
            // 2: space " ' ,; 3: : = >), each low nibble's classes in one table
            let lo = avx2._mm256_and_si256(x, splat(0x0F));
            let hi = avx2._mm256_and_si256(avx2._mm256_srli_epi16::<4>(x), splat(0x0F));
            let d =
                avx2._mm256_and_si256(avx2._mm256_shuffle_epi8(delim_lo, lo), avx2._mm256_shuffle_epi8(delim_hi, hi));
            let none = avx2._mm256_cmpeq_epi8(d, splat(0));
            m.delim |= (!bits(none) & u64::from(u32::MAX)) << sh;
            m.house_lead |= bits(or(or(eq(0xE5), eq(0xE6)), eq(0xE7))) << sh;
        }
        m
    }
}

impl Window {
    /// Classify 64 bytes, sixteen at a time (SSE2 or NEON through `wide`; plain code elsewhere).
    #[inline(always)]
    pub(crate) fn classify<const V: bool>(w: &[u8; 64]) -> Window {
        use wide::u8x16;
        let mut m = Window::default();
        for (j, chunk) in w.chunks_exact(16).enumerate() {
            let mut a = [0u8; 16];
            a.copy_from_slice(chunk);
            let x = u8x16::from(a);
            let eq = |b: u8| x.simd_eq(u8x16::splat(b));
            let dx = x - u8x16::splat(b'0');
            let digit = dx.min(u8x16::splat(9)).simd_eq(dx);
            let lx = (x | u8x16::splat(0x20)) - u8x16::splat(b'a');
            let alpha = lx.min(u8x16::splat(25)).simd_eq(lx);
            let word = digit | alpha | eq(b'*') | eq(b'_');
            let sh = 16 * j;
            m.digit |= u64::from(digit.to_bitmask()) << sh;
            m.prev_hot |= u64::from((word | eq(0xB7) | eq(0xA2)).to_bitmask()) << sh;
            let sep = eq(b' ') | eq(b'-') | eq(b')');
            m.next_hot |= u64::from((word | sep).to_bitmask()) << sh;
            m.sep |= u64::from(sep.to_bitmask()) << sh;
            m.dot |= u64::from(eq(b'.').to_bitmask()) << sh;
            m.alnum |= u64::from((digit | alpha).to_bitmask()) << sh;
            m.at |= u64::from(eq(b'@').to_bitmask()) << sh;
            if !V {
                continue;
            }
            let ix = x - u8x16::splat(0xE4);
            m.lead |= u64::from(ix.min(u8x16::splat(5)).simd_eq(ix).to_bitmask()) << sh;
            let d = eq(b'"') | eq(b'\'') | eq(b'>') | eq(b'=') | eq(b':') | eq(b',') | eq(b'\t') | eq(b'\n') | eq(b' ');
            m.delim |= u64::from(d.to_bitmask()) << sh;
            m.house_lead |= u64::from((eq(0xE5) | eq(0xE6) | eq(0xE7)).to_bitmask()) << sh;
        }
        m
    }
}

/// Call `f(start, end, dead)` for every digit run, in order, that could be (part of) anything a detector
/// finds; the others are exactly the runs [`Builtins::at_digit`] would pass over with nothing found:
/// at most nine digits, not touching a word, not followed by a chain separator (or by a dot, for the
/// three-digit head of an IPv4 address or a dotted mobile), and not after a plate's middle dot.
///
/// The test runs on whole 64-byte windows with bit operations, so a boring run (most numbers in API
/// JSON: ids, amounts, times) costs no branch at all: a run is decided at the byte after it, where
/// its length (from the digit bitmap) and its next byte are known; a hot byte before the run is
/// carried to that point by adding the run's start bit to the digit bitmap.
///
/// `dead` says the run cannot lead to a finding after all, from a closer look at the
/// window's bitmaps: it starts a chain of fewer than ten digits ([`short_chain`]) or lies in a token
/// no detector matches ([`dead_token`]).
///
/// On the way, the position of every `@` is noted in `marks` (for [`scan_emails`]), and when
/// asked, where values and house numbers may be (for [`super::fields`]).
#[inline(always)]
pub(crate) fn for_each_hot_run<const V: bool>(
    c: impl Classify,
    t: &[u8],
    marks: &mut Marks,
    mut f: impl FnMut(usize, usize, bool),
) {
    marks.at.clear();
    marks.values.clear();
    marks.values_done = V;
    let n = t.len();
    let mut prev = Window::default();
    let mut carry = 0u64; // a flagged run runs on into this window
    let mut last_start = 0; // start of the last run that began in an earlier window
    let mut w = 0;
    loop {
        let m = match t.get(w..w + 64).and_then(|c| <&[u8; 64]>::try_from(c).ok()) {
            Some(full) => c.classify::<V>(full),
            None => {
                // the last window, zero-padded: it holds position `n`, where a final run ends
                let mut buf = [0u8; 64];
                buf[..n - w].copy_from_slice(&t[w..]);
                c.classify::<V>(&buf)
            }
        };
        let d = m.digit;
        let d_before = (d << 1) | (prev.digit >> 63); // bit p: byte p-1 is a digit
        let starts = d & !d_before;
        let ends = !d & d_before; // bit p: byte p is the first after a run
        // runs after a hot byte: add the start bit, the carry ripples through the run to its end
        let flagged = starts & ((m.prev_hot << 1) | (prev.prev_hot >> 63));
        let (sum, c1) = d.overflowing_add(flagged);
        let (sum, c2) = sum.overflowing_add(carry);
        carry = u64::from(c1 | c2);
        let after_hot = sum & !d;
        // run lengths at their end, from the digit bitmap of this and the previous window
        let dd = (u128::from(d) << 64) | u128::from(prev.digit);
        let r2 = dd & (dd << 1);
        let r4 = r2 & (r2 << 2);
        let r10 = r4 & (r4 << 4) & (r2 << 8); // bit q: bytes q-9..=q are digits
        let ge4 = ((r4 << 1) >> 64) as u64; // bit p: bytes p-4..p are digits
        let ge10 = ((r10 << 1) >> 64) as u64;
        let mut at = m.at;
        while at != 0 {
            marks.at.push(w + at.trailing_zeros() as usize);
            at &= at - 1;
        }
        if V && m.lead != 0 {
            let starts = m.lead & ((m.delim << 1) | (prev.delim >> 63) | u64::from(w == 0));
            let house = m.house_lead & ((d << 1) | (prev.digit >> 63));
            let mut v = starts | house;
            while v != 0 {
                let bit = v.trailing_zeros();
                v &= v - 1;
                marks.values.push((w + bit as usize) << 1 | (house >> bit & 1) as usize);
            }
        }
        let mut hot = after_hot | (ends & (m.next_hot | ge10 | (m.dot & !ge4)));
        while hot != 0 {
            let e = hot.trailing_zeros();
            hot &= hot - 1;
            let below = starts & ((1u64 << e) - 1);
            let s = if below != 0 { w + 63 - below.leading_zeros() as usize } else { last_start };
            // worth a look only for the separator after it: dead when the chain it starts is short
            let only_sep = (m.sep & !after_hot & !ge10) >> e & 1 == 1;
            let dead = s >= w && ((only_sep && short_chain(&m, s - w)) || dead_token(t, &m, w, s - w, e as usize));
            f(s, w + e as usize, dead);
        }
        if starts != 0 {
            last_start = w + 63 - starts.leading_zeros() as usize;
        }
        prev = m;
        if w + 64 > n {
            break;
        }
        w += 64;
    }
}

/// Whether the digits joined to the run starting at window bit `ps` by single separators number
/// fewer than ten. Only asked for a run that is worth a look for nothing but the separator after
/// it; [`Builtins::at_digit`] then finds nothing there (it needs ten digits in the chain) and the
/// chain's later groups are looked at on their own. `false` when the chain may run past the window.
pub(crate) fn short_chain(m: &Window, ps: usize) -> bool {
    let d = m.digit;
    // digits, separators between two digits, and pairs of separators between two digits (the
    // chain builder joins groups across two spaces)
    let pair_first = m.sep & (d << 1) & (m.sep >> 1) & (d >> 2);
    let pair_second = m.sep & (m.sep << 1) & (d << 2) & (d >> 1);
    let chained = d | (m.sep & (d << 1) & (d >> 1)) | pair_first | pair_second;
    let len = (!(chained >> ps)).trailing_zeros() as usize;
    if ps + len >= 62 {
        // a separator (or a pair) in the last bytes is not in `chained` yet: the chain may go on
        return false;
    }
    (d & (((1u64 << len) - 1) << ps)).count_ones() < 10
}

/// Whether the digit run at window bits `ps..pe` (window at `w`) touches a letter and lies in an
/// alphanumeric token that no detector can match, decided from the window's bitmaps. Such a run
/// goes to [`Builtins::token`] (a letter beside it rules out every other path), which finds only
/// USCCs (18 characters), passports and permits (9), and plates (5–7, after a province or a middle
/// dot, that is after a non-ASCII byte). `false` whenever the token is not wholly inside the
/// window, or the run ends in an `X` check character (the ID card path).
pub(crate) fn dead_token(t: &[u8], m: &Window, w: usize, ps: usize, pe: usize) -> bool {
    let letters = m.alnum & !m.digit;
    if ps == 0 || (letters >> (ps - 1)) & 1 == 0 && (letters >> pe) & 1 == 0 {
        return false;
    }
    if matches!(t.get(w + pe), Some(b'X' | b'x')) {
        return false;
    }
    let below = !m.alnum & ((1u64 << ps) - 1);
    let above = !m.alnum & !((1u64 << pe) - 1);
    if below == 0 || above == 0 {
        return false;
    }
    let ts = 64 - below.leading_zeros() as usize; // just past the last non-alphanumeric byte
    let te = above.trailing_zeros() as usize;
    match te - ts {
        9 | 18 => false,
        5..=7 => t[w + ts - 1] < 0x80,
        _ => true,
    }
}
