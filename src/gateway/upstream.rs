//! The upstream side of an exchange: which address, fail-over, the request head the upstream
//! gets, and relaying the rest of a response.

use http::header::{self, HeaderName};
use std::net::SocketAddr;
use std::time::Duration;

use pingora::http::RequestHeader;
use pingora::prelude::*;
use pingora::proxy::Session;
use pingora::upstreams::peer::HttpPeer;

use super::ctx::{Ctx, ReqBody};
use super::state::Active;
use crate::config::RouteId;
use crate::config::Snapshot;

/// Request fields that say who the client is. The client's own are never forwarded: the
/// upstream gets the department header and `X-Forwarded-For` from the gateway instead.
pub const CLIENT_IDENTITY_HEADERS: [HeaderName; 3] =
    [X_FORWARDED_FOR, header::FORWARDED, HeaderName::from_static("x-real-ip")];

/// `X-Forwarded-For`: the client's claim is dropped (or kept after a trusted proxy), the
/// gateway's own sent.
const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");

/// Hop-by-hop fields: not forwarded to the upstream. (Names, not strings: a name given as a
/// string is parsed again on every removal.)
const HOP_BY_HOP: [HeaderName; 8] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
    header::TE,
    header::TRAILER,
    header::UPGRADE,
    header::EXPECT,
    HeaderName::from_static("http2-settings"),
];

/// A connection to `peer` failed before anything was sent: take the address out of rotation
/// until its health check passes, and say whether another address may be tried.
pub fn fail_over(ctx: &mut Ctx, snap: &Active, route: RouteId, peer: &HttpPeer, e: &Error) -> bool {
    let connect = matches!(
        e.etype(),
        ConnectRefused | ConnectTimedout | ConnectNoRoute | ConnectError | TLSHandshakeFailure | InvalidCert
    );
    let (Some(pool), Some(r)) = (snap.pools.get(route.0), snap.routes.get(route.0)) else { return false };
    if !connect {
        return false;
    }
    if let Some(addr) = pingora::upstreams::peer::Peer::address(peer).as_inet() {
        pool.connect_failed(*addr, !r.upstream.health_check_interval.is_zero());
        tracing::warn!(route = %r.id, upstream = %addr, error = %e.etype().as_str(), "upstream connection failed; trying the next address");
        if !ctx.connect_failed.contains(addr) {
            ctx.connect_failed.push(*addr);
        }
    }
    // another address not yet tried (an address listed twice counts once)
    ctx.connect_failed.len() < 16 && pool.addrs.iter().any(|a| !ctx.connect_failed.contains(a))
}

/// The upstream peer for a route (round robin over healthy addresses).
pub fn peer(snap: &Active, route: RouteId, failed: &[SocketAddr]) -> Box<HttpPeer> {
    let r = &snap.routes[route];
    let u = &r.upstream;
    let addr = snap.pools[route].pick(failed);
    let mut peer = HttpPeer::new(addr, u.tls, u.sni.clone());
    peer.options.connection_timeout = Some(u.connect_timeout);
    peer.options.total_connection_timeout = Some(u.connect_timeout + Duration::from_secs(1));
    peer.options.read_timeout = Some(u.read_timeout);
    peer.options.write_timeout = Some(u.read_timeout);
    peer.options.idle_timeout = Some(Duration::from_secs(60));
    peer.options.tcp_recv_buf = u.receive_buffer;
    if let Some(ca) = snap.cas.get(route.0).cloned().flatten() {
        peer.options.ca = Some(ca);
    }
    Box::new(peer)
}

/// `ip` as text: an IPv4 address without the formatting machinery (every request forwards its
/// client's), others through `Display`.
fn ip_text(ip: std::net::IpAddr) -> String {
    let std::net::IpAddr::V4(v4) = ip else { return ip.to_string() };
    let mut s = String::with_capacity(15);
    for (i, o) in v4.octets().into_iter().enumerate() {
        if i > 0 {
            s.push('.');
        }
        if o >= 100 {
            s.push(char::from(b'0' + o / 100));
        }
        if o >= 10 {
            s.push(char::from(b'0' + o / 10 % 10));
        }
        s.push(char::from(b'0' + o % 10));
    }
    s
}

