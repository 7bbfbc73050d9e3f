//! Checksum and plausibility validators. Each takes the canonical value (ASCII, separators removed)
//! and says whether it is a real identifier. They decide; the scanners only propose candidates.

/// Province-level codes of GB/T 2260 (first two digits of a resident ID / region code).
const PROVINCES: &[u8] = &[
    11, 12, 13, 14, 15, 21, 22, 23, 31, 32, 33, 34, 35, 36, 37, 41, 42, 43, 44, 45, 46, 50, 51, 52, 53, 54, 61, 62, 63,
    64, 65, 71, 81, 82, 91,
];

/// [`PROVINCES`] as a bit set (bit `p` for code `p`), for a lookup without a search.
const PROVINCE_BITS: u128 = {
    let mut bits = 0u128;
    let mut i = 0;
    while i < PROVINCES.len() {
        bits |= 1 << PROVINCES[i];
        i += 1;
    }
    bits
};

fn digit(b: u8) -> Option<u32> {
    b.is_ascii_digit().then(|| u32::from(b - b'0'))
}

fn num(s: &[u8]) -> Option<u32> {
    s.iter().try_fold(0u32, |acc, &b| Some(acc * 10 + digit(b)?))
}

/// A plausible GB/T 2260 region code: known province, city and county parts not both zero.
pub fn region_code(code: &[u8]) -> bool {
    let (Some(p), Some(city), Some(county)) =
        (num(code.get(0..2).unwrap_or(b"")), num(code.get(2..4).unwrap_or(b"")), num(code.get(4..6).unwrap_or(b"")))
    else {
        return false;
    };
    if code.len() != 6 || (PROVINCE_BITS >> p) & 1 == 0 {
        return false;
    }
    // municipalities use city codes 01/02; other provinces at most 90 prefectures
    let municipality = matches!(p, 11 | 12 | 31 | 50);
    if municipality && city > 2 {
        return false;
    }
    if p >= 71 {
        return city == 0 && county == 0; // Taiwan, HK, Macau: 710000 / 810000 / 820000
    }
    city <= 90 && county <= 99 && !(city == 0 && county != 0)
}

fn leap(y: u32) -> bool {
    (y % 4 == 0 && y % 100 != 0) || y % 400 == 0
}

/// A real calendar date between 1900-01-01 and 2099-12-31.
pub fn date(y: u32, m: u32, d: u32) -> bool {
    if !(1900..=2099).contains(&y) || !(1..=12).contains(&m) || d == 0 {
        return false;
    }
    let days = match m {
        2 if leap(y) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    };
    d <= days
}

/// GB 11643 18-character resident ID: region code, real birth date, ISO 7064 MOD 11-2 check
/// character (`X` or `x` for 10).
pub fn cn_id_card(v: &[u8]) -> bool {
    if v.len() != 18 || !v[..17].iter().all(u8::is_ascii_digit) {
        return false;
    }
    if !region_code(&v[..6]) {
        return false;
    }
    let (Some(y), Some(m), Some(d)) = (num(&v[6..10]), num(&v[10..12]), num(&v[12..14])) else {
        return false;
    };
    if !date(y, m, d) {
        return false;
    }
    const W: [u32; 17] = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2];
    let sum: u32 = v[..17].iter().zip(W).map(|(&b, w)| u32::from(b - b'0') * w).sum();
    let check = b"10X98765432"[(sum % 11) as usize];
    v[17].to_ascii_uppercase() == check
}

/// Legacy 15-digit resident ID: region code and a real 19YY birth date (no check digit exists).
pub fn cn_id_card_15(v: &[u8]) -> bool {
    if v.len() != 15 || !v.iter().all(u8::is_ascii_digit) || !region_code(&v[..6]) {
        return false;
    }
    let (Some(y), Some(m), Some(d)) = (num(&v[6..8]), num(&v[8..10]), num(&v[10..12])) else {
        return false;
    };
    date(1900 + y, m, d)
}

/// GB 32100 unified social credit code alphabet (no I, O, S, V, Z).
const USCC_ALPHA: &[u8; 31] = b"0123456789ABCDEFGHJKLMNPQRTUWXY";

/// Each byte's value in [`USCC_ALPHA`], or `NONE`: one load a character instead of a search.
const USCC_VALUE: [u8; 256] = {
    let mut t = [USCC_NONE; 256];
    let mut i = 0;
    while i < USCC_ALPHA.len() {
        t[USCC_ALPHA[i] as usize] = i as u8;
        i += 1;
    }
    t
};
const USCC_NONE: u8 = u8::MAX;

#[inline]
fn uscc_value(c: u8) -> Option<u32> {
    let v = USCC_VALUE[usize::from(c)];
    (v != USCC_NONE).then_some(u32::from(v))
}

