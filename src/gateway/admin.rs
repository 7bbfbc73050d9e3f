//! Admin endpoints (loopback by default): `/metrics`, `/healthz`, `/readyz`, `POST /reload`.
//! Reload needs `Authorization: Bearer <token>` with the token from `admin.token_file`.

use async_trait::async_trait;
use http::Response;
use pingora::apps::http_app::ServeHttp;
use pingora::protocols::http::ServerSession;

use super::state::Store;
use crate::telemetry::Metrics;

/// The admin application.
#[derive(Debug)]
pub struct Admin {
    pub store: Store,
}

fn reply(status: u16, ctype: &str, body: Vec<u8>) -> Response<Vec<u8>> {
    Response::builder()
        .status(status)
        .header("content-type", ctype)
        .header("content-length", body.len().to_string())
        .header("cache-control", "no-store")
        .body(body)
        .unwrap_or_else(|_| Response::new(Vec::new()))
}

fn json(status: u16, v: serde_json::Value) -> Response<Vec<u8>> {
    reply(status, "application/json", v.to_string().into_bytes())
}

/// Constant-time token comparison.
fn token_ok(expected: &str, header: Option<&str>) -> bool {
    let Some(given) = header.and_then(|h| h.strip_prefix("Bearer ")) else { return false };
    let (a, b) = (expected.as_bytes(), given.trim().as_bytes());
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[async_trait]
impl ServeHttp for Admin {
    async fn response(&self, s: &mut ServerSession) -> Response<Vec<u8>> {
        let method = s.req_header().method.clone();
        let path = s.req_header().uri.path().to_string();
        match (method.as_str(), path.as_str()) {
            ("GET", "/metrics") => reply(200, "text/plain; version=0.0.4", Metrics::get().render()),
            ("GET", "/healthz") => json(200, serde_json::json!({"status": "ok"})),
            ("GET", "/readyz") => {
                let a = self.store.load();
                json(
                    200,
                    serde_json::json!({"status": "ready", "rules": a.rules.rules().len(), "routes": a.routes.len()}),
                )
            }
            ("POST", "/reload") => {
                let expected = self.store.load().admin.token.clone();
                let Some(expected) = expected else {
                    return json(
                        403,
                        serde_json::json!({"error": "reload disabled: admin.token_file is not configured"}),
                    );
                };
                let auth =
                    s.req_header().headers.get("authorization").and_then(|v| v.to_str().ok()).map(str::to_string);
                if !token_ok(&expected, auth.as_deref()) {
                    return json(401, serde_json::json!({"error": "invalid or missing bearer token"}));
                }
                let store = self.store.clone();
                match tokio::task::spawn_blocking(move || store.reload()).await {
                    Ok(Ok(())) => json(200, serde_json::json!({"status": "reloaded"})),
                    Ok(Err(errs)) => json(
                        422,
                        serde_json::json!({"error": "reload refused; previous configuration still active", "errors": errs}),
                    ),
                    Err(_) => json(500, serde_json::json!({"error": "reload task failed"})),
                }
            }
            (_, "/metrics" | "/healthz" | "/readyz" | "/reload") => {
                json(405, serde_json::json!({"error": "method not allowed"}))
            }
            _ => json(404, serde_json::json!({"error": "not found"})),
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn token_check() {
        assert!(super::token_ok("0123456789abcdef", Some("Bearer 0123456789abcdef")));
        assert!(!super::token_ok("0123456789abcdef", Some("Bearer 0123456789abcdeg")));
        assert!(!super::token_ok("0123456789abcdef", None));
        assert!(!super::token_ok("0123456789abcdef", Some("0123456789abcdef")));
    }
}
