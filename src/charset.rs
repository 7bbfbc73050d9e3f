//! Text in the encodings that hide values from a UTF-8 scanner: GBK, GB2312 and GB18030 (what
//! legacy government systems and Excel's CSV export on a Chinese Windows write), Big5, and UTF-16
//! (Excel's "Unicode text"). In GBK `张伟` and `机密` are bytes no UTF-8 rule matches, and in UTF-16
//! every value is spread over NUL bytes.
//!
//! Such text is decoded to UTF-8 for the engine and its masked form encoded back, so what leaves
//! is in the charset it came in. Decoding is exact: a byte sequence that is not valid in the
//! charset is an error (the caller's fail mode), never a replacement character that would change
//! bytes nobody masked. Text that needs no decoding costs nothing: UTF-8, and the single-byte
//! charsets (ISO-8859-x, windows-125x), whose ASCII digits the engine reads as they are and which
//! cannot spell the Chinese words rules look for.
//!
//! Where no charset is declared (a file, an archive entry, a body without `charset=`), the text
//! tells: a UTF-16 byte order mark, or bytes that are not UTF-8 and read cleanly as GB18030.

use encoding_rs::{DecoderResult, EncoderResult, Encoding, GB18030, GBK, UTF_16BE, UTF_16LE};

/// A charset the engine cannot read as it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Charset(&'static Encoding);

/// How much of a text [`Charset::sniff`] looks at.
pub const SNIFF_WINDOW: usize = 4096;

impl Charset {
    /// The charset a label names (`gbk`, `GB2312`, `utf-16le` …, as WHATWG reads labels), when it
    /// is one the engine cannot read as it is; `None` for UTF-8, single-byte charsets and labels
    /// it does not know.
    pub fn of_label(label: &[u8]) -> Option<Charset> {
        let label = label.strip_prefix(b"\"").and_then(|l| l.strip_suffix(b"\"")).unwrap_or(label);
        let e = Encoding::for_label_no_replacement(label)?;
        (!e.is_single_byte() && e != encoding_rs::UTF_8).then_some(Charset(e))
    }

    /// The `charset` parameter of a `Content-Type`, as [`Charset::of_label`] reads it.
    pub fn of_content_type(ct: &str) -> Option<Charset> {
        ct.split(';').skip(1).find_map(|p| {
            let (k, v) = p.split_once('=')?;
            k.trim().eq_ignore_ascii_case("charset").then(|| Charset::of_label(v.trim().as_bytes()))?
        })
    }

    /// The charset a text's first bytes show, when none is declared: a UTF-16 byte order mark, or
    /// bytes that are not UTF-8 (up to [`SNIFF_WINDOW`]) and read as GB18030 without error. A
    /// text whose first bytes are ASCII or UTF-8 is taken to be UTF-8. `whole`: `head` is the
    /// whole text (else its last character may be cut short).
    pub fn sniff(head: &[u8], whole: bool) -> Option<Charset> {
        let head = &head[..head.len().min(SNIFF_WINDOW)];
        if let Some((e, bom)) = Encoding::for_bom(head) {
            // a mark is two or three bytes any binary file may start with: UTF-16 must read as text too
            return (e != encoding_rs::UTF_8 && reads_as_utf16(&head[bom..], e == UTF_16LE)).then_some(Charset(e));
        }
        let at_end = whole && head.len() < SNIFF_WINDOW;
        // asked of every body without a declared charset: the common answer, fast
        if simdutf8::basic::from_utf8(head).is_ok() {
            return None;
        }
        match std::str::from_utf8(head) {
            Ok(_) => None,
            // UTF-8 cut short at the end of the window: still UTF-8
            Err(e) if e.error_len().is_none() && !at_end => None,
            Err(_) if head.contains(&0) => None,
            Err(_) => {
                let mut d = GB18030.new_decoder_without_bom_handling();
                let mut out = vec![0u8; d.max_utf8_buffer_length_without_replacement(head.len())?];
                // the window may end inside a character: only a malformed sequence counts
                let (r, _, _) = d.decode_to_utf8_without_replacement(head, &mut out, at_end);
                match r {
                    DecoderResult::Malformed(..) => None,
                    _ => Some(Charset(GB18030)),
                }
            }
        }
    }

