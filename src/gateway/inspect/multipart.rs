//! Multipart bodies part by part, and `Content-Disposition` parameters.

use super::body::BodyRules;
use super::{FindingLog, ScannedBody, Scope, Uninspectable, is_form, scan_buffer_at, scan_document, scan_form_at};
use crate::charset::{self, Declared};
use crate::documents;
use crate::engine::Place;

/// The `boundary` parameter of a `multipart/*` content type.
pub fn multipart_boundary(content_type: Option<&str>) -> Option<String> {
    let ct = content_type?;
    if !ct.trim_start().to_ascii_lowercase().starts_with("multipart/") {
        return None;
    }
    let mut found = ct.split(';').skip(1).filter_map(|p| {
        let (k, v) = p.split_once('=')?;
        k.trim().eq_ignore_ascii_case("boundary").then(|| v.trim().trim_matches('"').to_string())
    });
    let first = found.next()?;
    // two boundaries: parsers disagree on which one counts, so none is trusted (scanned whole)
    (found.next().is_none() && !first.is_empty()).then_some(first)
}

/// What the pieces of a multipart body are handed to: the gateway's scope here, the command
/// line's rules in `dlpgate scan` and `mask`.
pub trait Parts {
    /// Text at `at` in the body (a part's content, or what stands outside the parts) that stands
    /// at `place`; `form`: form-urlencoded. Appends its rewrite to `out`; true: a finding blocks.
    fn text(&mut self, at: usize, text: &[u8], place: &Place<'_>, form: bool, out: &mut Vec<u8>) -> bool;
    /// A document uploaded at `at` (`file`: its file name, if it gives one). Appends its rewrite
    /// (or the document as it came) to `out`; true: a finding blocks.
    fn document(
        &mut self,
        at: usize,
        doc: &[u8],
        file: Option<String>,
        out: &mut Vec<u8>,
    ) -> Result<bool, Uninspectable>;
}

/// Scan a complete multipart body part by part. Every part is scanned and rewritten except an
/// uploaded file (a `filename` in its disposition) of a type that is not text: that is copied
/// untouched and reported in `binary_parts`, so an image or PDF is never corrupted by masking.
/// A form field is always scanned, whatever type the client gives it (form parsers ignore it).
/// Delimiters count only at the start of a line, as RFC 2046 has them.
/// A file part whose bytes show a document (xlsx, docx, zip …) is inspected inside.
/// An unparsable body is scanned whole.
pub fn scan_multipart(
    scope: Scope<'_>,
    log: &mut FindingLog,
    body: &[u8],
    boundary: &str,
    rules: &BodyRules,
) -> Result<ScannedBody, Uninspectable> {
    scan_parts(&mut Gateway { scope, log, rules }, body, boundary)
}

/// The gateway's [`Parts`]: the scope's decisions, recorded in the log.
struct Gateway<'a, 'l> {
    scope: Scope<'a>,
    log: &'l mut FindingLog,
    rules: &'l BodyRules,
}

impl Parts for Gateway<'_, '_> {
    fn text(&mut self, _: usize, text: &[u8], place: &Place<'_>, form: bool, out: &mut Vec<u8>) -> bool {
        let (o, b) = if form {
            scan_form_at(self.scope, self.log, text, place)
        } else {
            scan_buffer_at(self.scope, self.log, text, place)
        };
        out.extend_from_slice(&o);
        b
    }

