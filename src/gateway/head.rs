//! The request head before any policy: who is calling from where, which route, and the framing
//! and target forms the gateway refuses or rewrites. Pure functions.

use std::net::{IpAddr, SocketAddr};

use pingora::http::RequestHeader;
use pingora::protocols::l4::socket::SocketAddr as PSocketAddr;

use super::respond::Verdict;
use crate::config::Snapshot;

pub fn inet(a: Option<&PSocketAddr>) -> Option<SocketAddr> {
    a.and_then(|a| a.as_inet()).copied()
}

/// The client address: the peer, or the right-most untrusted `X-Forwarded-For` entry when the
/// peer is a trusted proxy.
pub fn client_ip(snap: &Snapshot, peer: Option<IpAddr>, xff: Option<&str>) -> Option<IpAddr> {
    let peer = peer?;
    let trusted = |ip: IpAddr| snap.identity.trusted_proxies.iter().any(|c| c.contains(ip));
    if !trusted(peer) {
        return Some(peer);
    }
    let Some(xff) = xff else { return Some(peer) };
    for part in xff.rsplit(',') {
        match part.trim().parse::<IpAddr>() {
            Ok(ip) if trusted(ip) => continue,
            Ok(ip) => return Some(ip),
            Err(_) => return Some(peer),
        }
    }
    Some(peer)
}

pub fn header_str<'a>(req: &'a RequestHeader, name: &str) -> Option<&'a str> {
    req.headers.get(name).and_then(|v| v.to_str().ok())
}

/// Every `X-Forwarded-For` field line, joined in order: a proxy that adds its own line must not
/// leave the client's first line to decide who is calling.
pub fn forwarded_for(req: &RequestHeader) -> Option<String> {
    let lines: Vec<&str> =
        req.headers.get_all("x-forwarded-for").iter().map(|v| v.to_str().unwrap_or("invalid")).collect();
    (!lines.is_empty()).then(|| lines.join(", "))
}

/// A request body coded other than plain `chunked` (`gzip, chunked`): Pingora removes the chunking
/// only, so the body would be inspected still compressed, and servers disagree on such framing.
/// (With both `Transfer-Encoding` and `Content-Length`, Pingora already drops the length and keeps
/// no connection alive after the request, as RFC 9112 §6.1 asks.)
pub fn ambiguous_framing(req: &RequestHeader) -> Option<&'static str> {
    let mut te = req.headers.get_all(http::header::TRANSFER_ENCODING).iter();
    let first = te.next()?;
    if te.next().is_some() || !first.as_bytes().trim_ascii().eq_ignore_ascii_case(b"chunked") {
        return Some("transfer-encoding other than chunked");
    }
    None
}

/// Percent-encode what a rewritten query may now contain (`[`, `]`, spaces, non-ASCII labels).
pub fn encode_query(q: &[u8]) -> String {
    let mut s = String::with_capacity(q.len());
    for &b in q {
        if b.is_ascii_alphanumeric() || b"-._~!$&'()*+,;=:@/?%".contains(&b) {
            s.push(b as char);
        } else {
            s.push_str(&format!("%{b:02X}"));
        }
    }
    s
}

/// The route for `host` and `path`. Routes match the path in normal form, read strictly and as
/// lenient servers read it; a path whose readings reach different routes is refused (400), as is
/// a malformed one. The upstream gets the path as sent.
/// RFC 9112 §3.2: an HTTP/1.1 request carries exactly one `Host`; HTTP/1.0 may omit it (and is
/// then routed only to routes without `hosts`), but never sends two.
pub fn bad_host(req: &RequestHeader) -> Option<&'static str> {
    let mut hosts = req.headers.get_all(http::header::HOST).iter();
    match (hosts.next(), hosts.next()) {
        (None, _) if req.version == http::Version::HTTP_11 => Some("HTTP/1.1 request without Host"),
        (Some(_), Some(_)) => Some("more than one Host"),
        _ => None,
    }
}