    /// A declared charset, corrected by the byte order mark the text starts with (a body labelled
    /// `utf-16` whose mark says big-endian).
    pub fn with_bom(self, head: &[u8]) -> Charset {
        match Encoding::for_bom(head) {
            Some((e, _)) if self.is_utf16() && e != encoding_rs::UTF_8 => Charset(e),
            _ => self,
        }
    }

    /// Its name, as `scan` reports it (`GBK`, `UTF-16LE` …).
    pub fn name(self) -> &'static str {
        self.0.name()
    }

    fn is_utf16(self) -> bool {
        self.0 == UTF_16LE || self.0 == UTF_16BE
    }
}

/// Whether bytes after a UTF-16 byte order mark read as text: no control characters but tab, line
/// and page ends, and at least one code unit in 32 that text is made of (ASCII, the ideographic
/// space and the CJK punctuation prose uses), where a binary file read as UTF-16 gives CJK
/// ideographs, Hangul and symbols all the way.
fn reads_as_utf16(b: &[u8], le: bool) -> bool {
    let (mut units, mut texty) = (0usize, 0usize);
    for pair in b.chunks_exact(2) {
        let u = if le { u16::from_le_bytes([pair[0], pair[1]]) } else { u16::from_be_bytes([pair[0], pair[1]]) };
        if u < 0x20 && !matches!(u, 0x09 | 0x0A | 0x0C | 0x0D) {
            return false;
        }
        units += 1;
        texty += usize::from(u < 0x7F || matches!(u, 0x3000..=0x3002 | 0xFF08 | 0xFF09 | 0xFF0C | 0xFF1A | 0xFF1B));
    }
    units > 0 && texty * 32 >= units
}

/// A byte sequence not valid in its declared (or sniffed) charset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Malformed;

/// A text in a [`Charset`], streamed: its bytes decoded to UTF-8 for the engine, and the engine's
/// output (UTF-8, in pieces that may split a character) encoded back.
pub struct Transcoder {
    charset: Charset,
    decoder: encoding_rs::Decoder,
    /// the end of the last output piece when it split a character
    carry: Vec<u8>,
}

impl std::fmt::Debug for Transcoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Transcoder({})", self.charset.name())
    }
}

impl Transcoder {
    pub fn new(charset: Charset) -> Transcoder {
        // a byte order mark is kept as U+FEFF, so it is written back as it came
        Transcoder { charset, decoder: charset.0.new_decoder_without_bom_handling(), carry: Vec::new() }
    }

    pub fn charset(&self) -> Charset {
        self.charset
    }

    /// Decode `input` (`last`: the end of the text), appending UTF-8 to `out`.
    pub fn decode(&mut self, input: &[u8], last: bool, out: &mut Vec<u8>) -> Result<(), Malformed> {
        let room = self.decoder.max_utf8_buffer_length_without_replacement(input.len()).ok_or(Malformed)?;
        let start = out.len();
        out.resize(start + room, 0);
        let (r, _, written) = self.decoder.decode_to_utf8_without_replacement(input, &mut out[start..], last);
        out.truncate(start + written);
        match r {
            DecoderResult::InputEmpty => Ok(()),
            // room was reserved for the whole input
            DecoderResult::OutputFull | DecoderResult::Malformed(..) => Err(Malformed),
        }
    }

