//! Bounded decoding of `Content-Encoding` (gzip, deflate, br): limits enforced while a body
//! expands, so a bomb is stopped before it fills memory.

use std::io::Write;

use super::outcome::Uninspectable;

/// Where a decoder writes: refuses output past `room` bytes, so a decompression bomb is stopped
/// while it expands, not after a whole chunk has been inflated into memory.
#[derive(Debug, Default)]
pub struct Sink {
    buf: Vec<u8>,
    room: usize,
    full: bool,
}

impl std::io::Write for Sink {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        if b.len() > self.room {
            self.full = true;
            return Err(std::io::Error::other("decompression limit"));
        }
        self.room -= b.len();
        self.buf.extend_from_slice(b);
        Ok(b.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// A bounded streaming decoder for `Content-Encoding`.
pub enum Decoder {
    /// Every member of a multi-member gzip stream (as `cat a.gz b.gz` makes).
    Gzip(flate2::write::MultiGzDecoder<Sink>),
    Deflate(flate2::write::ZlibDecoder<Sink>),
    Brotli(Box<brotli::DecompressorWriter<Sink>>),
}

impl std::fmt::Debug for Decoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Decoder::Gzip(_) => "Decoder::Gzip",
            Decoder::Deflate(_) => "Decoder::Deflate",
            Decoder::Brotli(_) => "Decoder::Brotli",
        })
    }
}

/// Why a decoder stopped.
#[derive(Debug, PartialEq, Eq)]
pub enum DecodeError {
    /// the output would exceed the room it was given
    Limit,
    Corrupt,
}

/// What to do with a `Content-Encoding` value.
#[derive(Debug, PartialEq, Eq)]
pub enum Coding {
    Identity,
    Decode(&'static str),
    /// zstd, stacked codings, anything unknown
    Unsupported,
}

/// How a message's body is coded, from every `Content-Encoding` field line and every coding
/// listed in them (a second line must not hide behind a first `identity`).
pub fn coding(headers: &http::HeaderMap) -> Coding {
    let mut codings = headers
        .get_all(http::header::CONTENT_ENCODING)
        .iter()
        .flat_map(|v| v.as_bytes().split(|&b| b == b','))
        .map(<[u8]>::trim_ascii)
        .filter(|c| !c.is_empty() && !c.eq_ignore_ascii_case(b"identity"));
    let Some(first) = codings.next() else { return Coding::Identity };
    if codings.next().is_some() {
        return Coding::Unsupported;
    }
    match first.to_ascii_lowercase().as_slice() {
        b"gzip" | b"x-gzip" => Coding::Decode("gzip"),
        b"deflate" => Coding::Decode("deflate"),
        b"br" => Coding::Decode("br"),
        _ => Coding::Unsupported,
    }
}

impl Decoder {
    pub fn new(kind: &str) -> Option<Decoder> {
        match kind {
            "gzip" => Some(Decoder::Gzip(flate2::write::MultiGzDecoder::new(Sink::default()))),
            "deflate" => Some(Decoder::Deflate(flate2::write::ZlibDecoder::new(Sink::default()))),
            "br" => Some(Decoder::Brotli(Box::new(brotli::DecompressorWriter::new(Sink::default(), 4096)))),
            _ => None,
        }
    }

    fn sink(&mut self) -> &mut Sink {
        match self {
            Decoder::Gzip(d) => d.get_mut(),
            Decoder::Deflate(d) => d.get_mut(),
            Decoder::Brotli(d) => d.get_mut(),
        }
    }

