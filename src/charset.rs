//! Text in the encodings that hide values from a UTF-8 scanner: GBK, GB2312 and GB18030 (what
//! legacy government systems and Excel's CSV export on a Chinese Windows write) and UTF-16
//! (Excel's "Unicode text"). In GBK `张伟` and `机密` are bytes no UTF-8 rule matches, and in UTF-16
//! every value is spread over NUL bytes.
//!
//! Such text is decoded to UTF-8 for the engine and its masked form encoded back, so what leaves
//! is in the charset it came in. Decoding is exact: a byte sequence that is not valid in the
//! charset is an error (the caller's fail mode), never a replacement character that would change
//! bytes nobody masked. Text that needs no decoding costs nothing: UTF-8, the single-byte
//! charsets (ISO-8859-x, windows-125x), whose ASCII digits the engine reads as they are and which
//! cannot spell the Chinese words rules look for, and Big5 (see [`Declared::of_content_type`]).
//!
//! Which charset a text is in is decided at its first non-ASCII byte (see [`TextCodec`]), from
//! its label and its bytes alike.

use encoding_rs::{DecoderResult, EncoderResult, Encoding, GB18030, GBK, UTF_16BE, UTF_16LE};

/// A charset the engine cannot read as it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Charset(&'static Encoding);

/// How much of a text the decision on its charset looks at, from its first non-ASCII byte.
pub const SNIFF_WINDOW: usize = 4096;

/// What a body's type says of its charset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Declared {
    /// No `charset` (or one no one knows): the bytes tell.
    Unknown,
    /// UTF-8, or a single-byte charset (ISO-8859-x, windows-125x, US-ASCII): scanned as it is.
    Plain,
    /// A charset the engine reads decoded.
    Coded(Charset),
}

impl Declared {
    /// The `charset` parameter of a `Content-Type` (labels as WHATWG reads them: `gb2312` is GBK,
    /// `utf-16` little-endian unless a byte order mark says otherwise). Big5 is scanned as it is:
    /// its encoder does not give back every character its decoder reads (HKSCS), and the rules
    /// look for simplified characters only.
    pub fn of_content_type(ct: Option<&str>) -> Declared {
        let Some(label) = ct.and_then(|ct| {
            ct.split(';').skip(1).find_map(|p| {
                let (k, v) = p.split_once('=')?;
                k.trim().eq_ignore_ascii_case("charset").then(|| v.trim())
            })
        }) else {
            return Declared::Unknown;
        };
        let label = label.strip_prefix('"').and_then(|l| l.strip_suffix('"')).unwrap_or(label);
        match Encoding::for_label_no_replacement(label.as_bytes()) {
            None => Declared::Unknown,
            Some(e) if e == GBK || e == GB18030 || e == UTF_16LE || e == UTF_16BE => Declared::Coded(Charset(e)),
            Some(_) => Declared::Plain,
        }
    }
}

impl Charset {
    /// Its name, as `scan` reports it (`GBK`, `UTF-16LE` …).
    pub fn name(self) -> &'static str {
        self.0.name()
    }

    fn is_utf16(self) -> bool {
        self.0 == UTF_16LE || self.0 == UTF_16BE
    }

    /// A declared UTF-16, in the byte order the mark at the start of `head` says (a body labelled
    /// `utf-16` whose mark is big-endian); any other charset as it is.
    fn in_order_of(self, head: &[u8]) -> Charset {
        match Encoding::for_bom(head) {
            Some((e, _)) if self.is_utf16() && e != encoding_rs::UTF_8 => Charset(e),
            _ => self,
        }
    }
}