    /// Encode a piece of UTF-8 output (`last`: the end of the text), appending to `out`.
    pub fn encode(&mut self, utf8: &[u8], last: bool, out: &mut Vec<u8>) {
        let mut piece = std::mem::take(&mut self.carry);
        piece.extend_from_slice(utf8);
        let valid = match std::str::from_utf8(&piece) {
            Ok(_) => piece.len(),
            Err(e) if e.error_len().is_none() && !last => e.valid_up_to(),
            // not UTF-8 (the engine writes none): what it is, as replacement characters
            Err(_) => {
                encode_str(self.charset, &String::from_utf8_lossy(&piece), out);
                return;
            }
        };
        let (text, rest) = piece.split_at(valid);
        encode_str(self.charset, std::str::from_utf8(text).unwrap_or_default(), out);
        self.carry = rest.to_vec();
    }
}

/// A whole text in `charset` as UTF-8.
pub fn decode(charset: Charset, data: &[u8]) -> Result<Vec<u8>, Malformed> {
    let mut out = Vec::with_capacity(data.len() * 3 / 2);
    Transcoder::new(charset).decode(data, true, &mut out)?;
    Ok(out)
}

/// A whole UTF-8 text (the engine's output) in `charset`.
pub fn encode(charset: Charset, utf8: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(utf8.len());
    Transcoder::new(charset).encode(utf8, true, &mut out);
    out
}