/// Headers for the upstream: resolved department, forwarded-for, rewritten query and values.
pub fn prepare_upstream(req: &mut RequestHeader, ctx: &Ctx, snap: &Snapshot) -> Result<()> {
    let peer_trusted = ctx.peer_ip.is_some_and(|p| snap.identity.trusted_proxies.iter().any(|c| c.contains(p)));
    let xff = match (peer_trusted, ctx.forwarded_for.as_deref(), ctx.peer_ip) {
        (true, Some(prev), Some(p)) => format!("{prev}, {}", ip_text(p)),
        (_, _, Some(p)) => ip_text(p),
        _ => String::new(),
    };
    // rewritten values first, so that nothing a client sent can replace what the gateway sets
    for (name, values) in &ctx.new_headers {
        req.remove_header(name);
        for v in values {
            req.append_header(name.clone(), v.clone())?;
        }
    }
    if let Some(q) = &ctx.new_query {
        let pq = format!("{}?{}", req.uri.path(), q);
        match pq.parse::<http::Uri>() {
            Ok(uri) => req.set_uri(uri),
            // the rewritten query no longer fits in a URI: never fall back to the raw one
            Err(_) => return Error::e_explain(HTTPStatus(414), "dlp: rewritten query too long"),
        }
    }
    // identity: the client's own claims are dropped, the gateway's resolution is sent; an
    // inspected response is asked for whole and uncompressed (partial or encoded bodies cannot be
    // scanned reliably); a decoded or held body's framing and coding go
    let inspect_response = ctx.route.is_some_and(|r| snap.routes[r].inspect.response);
    let body_changes = matches!(ctx.req_body, ReqBody::Stream(_) | ReqBody::Hold(_));
    let identity = &snap.identity;
    super::fields::remove_where(req, |n| {
        CLIENT_IDENTITY_HEADERS.contains(n)
            || *n == identity.api_key_header
            || *n == identity.department_header
            || (ctx.continued && *n == header::EXPECT)
            || (inspect_response && (*n == header::ACCEPT_ENCODING || *n == header::RANGE || *n == header::IF_RANGE))
            || (ctx.req_decoded && *n == header::CONTENT_ENCODING)
            || (body_changes && *n == header::CONTENT_LENGTH)
    });
    req.insert_header(identity.department_header.clone(), snap.departments[ctx.dept].id.as_str())?;
    if !xff.is_empty() {
        req.insert_header(X_FORWARDED_FOR, xff)?;
    }
    if let Some(route) = ctx.route {
        if !req.headers.contains_key(http::header::HOST) {
            // an HTTP/1.0 client may send none; an HTTP/1.1 upstream must get one: the request
            // target's authority if it has one (absolute form), else the upstream's name
            let up = &snap.routes[route].upstream;
            let host = match req.uri.authority() {
                Some(a) => Some(a.as_str().to_string()),
                None if up.sni.is_empty() => up.addrs.first().map(ToString::to_string),
                None => Some(up.sni.clone()),
            };
            if let Some(h) = host {
                req.insert_header(http::header::HOST, h)?;
            }
        }
    }
    if let ReqBody::Decided(Some(b)) = &ctx.req_body {
        req.insert_header(header::CONTENT_LENGTH, b.len().to_string())?;
    }
    // (a held or streamed body may change length: it goes chunked, its length removed above)
    Ok(())
}

/// The request head as an HTTP/1.1 upstream must get it, as Pingora's proxy path makes it:
/// version 1.1, `Host` from an HTTP/2 client's `:authority`, and none of the client connection's
/// own fields: `Connection` and what it nominates, `Keep-Alive`, `TE`, `Upgrade`, `Expect` (the
/// gateway holds the whole body before it contacts the upstream) and HTTP/2 leftovers.
pub fn h1_upstream_head(req: &mut RequestHeader) -> Result<()> {
    if req.version == http::Version::HTTP_2 {
        if let Some(authority) = req.uri.authority().map(|a| a.as_str().to_string()) {
            req.insert_header(http::header::HOST, authority)?;
        }
    }
    req.set_version(http::Version::HTTP_11);
    let nominated: Vec<String> = req
        .headers
        .get_all(http::header::CONNECTION)
        .iter()
        .flat_map(|v| v.as_bytes().split(|&b| b == b','))
        .map(|t| String::from_utf8_lossy(t.trim_ascii()).to_ascii_lowercase())
        .filter(|t| !t.is_empty() && !matches!(t.as_str(), "host" | "content-length" | "transfer-encoding"))
        .collect();
    super::fields::remove_where(req, |n| HOP_BY_HOP.contains(n) || nominated.iter().any(|t| t == n.as_str()));
    Ok(())
}