/// GB 32100 unified social credit code: legal alphabet, registration authority, region code and
/// the mod-31 check character.
pub fn cn_uscc(v: &[u8]) -> bool {
    if v.len() != 18 {
        return false;
    }
    // registration management department: 1-9, A-G, Y; organisation type: 1-9 or Y-like letters
    if !matches!(v[0], b'1'..=b'9' | b'A'..=b'G' | b'Y') || !matches!(v[1], b'1'..=b'9' | b'A'..=b'Z') {
        return false;
    }
    if !region_code(&v[2..8]) {
        return false;
    }
    const W: [u32; 17] = [1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28];
    let mut sum = 0;
    for (i, w) in W.iter().enumerate() {
        let Some(x) = uscc_value(v[i]) else { return false };
        sum += x * w;
    }
    let check = (31 - sum % 31) % 31;
    uscc_value(v[17]) == Some(check)
}

/// Luhn mod-10 over ASCII digits.
pub fn luhn(v: &[u8]) -> bool {
    if v.is_empty() || !v.iter().all(u8::is_ascii_digit) {
        return false;
    }
    if v.len() <= 24 {
        return luhn_swar(v);
    }
    // every second digit from the right is doubled, its digits summed: a table, not a branch
    const DOUBLED: [u32; 10] = [0, 2, 4, 6, 8, 1, 3, 5, 7, 9];
    let mut sum = 0;
    let mut it = v.iter().rev();
    while let Some(&b) = it.next() {
        sum += u32::from(b - b'0');
        let Some(&b) = it.next() else { break };
        sum += DOUBLED[usize::from(b - b'0').min(9)];
    }
    sum % 10 == 0
}

/// Luhn over at most 24 ASCII digits, eight at a time: right-aligned in 24 bytes (zeros in
/// front), a byte is doubled when its distance from the last is odd, that is at even offsets.
fn luhn_swar(v: &[u8]) -> bool {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const EVEN: u64 = 0x00FF_00FF_00FF_00FF; // bytes 0, 2, 4, 6 of each word
    let mut buf = [b'0'; 24];
    buf[24 - v.len()..].copy_from_slice(v);
    let mut sum = 0;
    for word in buf.chunks_exact(8) {
        let mut b = [0u8; 8];
        b.copy_from_slice(word);
        let d = u64::from_le_bytes(b) - ONES * u64::from(b'0'); // digits 0..=9, no borrow
        let doubled = d & EVEN;
        // 2d, less 9 where d >= 5 (d + 3 has bit 3 set exactly then): the digit sum of 2d
        let five_up = ((doubled + ONES * 3) >> 3) & ONES;
        let t = (d & !EVEN) + (doubled << 1) - five_up * 9; // every byte <= 9
        sum += t.wrapping_mul(ONES) >> 56; // sum of the bytes, at most 72
    }
    sum % 10 == 0
}

/// Payment card: Luhn plus an issuer prefix whose scheme allows this length (UnionPay 62, Visa 4,
/// Mastercard 51–55 / 2221–2720, Amex 34/37, JCB 35, Discover 60/65).
pub fn bank_card(v: &[u8]) -> bool {
    let n = v.len();
    if !(13..=19).contains(&n) {
        return false;
    }
    let p2 = num(&v[..2]).unwrap_or(0);
    let p4 = num(&v[..4]).unwrap_or(0);
    let scheme_allows = match p2 {
        62 | 60 | 65 | 35 => (16..=19).contains(&n),
        40..=49 => matches!(n, 13 | 16 | 19),
        51..=55 => n == 16,
        34 | 37 => n == 15,
        22..=27 => n == 16 && (2221..=2720).contains(&p4),
        _ => false,
    };
    scheme_allows && luhn(v)
}

/// Mainland mobile number: 11 digits with an allocated 1xx prefix.
pub fn cn_mobile(v: &[u8]) -> bool {
    if v.len() != 11 || v[0] != b'1' || !v.iter().all(u8::is_ascii_digit) {
        return false;
    }
    let (a, b) = (v[1], v[2]);
    match a {
        b'3' | b'8' => true,
        b'4' => matches!(b, b'5'..=b'9'),
        b'5' => b != b'4',
        b'6' => matches!(b, b'2' | b'5' | b'6' | b'7'),
        b'7' => matches!(b, b'0'..=b'8'),
        b'9' => b != b'4',
        _ => false,
    }
}