/// `text` in `charset`. A character the charset's encoder cannot write is one its decoder read:
/// in a GBK text, a GB18030 four-byte sequence, written again as one; otherwise (a Big5 text's
/// rarer HKSCS characters) a numeric character reference.
fn encode_str(charset: Charset, text: &str, out: &mut Vec<u8>) {
    if charset.is_utf16() {
        let le = charset.0 == UTF_16LE;
        out.reserve(text.len() * 2);
        for u in text.encode_utf16() {
            out.extend_from_slice(&if le { u.to_le_bytes() } else { u.to_be_bytes() });
        }
        return;
    }
    let mut encoder = charset.0.new_encoder();
    let mut src = text;
    loop {
        let room = encoder.max_buffer_length_from_utf8_without_replacement(src.len()).unwrap_or(src.len() * 4 + 16);
        let start = out.len();
        out.resize(start + room, 0);
        let (r, read, written) = encoder.encode_from_utf8_without_replacement(src, &mut out[start..], true);
        out.truncate(start + written);
        src = &src[read..];
        match r {
            EncoderResult::InputEmpty => return,
            EncoderResult::OutputFull => {}
            EncoderResult::Unmappable(c) => {
                if charset.0 == GBK {
                    let mut buf = [0u8; 4];
                    out.extend_from_slice(&GB18030.encode(c.encode_utf8(&mut buf)).0);
                } else {
                    out.extend_from_slice(format!("&#{};", u32::from(c)).as_bytes());
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gbk(s: &str) -> Vec<u8> {
        GBK.encode(s).0.into_owned()
    }

    #[test]
    fn labels_name_only_what_needs_decoding() {
        assert_eq!(Charset::of_label(b"GBK").map(Charset::name), Some("GBK"));
        assert_eq!(Charset::of_label(b"gb2312").map(Charset::name), Some("GBK"));
        assert_eq!(Charset::of_label(b"\"GB18030\"").map(Charset::name), Some("gb18030"));
        assert_eq!(Charset::of_label(b"utf-16").map(Charset::name), Some("UTF-16LE"));
        assert_eq!(Charset::of_label(b"big5").map(Charset::name), Some("Big5"));
        for none in [&b"utf-8"[..], b"UTF8", b"iso-8859-1", b"us-ascii", b"windows-1252", b"klingon", b""] {
            assert_eq!(Charset::of_label(none), None, "{}", String::from_utf8_lossy(none));
        }
        let ct = |c: &str| Charset::of_content_type(c).map(Charset::name);
        assert_eq!(ct("text/html; charset=gb2312"), Some("GBK"));
        assert_eq!(ct("application/json;Charset=\"GBK\" ; x=y"), Some("GBK"));
        assert_eq!(ct("application/json; charset=utf-8"), None);
        assert_eq!(ct("application/json"), None);
    }

    #[test]
    fn text_tells_its_charset() {
        let name = |b: &[u8], whole| Charset::sniff(b, whole).map(Charset::name);
        assert_eq!(name(&gbk("姓名：张伟，机密"), true), Some("gb18030"));
        assert_eq!(name("姓名：张伟".as_bytes(), true), None);
        assert_eq!(name(b"{\"a\":1}", true), None);
        assert_eq!(name(b"\xFF\xFEa\0", true), Some("UTF-16LE"));
        assert_eq!(name(b"\xFE\xFF\0a", true), Some("UTF-16BE"));
        assert_eq!(name(b"\xEF\xBB\xBFabc", true), None);
        // a binary file that starts as a mark would: its "characters" are no text
        let mut bin = b"\xff\xfe\x00binary\x00 13800138000 \xc3\x28 tail".to_vec();
        bin.extend([b'x'; 200]);
        assert_eq!(name(&bin, false), None);
        assert_eq!(name(b"\xff\xfea\0\x01\0", true), None);
        // binary: NUL bytes, or bytes GB18030 does not have
        assert_eq!(name(b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR", true), None);
        assert_eq!(name(b"ab\xFF\xFFcd", true), None);
        // UTF-8 cut short at the end of a head that is not the whole text is UTF-8
        let cut = "姓名".as_bytes();
        assert_eq!(name(&cut[..4], false), None);
        // a GBK head cut inside a character is still GBK
        let g = gbk("张伟张伟");
        assert_eq!(name(&g[..5], false), Some("gb18030"));
    }

    #[test]
    fn round_trips_are_exact_and_pieces_may_split_characters() {
        let texts: [(&str, Vec<u8>); 4] = [
            ("GBK", gbk("张伟 13800138000 内部资料 €")),
            ("gb18030", GB18030.encode("𠀀 张伟 ㄅ").0.into_owned()),
            ("UTF-16LE", [&[0xFF, 0xFE][..], &utf16le("张伟 13800138000")].concat()),
            ("Big5", encoding_rs::BIG5.encode("張偉 13800138000").0.into_owned()),
        ];
        for (label, bytes) in texts {
            let cs = Charset::of_label(label.as_bytes()).expect(label);
            let utf8 = decode(cs, &bytes).expect("decodes");
            assert_eq!(encode(cs, &utf8), bytes, "{label}");
            // in pieces of one byte each, both ways
            let mut t = Transcoder::new(cs);
            let (mut mid, mut back) = (Vec::new(), Vec::new());
            for (i, b) in bytes.iter().enumerate() {
                t.decode(&[*b], i + 1 == bytes.len(), &mut mid).expect("decodes");
            }
            assert_eq!(mid, utf8, "{label}");
            for (i, b) in mid.iter().enumerate() {
                t.encode(&[*b], i + 1 == mid.len(), &mut back);
            }
            assert_eq!(back, bytes, "{label}");
        }
        // a GB18030 four-byte character in a text labelled GBK comes back as it was
        let four = GB18030.encode("𠀀").0.into_owned();
        let cs = Charset::of_label(b"gbk").expect("gbk");
        assert_eq!(encode(cs, &decode(cs, &four).expect("decodes")), four);
    }

    fn utf16le(s: &str) -> Vec<u8> {
        s.encode_utf16().flat_map(u16::to_le_bytes).collect()
    }

    #[test]
    fn malformed_bytes_are_an_error() {
        let cs = Charset::of_label(b"gbk").expect("gbk");
        assert_eq!(decode(cs, b"ab\xFFcd"), Err(Malformed));
        // a character cut short at the end of the text
        assert_eq!(decode(cs, &gbk("张")[..1]), Err(Malformed));
        let u16 = Charset::of_label(b"utf-16le").expect("utf-16");
        assert_eq!(decode(u16, b"a\0b"), Err(Malformed));
        // the masked form of a decoded text encodes back: stars and labels are ASCII
        assert_eq!(encode(cs, "张*".as_bytes()), gbk("张*"));
    }
}