/// Whether bytes read as Chinese text in GB18030 rather than as something else that happens to
/// decode (Latin-1 `Grüße` is `FC DF` then ASCII, a pair GB18030 also has): most two-byte
/// characters in the GB2312 rows (both bytes A1–FE), where everyday Chinese is, and no byte
/// sequence GB18030 does not have. `at_end`: `b` is the end of the text.
fn reads_as_gb(b: &[u8], at_end: bool) -> bool {
    let (mut pairs, mut common, mut i) = (0usize, 0usize, 0);
    while i < b.len() {
        let c = b[i];
        if c < 0x80 {
            i += 1;
            continue;
        }
        let Some(&t) = b.get(i + 1) else { break };
        pairs += 1;
        common += usize::from((0xA1..=0xF7).contains(&c) && t >= 0xA1 && t != 0xFF);
        i += if t.is_ascii_digit() { 4 } else { 2 };
    }
    let mut d = GB18030.new_decoder_without_bom_handling();
    let Some(room) = d.max_utf8_buffer_length_without_replacement(b.len()) else { return false };
    let mut out = vec![0u8; room];
    let (r, _, _) = d.decode_to_utf8_without_replacement(b, &mut out, at_end);
    pairs > 0 && common * 4 >= pairs * 3 && !matches!(r, DecoderResult::Malformed(..))
}

/// Whether `b` (from a first non-ASCII byte on) is UTF-8; `at_end`: it is the end of the text
/// (else a character cut short at its end is no evidence against).
fn reads_as_utf8(b: &[u8], at_end: bool) -> bool {
    simdutf8::basic::from_utf8(b).is_ok()
        || std::str::from_utf8(b).err().is_some_and(|e| e.error_len().is_none() && !at_end)
}

/// How a text is read, decided at its first non-ASCII byte (until then, ASCII is the same bytes in
/// every charset here, and the text goes to the engine as it is):
///
/// - a byte order mark at its very start: UTF-8, or UTF-16 when what follows reads as text;
/// - bytes that are UTF-8 (up to [`SNIFF_WINDOW`]) are UTF-8, whatever the label says (a UTF-8
///   body labelled GBK is a common misconfiguration, and its values must not hide);
/// - else the declared charset, or, with none declared, GB18030 when the bytes read as Chinese in
///   it ([`reads_as_gb`]);
/// - else the bytes as they are.
///
/// So a GBK page whose first 20 KiB are ASCII script is still read as GBK, and nothing is held
/// back to decide: a trickling stream flows as before.
#[derive(Debug)]
pub struct TextCodec {
    declared: Declared,
    state: State,
    /// no byte of the text has been passed on yet (a byte order mark counts only there)
    at_start: bool,
    /// the first bytes of a non-ASCII character cut short by the end of a piece, while undecided
    pending: Vec<u8>,
}

#[derive(Debug)]
enum State {
    Undecided,
    /// the bytes as they are
    Plain,
    Coded(Box<Transcoder>),
}

impl TextCodec {
    pub fn new(declared: Declared) -> TextCodec {
        let state = if declared == Declared::Plain { State::Plain } else { State::Undecided };
        TextCodec { declared, state, at_start: true, pending: Vec::new() }
    }

    /// The charset the text is read in, once decided (`None`: as it is, or not yet known).
    pub fn charset(&self) -> Option<Charset> {
        match &self.state {
            State::Coded(t) => Some(t.charset()),
            _ => None,
        }
    }

    /// Whether what the engine writes must go through [`TextCodec::encode`] (else it is the
    /// bytes to send as they are).
    pub fn coded(&self) -> bool {
        matches!(self.state, State::Coded(_))
    }

