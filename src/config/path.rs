//! Request paths in normal form: routes match it, and `path_prefix` must be written in it.

/// A request path in normal form (RFC 3986 §6.2.2): percent-encoded unreserved characters
/// decoded, dot segments resolved, repeated slashes collapsed; `Ok(None)` when it already is.
/// Routes match this form, so `/%61pi/`, `//api/` or `/x/../api/` reach `/api/`'s route under its
/// policy whatever the upstream makes of them.
///
/// `loose` reads the path as the most lenient servers do: `%2F`, `%5C` and `\` as separators, a
/// segment's `;parameters` dropped (`..;` is `..` to Tomcat). The gateway routes both readings
/// and refuses a path whose readings reach different routes.
///
/// A `%` not followed by two hex digits is refused: decoding could otherwise form a new escape
/// (`%2%65` → `%2e`).
pub fn normal_path(path: &str, loose: bool) -> Result<Option<String>, &'static str> {
    let b = path.as_bytes();
    let suspicious = b.contains(&b'%')
        || b.contains(&b'\\')
        || b.contains(&b';')
        || path.contains("//")
        || path.contains("/.")
        || !path.starts_with('/');
    if !suspicious || path.is_empty() || path == "*" {
        return Ok(None);
    }
    let hex = |c: u8| (c as char).to_digit(16);
    let mut decoded = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let (Some(h), Some(l)) = (b.get(i + 1).and_then(|&c| hex(c)), b.get(i + 2).and_then(|&c| hex(c))) else {
                return Err("malformed percent-encoding in path");
            };
            let c = (h * 16 + l) as u8;
            if c.is_ascii_alphanumeric()
                || matches!(c, b'-' | b'.' | b'_' | b'~')
                || (loose && matches!(c, b'/' | b'\\'))
            {
                decoded.push(if c == b'\\' { b'/' } else { c });
            } else {
                decoded.extend_from_slice(&b[i..i + 3]);
            }
            i += 3;
            continue;
        }
        decoded.push(if loose && b[i] == b'\\' { b'/' } else { b[i] });
        i += 1;
    }
    let decoded = String::from_utf8_lossy(&decoded).into_owned();
    let segments: Vec<&str> =
        decoded.split('/').map(|seg| if loose { seg.split(';').next().unwrap_or("") } else { seg }).collect();
    let last = segments.len().saturating_sub(1);
    let (mut out, mut trailing) = (Vec::new(), false);
    for (k, seg) in segments.iter().enumerate() {
        match *seg {
            "" | "." => trailing = k == last && k > 0,
            ".." => {
                out.pop();
                trailing = k == last;
            }
            s => {
                out.push(s);
                trailing = false;
            }
        }
    }
    let mut norm = String::with_capacity(path.len());
    for seg in &out {
        norm.push('/');
        norm.push_str(seg);
    }
    if trailing || norm.is_empty() {
        norm.push('/');
    }
    Ok((norm != path).then_some(norm))
}