/// Copy the rest of the upstream body to the client as it comes, end the response, and return the
/// connection to the pool.
pub async fn relay_rest(
    conns: &super::idle::Connections,
    session: &mut Session,
    mut up: pingora::protocols::http::client::HttpSession,
    peer: &HttpPeer,
) -> Result<()> {
    while let Some(c) = up.read_response_body().await.map_err(|e| e.into_up())? {
        session.write_response_body(Some(c), false).await?;
    }
    session.write_response_body(None, true).await?;
    conns.release(up, peer).await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_read_as_display_writes_them() {
        use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
        for o in [0u8, 1, 9, 10, 11, 99, 100, 101, 109, 110, 199, 200, 250, 255] {
            for ip in [Ipv4Addr::new(o, 0, 255, o), Ipv4Addr::new(127, o, 10, 1), Ipv4Addr::new(o, o, o, o)] {
                assert_eq!(ip_text(IpAddr::V4(ip)), ip.to_string());
            }
        }
        let v6 = IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1));
        assert_eq!(ip_text(v6), "2001:db8::1");
    }

    #[test]
    fn an_h1_upstream_gets_none_of_the_client_connection_fields() {
        let mut r = RequestHeader::build("GET", b"/api/x", None).expect("head");
        r.set_version(http::Version::HTTP_2);
        r.set_uri("https://svc.example/api/x".parse().expect("uri"));
        for (k, v) in [
            ("connection", "keep-alive, x-secret"),
            ("x-secret", "1"),
            ("te", "trailers"),
            ("upgrade", "h2c"),
            ("expect", "100-continue"),
            ("accept", "*/*"),
        ] {
            r.append_header(k, v).expect("header");
        }
        h1_upstream_head(&mut r).expect("head");
        assert_eq!(r.version, http::Version::HTTP_11);
        assert_eq!(r.headers.get("host").and_then(|v| v.to_str().ok()), Some("svc.example"));
        for gone in ["connection", "x-secret", "te", "upgrade", "expect"] {
            assert!(r.headers.get(gone).is_none(), "{gone}");
        }
        assert!(r.headers.get("accept").is_some());
    }

    #[test]
    fn the_upstream_hears_the_gateway_not_the_client_about_identity() {
        let snap = crate::gateway::head::tests::snapshot();
        let mut r = RequestHeader::build("GET", b"/api/x?id=1", None).expect("head");
        for (k, v) in [
            ("x-forwarded-for", "203.0.113.9"),
            ("x-real-ip", "203.0.113.9"),
            ("x-api-key", "k"),
            ("x-dlpgate-department", "public-security"),
            ("accept-encoding", "gzip"),
            ("range", "bytes=0-1"),
        ] {
            r.append_header(k, v).expect("header");
        }
        let ctx = Ctx {
            peer_ip: "10.1.1.1".parse().ok(),
            forwarded_for: Some("198.51.100.1".into()),
            route: Some(crate::config::RouteId(0)),
            dept: snap.unknown,
            new_query: Some("id=%5BX%5D".into()),
            ..Ctx::default()
        };
        prepare_upstream(&mut r, &ctx, &snap).expect("prepared");
        let h = |n: &str| r.headers.get(n).and_then(|v| v.to_str().ok()).map(str::to_string);
        // a trusted proxy's chain is kept and the proxy added
        assert_eq!(h("x-forwarded-for").as_deref(), Some("198.51.100.1, 10.1.1.1"));
        assert_eq!(h("x-real-ip"), None);
        assert_eq!(h(snap.identity.api_key_header.as_str()), None);
        assert_eq!(h(snap.identity.department_header.as_str()).as_deref(), Some("unknown"));
        // an inspected response is asked for whole and uncompressed
        assert_eq!(h("accept-encoding"), None);
        assert_eq!(h("range"), None);
        assert_eq!(r.uri.to_string(), "/api/x?id=%5BX%5D");
    }
}