/// Mainland landline with area code: `010`/`02x` + 8 digits, or `0xxx` + 7–8 digits; local numbers
/// do not start with 0 or 1.
pub fn cn_landline(v: &[u8]) -> bool {
    if !(10..=12).contains(&v.len()) || v[0] != b'0' || !v.iter().all(u8::is_ascii_digit) {
        return false;
    }
    let short_area = v[1] == b'1' || v[1] == b'2';
    let area_len = if short_area { 3 } else { 4 };
    if v[1] == b'0' || (v[1] == b'1' && v[2] != b'0') {
        return false;
    }
    let local = &v[area_len..];
    let ok_len = if short_area { local.len() == 8 } else { matches!(local.len(), 7 | 8) };
    ok_len && matches!(local[0], b'2'..=b'9')
}

/// Chinese passport: `E`/`G` + 8 digits, or `E` + letter (not I/O) + 7 digits.
pub fn cn_passport(v: &[u8]) -> bool {
    if v.len() != 9 {
        return false;
    }
    match v[0] {
        b'G' | b'E' if v[1..].iter().all(u8::is_ascii_digit) => true,
        b'E' => matches!(v[1], b'A'..=b'H' | b'J'..=b'N' | b'P'..=b'Z') && v[2..].iter().all(u8::is_ascii_digit),
        _ => false,
    }
}

/// Mainland travel permit for Hong Kong and Macau: `C`/`H`/`M` + 8 digits, or `C` + letter
/// (not I/O) + 7 digits. The shape is weak, so rules using it should require context words.
pub fn cn_hk_macau_permit(v: &[u8]) -> bool {
    if v.len() != 9 {
        return false;
    }
    match v[0] {
        b'C' | b'H' | b'M' if v[1..].iter().all(u8::is_ascii_digit) => true,
        b'C' => matches!(v[1], b'A'..=b'H' | b'J'..=b'N' | b'P'..=b'Z') && v[2..].iter().all(u8::is_ascii_digit),
        _ => false,
    }
}

/// Dotted-quad IPv4 with octets 0–255 and no leading zeros.
pub fn ipv4(v: &[u8]) -> bool {
    let mut parts = 0;
    for part in v.split(|&b| b == b'.') {
        parts += 1;
        if part.is_empty() || part.len() > 3 || (part.len() > 1 && part[0] == b'0') {
            return false;
        }
        match num(part) {
            Some(n) if n <= 255 => {}
            _ => return false,
        }
    }
    parts == 4
}

/// Validators that rule files may name for `regex` detectors.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Validator {
    Luhn,
    BankCard,
    CnIdCard,
    CnIdCard15,
    CnUscc,
    CnMobile,
    CnLandline,
    Ipv4,
}

impl Validator {
    pub fn from_name(name: &str) -> Option<Self> {
        Some(match name {
            "luhn" => Self::Luhn,
            "bank_card" => Self::BankCard,
            "cn_id_card" => Self::CnIdCard,
            "cn_id_card_15" => Self::CnIdCard15,
            "cn_uscc" => Self::CnUscc,
            "cn_mobile" => Self::CnMobile,
            "cn_landline" => Self::CnLandline,
            "ipv4" => Self::Ipv4,
            _ => return None,
        })
    }

    pub const NAMES: &'static str = "luhn, bank_card, cn_id_card, cn_id_card_15, cn_uscc, cn_mobile, cn_landline, ipv4";