    /// Feed compressed bytes (and, with `eos`, finish the stream); decoded bytes are appended to
    /// `out`, at most `room` of them.
    pub fn push(&mut self, input: &[u8], eos: bool, room: usize, out: &mut Vec<u8>) -> Result<(), DecodeError> {
        let sink = self.sink();
        sink.room = room;
        sink.full = false;
        let mut r = match self {
            Decoder::Gzip(d) => d.write_all(input),
            Decoder::Deflate(d) => d.write_all(input),
            Decoder::Brotli(d) => d.write_all(input),
        };
        if r.is_ok() && eos {
            r = match self {
                Decoder::Gzip(d) => d.try_finish(),
                Decoder::Deflate(d) => d.try_finish(),
                // (close, not flush: a stream cut short is an error, not a shorter body)
                Decoder::Brotli(d) => d.close(),
            };
        }
        let sink = self.sink();
        out.append(&mut sink.buf);
        match r {
            Ok(()) => Ok(()),
            Err(_) if sink.full => Err(DecodeError::Limit),
            Err(_) => Err(DecodeError::Corrupt),
        }
    }
}

/// Limits on decoded size and ratio (zip bombs).
#[derive(Debug, Clone, Copy)]
pub struct DecodeLimits {
    pub max_decompressed: usize,
    pub max_ratio: usize,
}

impl DecodeLimits {
    /// Feed `chunk` to `d` when `encoded_in` coded bytes (this chunk included) have arrived and
    /// `decoded` bytes came out of the earlier ones. The body may decode to `max_decompressed`,
    /// and to `max_ratio` times what has arrived once past the first MiB.
    pub fn push(
        &self,
        d: &mut Decoder,
        encoded_in: u64,
        decoded: u64,
        chunk: &[u8],
        eos: bool,
        out: &mut Vec<u8>,
    ) -> Result<(), Uninspectable> {
        let by_ratio = encoded_in.saturating_mul(self.max_ratio as u64).max(1 << 20);
        let by_size = self.max_decompressed as u64;
        let room = by_size.min(by_ratio).saturating_sub(decoded);
        match d.push(chunk, eos, usize::try_from(room).unwrap_or(usize::MAX), out) {
            Ok(()) => Ok(()),
            Err(DecodeError::Limit) if by_size <= by_ratio => Err(Uninspectable::DecompressedSize),
            Err(DecodeError::Limit) => Err(Uninspectable::DecompressionRatio),
            Err(DecodeError::Corrupt) => Err(Uninspectable::Undecodable),
        }
    }

    /// A whole coded body, decoded within the limits.
    pub fn decode(&self, kind: &str, body: &[u8]) -> Result<Vec<u8>, Uninspectable> {
        let mut d = Decoder::new(kind).ok_or(Uninspectable::UnsupportedCoding)?;
        let mut out = Vec::with_capacity(body.len().saturating_mul(4).min(self.max_decompressed));
        self.push(&mut d, body.len() as u64, 0, body, true, &mut out)?;
        Ok(out)
    }
}

/// `data` coded with `kind` (gzip, deflate, br) again, for an upstream that gets it as the
/// client sent it.
pub fn encode(kind: &str, data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len() / 3 + 64);
    let r = match kind {
        "gzip" => {
            let mut e = flate2::write::GzEncoder::new(&mut out, flate2::Compression::new(6));
            e.write_all(data).and_then(|()| e.try_finish())
        }
        "deflate" => {
            let mut e = flate2::write::ZlibEncoder::new(&mut out, flate2::Compression::new(6));
            e.write_all(data).and_then(|()| e.try_finish())
        }
        _ => {
            let mut e = brotli::CompressorWriter::new(&mut out, 4096, 5, 22);
            e.write_all(data).and_then(|()| e.flush())
        }
    };
    // writing into memory does not fail
    debug_assert!(r.is_ok());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codings() {
        let h = |lines: &[&str]| {
            let mut m = http::HeaderMap::new();
            for l in lines {
                m.append(http::header::CONTENT_ENCODING, http::HeaderValue::from_str(l).expect("value"));
            }
            coding(&m)
        };
        assert_eq!(h(&[]), Coding::Identity);
        assert_eq!(h(&["identity"]), Coding::Identity);
        assert_eq!(h(&["GZIP"]), Coding::Decode("gzip"));
        assert_eq!(h(&[" br "]), Coding::Decode("br"));
        assert_eq!(h(&["identity, gzip"]), Coding::Decode("gzip"));
        assert_eq!(h(&["zstd"]), Coding::Unsupported);
        assert_eq!(h(&["gzip, br"]), Coding::Unsupported);
        // a second field line counts as much as the first
        assert_eq!(h(&["identity", "gzip"]), Coding::Decode("gzip"));
        assert_eq!(h(&["gzip", "gzip"]), Coding::Unsupported);
    }

