//! Verdicts and errors → status codes and JSON bodies. Nothing else writes error responses.

use bytes::Bytes;
use pingora::http::ResponseHeader;
use pingora::prelude::*;
use pingora::proxy::Session;

/// The most the request line and headers may hold together (names, values and URI); a larger
/// head gets 431 before it reaches the policy or an upstream. Envoy's default is 60 KiB.
pub const MAX_REQUEST_HEAD: usize = 64 * 1024;

/// Why the gateway answers instead of the upstream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// A DLP block: 403 with the incident id and rule ids (never the value).
    Blocked { incident: String, rules: Vec<String> },
    /// The caller is not recognised and the config refuses unknown callers.
    Unrecognised,
    /// An API key no department holds, where `identity.unknown_api_key` refuses it.
    UnknownApiKey,
    /// No route matches host and path.
    NoRoute,
    /// A body could not be inspected and the route fails closed.
    Uninspectable { status: u16, reason: &'static str },
    /// The upstream failed.
    Upstream { status: u16, kind: &'static str },
    /// Bad request from the client.
    BadRequest(&'static str),
    /// The request line and headers together exceed [`MAX_REQUEST_HEAD`].
    HeadTooLarge,
    /// The department is over a `block` quota (see [`super::quota`]).
    QuotaExceeded { quota: String, retry_after: u64 },
    /// The shared quota store cannot be reached and `on_store_error: block` refuses requests
    /// under a `block` quota.
    QuotaStoreDown,
    /// The client stopped sending its body for longer than the listener's `client_body_timeout_s`.
    ClientTimeout,
}

impl Verdict {
    pub fn status(&self) -> u16 {
        match self {
            Verdict::Blocked { .. } | Verdict::Unrecognised => 403,
            Verdict::NoRoute => 404,
            Verdict::UnknownApiKey => 401,
            Verdict::Uninspectable { status, .. } | Verdict::Upstream { status, .. } => *status,
            Verdict::BadRequest(_) => 400,
            Verdict::HeadTooLarge => 431,
            Verdict::QuotaExceeded { .. } => 429,
            Verdict::ClientTimeout => 408,
            Verdict::QuotaStoreDown => 503,
        }
    }

    pub fn body(&self) -> String {
        let v = match self {
            Verdict::Blocked { incident, rules } => {
                serde_json::json!({"error": "blocked_by_dlp", "incident": incident, "rules": rules})
            }
            Verdict::Unrecognised => serde_json::json!({"error": "department_not_recognised"}),
            Verdict::NoRoute => serde_json::json!({"error": "no_route"}),
            Verdict::UnknownApiKey => serde_json::json!({"error": "api_key_not_recognised"}),
            Verdict::Uninspectable { reason, .. } => {
                serde_json::json!({"error": "uninspectable_body", "reason": reason})
            }
            Verdict::Upstream { kind, .. } => serde_json::json!({"error": "upstream_error", "kind": kind}),
            Verdict::BadRequest(why) => serde_json::json!({"error": "bad_request", "reason": why}),
            Verdict::HeadTooLarge => serde_json::json!({
                "error": "request_header_too_large",
                "limit": MAX_REQUEST_HEAD,
            }),
            Verdict::QuotaExceeded { quota, retry_after } => {
                serde_json::json!({"error": "quota_exceeded", "quota": quota, "retry_after": retry_after})
            }
            Verdict::ClientTimeout => serde_json::json!({"error": "request_timeout"}),
            Verdict::QuotaStoreDown => serde_json::json!({"error": "quota_store_unavailable"}),
        };
        v.to_string()
    }
}

/// The final response header sent to the client, if any (a `100 Continue` is not one).
pub fn final_written(session: &Session) -> Option<&ResponseHeader> {
    session.response_written().filter(|r| !r.status.is_informational())
}

/// Write `verdict` as a complete JSON response (unless a final response was already written).
pub async fn send(session: &mut Session, verdict: &Verdict) -> Result<()> {
    if final_written(session).is_some() {
        return Ok(());
    }
    let body = Bytes::from(verdict.body());
    let mut resp = ResponseHeader::build(verdict.status(), Some(4))?;
    resp.insert_header("content-type", "application/json")?;
    resp.insert_header("content-length", body.len().to_string())?;
    resp.insert_header("cache-control", "no-store")?;
    if let Verdict::QuotaExceeded { retry_after, .. } = verdict {
        resp.insert_header("retry-after", retry_after.to_string())?;
    }
    if verdict == &Verdict::UnknownApiKey {
        resp.insert_header("www-authenticate", "ApiKey")?;
    }
    // the request body may be unread: do not reuse the connection
    session.set_keepalive(None);
    session.write_response_header(Box::new(resp), false).await?;
    session.write_response_body(Some(body), true).await?;
    Ok(())
}

/// Drop the headers that no longer describe a decoded, rewritten body (length, coding, ranges,
/// validators) and answer HTTP/1.1, so an h1 client gets chunked framing.
pub fn strip_for_rewrite(resp: &mut ResponseHeader) {
    use http::header::{ACCEPT_RANGES, CONTENT_ENCODING, CONTENT_LENGTH, ETAG, TRANSFER_ENCODING};
    let gone = [CONTENT_LENGTH, CONTENT_ENCODING, TRANSFER_ENCODING, ACCEPT_RANGES, ETAG];
    super::fields::remove_where(resp, |n| gone.contains(n));
    resp.set_version(http::Version::HTTP_11);
}

/// For every response of a route that inspects responses: what one department receives (in
/// clear, or masked) is not for another, so no shared cache may keep it. `public` and `s-maxage`
/// go, `private` is added (unless the upstream already forbids storing it at all).
pub fn private_cache(resp: &mut ResponseHeader) {
    // the CDN-specific ones would let a CDN in front keep it all the same
    super::fields::remove_where(resp, |n| n == "cdn-cache-control" || n == "surrogate-control");
    if !resp.headers.contains_key(http::header::CACHE_CONTROL) {
        // the common case, without parsing or allocating
        let _ = resp.insert_header(http::header::CACHE_CONTROL, "private");
        return;
    }
    let mut directives: Vec<String> = resp
        .headers
        .get_all(http::header::CACHE_CONTROL)
        .iter()
        .flat_map(|v| v.to_str().unwrap_or("no-store").split(','))
        .map(|d| d.trim().to_string())
        .filter(|d| {
            let name = d.split('=').next().unwrap_or("").trim().to_ascii_lowercase();
            !d.is_empty() && name != "public" && name != "s-maxage" && name != "proxy-revalidate"
        })
        .collect();
    // only a bare `private` covers the whole response (`private="set-cookie"` names fields)
    let bare = |n: &str, ds: &[String]| ds.iter().any(|d| d.eq_ignore_ascii_case(n));
    if !bare("private", &directives) && !bare("no-store", &directives) {
        directives.push("private".to_string());
    }
    let _ = resp.insert_header(http::header::CACHE_CONTROL, directives.join(", "));
}

/// A response to HEAD on an inspected route: the validators and length describe the upstream's
/// body, not the rewritten one a GET would get.
pub fn strip_head(resp: &mut ResponseHeader) {
    for h in ["content-length", "accept-ranges", "etag"] {
        resp.remove_header(h);
    }
}

/// The `kind` labels of `dlpgate_upstream_errors_total`.
pub const UPSTREAM_ERROR_KINDS: [&str; 5] = ["connect", "timeout", "closed", "reset", "protocol"];

/// Count a failure of the upstream for `route` and turn it into the client's verdict: 504 for a
/// timeout, 502 for everything else it did (refused, closed, reset, sent something that is not
/// HTTP). Only the gateway's own faults are 500, and none comes from an upstream session.
pub fn upstream_failure(route_id: &str, e: &Error) -> Verdict {
    // whatever its source says: it came from the upstream's session
    let (status, kind) = match error_status(e, true) {
        (_, "status") => (502, "protocol"),
        sk => sk,
    };
    counted(route_id, status, kind)
}

fn counted(route_id: &str, status: u16, kind: &'static str) -> Verdict {
    crate::telemetry::Metrics::get().upstream_errors.with_label_values(&[route_id, kind]).inc();
    Verdict::Upstream { status, kind }
}

/// What the client is told about an error that ended its request, or `None` when its own
/// connection failed (closed, reset) and there is no one to tell. A client that sent something
/// malformed (a bad chunk, a truncated body) gets 400, one whose body stopped coming 408;
/// failures of the upstream are counted for `route_id`, when the request got that far.
pub fn failure_verdict(e: &Error, route_id: Option<&str>) -> Option<Verdict> {
    if e.esource() == &ErrorSource::Downstream {
        return match e.etype() {
            // a body that stopped coming: told so, as nginx does, if it still listens
            ReadTimedout => Some(Verdict::ClientTimeout),
            ConnectionClosed | ReadError | WriteError | WriteTimedout => None,
            _ => Some(Verdict::BadRequest("malformed request")),
        };
    }
    let (status, kind) = error_status(e, e.esource() == &ErrorSource::Upstream);
    Some(match route_id {
        Some(id) if UPSTREAM_ERROR_KINDS.contains(&kind) => counted(id, status, kind),
        _ => Verdict::Upstream { status, kind },
    })
}

/// Map an error that is not the client's to (status, kind) for the client and the upstream-error
/// metric.
fn error_status(e: &Error, upstream: bool) -> (u16, &'static str) {
    match e.etype() {
        ConnectTimedout | ReadTimedout | WriteTimedout => (504, "timeout"),
        ConnectRefused | ConnectNoRoute | ConnectError | ConnectProxyFailure | TLSHandshakeFailure | InvalidCert => {
            (502, "connect")
        }
        HTTPStatus(s) => (*s, "status"),
        ConnectionClosed if upstream => (502, "closed"),
        ReadError | WriteError if upstream => (502, "reset"),
        _ if upstream => (502, "protocol"),
        _ => (500, "internal"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cc(upstream: Option<&str>) -> String {
        let mut r = ResponseHeader::build(200, None).expect("head");
        if let Some(v) = upstream {
            r.insert_header("cache-control", v).expect("header");
        }
        private_cache(&mut r);
        r.headers.get("cache-control").and_then(|v| v.to_str().ok()).unwrap_or("").to_string()
    }

    #[test]
    fn failures_map_to_statuses() {
        let up = |t: ErrorType| Error::new_up(t);
        let down = |t: ErrorType| Error::new_down(t);
        let st = |e: &Error| failure_verdict(e, None).map(|v| v.status());
        assert_eq!(st(&up(ConnectRefused)), Some(502));
        assert_eq!(st(&up(ConnectTimedout)), Some(504));
        assert_eq!(st(&up(ReadTimedout)), Some(504));
        assert_eq!(st(&up(InvalidHTTPHeader)), Some(502), "an upstream protocol error");
        assert_eq!(st(&Error::new(InternalError)), Some(500), "the gateway's own fault");
        // the client's connection failed: nobody to answer
        assert_eq!(st(&down(ConnectionClosed)), None);
        // the client sent something malformed
        assert_eq!(failure_verdict(&down(InvalidHTTPHeader), None), Some(Verdict::BadRequest("malformed request")));
        assert_eq!(upstream_failure("r", &up(InvalidHTTPHeader)).status(), 502);
        // an upstream session's error is the upstream's, whatever its source says
        assert_eq!(
            upstream_failure("r", &Error::new(ConnectionClosed)),
            Verdict::Upstream { status: 502, kind: "closed" }
        );
        assert_eq!(st(&up(ConnectionClosed)), Some(502));
        assert_eq!(st(&down(ReadTimedout)), Some(408), "a client body that stopped coming");
    }

    #[test]
    fn responses_are_private_to_the_caller() {
        assert_eq!(cc(None), "private");
        assert_eq!(cc(Some("public, max-age=60, s-maxage=600")), "max-age=60, private");
        assert_eq!(cc(Some("no-store")), "no-store");
        assert_eq!(cc(Some("private, max-age=5")), "private, max-age=5");
        // a field-scoped private leaves the rest storable: not enough
        assert_eq!(cc(Some("private=\"set-cookie\", max-age=600")), "private=\"set-cookie\", max-age=600, private");
    }
}
