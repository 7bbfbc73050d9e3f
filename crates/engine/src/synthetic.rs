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

/// The most common surnames, most common first (a draw favours the front), and the compound ones.
const SURNAMES: &str = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘于蒋蔡余杜叶程苏魏吕丁任沈姚卢姜崔钟谭陆汪范金石廖贾夏韦付方白邹孟熊秦邱江尹薛闫段雷侯龙史陶黎贺顾毛郝龚邵万钱严覃武戴莫孔向汤禤郇隋亓冼";
const COMPOUND: &[&str] =
    &["欧阳", "司马", "上官", "诸葛", "东方", "皇甫", "尉迟", "公孙", "慕容", "令狐", "宇文", "夏侯", "司徒", "端木"];
const GIVEN: &str = "伟芳娜秀英敏静丽强磊军洋勇艳杰娟涛明超兰霞平刚桂玉萍红鹏华飞建国志文斌宇浩凯婷雪琳晶欣怡佳俊峰波辉颖鑫梅莉倩亮慧海东林丹晨阳涵睿轩泽雨萱思源博山河春秋";
const MINORITY: &[&str] = &[
    "阿依古丽",
    "买买提",
    "艾力",
    "努尔",
    "热依拉",
    "古丽",
    "阿卜杜拉",
    "吐尔逊",
    "米热",
    "帕提古丽",
    "迪丽",
    "扎西",
    "次仁",
    "多吉",
];

fn pick(r: &mut Rng, s: &str) -> char {
    let n = s.chars().count() as u64;
    s.chars().nth((r.next() % n) as usize).unwrap_or('王')
}

/// A made-up personal name: a common surname and one or two given-name characters, sometimes a
/// compound surname, sometimes a name with `·`.
pub fn name(r: &mut Rng) -> String {
    match r.next() % 100 {
        0..=3 => {
            let a = MINORITY[(r.next() % MINORITY.len() as u64) as usize];
            let b = MINORITY[(r.next() % MINORITY.len() as u64) as usize];
            format!("{a}·{b}")
        }
        4..=8 => {
            let mut s = COMPOUND[(r.next() % COMPOUND.len() as u64) as usize].to_string();
            for _ in 0..1 + r.next() % 2 {
                s.push(pick(r, GIVEN));
            }
            s
        }
        _ => {
            // favour the common surnames: the square of a uniform draw leans to the front
            let n = SURNAMES.chars().count() as u64;
            let u = r.next() % 1000;
            let i = (u * u * n / 1_000_000) as usize;
            let mut s = SURNAMES.chars().nth(i).unwrap_or('王').to_string();
            for _ in 0..1 + r.next() % 2 {
                s.push(pick(r, GIVEN));
            }
            s
        }
    }
}

const STREETS: &str = "文化人民建设解放中山花园经三纬五黄河长江新华友谊和平胜利东风紫荆农业金水嵩山桐柏工人青年";
const STREET_KINDS: &[&str] = &["路", "街", "大道", "路", "北路", "巷"];

/// (county-level code, name) of every district and county in the GB/T 2260 list, and the name of
/// each code.
fn division_table() -> (Vec<(&'static str, &'static str)>, std::collections::HashMap<&'static str, &'static str>) {
    let mut counties = Vec::new();
    let mut names = std::collections::HashMap::new();
    for (code, name) in crate::fields::gbt2260() {
        names.insert(code, name);
        if !code.ends_with("00") {
            counties.push((code, name));
        }
    }
    (counties, names)
}

/// A made-up home address under a real district or county: divisions (in full, in short form,
/// or from the city down), a street, a house number, and often building, unit and room; some are
/// villages (`…镇…村3组`).
pub fn address(r: &mut Rng) -> String {
    use std::sync::OnceLock;
    #[allow(clippy::type_complexity)]
    static T: OnceLock<(Vec<(&'static str, &'static str)>, std::collections::HashMap<&'static str, &'static str>)> =
        OnceLock::new();
    let (counties, names) = T.get_or_init(division_table);
    let (code, county) = counties[(r.next() % counties.len() as u64) as usize];
    let province = names.get(format!("{}0000", &code[..2]).as_str()).copied().unwrap_or("");
    let city = names.get(format!("{}00", &code[..4]).as_str()).copied().unwrap_or("");
    let short = |s: &str| {
        s.strip_suffix('省')
            .or_else(|| s.strip_suffix('市'))
            .filter(|x| x.chars().count() >= 2)
            .unwrap_or(s)
            .to_string()
    };
    let mut s = match r.next() % 10 {
        0..=5 => format!("{province}{}{county}", if city == province { "" } else { city }),
        6..=7 if !city.is_empty() && city.chars().count() >= 3 => format!("{}{county}", short(city)),
        8 if !city.is_empty() => format!("{city}{county}"),
        _ => format!("{province}{county}"),
    };
    if r.next() % 10 == 0 {
        // a village
        s.push(pick(r, STREETS));
        s.push(pick(r, STREETS));
        s.push('镇');
        s.push(pick(r, SURNAMES));
        s.push(pick(r, "庄湾营寨沟屯"));
        s.push_str(&format!("村{}组", 1 + r.next() % 12));
        return s;
    }
    s.push(pick(r, STREETS));
    s.push(pick(r, STREETS));
    s.push_str(STREET_KINDS[(r.next() % STREET_KINDS.len() as u64) as usize]);
    s.push_str(&format!("{}号", 1 + r.next() % 300));
    match r.next() % 4 {
        0 => s.push_str(&format!("{}号楼{}单元{}室", 1 + r.next() % 20, 1 + r.next() % 6, 101 + r.next() % 2400)),
        1 => s.push_str(&format!("{}栋{}室", 1 + r.next() % 30, 101 + r.next() % 1800)),
        2 => s.push('院'),
        _ => {}
    }
    s
}