    /// A piece of the text (`last`: its end) for the engine: `Ok(false)` when `input` itself is
    /// that (nothing appended to `out`), `Ok(true)` when it is appended to `out`.
    pub fn decode(&mut self, input: &[u8], last: bool, out: &mut Vec<u8>) -> Result<bool, Malformed> {
        match &mut self.state {
            State::Plain => return Ok(false),
            State::Coded(t) => return t.decode(input, last, out).map(|_| true),
            State::Undecided => {}
        }
        if self.pending.is_empty() && input.is_ascii() && !self.utf16_declared() {
            self.at_start &= input.is_empty();
            return Ok(false);
        }
        let mut buf = std::mem::take(&mut self.pending);
        buf.extend_from_slice(input);
        if self.utf16_declared() {
            // UTF-16 from the first byte: its mark (if any) says which order
            if buf.len() < 2 && !last {
                self.pending = buf;
                return Ok(true);
            }
            let Declared::Coded(c) = self.declared else { unreachable!() };
            self.state = State::Coded(Box::new(Transcoder::new(c.in_order_of(&buf))));
            return self.decode(&buf, last, out);
        }
        let i = buf.iter().position(|&b| b >= 0x80).unwrap_or(buf.len());
        let tail = &buf[i..];
        if tail.is_empty() || (tail.len() < 4 && !last) {
            // all ASCII, or a character that may be cut short: decided with the next piece
            out.extend_from_slice(&buf[..i]);
            self.at_start &= i == 0;
            self.pending = tail.to_vec();
            return Ok(true);
        }
        let coded = decide(self.declared, tail, self.at_start && i == 0, last);
        self.at_start = false;
        match coded {
            None => {
                self.state = State::Plain;
                out.extend_from_slice(&buf);
            }
            Some(c) => {
                out.extend_from_slice(&buf[..i]);
                let mut t = Box::new(Transcoder::new(c));
                let r = t.decode(tail, last, out);
                self.state = State::Coded(t);
                r?;
            }
        }
        Ok(true)
    }

    /// A piece of the engine's output in the text's charset (only while [`TextCodec::coded`]).
    pub fn encode(&mut self, utf8: &[u8], last: bool, out: &mut Vec<u8>) {
        match &mut self.state {
            State::Coded(t) => t.encode(utf8, last, out),
            _ => out.extend_from_slice(utf8),
        }
    }

    fn utf16_declared(&self) -> bool {
        matches!(self.declared, Declared::Coded(c) if c.is_utf16())
    }
}

/// The charset of a text from its first non-ASCII byte on (`tail`; `at_start`: that byte is the
/// text's first; `last`: `tail` runs to the text's end), as [`TextCodec`] decides it.
fn decide(declared: Declared, tail: &[u8], at_start: bool, last: bool) -> Option<Charset> {
    let window = &tail[..tail.len().min(SNIFF_WINDOW)];
    let at_end = last && tail.len() <= SNIFF_WINDOW;
    match Encoding::for_bom(window).filter(|_| at_start) {
        Some((e, bom)) if e != encoding_rs::UTF_8 => {
            reads_as_utf16(&window[bom..], e == UTF_16LE).then_some(Charset(e))
        }
        Some(_) => None,
        None if reads_as_utf8(window, at_end) => None,
        None => match declared {
            Declared::Coded(c) => Some(c),
            _ => reads_as_gb(window, at_end).then_some(Charset(GB18030)),
        },
    }
}

/// The charset a whole text is read in, as [`TextCodec`] would decide it (`None`: as it is),
/// without decoding it.
pub fn charset_of(declared: Declared, data: &[u8]) -> Option<Charset> {
    match declared {
        Declared::Plain => None,
        Declared::Coded(c) if c.is_utf16() => Some(c.in_order_of(data)),
        _ => {
            let i = data.iter().position(|&b| b >= 0x80)?;
            decide(declared, &data[i..], i == 0, true)
        }
    }
}

/// Whether bytes are text, whatever a file is called: a UTF-16 byte order mark on what reads as
/// text, or a first [`SNIFF_WINDOW`] without NUL or other control bytes (UTF-8, GBK, Latin-1 …).
pub fn is_text(data: &[u8]) -> bool {
    let mut head = &data[..data.len().min(SNIFF_WINDOW)];
    match Encoding::for_bom(head) {
        Some((e, bom)) if e != encoding_rs::UTF_8 => return reads_as_utf16(&head[bom..], e == UTF_16LE),
        Some((_, bom)) => head = &head[bom..],
        None => {}
    }
    // (4 KiB of random bytes hold hundreds of them; any text, in any charset, none)
    !head.is_empty() && !head.iter().any(|&b| b < 0x20 && !b"\t\n\r\x0c\x1b".contains(&b))
}