    /// Check a candidate; separators and non-alphanumerics are ignored, letters uppercased.
    pub fn check(self, candidate: &[u8]) -> bool {
        let canon: Vec<u8> =
            candidate.iter().filter(|b| b.is_ascii_alphanumeric() || **b == b'.').map(u8::to_ascii_uppercase).collect();
        match self {
            Self::Luhn => luhn(&canon),
            Self::BankCard => bank_card(&canon),
            Self::CnIdCard => cn_id_card(&canon),
            Self::CnIdCard15 => cn_id_card_15(&canon),
            Self::CnUscc => cn_uscc(&canon),
            Self::CnMobile => cn_mobile(&canon),
            Self::CnLandline => cn_landline(&canon),
            Self::Ipv4 => ipv4(&canon),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The table gives every byte its place in the alphabet, and nothing to the letters GB 32100
    /// leaves out or to any other byte.
    #[test]
    fn uscc_values_are_places_in_the_alphabet() {
        for b in 0..=255u8 {
            let place = USCC_ALPHA.iter().position(|&a| a == b).map(|p| p as u32);
            assert_eq!(uscc_value(b), place, "byte {b:#04x}");
        }
        assert_eq!(uscc_value(b'Y'), Some(30));
        assert_eq!(uscc_value(b'I'), None);
    }

    /// (validator, value, expected) tables; known-good values are synthetic with valid check digits.
    #[test]
    fn validators_against_known_values() {
        type F = fn(&[u8]) -> bool;
        let cases: &[(&str, F, &str, bool)] = &[
            ("id", cn_id_card, "11010519491231002X", true),
            ("id", cn_id_card, "11010519491231002x", true),
            ("id", cn_id_card, "41010320030116279X", true),
            ("id", cn_id_card, "340102194303289206", true),
            ("id", cn_id_card, "110101197006109480", false), // bad checksum
            ("id", cn_id_card, "410105195019101802", false), // month 19
            ("id", cn_id_card, "410106202203156582", false), // serial number, bad check
            ("id", cn_id_card, "114101224960478647", false), // USCC-like, bad region/date
            ("id", cn_id_card, "11010519491231002", false),
            ("id15", cn_id_card_15, "440306500105416", true),
            ("id15", cn_id_card_15, "410185540625023", true),
            ("id15", cn_id_card_15, "350974769284094", false), // IMEI
            ("id15", cn_id_card_15, "861751068741749", false), // IMEI
            ("id15", cn_id_card_15, "410102067782604", false), // registration number
            ("uscc", cn_uscc, "91410700425648857P", true),
            ("uscc", cn_uscc, "51410100MAX3F7L8XL", true),
            ("uscc", cn_uscc, "914101027085790701", true),
            ("uscc", cn_uscc, "Y1410102675582571G", true),
            ("uscc", cn_uscc, "91110105MAKXE6PX5A", false), // bad check
            ("uscc", cn_uscc, "Y141012271459S97XH", false), // S not in alphabet
            ("card", bank_card, "6212265658323320978", true),
            ("card", bank_card, "5525996473976268", true),
            ("card", bank_card, "6214830341106600", false), // Luhn fails
            ("card", bank_card, "1891883329151136826", false), // snowflake id
            ("card", bank_card, "20231201155129371", false), // timestamp
            ("mobile", cn_mobile, "13800138000", true),
            ("mobile", cn_mobile, "19290338476", true),
            ("mobile", cn_mobile, "10663603756", false),
            ("mobile", cn_mobile, "19435092474", false),
            ("mobile", cn_mobile, "20234806122", false),
            ("landline", cn_landline, "02038022566", true),
            ("landline", cn_landline, "03727265742", true),
            ("landline", cn_landline, "01062345678", true),
            ("landline", cn_landline, "0372026574", false),
            ("passport", cn_passport, "E02360901", true),
            ("passport", cn_passport, "EM1887665", true),
            ("passport", cn_passport, "EI1887665", false),
            ("passport", cn_passport, "X02360901", false),
            ("ipv4", ipv4, "192.168.1.10", true),
            ("ipv4", ipv4, "6.1.7601.22753", false),
            ("ipv4", ipv4, "1.2.3.04", false),
        ];
        let mut ran = 0;
        for (name, f, v, want) in cases {
            assert_eq!(f(v.as_bytes()), *want, "{name} {v}");
            ran += 1;
        }
        assert_eq!(ran, cases.len());
    }

    /// `len` pseudo-random ASCII digits from the LCG state `x`.
    fn random_digits(x: &mut u64, len: usize) -> Vec<u8> {
        (0..len)
            .map(|_| {
                *x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                b'0' + ((*x >> 33) % 10) as u8
            })
            .collect()
    }

    /// The word-at-a-time Luhn against the textbook definition, for every length it covers.
    #[test]
    fn luhn_equals_the_definition() {
        let textbook = |v: &[u8]| {
            let sum: u32 = v
                .iter()
                .rev()
                .enumerate()
                .map(|(i, &b)| {
                    let d = u32::from(b - b'0') * if i % 2 == 1 { 2 } else { 1 };
                    d / 10 + d % 10
                })
                .sum();
            sum % 10 == 0
        };
        let mut x = 99u64;
        let mut valid = 0;
        for len in 1..=30 {
            for _ in 0..2000 {
                let v = random_digits(&mut x, len);
                assert_eq!(luhn(&v), textbook(&v), "{}", String::from_utf8_lossy(&v));
                valid += usize::from(textbook(&v));
            }
        }
        assert!(valid > 4000, "about one in ten is valid: {valid}");
    }

    #[test]
    fn luhn_basics() {
        assert!(luhn(b"79927398713"));
        assert!(!luhn(b"79927398710"));
        assert!(!luhn(b""));
        assert!(luhn(b"4539578763621486"));
        // exactly one check digit completes any body, whatever its length and digits
        let mut x = 12345u64;
        for len in 12..19 {
            for _ in 0..200 {
                let body = random_digits(&mut x, len);
                let ok = (b'0'..=b'9')
                    .filter(|&c| {
                        let mut v = body.clone();
                        v.push(c);
                        luhn(&v)
                    })
                    .count();
                assert_eq!(ok, 1, "{}", String::from_utf8_lossy(&body));
            }
        }
    }
}
