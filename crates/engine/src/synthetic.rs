//! Synthetic identifiers with valid check digits, for benchmarks, tests and demos: never real
//! personal data.

use crate::validate::luhn;

/// A small deterministic generator (LCG): the same data on every run.
#[derive(Debug, Clone)]
pub struct Rng(pub u64);

impl Rng {
    #[allow(clippy::should_implement_trait)]
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        self.0 >> 33
    }
    /// `n` random digits.
    pub fn digits(&mut self, n: usize) -> String {
        (0..n).map(|_| char::from(b'0' + (self.next() % 10) as u8)).collect()
    }
}

/// A resident ID number with a real region, a real date and a valid check digit.
pub fn id_card(r: &mut Rng) -> String {
    let regions = ["110105", "410102", "440306", "310115", "330106"];
    let region = regions[(r.next() % 5) as usize];
    let y = 1950 + r.next() % 60;
    let m = 1 + r.next() % 12;
    let d = 1 + r.next() % 28;
    let body = format!("{region}{y}{m:02}{d:02}{}", r.digits(3));
    const W: [u32; 17] = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2];
    let sum: u32 = body.bytes().zip(W).map(|(b, w)| u32::from(b - b'0') * w).sum();
    let check = b"10X98765432"[(sum % 11) as usize] as char;
    format!("{body}{check}")
}

/// A mainland mobile number.
pub fn mobile(r: &mut Rng) -> String {
    format!("13{}", r.digits(9))
}

/// A bank card number with a valid Luhn digit.
pub fn card(r: &mut Rng) -> String {
    let body = format!("622202{}", r.digits(12));
    // the check digit that makes the engine's own Luhn validator accept it
    (0..10).map(|d| format!("{body}{d}")).find(|c| luhn(c.as_bytes())).unwrap_or(body)
}