    fn document(
        &mut self,
        _: usize,
        doc: &[u8],
        file: Option<String>,
        out: &mut Vec<u8>,
    ) -> Result<bool, Uninspectable> {
        if self.log.file.is_none() {
            self.log.file = file;
        }
        let d = scan_document(self.scope, self.log, doc, self.rules)?;
        out.extend_from_slice(d.bytes.as_deref().unwrap_or(doc));
        Ok(d.blocked)
    }
}

/// [`scan_multipart`] with any [`Parts`].
pub fn scan_parts(h: &mut dyn Parts, body: &[u8], boundary: &str) -> Result<ScannedBody, Uninspectable> {
    let delim = format!("--{boundary}");
    let finder = memchr::memmem::Finder::new(delim.as_bytes());
    let positions: Vec<usize> = finder
        .find_iter(body)
        .filter(|&p| {
            let line_start = p == 0 || body[..p].ends_with(b"\r\n");
            let after = &body[p + delim.len()..];
            let line_end = after.is_empty()
                || after.starts_with(b"\r\n")
                || after.starts_with(b"--")
                || after.starts_with(b" ")
                || after.starts_with(b"\t");
            line_start && line_end
        })
        .collect();
    let whole = Place::start();
    if positions.len() < 2 {
        let mut out = Vec::with_capacity(body.len());
        let blocked = h.text(0, body, &whole, false, &mut out);
        return Ok(ScannedBody { out, blocked, binary_parts: 0 });
    }
    let mut out = Vec::with_capacity(body.len());
    let mut blocked = false;
    let mut binary = 0;
    // what a lenient parser might still read as data: the preamble, a part without a header
    // block, and what follows the last delimiter are scanned as they are
    blocked |= h.text(0, &body[..positions[0]], &whole, false, &mut out);
    for w in positions.windows(2) {
        let (start, end) = (w[0], w[1]);
        let part = &body[start..end];
        // delimiter line, headers, blank line, content
        let Some(head_end) = memchr::memmem::find(part, b"\r\n\r\n") else {
            blocked |= h.text(start, part, &whole, false, &mut out);
            continue;
        };
        let content_start = head_end + 4;
        let headers = String::from_utf8_lossy(&part[..head_end]).to_ascii_lowercase();
        let field = |name: &str| headers.lines().find_map(|l| l.strip_prefix(name)).map(str::trim);
        let ctype = field("content-type:").unwrap_or("");
        let file = field("content-disposition:").is_some_and(names_a_file);
        // base64 hides what it carries; anything else (quoted-printable, a made-up coding) is
        // scanned as it is, as form parsers read it
        let coded = field("content-transfer-encoding:").is_some_and(|c| c == "base64");
        let essence = ctype.split(';').next().unwrap_or("").trim();
        if coded {
            // cannot be scanned as it is, so it is not text to us
            binary += 1;
            out.extend_from_slice(part);
            continue;
        }
        let text = !file
            || essence.is_empty()
            || essence.starts_with("text/")
            || essence.ends_with("/json")
            || essence.ends_with("+json")
            || essence.ends_with("/xml")
            || essence.ends_with("+xml")
            || is_form(essence);
        out.extend_from_slice(&part[..content_start]);
        let content = &part[content_start..];
        let doc = content.strip_suffix(b"\r\n").unwrap_or(content);
        if documents::sniff(doc).is_some() {
            // an uploaded workbook, document or archive: inspected inside, whatever its label
            let raw = String::from_utf8_lossy(&part[..head_end]).into_owned();
            let name = raw.lines().find_map(|l| {
                let (k, v) = l.split_once(':')?;
                k.trim().eq_ignore_ascii_case("content-disposition").then(|| disposition_filename(v))?
            });
            blocked |= h.document(start + content_start, doc, name, &mut out)?;
            out.extend_from_slice(&content[doc.len()..]);
        } else if text {
            // a form field's value stands in that field (`name="xm"`): names and addresses are
            // read by it; a file is read as a file
            let name = field("content-disposition:").filter(|_| !file).and_then(field_name);
            let place = Place { field: name.as_deref().map(str::as_bytes), ..Place::start() };
            let form = is_form(essence);
            let body = content.strip_suffix(b"\r\n").unwrap_or(content);
            // an uploaded CSV in GBK (as Excel saves one) or UTF-16: scanned as UTF-8, written back
            // in its charset; one whose bytes are not its charset's cannot be scanned
            let declared = if form { Declared::Plain } else { Declared::of_content_type(Some(ctype)) };
            match charset::decode_whole(declared, body) {
                Ok(None) => blocked |= h.text(start + content_start, content, &place, form, &mut out),
                Ok(Some((c, text))) => {
                    let mut masked = Vec::with_capacity(text.len());
                    blocked |= h.text(start + content_start, &text, &place, false, &mut masked);
                    if masked == text {
                        out.extend_from_slice(body);
                    } else {
                        out.extend_from_slice(&charset::encode(c, &masked));
                    }
                    out.extend_from_slice(&content[body.len()..]);
                }
                // not what its declared charset says: as any body that does not decode
                Err(_) => return Err(Uninspectable::Undecodable),
            }
        } else {
            binary += 1;
            out.extend_from_slice(content);
        }
    }
    if let Some(&last) = positions.last() {
        blocked |= h.text(last, &body[last..], &whole, false, &mut out);
    }
    Ok(ScannedBody { out, blocked, binary_parts: binary })
}

/// The parameters of a `Content-Disposition` value, split at `;` outside quotes (the first item is
/// the disposition type).
fn disposition_params(disposition: &str) -> Vec<String> {
    let mut params = Vec::new();
    let (mut cur, mut quoted, mut escaped) = (String::new(), false, false);
    for c in disposition.chars() {
        match c {
            _ if escaped => escaped = false,
            '\\' if quoted => escaped = true,
            '"' => quoted = !quoted,
            ';' if !quoted => {
                params.push(std::mem::take(&mut cur));
                continue;
            }
            _ => {}
        }
        cur.push(c);
    }
    params.push(cur);
    params
}

/// Whether a `Content-Disposition` value (lowercased) has a `filename` or `filename*` parameter
/// (not a field *named* "filename": parameters are split outside quotes).
/// The `name` a `Content-Disposition` value gives its form field (unquoted).
fn field_name(disposition: &str) -> Option<String> {
    disposition_params(disposition).iter().skip(1).find_map(|p| {
        let (k, v) = p.split_once('=')?;
        k.trim().eq_ignore_ascii_case("name").then(|| v.trim().trim_matches('"').to_string())
    })
}

fn names_a_file(disposition: &str) -> bool {
    disposition_params(disposition)
        .iter()
        .skip(1)
        .any(|p| matches!(p.split('=').next().map(str::trim), Some("filename" | "filename*")))
}

/// The file name a `Content-Disposition` value gives: `filename*` (RFC 8187, percent-decoded) over
/// `filename` (unquoted). At most 256 bytes of it.
pub fn disposition_filename(disposition: &str) -> Option<String> {
    let params = disposition_params(disposition);
    let value = |name: &str| {
        params.iter().skip(1).find_map(|p| {
            let (k, v) = p.split_once('=')?;
            k.trim().eq_ignore_ascii_case(name).then(|| v.trim().to_string())
        })
    };
    let name = if let Some(ext) = value("filename*") {
        // charset'language'percent-encoded
        let encoded = ext.splitn(3, '\'').nth(2).unwrap_or(&ext).to_string();
        let b = encoded.as_bytes();
        let mut out = Vec::with_capacity(b.len());
        let mut i = 0;
        while i < b.len() {
            let hex = |c: u8| (c as char).to_digit(16);
            match (b[i], b.get(i + 1).copied().and_then(hex), b.get(i + 2).copied().and_then(hex)) {
                (b'%', Some(h), Some(l)) => {
                    out.push((h * 16 + l) as u8);
                    i += 3;
                }
                (c, ..) => {
                    out.push(c);
                    i += 1;
                }
            }
        }
        String::from_utf8_lossy(&out).into_owned()
    } else {
        let v = value("filename")?;
        let v = v.strip_prefix('"').and_then(|v| v.strip_suffix('"')).unwrap_or(&v);
        v.replace("\\\"", "\"").replace("\\\\", "\\")
    };
    let mut end = name.len().min(256);
    while !name.is_char_boundary(end) {
        end -= 1;
    }
    (!name.is_empty()).then(|| name[..end].to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_parts_are_told_by_their_parameters() {
        assert!(names_a_file("form-data; name=\"doc\"; filename=\"a.png\""));
        assert!(names_a_file("attachment; filename*=utf-8''a.png"));
        assert!(!names_a_file("form-data; name=\"filename\""));
        assert!(!names_a_file("form-data; name=\"x; filename=y\""));
        assert!(!names_a_file("form-data; name=\"xfilename\""));
    }

    #[test]
    fn file_names_from_dispositions() {
        let f = disposition_filename;
        assert_eq!(f("attachment; filename=\"a b.xlsx\"").as_deref(), Some("a b.xlsx"));
        assert_eq!(f("attachment; filename=plain.csv").as_deref(), Some("plain.csv"));
        assert_eq!(
            f("attachment; filename=\"x.xlsx\"; filename*=UTF-8''%E5%AF%BC%E5%87%BA.xlsx").as_deref(),
            Some("导出.xlsx")
        );
        assert_eq!(f("attachment; filename=\"q\\\"q.txt\"").as_deref(), Some("q\"q.txt"));
        assert_eq!(f("inline").as_deref(), None);
        assert_eq!(f("form-data; name=\"filename\"").as_deref(), None);
    }

    #[test]
    fn multipart_boundaries() {
        assert_eq!(multipart_boundary(Some("multipart/form-data; boundary=abc")), Some("abc".into()));
        assert_eq!(multipart_boundary(Some("multipart/mixed; charset=x; boundary=\"q q\"")), Some("q q".into()));
        assert_eq!(multipart_boundary(Some("application/json")), None);
        assert_eq!(multipart_boundary(Some("multipart/form-data; boundary=a; boundary=b")), None);
    }
}