    #[test]
    fn gzip_decoder_round_trip_in_pieces() {
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        enc.write_all(b"hello 13800138000 world").unwrap_or_default();
        let gz = enc.finish().unwrap_or_default();
        let mut d = Decoder::new("gzip").expect("gzip");
        let mut out = Vec::new();
        let pieces: Vec<&[u8]> = gz.chunks(3).collect();
        for (i, c) in pieces.iter().enumerate() {
            d.push(c, i + 1 == pieces.len(), 1 << 20, &mut out).expect("push");
        }
        assert_eq!(out, b"hello 13800138000 world");
    }

    /// 64 MiB of zeros, compressed: a bomb that fits in one upstream chunk.
    fn bomb(kind: &str) -> Vec<u8> {
        let zeros = vec![0u8; 1 << 20];
        match kind {
            "gzip" => {
                let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
                for _ in 0..64 {
                    e.write_all(&zeros).unwrap_or_default();
                }
                e.finish().unwrap_or_default()
            }
            _ => {
                let mut e = brotli::CompressorWriter::new(Vec::new(), 4096, 9, 22);
                for _ in 0..64 {
                    e.write_all(&zeros).unwrap_or_default();
                }
                e.into_inner()
            }
        }
    }

    #[test]
    fn decoders_stop_a_bomb_at_the_room_they_are_given() {
        for kind in ["gzip", "br"] {
            let input = bomb(kind);
            assert!(input.len() < 256 * 1024, "{kind} bomb is {} bytes", input.len());
            let mut d = Decoder::new(kind).expect("decoder");
            let mut out = Vec::new();
            assert_eq!(d.push(&input, true, 1 << 20, &mut out), Err(DecodeError::Limit), "{kind}");
            assert!(out.len() <= 1 << 20, "{kind}: decoded {} bytes past the room", out.len());
            // and with room enough, the same input decodes whole
            let mut d = Decoder::new(kind).expect("decoder");
            let mut out = Vec::new();
            assert_eq!(d.push(&input, true, 64 << 20, &mut out), Ok(()), "{kind}");
            assert_eq!(out.len(), 64 << 20, "{kind}");
        }
    }

    #[test]
    fn multi_member_gzip_decodes_whole_and_truncated_brotli_fails() {
        let gz = |s: &[u8]| {
            let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
            e.write_all(s).unwrap_or_default();
            e.finish().unwrap_or_default()
        };
        let two = [gz(b"first 13800138000 "), gz(b"second")].concat();
        let mut out = Vec::new();
        Decoder::new("gzip").expect("gzip").push(&two, true, 1 << 20, &mut out).expect("two members");
        assert_eq!(out, b"first 13800138000 second");
        let mut e = brotli::CompressorWriter::new(Vec::new(), 4096, 5, 22);
        e.write_all(&b"a brotli body long enough to be cut ".repeat(40)).unwrap_or_default();
        let br = e.into_inner();
        let mut out = Vec::new();
        let cut = Decoder::new("br").expect("br").push(&br[..br.len() / 2], true, 1 << 20, &mut out);
        assert_eq!(cut, Err(DecodeError::Corrupt), "a brotli stream cut short is not a shorter body");
    }

    #[test]
    fn corrupt_input_is_not_a_limit() {
        let mut d = Decoder::new("gzip").expect("decoder");
        assert_eq!(d.push(b"not gzip at all", true, 1 << 20, &mut Vec::new()), Err(DecodeError::Corrupt));
    }
}