/// A whole text read as [`TextCodec`] reads it: `Ok(None)` when it is scanned as it is, else its
/// charset and its text in UTF-8. Bytes not valid in its charset (declared, or told by its first
/// non-ASCII bytes) are an error, as in a stream.
pub fn decode_whole(declared: Declared, data: &[u8]) -> Result<Option<(Charset, Vec<u8>)>, Malformed> {
    // (the ASCII before the first non-ASCII byte decodes to itself)
    match charset_of(declared, data) {
        None => Ok(None),
        Some(c) => decode(c, data).map(|text| Some((c, text))),
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

    fn coded(label: &str) -> Charset {
        match Declared::of_content_type(Some(&format!("text/plain; charset={label}"))) {
            Declared::Coded(c) => c,
            d => panic!("{label}: {d:?}"),
        }
    }

    #[test]
    fn labels_say_what_needs_decoding() {
        let of = |c: &str| Declared::of_content_type(Some(c));
        assert_eq!(coded("GBK").name(), "GBK");
        assert_eq!(coded("gb2312").name(), "GBK");
        assert_eq!(coded("\"GB18030\"").name(), "gb18030");
        assert_eq!(coded("utf-16").name(), "UTF-16LE");
        assert_eq!(of("application/json;Charset=\"GBK\" ; x=y"), Declared::Coded(coded("gbk")));
        for plain in ["utf-8", "UTF8", "iso-8859-1", "us-ascii", "windows-1252", "big5"] {
            assert_eq!(of(&format!("text/html; charset={plain}")), Declared::Plain, "{plain}");
        }
        assert_eq!(of("text/html; charset=klingon"), Declared::Unknown);
        assert_eq!(of("application/json"), Declared::Unknown);
        assert_eq!(Declared::of_content_type(None), Declared::Unknown);
    }

    /// The charset [`TextCodec`] settles on for a whole text, and what it gives the engine.
    fn read(declared: Declared, b: &[u8], pieces: usize) -> (Option<&'static str>, Result<Vec<u8>, Malformed>) {
        let mut c = TextCodec::new(declared);
        let mut all = Vec::new();
        let n = b.len().div_ceil(pieces.max(1)).max(1);
        let chunks: Vec<&[u8]> = if b.is_empty() { vec![b] } else { b.chunks(n).collect() };
        for (i, piece) in chunks.iter().enumerate() {
            let mut out = Vec::new();
            match c.decode(piece, i + 1 == chunks.len(), &mut out) {
                Ok(true) => all.extend_from_slice(&out),
                Ok(false) => all.extend_from_slice(piece),
                Err(e) => return (c.charset().map(Charset::name), Err(e)),
            }
        }
        (c.charset().map(Charset::name), Ok(all))
    }

    #[test]
    fn text_tells_its_charset() {
        let u = Declared::Unknown;
        let name = |d, b: &[u8]| read(d, b, 1).0;
        assert_eq!(name(u, &gbk("姓名：张伟，机密")), Some("gb18030"));
        assert_eq!(name(u, "姓名：张伟".as_bytes()), None);
        assert_eq!(name(u, b"{\"a\":1}"), None);
        assert_eq!(name(u, b"\xFF\xFEa\0"), Some("UTF-16LE"));
        assert_eq!(name(u, b"\xFE\xFF\0a"), Some("UTF-16BE"));
        assert_eq!(name(u, b"\xEF\xBB\xBFabc"), None);
        // a binary file that starts as a mark would: its "characters" are no text
        let mut bin = b"\xff\xfe\x00binary\x00 13800138000 \xc3\x28 tail".to_vec();
        bin.extend([b'x'; 200]);
        assert_eq!(name(u, &bin), None);
        assert_eq!(read(u, &bin, 1).1.expect("as it is"), bin);
        assert_eq!(name(u, b"\xff\xfea\0\x01\0"), None);
        // binary, and Latin-1 that happens to decode: as it is
        assert_eq!(name(u, b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR\xff"), None);
        assert_eq!(name(u, b"ab\xFF\xFFcd"), None);
        assert_eq!(name(u, "Grüße aus München".as_bytes()), None);
        let latin1: Vec<u8> = "Grüße aus München, 5€".chars().map(|c| if c == '€' { 0x80 } else { c as u8 }).collect();
        assert_eq!(name(u, &latin1), None);
        // a page whose first 20 KiB are ASCII, then GBK; in one piece or many
        let page = [b"<script>".repeat(2560), gbk("姓名：张伟 机密")].concat();
        for pieces in [1, 7, 40_000] {
            let (cs, text) = read(u, &page, pieces);
            assert_eq!(cs, Some("gb18030"), "{pieces}");
            assert!(String::from_utf8(text.expect("reads")).expect("utf-8").ends_with("姓名：张伟 机密"));
        }
        // declared: the label, unless the bytes are UTF-8 (a common misconfiguration)
        let g = Declared::Coded(coded("gbk"));
        assert_eq!(name(g, &gbk("张伟")), Some("GBK"));
        assert_eq!(name(g, "{\"title\":\"机密文件\",\"owner\":\"张伟\"}".as_bytes()), None);
        assert_eq!(name(g, "\u{feff}姓名：张伟".as_bytes()), None);
        assert_eq!(name(Declared::Plain, &gbk("张伟")), None);
        // declared UTF-16: from the first byte, in the order its mark says
        let be = [&[0xFE, 0xFF][..], &"张伟".encode_utf16().flat_map(u16::to_be_bytes).collect::<Vec<_>>()].concat();
        assert_eq!(read(Declared::Coded(coded("utf-16")), &be, 3), (Some("UTF-16BE"), Ok("\u{feff}张伟".into())));
        // the whole-text answers agree
        assert_eq!(charset_of(u, &page).map(Charset::name), Some("gb18030"));
        assert_eq!(charset_of(u, &latin1), None);
        assert!(is_text(&page) && is_text(&latin1) && !is_text(b"\x89PNG\r\n\x1a\n\0\0"));
        assert!(!is_text(b"\xff\xfe\x01\x02\x03\x04 13800138000"));
    }

    #[test]
    fn round_trips_are_exact_and_pieces_may_split_characters() {
        let texts: [(&str, Vec<u8>); 3] = [
            ("GBK", gbk("张伟 13800138000 内部资料 €")),
            ("gb18030", GB18030.encode("𠀀 张伟 ㄅ").0.into_owned()),
            ("UTF-16LE", [&[0xFF, 0xFE][..], &utf16le("张伟 13800138000")].concat()),
        ];
        for (label, bytes) in texts {
            let cs = coded(label);
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
        let cs = coded("gbk");
        assert_eq!(encode(cs, &decode(cs, &four).expect("decodes")), four);
    }

    fn utf16le(s: &str) -> Vec<u8> {
        s.encode_utf16().flat_map(u16::to_le_bytes).collect()
    }

    #[test]
    fn malformed_bytes_are_an_error_where_declared() {
        let cs = coded("gbk");
        assert_eq!(decode(cs, b"ab\xFFcd"), Err(Malformed));
        // a character cut short at the end of the text
        assert_eq!(decode(cs, &gbk("张")[..1]), Err(Malformed));
        assert_eq!(decode(coded("utf-16le"), b"a\0b"), Err(Malformed));
        // the masked form of a decoded text encodes back: stars and labels are ASCII
        assert_eq!(encode(cs, "张*".as_bytes()), gbk("张*"));
        // a whole text, its charset declared or told by its bytes
        let bad = [gbk("姓名：张伟"), b"\xFF".to_vec()].concat();
        assert_eq!(decode_whole(Declared::Coded(cs), &bad), Err(Malformed));
        // (told by its bytes: bad within the first 4 KiB, not GB18030 at all; bad past them, an error)
        assert_eq!(decode_whole(Declared::Unknown, &bad), Ok(None));
        let late = [gbk(&"姓名：张伟".repeat(500)), b"\xFF".to_vec()].concat();
        assert_eq!(decode_whole(Declared::Unknown, &late), Err(Malformed));
        assert_eq!(decode_whole(Declared::Unknown, "张伟".as_bytes()), Ok(None));
        assert_eq!(
            decode_whole(Declared::Unknown, &gbk("张伟")).map(|o| o.map(|(c, t)| (c.name(), t))),
            Ok(Some(("gb18030", "张伟".into())))
        );
    }
}