pub fn choose_route(snap: &Snapshot, host: &str, path: &str) -> Result<crate::config::RouteId, Verdict> {
    let (strict, loose) = match (crate::config::normal_path(path, false), crate::config::normal_path(path, true)) {
        (Ok(s), Ok(l)) => (s, l),
        (Err(why), _) | (_, Err(why)) => return Err(Verdict::BadRequest(why)),
    };
    let route = snap.route(host, strict.as_deref().unwrap_or(path));
    if strict != loose && route != snap.route(host, loose.as_deref().unwrap_or(path)) {
        return Err(Verdict::BadRequest("ambiguous path"));
    }
    route.ok_or(Verdict::NoRoute)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A snapshot with a trusted proxy network and three routes.
    pub(crate) fn snapshot() -> Snapshot {
        let text = r#"
listeners: [{addr: "127.0.0.1:8080"}]
identity: {trusted_proxies: ["10.0.0.0/8"]}
policies: [{id: p}]
routes:
  - {id: api, path_prefix: /api/, policy: p, upstream: {addrs: ["127.0.0.1:9000"]}}
  - {id: admin, hosts: [admin.example], path_prefix: /, policy: p, upstream: {addrs: ["127.0.0.1:9001"]}}
  - {id: rest, path_prefix: /, policy: p, upstream: {addrs: ["127.0.0.1:9002"]}}
"#;
        crate::config::load_str(std::path::Path::new("t.yaml"), text).expect("config")
    }

    #[test]
    fn client_address_from_trusted_proxies_only() {
        let s = snapshot();
        let ip = |p: &str| p.parse::<IpAddr>().ok();
        // an untrusted peer is the client, whatever it claims
        assert_eq!(client_ip(&s, ip("192.0.2.7"), Some("198.51.100.1")), ip("192.0.2.7"));
        // a trusted proxy: the right-most address it did not add itself
        assert_eq!(client_ip(&s, ip("10.1.1.1"), Some("198.51.100.1, 192.0.2.9")), ip("192.0.2.9"));
        assert_eq!(client_ip(&s, ip("10.1.1.1"), Some("198.51.100.1, 10.2.2.2")), ip("198.51.100.1"));
        // garbage in the header: the proxy itself
        assert_eq!(client_ip(&s, ip("10.1.1.1"), Some("198.51.100.1, nonsense")), ip("10.1.1.1"));
        assert_eq!(client_ip(&s, ip("10.1.1.1"), None), ip("10.1.1.1"));
        assert_eq!(client_ip(&s, None, Some("198.51.100.1")), None);
    }

    #[test]
    fn routes_by_host_and_normal_path() {
        let s = snapshot();
        let id = |host: &str, path: &str| choose_route(&s, host, path).map(|r| s.routes[r].id.clone());
        assert_eq!(id("x", "/api/v1").as_deref(), Ok("api"));
        assert_eq!(id("x", "/%61pi/v1").as_deref(), Ok("api"), "escaped unreserved characters");
        assert_eq!(id("x", "//api/v1").as_deref(), Ok("api"), "repeated slashes");
        assert_eq!(id("x", "/x/../api/v1").as_deref(), Ok("api"), "dot segments");
        assert_eq!(id("admin.example:8080", "/api/v1").as_deref(), Ok("api"), "first match wins");
        assert_eq!(id("admin.example", "/other").as_deref(), Ok("admin"));
        assert_eq!(id("x", "/other").as_deref(), Ok("rest"));
        // readings that reach different routes, and malformed escapes, are refused
        assert_eq!(id("x", "/x/..;/api/v1"), Err(Verdict::BadRequest("ambiguous path")));
        assert!(matches!(id("x", "/api/%zz"), Err(Verdict::BadRequest(_))));
    }

    #[test]
    fn only_plain_chunked_framing() {
        let req = |te: &[&str]| {
            let mut r = RequestHeader::build("POST", b"/", None).expect("head");
            for v in te {
                r.append_header("transfer-encoding", *v).expect("header");
            }
            r
        };
        assert_eq!(ambiguous_framing(&req(&[])), None);
        assert_eq!(ambiguous_framing(&req(&["chunked"])), None);
        assert_eq!(ambiguous_framing(&req(&[" Chunked "])), None);
        assert!(ambiguous_framing(&req(&["gzip, chunked"])).is_some());
        assert!(ambiguous_framing(&req(&["chunked", "chunked"])).is_some());
    }

    #[test]
    fn encode_query_keeps_url_bytes() {
        assert_eq!(encode_query(b"a=1&b=13****8000"), "a=1&b=13****8000");
        assert_eq!(encode_query("id=[身份证号]".as_bytes()), "id=%5B%E8%BA%AB%E4%BB%BD%E8%AF%81%E5%8F%B7%5D");
    }
}
