//! The real gateway binary in front of a real upstream, over HTTP/1.1, HTTP/2, TLS and mTLS.

use std::io::{Read, Write};
use std::time::{Duration, Instant};

use super::harness::*;

pub const ID: &str = "11010519491231002X";
pub const ID_MASKED: &str = "110105********002X";
pub const CARD: &str = "6212265658323320978";
pub const MOBILE: &str = "13800138000";

pub fn residents() -> String {
    format!("{{\"name\":\"张伟\",\"sfzh\":\"{ID}\",\"mobile\":\"{MOBILE}\",\"card\":\"{CARD}\"}}")
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(data).expect("gzip");
    e.finish().expect("gzip")
}

/// The test upstream: behaviour by path suffix.
/// Residents, gzip-compressed, then damaged after its first kilobyte.
fn bad_gzip() -> Vec<u8> {
    let mut g = gzip(residents().as_bytes());
    let n = g.len();
    for b in &mut g[1024.min(n / 2)..n - 8] {
        *b = !*b;
    }
    g
}

/// 16 MiB of JSON whitespace in about 16 KiB of gzip: a ratio near 1000, past the default 100.
fn bomb() -> Vec<u8> {
    use std::io::Write;
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    let _ = e.write_all(b"[");
    let spaces = vec![b' '; 1 << 20];
    for _ in 0..16 {
        let _ = e.write_all(&spaces);
    }
    let _ = e.write_all(b"]");
    e.finish().unwrap_or_default()
}

fn deflate(data: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut e = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
    let _ = e.write_all(data);
    e.finish().unwrap_or_default()
}

fn brotli_enc(data: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut e = brotli::CompressorWriter::new(Vec::new(), 4096, 5, 22);
    let _ = e.write_all(data);
    e.into_inner()
}

pub fn upstream() -> Upstream {
    Upstream::start(|req| {
        let p = req.path.rsplit('/').next().unwrap_or("").split('?').next().unwrap_or("").to_string();
        match p.as_str() {
            "residents" => Reply::json(residents()),
            "split" => {
                let body = format!("{{\"note\":\"x\",\"sfzh\":\"{ID}\"}}");
                let (a, b) = body.split_at(body.find("1949").expect("split point"));
                Reply {
                    chunks: vec![a.as_bytes().to_vec(), b.as_bytes().to_vec()],
                    delay: Duration::from_millis(100),
                    ..Reply::json("")
                }
            }
            "bigsplit" => {
                // past the gateway's 64 KiB hold, so it streams; the ID is split between chunks
                let body = format!("{{\"pad\":\"{}\",\"sfzh\":\"{ID}\"}}", "x".repeat(96 * 1024));
                let (a, b) = body.split_at(body.find("1949").expect("split point"));
                Reply {
                    chunks: vec![a.as_bytes().to_vec(), b.as_bytes().to_vec()],
                    delay: Duration::from_millis(100),
                    ..Reply::json("")
                }
            }
            "gzip" => Reply::json(gzip(residents().as_bytes())).with_header("content-encoding", "gzip"),
            "zstd" => Reply::json(b"\x28\xb5\x2f\xfd not really zstd".to_vec()).with_header("content-encoding", "zstd"),
            "badgzip" => Reply::json(bad_gzip()).with_header("content-encoding", "gzip"),
            "announced" => {
                // a length announced past the hold; the first piece (an ID, and enough after it for
                // the stream scanner to release it) well before the rest
                let first = format!("{{\"sfzh\":\"{ID}\",\"a\":\"{}\",\"pad\":\"", "x".repeat(8192));
                let rest = format!("\",\"note\":\"机密★1年\",\"pad2\":\"{}\"}}", "x".repeat(100 * 1024));
                let len = (first.len() + rest.len()).to_string();
                Reply {
                    chunks: vec![first.into_bytes(), rest.into_bytes()],
                    delay: Duration::from_millis(1500),
                    ..Reply::json("")
                }
                .with_header("content-length", &len)
            }
            "manyids" => Reply {
                // past the hold, in upstream pieces far larger than the gateway scans at once
                chunks: many_ids(ID).as_bytes().chunks(100 * 1024).map(<[u8]>::to_vec).collect(),
                delay: Duration::from_millis(50),
                ..Reply::json("")
            },
            "bignotice" => Reply {
                headers: vec![("content-type".into(), "text/plain; charset=utf-8".into())],
                chunks: vec![
                    format!("{}\n", "x".repeat(100 * 1024)).into_bytes(),
                    "机密★1年\n关于平台升级的通知\n".as_bytes().to_vec(),
                ],
                delay: Duration::from_millis(100),
                ..Reply::json("")
            },
            "etag" => Reply::json(residents())
                .with_header("etag", "\"v1\"")
                .with_header("accept-ranges", "bytes")
                .with_header("cache-control", "public, max-age=60, s-maxage=600"),
            "nocontent" => Reply { status: 204, ..Reply::json("") },
            "notmod" => Reply { status: 304, ..Reply::json("") }.with_header("etag", "\"v1\""),
            "bomb" => Reply::json(bomb()).with_header("content-encoding", "gzip"),
            "deflate" => Reply::json(deflate(residents().as_bytes())).with_header("content-encoding", "deflate"),
            "br" => Reply::json(brotli_enc(residents().as_bytes())).with_header("content-encoding", "br"),
            "notice" => Reply {
                headers: vec![("content-type".into(), "text/plain; charset=utf-8".into())],
                ..Reply::json("机密★1年\n关于平台升级的通知\n")
            },
            // markings with a space or a full-width space inside (issue 13)
            "spaced" => Reply {
                headers: vec![("content-type".into(), "text/plain; charset=utf-8".into())],
                ..Reply::json("绝　密★启用前\n关于平台升级的通知\n")
            },
            "spaced2" => Reply {
                headers: vec![("content-type".into(), "text/plain; charset=utf-8".into())],
                ..Reply::json("本文件为内 部资料，请妥善保管。保障数据的机 密性。\n")
            },
            "echo" => Reply::json(req.body.clone()),
            "hints" => Reply {
                interim: Some("HTTP/1.1 103 Early Hints\r\nlink: </a.css>\r\n\r\n"),
                ..Reply::json(residents())
            },
            "headers" => Reply::json(
                serde_json::json!({
                    "dept": req.header_all("x-dlp-department"),
                    "xff": req.header_all("x-forwarded-for").join(" | "),
                    "custom": req.header("x-note"),
                    "notes": req.header_all("x-note"),
                    "api_key": req.header("x-api-key"),
                    "forwarded": req.header("forwarded"),
                    "real_ip": req.header("x-real-ip"),
                    "query": req.path.split_once('?').map(|x| x.1),
                })
                .to_string(),
            ),
            "image" => {
                Reply { headers: vec![("content-type".into(), "image/png".into())], ..Reply::json(format!("PNG{ID}")) }
            }
            _ => Reply { status: 404, ..Reply::json("{}") },
        }
    })
}

pub fn config(up: u16, client_auth: &str, unknown: &str) -> String {
    let down = free_port();
    format!(
        r#"
server: {{threads: 1, pid_file: "{{DIR}}/pid", upgrade_sock: "{{DIR}}/up.sock", grace_period_seconds: 1, graceful_shutdown_timeout_seconds: 1}}
listeners:
  - {{name: plain, addr: "127.0.0.1:{{HTTP}}", h2: true}}
  - name: tls
    addr: "127.0.0.1:{{HTTPS}}"
    tls: {{cert: server.crt, key: server.key, client_ca: ca.crt, client_auth: {client_auth}}}
    h2: true
admin: {{addr: "127.0.0.1:{{ADMIN}}", token_file: admin.token}}
rules: {{dirs: [rules]}}
identity: {{unknown: {unknown}}}
departments:
  - id: public-security
    name: 公安厅
    clearance: important
    match: {{cert_ou: [公安厅], api_key_sha256: ["{ps}"]}}
  - id: civil
    name: 民政厅
    clearance: important
    match: {{api_key_sha256: ["{civil}"], cert_cn: [cn-user], cert_san: [civil.gov.example]}}
policies:
  - id: mask
    overrides:
      - {{categories: [secret.marking], action: mask}}
      - {{categories: [secret.credential], action: redact}}
      - {{departments: [public-security], categories: [personal.id_number], direction: response, action: allow}}
  - id: upload
    overrides:
      - {{categories: [secret.marking], action: mask}}
      - {{categories: [secret.credential], direction: response, action: redact}}
      - {{categories: [financial.bank_card], direction: request, action: block}}
  - id: strict
    overrides:
      - {{categories: [financial.bank_card], direction: request, action: block}}
routes:
  - {{id: stream, path_prefix: /stream/, policy: mask, upstream: {{addrs: ["127.0.0.1:{up}"], receive_buffer: 16384}}}}
  - {{id: upload, path_prefix: /upload/, policy: upload, upstream: {{addrs: ["127.0.0.1:{up}"]}}, inspect: {{max_buffer: 1048576}}}}
  - {{id: strict, path_prefix: /strict/, policy: strict, upstream: {{addrs: ["127.0.0.1:{up}"]}}, inspect: {{on_binary: block}}}}
  - {{id: capped, path_prefix: /capped/, policy: strict, upstream: {{addrs: ["127.0.0.1:{up}"]}}, inspect: {{max_buffer: 65536}}}}
  - {{id: passthru, path_prefix: /passthru/, policy: strict, upstream: {{addrs: ["127.0.0.1:{up}"]}}, inspect: {{max_buffer: 65536, on_error: pass}}}}
  - {{id: keep, path_prefix: /keep/, policy: mask, upstream: {{addrs: ["127.0.0.1:{up}"]}}, inspect: {{request_coding: keep}}}}
  - {{id: down, path_prefix: /down/, policy: mask, upstream: {{addrs: ["127.0.0.1:{down}"], connect_timeout_ms: 500}}}}
audit:
  fingerprint_key_file: fp.key
  sinks: [{{type: file, path: audit.jsonl}}]
"#,
        ps = sha256_hex("ps-key"),
        civil = sha256_hex("civil-key"),
    )
}

/// Directory with PKI, keys, token and a copy of the default rules.
pub fn setup(name: &str) -> std::path::PathBuf {
    let dir = tempdir(name);
    Pki::new(&dir);
    std::fs::write(dir.join("admin.token"), "test-admin-token-0123456789\n").expect("token");
    std::fs::write(dir.join("fp.key"), "fingerprint-key-0123456789abcdef\n").expect("fp key");
    let rules = dir.join("rules");
    std::fs::create_dir_all(&rules).expect("rules dir");
    for (path, text) in dlpgate::engine::DEFAULT_RULE_FILES {
        let name = path.replace('/', "_");
        std::fs::write(rules.join(name), text).expect("rule file");
    }
    dir
}

pub fn start(name: &str, client_auth: &str, unknown: &str) -> (Gateway, Upstream) {
    let up = upstream();
    let dir = setup(name);
    let gw = start_gateway(&dir, &config(up.port, client_auth, unknown));
    (gw, up)
}

fn url(gw: &Gateway, path: &str) -> String {
    format!("http://127.0.0.1:{}{path}", gw.http)
}

/// A JSON body of about `filler_kib` KiB of `filler` followed by `tail` (already JSON members).
fn big_json(filler: char, filler_kib: usize, tail: &str) -> String {
    format!("{{\"filler\":\"{}\",{tail}}}", filler.to_string().repeat(filler_kib * 1024))
}

/// POST `body` as JSON to `path`, from a file so that curl sends it byte for byte; `extra` are
/// more curl arguments.
fn post_json(gw: &Gateway, path: &str, body: &str, extra: &[&str]) -> Resp {
    let file = gw.dir.join(format!("body-{}.json", unique()));
    std::fs::write(&file, body).expect("request body file");
    let at = format!("@{}", file.display());
    let u = url(gw, path);
    let mut args = vec!["-X", "POST", "-H", "content-type: application/json", "--data-binary", &at];
    args.extend_from_slice(extra);
    args.push(&u);
    curl(&args)
}

#[test]
fn masks_over_http1_and_http2_and_tls() {
    let (gw, _up) = start("h1h2", "optional", "allow");
    let h1 = curl(&["--http1.1", &url(&gw, "/stream/residents")]);
    assert_eq!(h1.status, 200, "{}", h1.text());
    assert!(h1.version.starts_with("HTTP/1.1"));
    let body = h1.text();
    assert!(body.contains(ID_MASKED), "{body}");
    for raw in [ID, CARD, MOBILE] {
        assert!(!body.contains(raw), "raw value {raw} leaked: {body}");
    }
    let h2 = curl(&["--http2-prior-knowledge", &url(&gw, "/stream/residents")]);
    assert_eq!(h2.status, 200);
    assert_eq!(h2.version, "HTTP/2");
    assert_eq!(h2.text(), body);
    let ca = gw.dir.join("ca.crt");
    let tls = curl(&[
        "--http2",
        "--cacert",
        ca.to_str().unwrap_or_default(),
        &format!("https://localhost:{}/stream/residents", gw.https),
    ]);
    assert_eq!(tls.status, 200, "exit {}", tls.exit);
    assert_eq!(tls.version, "HTTP/2");
    assert_eq!(tls.text(), body);
    // TLS 1.1 is refused
    let old = curl(&[
        "--tls-max",
        "1.1",
        "--cacert",
        ca.to_str().unwrap_or_default(),
        &format!("https://localhost:{}/stream/residents", gw.https),
    ]);
    assert_ne!(old.exit, 0, "TLS 1.1 handshake must fail");
}

#[test]
fn department_from_client_certificate_and_api_key() {
    let (gw, up) = start("mtls", "optional", "allow");
    let d = gw.dir.clone();
    let p = |n: &str| d.join(n).to_string_lossy().into_owned();
    let https = format!("https://localhost:{}/stream/residents", gw.https);
    let with_cert = curl(&["--cacert", &p("ca.crt"), "--cert", &p("ps.crt"), "--key", &p("ps.key"), &https]);
    assert_eq!(with_cert.status, 200);
    assert!(with_cert.text().contains(ID), "公安厅 sees ID numbers: {}", with_cert.text());
    assert!(!with_cert.text().contains(CARD), "but not bank cards");
    // a certificate's CN, or a SAN, names a department as well as an OU does
    for who in ["cn", "san"] {
        let r = curl(&[
            "--cacert",
            &p("ca.crt"),
            "--cert",
            &p(&format!("{who}.crt")),
            "--key",
            &p(&format!("{who}.key")),
            &https,
        ]);
        assert_eq!(r.status, 200, "{who}");
        assert!(r.text().contains(MOBILE) && !r.text().contains(ID), "{who}: civil affairs' view: {}", r.text());
    }
    let anonymous = curl(&["--cacert", &p("ca.crt"), &https]);
    assert!(anonymous.text().contains(ID_MASKED) && !anonymous.text().contains(ID));
    let by_key = curl(&["-H", "X-Api-Key: civil-key", &url(&gw, "/stream/residents")]);
    assert!(by_key.text().contains(MOBILE), "civil sees mobiles: {}", by_key.text());
    assert!(!by_key.text().contains(ID));
    // the upstream gets the resolved department and none of the client's identity claims: a
    // spoofed department (even one carrying a value the gateway rewrites), the API key itself,
    // Forwarded and X-Real-IP
    for spoof in ["public-security".to_string(), format!("public-security,{MOBILE}")] {
        let h = curl(&[
            "-H",
            &format!("X-Dlp-Department: {spoof}"),
            "-H",
            "X-Api-Key: civil-key",
            "-H",
            "Forwarded: for=10.20.1.5",
            "-H",
            "X-Real-IP: 10.20.1.5",
            &url(&gw, "/stream/headers"),
        ]);
        let v = h.json();
        assert_eq!(v["dept"], serde_json::json!(["civil"]), "{spoof}: {}", h.text());
        assert!(v["api_key"].is_null() && v["forwarded"].is_null() && v["real_ip"].is_null(), "{}", h.text());
    }
    let last = up.requests().into_iter().last().expect("request");
    assert_eq!(last.header_all("x-dlp-department"), ["civil"]);
    // every value of a repeated field arrives, only the sensitive one rewritten
    let h = curl(&["-H", "X-Note: plain", "-H", &format!("X-Note: {MOBILE}"), &url(&gw, "/stream/headers")]);
    assert_eq!(h.json()["notes"], serde_json::json!(["plain", "138****8000"]), "{}", h.text());
}

#[test]
fn required_client_certificate_refuses_missing_and_foreign() {
    let (gw, _up) = start("mtls-req", "required", "allow");
    let d = gw.dir.clone();
    let p = |n: &str| d.join(n).to_string_lossy().into_owned();
    let https = format!("https://localhost:{}/stream/residents", gw.https);
    let none = curl(&["--cacert", &p("ca.crt"), &https]);
    assert!(none.exit != 0 && none.status == 0, "no certificate must fail the handshake (exit {})", none.exit);
    let foreign = curl(&["--cacert", &p("ca.crt"), "--cert", &p("stranger.crt"), "--key", &p("stranger.key"), &https]);
    assert!(foreign.exit != 0 && foreign.status == 0, "foreign CA must be refused (exit {})", foreign.exit);
    let ok = curl(&["--cacert", &p("ca.crt"), "--cert", &p("ps.crt"), "--key", &p("ps.key"), &https]);
    assert_eq!(ok.status, 200);
    assert!(ok.text().contains(ID));
}

/// 300 KiB of records, an ID in each, the record number before it.
fn many_ids(id: &str) -> String {
    let records: Vec<String> = (0..300 * 1024 / 40).map(|i| format!("{{\"i\":{i:06},\"sfzh\":\"{id}\"}}")).collect();
    format!("[{}]", records.join(","))
}

#[test]
fn id_split_across_upstream_chunks_is_masked() {
    let (gw, _up) = start("split", "none", "allow");
    let r = curl(&[&url(&gw, "/stream/split")]);
    assert_eq!(r.status, 200);
    assert_eq!(r.text(), format!("{{\"note\":\"x\",\"sfzh\":\"{ID_MASKED}\"}}"));
    // a small body is held whole, so it leaves with its own new length
    assert_eq!(r.header("content-length"), Some(r.text().len().to_string().as_str()), "{:?}", r.headers);
    // a large one streams: chunked, the split value still masked
    let r = curl(&[&url(&gw, "/stream/bigsplit")]);
    assert_eq!(r.status, 200);
    let pad = "x".repeat(96 * 1024);
    assert!(r.text() == format!("{{\"pad\":\"{pad}\",\"sfzh\":\"{ID_MASKED}\"}}"), "{:.200}", r.text());
    assert!(r.header("content-length").is_none(), "a streamed rewrite is chunked: {:?}", r.headers);
    assert_eq!(r.header("transfer-encoding"), Some("chunked"));
    // streamed in pieces: every record arrives, in order, each ID masked
    let r = curl(&[&url(&gw, "/stream/manyids")]);
    assert_eq!(r.status, 200);
    let want = many_ids(ID_MASKED);
    assert!(r.text() == want, "{} bytes, want {}", r.text().len(), want.len());
}

/// A response announced longer than the hold, where no finding can refuse it whole, streams from
/// its first piece: the client has the first (masked) ID while the upstream is still sending the
/// rest. Where a finding may refuse it, it is held as before: the marking in its second piece
/// turns it into a 403.
#[test]
fn an_announced_long_response_streams_from_its_first_piece() {
    use std::io::Read;
    let (gw, _up) = start("announced", "none", "allow");
    let mut s = std::net::TcpStream::connect(("127.0.0.1", gw.http)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(5))).expect("timeout");
    let asked = std::time::Instant::now();
    s.write_all(b"GET /stream/announced HTTP/1.1\r\nHost: x\r\nX-Api-Key: civil-key\r\nConnection: close\r\n\r\n")
        .expect("write");
    let mut got = Vec::new();
    let mut buf = [0u8; 16384];
    while !String::from_utf8_lossy(&got).contains(ID_MASKED) {
        let n = s.read(&mut buf).expect("read");
        assert!(n > 0, "closed early: {}", String::from_utf8_lossy(&got));
        got.extend_from_slice(&buf[..n]);
    }
    let first = asked.elapsed();
    assert!(first < Duration::from_millis(1000), "the first piece came after {first:?}, with the rest");
    let _ = s.read_to_end(&mut got);
    let got = String::from_utf8_lossy(&got);
    assert!(got.starts_with("HTTP/1.1 200") && got.contains("transfer-encoding: chunked"), "{got:.300}");
    assert!(!got.contains(ID) && got.contains("\"note\":\"**★1年\""), "{:.300}", got.replace(&"x".repeat(1000), ""));
    // a route that may refuse it: held up to its max_buffer (64 KiB), past the marking in its
    // second piece, and refused whole
    let r = curl(&[&url(&gw, "/capped/announced")]);
    assert_eq!(r.status, 403, "{:.300}", r.text());
    assert!(r.text().contains("blocked_by_dlp") && !r.text().contains(ID));
}

#[test]
fn gzip_upstream_is_decoded_masked_and_recompressed() {
    let (gw, _up) = start("gzip", "none", "allow");
    for path in ["/stream/gzip", "/strict/gzip"] {
        let r = curl(&[&url(&gw, path)]);
        assert_eq!(r.status, 200, "{path}");
        assert!(r.header("content-encoding").is_none(), "{path}: plaintext for a client without Accept-Encoding");
        assert!(r.text().contains(ID_MASKED) && !r.text().contains(ID), "{path}: {}", r.text());
        let c = curl(&["--compressed", "-H", "Accept-Encoding: gzip", &url(&gw, path)]);
        assert_eq!(c.status, 200);
        assert!(c.text().contains(ID_MASKED) && !c.text().contains(ID), "{path} compressed: {}", c.text());
    }
    let c = curl(&["--compressed", "-H", "Accept-Encoding: gzip", &url(&gw, "/stream/gzip")]);
    assert_eq!(c.header("content-encoding"), Some("gzip"), "{:?}", c.headers);
}

#[test]
fn deflate_and_brotli_upstreams_are_decoded_and_masked() {
    let (gw, _up) = start("codings", "none", "allow");
    for path in ["/stream/deflate", "/stream/br", "/strict/deflate", "/strict/br"] {
        let r = curl(&[&url(&gw, path)]);
        assert_eq!(r.status, 200, "{path}: {}", r.text());
        assert!(r.header("content-encoding").is_none(), "{path}: {:?}", r.headers);
        assert!(r.text().contains(ID_MASKED) && !r.text().contains(ID), "{path}: {}", r.text());
    }
}

/// A corrupt body and a decompression bomb: 502 where the route fails closed; where it says
/// `on_error: pass`, the response exactly as the upstream sent it (never a half-decoded mix).
#[test]
fn undecodable_and_bomb_responses_follow_the_route_fail_mode() {
    let (gw, _up) = start("badcoding", "none", "allow");
    for (what, original) in [("badgzip", bad_gzip()), ("bomb", bomb())] {
        for route in ["stream", "strict"] {
            let r = curl(&[&url(&gw, &format!("/{route}/{what}"))]);
            assert_eq!(r.status, 502, "{route}/{what}: {}", r.text());
            assert_eq!(r.json()["error"], "uninspectable_body", "{route}/{what}: {}", r.text());
        }
        let r = curl(&[&url(&gw, &format!("/passthru/{what}"))]);
        assert_eq!(r.status, 200, "passthru/{what}");
        assert_eq!(r.header("content-encoding"), Some("gzip"), "passthru/{what}: {:?}", r.headers);
        assert!(
            r.body == original,
            "passthru/{what}: the upstream's bytes, intact ({} vs {})",
            r.body.len(),
            original.len()
        );
    }
    let r = curl(&[&url(&gw, "/stream/bomb")]);
    assert!(r.text().contains("max_ratio"), "{}", r.text());
    let m = curl(&[&format!("http://127.0.0.1:{}/metrics", gw.admin)]).text();
    assert!(
        m.lines().any(|l| l.starts_with("dlpgate_uninspected_total{") && l.contains("reason=\"decompression_limit\"")),
        "{m}"
    );
}

#[test]
fn zstd_upstream_fails_closed() {
    let (gw, _up) = start("zstd", "none", "allow");
    for path in ["/stream/zstd", "/strict/zstd"] {
        let r = curl(&[&url(&gw, path)]);
        assert_eq!(r.status, 502, "{path}: {}", r.text());
        assert_eq!(r.json()["error"], "uninspectable_body", "{path}: {}", r.text());
    }
}

#[test]
fn blocked_request_never_reaches_the_upstream_with_body_bytes() {
    let (gw, up) = start("reqblock", "none", "allow");
    // small body: decided before the upstream is contacted at all
    let small = format!("{{\"card\":\"{CARD}\"}}");
    for path in ["/strict/echo", "/upload/echo"] {
        let r = curl(&["-X", "POST", "-H", "content-type: application/json", "-d", &small, &url(&gw, path)]);
        assert_eq!(r.status, 403, "{path}: {}", r.text());
        assert_eq!(r.json()["error"], "blocked_by_dlp");
        assert_eq!(r.json()["rules"][0], "fin.bank_card");
        assert!(!r.text().contains(CARD));
    }
    // the same without a length (chunked over HTTP/1.1, and over HTTP/2): decided all the same
    for (path, proto) in [("/strict/echo", "--http1.1"), ("/upload/echo", "--http2-prior-knowledge")] {
        let mut args = vec![proto, "-X", "POST", "-H", "content-type: application/json", "-d", &small, "-H"];
        args.push(if proto == "--http1.1" { "transfer-encoding: chunked" } else { "content-length:" });
        let u = url(&gw, path);
        args.push(&u);
        let r = curl(&args);
        assert_eq!(r.status, 403, "{path} {proto}: {}", r.text());
    }
    assert!(up.requests().is_empty(), "the upstream must not see blocked small requests: {:?}", up.requests());
    assert_eq!(up.heads.load(std::sync::atomic::Ordering::SeqCst), 0, "nor their heads");
    // a large body (past the early-buffer size) with the card at its end
    let big = big_json('a', 200, &format!("\"card\":\"{CARD}\""));
    for path in ["/upload/echo", "/strict/echo"] {
        let r = post_json(&gw, path, &big, &[]);
        assert_eq!(r.status, 403, "{path}: {}", r.text());
    }
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(*up.body_bytes.lock().expect("lock"), 0, "no body byte of a blocked request reaches the upstream");
    // a clean upload is forwarded intact, masking applied
    let clean = format!("{{\"phone\":\"{MOBILE}\"}}");
    let r = curl(&["-X", "POST", "-H", "content-type: application/json", "-d", &clean, &url(&gw, "/upload/echo")]);
    assert_eq!(r.status, 200);
    assert_eq!(r.text(), "{\"phone\":\"138****8000\"}");
}

#[test]
fn blocked_response_returns_403_and_no_data() {
    let (gw, _up) = start("respblock", "none", "allow");
    let r = curl(&[&url(&gw, "/strict/notice")]);
    assert_eq!(r.status, 403);
    let v = r.json();
    assert_eq!(v["error"], "blocked_by_dlp", "{}", r.text());
    assert_eq!(v["rules"][0], "secret.marking");
    assert!(v["incident"].as_str().is_some_and(|s| !s.is_empty()));
    assert!(!r.text().contains("通知") && !r.text().contains("机密"), "no response data: {}", r.text());
    // a marking with a (full-width) space inside is one too
    for path in ["/strict/spaced", "/strict/spaced2"] {
        let r = curl(&[&url(&gw, path)]);
        assert_eq!((r.status, r.json()["rules"][0].as_str()), (403, Some("secret.marking")), "{path}: {}", r.text());
    }
    // masked where the policy masks markings: `机 密性` (a word, not a marking) stays
    let r = curl(&[&url(&gw, "/stream/spaced2")]);
    assert_eq!(r.text(), "本文件为内 **料，请妥善保管。保障数据的机 密性。\n");
    // a binary type on a route that blocks them
    let b = curl(&[&url(&gw, "/strict/image")]);
    assert_eq!(b.status, 415);
    assert!(!b.text().contains(ID));
    // where the route passes binary types (the default), the image goes through as it is,
    // unscanned, and that is counted
    let p = curl(&[&url(&gw, "/stream/image")]);
    assert_eq!(p.status, 200);
    assert_eq!(p.text(), format!("PNG{ID}"), "binary bodies are never rewritten");
    // nor held or reframed: an image is not a document, its length stays
    assert_eq!(p.header("content-length"), Some(format!("PNG{ID}").len().to_string().as_str()), "{:?}", p.headers);
    let m = curl(&[&format!("http://127.0.0.1:{}/metrics", gw.admin)]).text();
    assert!(
        m.lines().any(|l| l.starts_with("dlpgate_uninspected_total{")
            && l.contains("route=\"stream\"")
            && l.contains("reason=\"binary_content_type\"")),
        "{m}"
    );
}

#[test]
fn query_and_header_values_are_inspected() {
    let (gw, up) = start("headers", "none", "allow");
    let r = curl(&["-H", &format!("X-Note: 手机{MOBILE}"), &url(&gw, &format!("/stream/headers?phone={MOBILE}&a=1"))]);
    assert_eq!(r.status, 200);
    let v = r.json();
    assert_eq!(v["query"], "phone=138****8000&a=1", "{}", r.text());
    assert!(v["custom"].as_str().is_some_and(|s| !s.contains(MOBILE)), "{}", r.text());
    let blocked = curl(&[&url(&gw, &format!("/strict/headers?card={CARD}"))]);
    assert_eq!(blocked.status, 403);
    // routes match the path in normal form (the upstream gets it as the client sent it)
    for odd in ["/%73trict/headers", "//strict//headers", "/stream/../strict/headers"] {
        let r = curl(&["--path-as-is", &url(&gw, &format!("{odd}?card={CARD}"))]);
        assert_eq!(r.status, 403, "{odd} is /strict/: {}", r.text());
    }
    let r = curl(&["--path-as-is", &url(&gw, "/x/..//stream/./headers?a=1")]);
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(up.requests().iter().any(|q| q.path == "/x/..//stream/./headers?a=1"), "{:?}", up.requests());
    // spellings some servers resolve and others do not, and escapes decoding could complete
    for odd in [
        "/stream/..%2Fstrict/headers",
        "/stream/..;/strict/headers",
        "/stream/x/..;/../strict/headers",
        "/%2Fstrict/headers",
        "/stream/%2%65%2%65/strict/headers",
    ] {
        let r = curl(&["--path-as-is", &url(&gw, odd)]);
        assert_eq!(r.status, 400, "{odd}: {}", r.text());
    }
    // redaction labels make this 34 KiB query too long for a URI: refused, never sent raw
    let keys = "k=AKIAABCDEFGHIJKLMNOP&".repeat(1500);
    let long = curl(&[&url(&gw, &format!("/stream/headers?{keys}"))]);
    assert_eq!(long.status, 414, "{}", long.text());
    assert!(!long.text().contains("AKIA"));
    assert!(!up.requests().iter().any(|r| r.path.contains("AKIA")), "the raw keys never reach the upstream");
    // an interim 103 from the upstream is not taken for the response
    let hints = curl(&[&url(&gw, "/stream/hints")]);
    assert_eq!(hints.status, 200, "{}", hints.text());
    assert!(hints.text().contains(ID_MASKED), "{}", hints.text());
}

/// POST `body` with `Content-Encoding: coding` (one line per coding given).
fn post_coded(gw: &Gateway, path: &str, body: &[u8], codings: &[&str]) -> Resp {
    let file = gw.dir.join(format!("body-{}.bin", unique()));
    std::fs::write(&file, body).expect("body");
    let at = format!("@{}", file.display());
    let u = url(gw, path);
    let mut args = vec!["-X", "POST", "-H", "content-type: application/json", "--data-binary", &at];
    let lines: Vec<String> = codings.iter().map(|c| format!("content-encoding: {c}")).collect();
    for l in &lines {
        args.extend_from_slice(&["-H", l]);
    }
    args.push(&u);
    curl(&args)
}

#[test]
fn compressed_request_bodies_are_decoded_masked_and_sent_on() {
    let (gw, up) = start("reqgzip", "none", "allow");
    // (no bank card: /upload/ blocks those in requests)
    let plain = format!("{{\"sfzh\":\"{ID}\",\"mobile\":\"{MOBILE}\"}}");
    let gunzip = |b: &[u8]| {
        let mut out = String::new();
        flate2::read::GzDecoder::new(b).read_to_string(&mut out).map(|_| out).unwrap_or_default()
    };
    // gzip, deflate and br, on the path Pingora proxies (/stream/ with a body) and on a route
    // that may block (/upload/: the gateway's own exchange); two field lines count as one coding
    let cases: [(&str, Vec<u8>, &[&str]); 4] = [
        ("gzip", gzip(plain.as_bytes()), &["gzip"]),
        ("deflate", deflate(plain.as_bytes()), &["deflate"]),
        ("br", brotli_enc(plain.as_bytes()), &["br"]),
        ("identity + gzip", gzip(plain.as_bytes()), &["identity", "gzip"]),
    ];
    for (what, body, codings) in &cases {
        for path in ["/stream/echo", "/upload/echo"] {
            let before = up.requests().len();
            let r = post_coded(&gw, path, body, codings);
            assert_eq!(r.status, 200, "{what} {path}: {}", r.text());
            let got = up.requests().into_iter().nth(before).expect("forwarded");
            let text = String::from_utf8_lossy(&got.body).into_owned();
            assert!(text.contains(ID_MASKED) && text.contains("138****8000"), "{what} {path}: masked: {text}");
            assert!(!text.contains(ID) && !text.contains(MOBILE), "{what} {path}: {text}");
            assert_eq!(got.header("content-encoding"), None, "{what} {path}: sent on as identity");
            assert_eq!(got.header("content-length"), Some(got.body.len().to_string().as_str()), "{what} {path}");
        }
    }
    // a route that keeps the coding: gzip again, which decodes to the masked body
    let before = up.requests().len();
    let r = post_coded(&gw, "/keep/echo", &gzip(plain.as_bytes()), &["gzip"]);
    assert_eq!(r.status, 200, "{}", r.text());
    let got = up.requests().into_iter().nth(before).expect("forwarded");
    assert_eq!(got.header("content-encoding"), Some("gzip"));
    let text = gunzip(&got.body);
    assert!(text.contains(ID_MASKED) && !text.contains(ID), "{text}");
    // refused, and never forwarded: a block finding inside the coding, a bomb, a damaged body, and
    // codings the gateway does not decode
    let n = up.requests().len();
    let card = gzip(format!("{{\"card\":\"{CARD}\"}}").as_bytes());
    let r = post_coded(&gw, "/upload/echo", &card, &["gzip"]);
    assert_eq!(r.status, 403, "{}", r.text());
    assert_eq!(r.json()["error"], "blocked_by_dlp");
    for (what, body, codings, status) in [
        ("bomb", bomb(), &["gzip"][..], 413),
        ("damaged", bad_gzip(), &["gzip"][..], 415),
        ("zstd", b"(\xb5/\xfd not really".to_vec(), &["zstd"][..], 415),
        ("stacked", gzip(&gzip(plain.as_bytes())), &["gzip, gzip"][..], 415),
    ] {
        for path in ["/stream/echo", "/upload/echo"] {
            let r = post_coded(&gw, path, &body, codings);
            assert_eq!(r.status, status, "{what} {path}: {}", r.text());
            assert_eq!(r.json()["error"], "uninspectable_body", "{what} {path}");
        }
    }
    assert_eq!(up.requests().len(), n, "nothing refused reached the upstream");
}

#[test]
fn unknown_callers_refused_when_configured() {
    let (gw, _up) = start("refuse", "none", "refuse");
    let r = curl(&[&url(&gw, "/stream/residents")]);
    assert_eq!(r.status, 403);
    assert_eq!(r.json()["error"], "department_not_recognised");
    let ok = curl(&["-H", "X-Api-Key: civil-key", &url(&gw, "/stream/residents")]);
    assert_eq!(ok.status, 200);
    let bad_key = curl(&["-H", "X-Api-Key: wrong", &url(&gw, "/stream/residents")]);
    assert_eq!(bad_key.status, 403);
}

#[test]
fn unknown_department_policy_masks_everything() {
    let (gw, _up) = start("unknown", "none", "allow");
    let r = curl(&[&url(&gw, "/stream/residents")]);
    let t = r.text();
    for raw in [ID, CARD, MOBILE] {
        assert!(!t.contains(raw), "{raw} must be masked for the unknown department: {t}");
    }
    assert!(t.contains("138****8000"));
}

#[test]
fn upstream_down_gives_502_json() {
    let (gw, _up) = start("down", "none", "allow");
    // GET (the gateway's own exchange) and POST (Pingora's path)
    for extra in [&[][..], &["-X", "POST", "-H", "content-type: application/json", "-d", "{}"][..]] {
        let mut args = extra.to_vec();
        let u = url(&gw, "/down/anything");
        args.push(&u);
        let r = curl(&args);
        assert_eq!(r.status, 502, "{extra:?}: {}", r.text());
        assert_eq!(r.json()["error"], "upstream_error");
        assert_eq!(r.header("content-type"), Some("application/json"));
    }
    let n = curl(&[&url(&gw, "/nowhere")]);
    assert_eq!(n.status, 404);
    assert_eq!(n.json()["error"], "no_route");
}

/// A test config with fixed stand-ins for the ports and directory, for runs that fail before
/// listening.
fn offline(config: String) -> String {
    config.replace("{HTTP}", "1").replace("{HTTPS}", "2").replace("{ADMIN}", "3").replace("{DIR}", "/tmp")
}

/// Run `dlpgate CMD -c dlpgate.yaml` on `text`; it must exit 1. Returns its stderr.
fn refused(cmd: &str, name: &str, text: &str) -> String {
    let path = setup(name).join("dlpgate.yaml");
    std::fs::write(&path, text).expect("write");
    let out = std::process::Command::new(bin()).args([cmd, "-c"]).arg(&path).output().expect("run");
    assert_eq!(out.status.code(), Some(1), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn malformed_config_exits_1_with_file_and_line() {
    let text = offline(config(1, "none", "allow"));
    let bad = text.replacen("identity: {unknown: allow}", "identity: {unknown: allow, colour: blue}", 1);
    let err = refused("run", "badcfg", &bad);
    let line = text.lines().position(|l| l.starts_with("identity:")).expect("identity line") + 1;
    assert!(err.contains(&format!("dlpgate.yaml:{line}")), "{err}");
    assert!(err.contains("colour"), "{err}");
    // TLS to an upstream without the name to check its certificate against
    let bad = text.replacen("receive_buffer: 16384}}", "receive_buffer: 16384, tls: true}}", 1);
    assert_ne!(bad, text);
    let err = refused("check", "nosni", &bad);
    let line = bad.lines().position(|l| l.contains("tls: true}")).expect("route line") + 1;
    assert!(err.contains(&format!("dlpgate.yaml:{line}")) && err.contains("needs sni"), "{err}");
    // (the certificates are not opened yet: the summary says so)
    assert!(err.contains("1 problem(s) (certificates, keys and CA bundles are opened once these are fixed)"), "{err}");
    // a receive buffer too small to carry a TCP segment or two
    let bad = text.replacen("receive_buffer: 16384", "receive_buffer: 100", 1);
    assert_ne!(bad, text);
    let err = refused("check", "rcvbuf", &bad);
    let line = bad.lines().position(|l| l.contains("receive_buffer: 100")).expect("route line") + 1;
    assert!(err.contains(&format!("dlpgate.yaml:{line}")), "{err}");
    assert!(err.contains("route stream: receive_buffer must be 4096..=16777216 bytes, or 0 for the system's"), "{err}");
}

#[test]
fn forwarded_for_is_trusted_only_from_listed_proxies() {
    let up = upstream();
    let add_dept = "departments:\n  - id: health\n    name: 卫健委\n    clearance: important\n    match: {cidrs: [10.20.0.0/16]}\n";
    let base = config(up.port, "none", "allow").replacen("departments:\n", add_dept, 1);
    // not trusted: the header is ignored and replaced
    let dir = setup("xff-untrusted");
    let gw = start_gateway(&dir, &base);
    let r = curl(&["-H", "X-Forwarded-For: 10.20.1.5", &url(&gw, "/stream/headers")]);
    assert_eq!(r.json()["dept"][0], "unknown", "{}", r.text());
    assert_eq!(r.json()["xff"], "127.0.0.1");
    drop(gw);
    // trusted loopback proxy: the client address comes from the header
    let dir = setup("xff-trusted");
    let cfg = base.replace("identity: {unknown: allow}", "identity: {unknown: allow, trusted_proxies: [127.0.0.1/32]}");
    let gw = start_gateway(&dir, &cfg);
    let r = curl(&["-H", "X-Forwarded-For: 10.20.1.5", &url(&gw, "/stream/headers")]);
    assert_eq!(r.json()["dept"][0], "health", "{}", r.text());
    assert_eq!(r.json()["xff"], "10.20.1.5, 127.0.0.1");
    // a proxy that adds its own field line: the client's forged first line does not decide
    let r =
        curl(&["-H", "X-Forwarded-For: 10.20.1.5", "-H", "X-Forwarded-For: 192.0.2.7", &url(&gw, "/stream/headers")]);
    assert_eq!(r.json()["dept"][0], "unknown", "the caller is 192.0.2.7: {}", r.text());
    assert_eq!(r.json()["xff"], "10.20.1.5, 192.0.2.7, 127.0.0.1", "one line, every hop in order");
}

/// A TLS upstream (rustls) answering every request with `body`.
fn tls_upstream(dir: &std::path::Path, body: String) -> u16 {
    use std::io::{Read, Write};
    let cert = dir.join("server.crt").to_string_lossy().into_owned();
    let key = dir.join("server.key").to_string_lossy().into_owned();
    let (certs, key) = pingora::tls::load_certs_and_key_files(&cert, &key).expect("pem").expect("cert and key");
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let cfg = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .expect("server config");
    let cfg = std::sync::Arc::new(cfg);
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = l.local_addr().expect("addr").port();
    std::thread::spawn(move || {
        for tcp in l.incoming().flatten() {
            let (cfg, body) = (cfg.clone(), body.clone());
            std::thread::spawn(move || {
                let Ok(conn) = rustls::ServerConnection::new(cfg) else { return };
                let mut s = rustls::StreamOwned::new(conn, tcp);
                let mut buf = Vec::new();
                let mut tmp = [0u8; 4096];
                while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                    match s.read(&mut tmp) {
                        Ok(0) | Err(_) => return,
                        Ok(n) => buf.extend_from_slice(&tmp[..n]),
                    }
                }
                let head = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                    body.len()
                );
                let _ = s.write_all(head.as_bytes());
                let _ = s.write_all(body.as_bytes());
                let _ = s.flush();
                s.conn.send_close_notify();
                let _ = s.flush();
            });
        }
    });
    port
}

#[test]
fn tls_upstream_with_sni_and_ca_bundle() {
    let up = upstream();
    let dir = setup("upstream-tls");
    // the upstream's own PKI, separate from the listener's
    let updir = dir.join("upstream-pki");
    std::fs::create_dir_all(&updir).expect("dir");
    Pki::new(&updir);
    let port = tls_upstream(&updir, residents());
    let routes = format!(
        "routes:\n  - {{id: secure, path_prefix: /secure/, policy: mask, upstream: {{addrs: [\"127.0.0.1:{port}\"], tls: true, sni: localhost, ca_file: upstream-pki/ca.crt}}}}\n  - {{id: wrongca, path_prefix: /wrongca/, policy: mask, upstream: {{addrs: [\"127.0.0.1:{port}\"], tls: true, sni: localhost, ca_file: ca.crt}}}}\n  - {{id: wrongname, path_prefix: /wrongname/, policy: mask, upstream: {{addrs: [\"127.0.0.1:{port}\"], tls: true, sni: wrong.example, ca_file: upstream-pki/ca.crt}}}}\n"
    );
    let cfg = config(up.port, "none", "allow").replacen("routes:\n", &routes, 1);
    let gw = start_gateway(&dir, &cfg);
    let ok = curl(&[&url(&gw, "/secure/residents")]);
    assert_eq!(ok.status, 200, "{}", ok.text());
    assert!(ok.text().contains(ID_MASKED) && !ok.text().contains(ID), "{}", ok.text());
    let bad = curl(&[&url(&gw, "/wrongca/residents")]);
    assert_eq!(bad.status, 502, "an upstream certificate from another CA is refused: {}", bad.text());
    assert_eq!(bad.json()["error"], "upstream_error");
    let bad = curl(&[&url(&gw, "/wrongname/residents")]);
    assert_eq!(bad.status, 502, "a certificate for another name is refused: {}", bad.text());
}

#[test]
fn slow_upstream_gives_504_json() {
    let up = Upstream::start(|_| {
        std::thread::sleep(Duration::from_millis(1500));
        Reply::json("{}")
    });
    let dir = setup("timeout");
    let cfg = config(up.port, "none", "allow").replace(
        &format!("id: stream, path_prefix: /stream/, policy: mask, upstream: {{addrs: [\"127.0.0.1:{}\"], receive_buffer: 16384}}", up.port),
        &format!("id: stream, path_prefix: /stream/, policy: mask, upstream: {{addrs: [\"127.0.0.1:{}\"], read_timeout_ms: 300}}", up.port),
    );
    assert!(cfg.contains("read_timeout_ms: 300"));
    let gw = start_gateway(&dir, &cfg);
    let r = curl(&[&url(&gw, "/stream/slow")]);
    assert_eq!(r.status, 504, "{}", r.text());
    assert_eq!(r.json()["kind"], "timeout");
    let r = curl(&["-X", "POST", "-H", "content-type: application/json", "-d", "{}", &url(&gw, "/stream/slow")]);
    assert_eq!(r.status, 504, "POST: {}", r.text());
    assert_eq!(r.json()["kind"], "timeout");
}

#[test]
fn large_upload_is_held_then_masked_before_forwarding() {
    let (gw, up) = start("bigupload", "none", "allow");
    let big = big_json('b', 100, &format!("\"phone\":\"{MOBILE}\",\"sfzh\":\"{ID}\""));
    let r = post_json(&gw, "/upload/echo", &big, &[]);
    assert_eq!(r.status, 200, "{}", r.text());
    let got = up.requests().into_iter().find(|q| q.path == "/upload/echo").expect("forwarded");
    let body = String::from_utf8_lossy(&got.body).into_owned();
    assert_eq!(got.body.len(), big.len(), "masking keeps this body's length");
    assert!(!body.contains(MOBILE) && !body.contains(ID), "the upstream receives masked values");
    assert!(body.contains("138****8000") && body.contains(ID_MASKED));
}

#[test]
fn oversize_request_bodies_follow_the_route_fail_mode() {
    // both routes may block responses, so the gateway runs the exchange itself
    let (gw, up) = start("oversize", "none", "allow");
    let big = big_json('c', 100, &format!("\"card\":\"{CARD}\""));
    let post = |path: &str, extra: &[&str]| post_json(&gw, path, &big, extra);
    // fail-closed (the default): refused, and nothing reaches the upstream
    let r = post("/capped/echo", &[]);
    assert_eq!(r.status, 413, "{}", r.text());
    assert_eq!(r.json()["error"], "uninspectable_body", "{}", r.text());
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(*up.body_bytes.lock().expect("lock"), 0, "no body byte of a refused request reaches the upstream");
    // `on_error: pass`: forwarded whole and uninspected, with the client's framing (length or chunked)
    let h2_no_length = ["--http2-prior-knowledge", "-H", "content-length:"];
    for extra in [&[][..], &["-H", "transfer-encoding: chunked"][..], &h2_no_length[..]] {
        let r = post("/passthru/echo", extra);
        assert_eq!(r.status, 200, "{extra:?}: {}", r.text());
        assert_eq!(r.body.len(), big.len(), "{extra:?}");
        assert!(!r.text().contains(CARD), "the echoed response is still inspected");
    }
    let got: Vec<_> = up.requests().into_iter().filter(|q| q.path == "/passthru/echo").collect();
    assert_eq!(got.len(), 3);
    assert!(got.iter().all(|q| q.body == big.as_bytes()), "the upstream gets the body intact");
    let m = curl(&[&format!("http://127.0.0.1:{}/metrics", gw.admin)]).text();
    let counted = m.lines().find(|l| {
        l.starts_with("dlpgate_uninspected_total") && l.contains("route=\"passthru\"") && l.contains("oversize")
    });
    assert_eq!(counted.and_then(|l| l.rsplit(' ').next()), Some("3"), "uninspected requests are counted:\n{m}");
}

#[test]
fn multipart_text_parts_are_masked_and_binary_parts_left_intact() {
    let (gw, up) = start("multipart", "none", "allow");
    let bin_file = gw.dir.join("scan.bin");
    let mut blob = vec![0u8, 255, 1, 2];
    blob.extend_from_slice(MOBILE.as_bytes());
    blob.extend_from_slice(&[0, 9, 8]);
    std::fs::write(&bin_file, &blob).expect("blob");
    let file_arg = format!("file=@{};type=application/octet-stream", bin_file.display());
    let r = curl(&["-F", &format!("note=电话{MOBILE}"), "-F", &file_arg, &url(&gw, "/upload/echo")]);
    assert_eq!(r.status, 200, "{}", r.text());
    let got = up.requests().into_iter().find(|q| q.path == "/upload/echo").expect("forwarded");
    let text_masked = got.body.windows(11).filter(|w| *w == b"138****8000").count();
    let raw = got.body.windows(11).filter(|w| *w == MOBILE.as_bytes()).count();
    assert_eq!(text_masked, 1, "the text part is masked");
    assert_eq!(raw, 1, "the binary part is forwarded byte for byte");
    assert!(got.body.windows(blob.len()).any(|w| w == blob.as_slice()));
    // a route that blocks binary content refuses the upload
    let r = curl(&["-F", "note=hello", "-F", &file_arg, &url(&gw, "/strict/echo")]);
    assert_eq!(r.status, 415, "{}", r.text());
    // the client does not choose what is scanned: a field (no filename) labelled binary, and a
    // fake part header inside a field's text (a delimiter not at a line start), are both scanned
    let body = format!(
        "--XB\r\ncontent-disposition: form-data; name=\"a\"\r\ncontent-type: application/octet-stream\r\n\r\n{MOBILE}\r\n\
         --XB\r\ncontent-disposition: form-data; name=\"b\"\r\n\r\nx--XB\r\ncontent-type: image/png\r\n\r\n{MOBILE}\r\n--XB--\r\n"
    );
    let file = gw.dir.join("form.txt");
    std::fs::write(&file, &body).expect("form");
    let at = format!("@{}", file.display());
    let ct = "content-type: multipart/form-data; boundary=XB";
    let r = curl(&["-X", "POST", "-H", ct, "--data-binary", &at, &url(&gw, "/upload/multi")]);
    assert_eq!(r.status, 404, "{}", r.text());
    let got = up.requests().into_iter().find(|q| q.path == "/upload/multi").expect("forwarded");
    let got = String::from_utf8_lossy(&got.body).into_owned();
    assert!(!got.contains(MOBILE), "what the upstream received: {got}");
    assert_eq!(got.matches("138****8000").count(), 2, "{got}");
    // a field *named* "filename" is still a field; the preamble is scanned too; a base64 part
    // cannot be scanned as it is, so it counts as binary (passed here, refused on /strict/)
    let body = format!(
        "preamble {MOBILE}\r\n--XB\r\ncontent-disposition: form-data; name=\"filename\"\r\ncontent-type: image/png\r\n\r\n{MOBILE}\r\n\
         --XB\r\ncontent-disposition: form-data; name=\"b\"\r\ncontent-transfer-encoding: base64\r\n\r\nMTM4MDAxMzgwMDA=\r\n--XB--\r\n"
    );
    std::fs::write(&file, &body).expect("form");
    let r = curl(&["-X", "POST", "-H", ct, "--data-binary", &at, &url(&gw, "/upload/multi2")]);
    assert_eq!(r.status, 404, "{}", r.text());
    let got = up.requests().into_iter().find(|q| q.path == "/upload/multi2").expect("forwarded");
    let got = String::from_utf8_lossy(&got.body).into_owned();
    assert!(!got.contains(MOBILE) && got.matches("138****8000").count() == 2, "{got}");
    assert!(got.contains("MTM4MDAxMzgwMDA="), "the coded part is forwarded untouched: {got}");
    let r = curl(&["-X", "POST", "-H", ct, "--data-binary", &at, &url(&gw, "/strict/multi2")]);
    assert_eq!(r.status, 415, "{}", r.text());
}

#[test]
fn form_bodies_and_queries_read_plus_as_space() {
    let (gw, up) = start("forms", "none", "allow");
    // what a browser sends for `138 0013 8000` typed into a form
    let r = curl(&[
        "-X",
        "POST",
        "-H",
        "content-type: application/x-www-form-urlencoded",
        "--data-binary",
        "phone=138+0013+8000&name=a+b",
        &url(&gw, "/upload/echo"),
    ]);
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.text(), "phone=138+****+8000&name=a+b");
    let got = up.requests().into_iter().find(|q| q.path == "/upload/echo").expect("forwarded");
    assert_eq!(got.body, b"phone=138+****+8000&name=a+b", "what the upstream received");
    let r = curl(&[&url(&gw, "/stream/headers?phone=138+0013+8000&q=a+b")]);
    assert_eq!(r.json()["query"], "phone=138+****+8000&q=a+b", "{}", r.text());
    assert!(up.requests().iter().all(|q| !q.path.contains("0013")), "{:?}", up.requests());
}

/// Send raw bytes on a fresh connection (then half-close it when asked); returns what came back
/// before the gateway closed it or went quiet.
fn raw(gw: &Gateway, bytes: &[u8], half_close: bool) -> String {
    use std::io::Read;
    let mut s = std::net::TcpStream::connect(("127.0.0.1", gw.http)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(3))).expect("timeout");
    let _ = s.write_all(bytes);
    if half_close {
        let _ = s.shutdown(std::net::Shutdown::Write);
    }
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    String::from_utf8_lossy(&out).into_owned()
}

fn status_of(reply: &str) -> Option<u16> {
    reply.strip_prefix("HTTP/1.1 ").and_then(|r| r.get(..3)).and_then(|c| c.parse().ok())
}

#[test]
fn malformed_requests_get_http_errors_and_never_take_the_gateway_down() {
    let (gw, up) = start("malformed", "none", "allow");
    let huge_header = format!("GET /stream/residents HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\n\r\n", "a".repeat(256 * 1024));
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("garbage request line", b"GARBAGE\r\n\r\n".to_vec()),
        ("bad version", b"GET / HTTP/9.9\r\nHost: x\r\n\r\n".to_vec()),
        ("header without colon", b"GET /stream/residents HTTP/1.1\r\nHost x\r\n\r\n".to_vec()),
        ("huge header", huge_header.into_bytes()),
        (
            "invalid chunk size",
            b"POST /upload/echo HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n{}\r\n0\r\n\r\n"
                .to_vec(),
        ),
        ("invalid chunk past max_buffer, streamed uninspected", {
            let mut b = format!("{:x}\r\n", 70 * 1024).into_bytes();
            b.splice(
                0..0,
                b"POST /passthru/echo HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
                    .iter()
                    .copied(),
            );
            b.extend(std::iter::repeat_n(b'd', 70 * 1024));
            b.extend_from_slice(b"\r\nzz\r\n{}\r\n0\r\n\r\n");
            b
        }),
        (
            "transfer-encoding other than chunked",
            b"POST /upload/echo HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n"
                .to_vec(),
        ),
        (
            "body shorter than content-length",
            b"POST /upload/echo HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"a\":1}".to_vec(),
        ),
    ];
    // odd but well-formed input is served: bad escapes, non-UTF-8 header bytes, a NUL in the query
    let odd = b"GET /stream/headers?q=%ZZ%E6%9C&z=%00 HTTP/1.1\r\nHost: x\r\nX-Note: \xff\xfe13800138000\r\nConnection: close\r\n\r\n";
    let reply = raw(&gw, odd, false);
    assert_eq!(status_of(&reply), Some(200), "{reply:.300}");
    assert!(!reply.contains(MOBILE), "the mobile in a non-UTF-8 header is still masked: {reply}");
    for (what, bytes) in &cases {
        // half-closed, so that a truncated body ends
        let reply = raw(&gw, bytes, true);
        if what.starts_with("transfer-encoding") {
            assert_eq!(status_of(&reply), Some(400), "{what}: {reply:.200}");
            assert!(reply.contains(r#""reason":"transfer-encoding other than chunked""#), "{what}: {reply:.300}");
        }
        if what.contains("chunk") || what.contains("version") || what.contains("colon") {
            assert_eq!(status_of(&reply), Some(400), "{what}: {reply:.200}");
        }
        if what.contains("chunk") {
            assert!(reply.contains("\"error\":\"bad_request\""), "{reply:.300}");
        }
        if *what == "huge header" {
            assert_eq!(status_of(&reply), Some(431), "{reply:.200}");
            assert!(reply.contains("\"error\":\"request_header_too_large\""), "{reply:.300}");
        }
        match status_of(&reply) {
            Some(s) => assert!((400..500).contains(&s), "{what}: a client error, got {s}: {reply:.200}"),
            // a request the gateway cannot even frame may be answered by closing the connection
            None => assert!(reply.is_empty(), "{what}: not HTTP: {reply:.200}"),
        }
        assert!(!reply.contains(CARD) && !reply.contains(ID), "{what}: {reply:.200}");
    }
    // still alive and serving
    let r = curl(&[&url(&gw, "/stream/residents")]);
    assert_eq!(r.status, 200);
    assert!(r.text().contains(ID_MASKED));
    assert!(up.requests().iter().all(|q| q.path != "/upload/echo"), "no malformed request body reaches the upstream");
}

/// A request with both `Transfer-Encoding: chunked` and `Content-Length` whose length would
/// swallow a second request: the chunked framing wins, the connection is not kept, and the
/// smuggled request never reaches the upstream.
#[test]
fn a_request_smuggled_behind_conflicting_framing_never_reaches_the_upstream() {
    let (gw, up) = start("smuggle", "none", "allow");
    let smuggled = b"POST /upload/echo HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 60\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nPOST /smuggled/echo HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}";
    let reply = raw(&gw, smuggled, false);
    assert_eq!(status_of(&reply), Some(200), "{reply:.300}");
    assert_eq!(reply.matches("HTTP/1.1 ").count(), 1, "one response, then the connection closes: {reply:.600}");
    let reqs = up.requests();
    let first = reqs.iter().find(|q| q.path == "/upload/echo").expect("the first request is forwarded");
    assert!(first.body.is_empty(), "with its chunked (empty) body only: {:?}", String::from_utf8_lossy(&first.body));
    assert!(reqs.iter().all(|q| q.path != "/smuggled/echo"), "the smuggled request is not forwarded");
}

/// An upstream on a port of its own that answers the first request on each connection with
/// `{"sfzh": ID}` (keep-alive), calling `answering` just before the answer leaves, and then hands
/// the connection (its reader and its writer) to `then`. Returns the port.
fn answer_once_upstream(
    answering: impl Fn() + Send + Sync + 'static,
    then: impl Fn(std::io::BufReader<std::net::TcpStream>, std::net::TcpStream) + Send + Sync + 'static,
) -> u16 {
    use std::io::{BufRead, BufReader};
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = l.local_addr().expect("addr").port();
    let hooks = std::sync::Arc::new((answering, then));
    std::thread::spawn(move || {
        for s in l.incoming().flatten() {
            let hooks = hooks.clone();
            std::thread::spawn(move || {
                let mut w = s.try_clone().expect("clone");
                let mut r = BufReader::new(s);
                let mut line = String::new();
                // the request head (no body: GET)
                loop {
                    line.clear();
                    if r.read_line(&mut line).unwrap_or(0) == 0 {
                        return; // a health check's connect
                    }
                    if line == "\r\n" {
                        break;
                    }
                }
                let body = format!("{{\"sfzh\":\"{ID}\"}}");
                let head = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n",
                    body.len()
                );
                (hooks.0)();
                let _ = w.write_all(head.as_bytes());
                let _ = w.write_all(body.as_bytes());
                (hooks.1)(r, w);
            });
        }
    });
    port
}

/// An upstream that answers the first request on each connection (keep-alive) and leaves the
/// second unanswered: it closes the connection at once, as an upstream does whose idle timeout
/// fired while the request was on its way, or, with `stall`, only after `stall`. Returns the
/// port and the counts of (answered, unanswered) requests.
fn second_request_upstream(stall: Option<Duration>) -> (u16, std::sync::Arc<[std::sync::atomic::AtomicUsize; 2]>) {
    use std::io::BufRead;
    use std::sync::atomic::Ordering::SeqCst;
    let counts: std::sync::Arc<[std::sync::atomic::AtomicUsize; 2]> = std::sync::Arc::default();
    let (c1, c2) = (counts.clone(), counts.clone());
    let port = answer_once_upstream(
        // counted before the answer leaves: the client may see it (and the test read the count)
        // before this thread runs on
        move || {
            c1[0].fetch_add(1, SeqCst);
        },
        move |mut r, _w| {
            // the next request on this connection is not answered
            let mut line = String::new();
            if r.read_line(&mut line).unwrap_or(0) > 0 {
                c2[1].fetch_add(1, SeqCst);
                if let Some(d) = stall {
                    std::thread::sleep(d);
                }
            }
        },
    );
    (port, counts)
}

#[test]
fn a_pooled_connection_closed_by_the_upstream_is_retried() {
    let up = upstream();
    let (port, counts) = second_request_upstream(None);
    let routes = format!(
        "routes:\n  - {{id: closing, path_prefix: /closing/, policy: mask, upstream: {{addrs: [\"127.0.0.1:{port}\"]}}}}\n"
    );
    let cfg = config(up.port, "none", "allow").replacen("routes:\n", &routes, 1);
    let gw = start_gateway(&setup("closing"), &cfg);
    for i in 0..3 {
        let r = curl(&[&url(&gw, "/closing/x")]);
        assert_eq!(r.status, 200, "request {i}: {}", r.text());
        assert_eq!(r.text(), format!("{{\"sfzh\":\"{ID_MASKED}\"}}"));
    }
    // the second and third requests each went out on the pooled connection first, and again
    let [answered, dropped] = &*counts;
    assert_eq!(answered.load(std::sync::atomic::Ordering::SeqCst), 3);
    assert_eq!(dropped.load(std::sync::atomic::Ordering::SeqCst), 2);
}

/// An upstream that answers one request per connection with keep-alive and closes its side 300 ms
/// later (as one whose idle timeout fired does), still reading: what arrives on each connection
/// after the answer, and whether the gateway has closed it.
struct HalfClosing {
    port: u16,
    /// per connection: requests after the first, and whether the gateway has closed it
    conns: std::sync::Arc<std::sync::Mutex<Vec<(usize, bool)>>>,
}

fn half_closing_upstream() -> HalfClosing {
    let conns: std::sync::Arc<std::sync::Mutex<Vec<(usize, bool)>>> = std::sync::Arc::default();
    let c = conns.clone();
    let port = answer_once_upstream(
        || {},
        move |mut r, w| {
            let me = {
                let mut c = c.lock().expect("lock");
                c.push((0, false));
                c.len() - 1
            };
            // a little later: the gateway has taken the connection back by then
            std::thread::sleep(Duration::from_millis(300));
            let _ = w.shutdown(std::net::Shutdown::Write);
            // anything after this is a request sent on a connection the upstream closed
            let mut rest = Vec::new();
            let _ = r.read_to_end(&mut rest);
            let mut c = c.lock().expect("lock");
            c[me].0 = String::from_utf8_lossy(&rest).matches("HTTP/1.1\r\n").count();
            c[me].1 = true;
        },
    );
    HalfClosing { port, conns }
}

/// The gateway keeps its upstream connections between exchanges, and lets go of those the
/// upstream closed: one is not used for the next request (no request is lost on it, none
/// retried), and one left idle is closed by the gateway within a few seconds, not kept until
/// the next request. (Idle connections are an event loop's own: `config` runs one.)
#[test]
fn idle_upstream_connections_the_upstream_closed_are_let_go() {
    let up = upstream();
    let half = half_closing_upstream();
    let routes = format!(
        "routes:\n  - {{id: half, path_prefix: /half/, policy: mask, upstream: {{addrs: [\"127.0.0.1:{}\"]}}}}\n",
        half.port
    );
    let cfg = config(up.port, "none", "allow").replacen("routes:\n", &routes, 1);
    let gw = start_gateway(&setup("halfclosed"), &cfg);
    let closed = |i: usize| half.conns.lock().expect("lock").get(i).is_some_and(|&(_, closed)| closed);
    for i in 0..2 {
        let r = curl(&[&url(&gw, "/half/x")]);
        assert_eq!(r.status, 200, "request {i}: {}", r.text());
        assert_eq!(r.text(), format!("{{\"sfzh\":\"{ID_MASKED}\"}}"));
        // kept, and then closed by the upstream while idle
        std::thread::sleep(Duration::from_millis(600));
        assert!(!closed(i), "connection {i} kept: {:?}", half.conns.lock().expect("lock"));
    }
    // the first was let go when the second request looked for an idle connection
    let t = Instant::now();
    while !closed(0) && t.elapsed() < Duration::from_secs(2) {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(closed(0), "{:?}", half.conns.lock().expect("lock"));
    // the second, left idle, by the sweep (every 5 s)
    while !closed(1) && t.elapsed() < Duration::from_secs(9) {
        std::thread::sleep(Duration::from_millis(50));
    }
    let c = half.conns.lock().expect("lock").clone();
    assert_eq!(c.len(), 2, "one connection a request: {c:?}");
    assert!(
        c.iter().all(|&(after, closed)| after == 0 && closed),
        "nothing sent on a closed connection, each closed: {c:?}"
    );
}

/// A request that times out on a pooled connection is not sent again: the upstream may be
/// working on it, and each new try would cost the client another read timeout. The client gets
/// 504 after one timeout.
#[test]
fn a_request_timing_out_on_a_pooled_connection_gets_504_after_one_timeout() {
    let up = upstream();
    let (port, counts) = second_request_upstream(Some(Duration::from_secs(5)));
    let routes = format!(
        "routes:\n  - {{id: slow, path_prefix: /slow/, policy: mask, upstream: {{addrs: [\"127.0.0.1:{port}\"], read_timeout_ms: 700}}}}\n"
    );
    let cfg = config(up.port, "none", "allow").replacen("routes:\n", &routes, 1);
    let gw = start_gateway(&setup("slowpooled"), &cfg);
    let r = curl(&[&url(&gw, "/slow/x")]);
    assert_eq!(r.status, 200, "{}", r.text());
    let t = Instant::now();
    let r = curl(&[&url(&gw, "/slow/x")]);
    let took = t.elapsed();
    assert_eq!(r.status, 504, "{}", r.text());
    assert!(r.text().contains(r#""kind":"timeout""#), "{}", r.text());
    assert!(
        took >= Duration::from_millis(600) && took < Duration::from_millis(1400),
        "one read timeout, took {took:?}"
    );
    let [answered, stalled] = &*counts;
    assert_eq!(answered.load(std::sync::atomic::Ordering::SeqCst), 1, "not sent again on a new connection");
    assert_eq!(stalled.load(std::sync::atomic::Ordering::SeqCst), 1);
}

/// Bulk-exfiltration quotas: a department that receives more ID numbers in clear than its quota
/// allows within the window is refused with 429 (a `block` quota) or only counted and audited (an
/// `alert` quota); other departments are not affected.
#[test]
fn a_department_over_its_quota_of_values_in_clear_is_refused() {
    let up = upstream();
    let quotas = "quotas:\n  - {id: bulk-ids, departments: [public-security], categories: [personal.id_number], limit: 3, window_seconds: 600}\n  - {id: watch-ids, level: core, limit: 2, window_seconds: 600, action: alert}\n";
    // a route where public security is cleared for everything, so nothing would be rewritten
    let open = format!(
        "routes:\n  - {{id: open, path_prefix: /open/, policy: open, upstream: {{addrs: [\"127.0.0.1:{}\"]}}}}\n",
        up.port
    );
    let cfg = format!("{}{quotas}", config(up.port, "none", "allow")).replacen("routes:\n", &open, 1).replacen(
        "policies:\n",
        "policies:\n  - {id: open, overrides: [{departments: [public-security], action: allow}]}\n",
        1,
    );
    let dir = setup("quota");
    let gw = start_gateway(&dir, &cfg);
    let ps = ["-H", "X-Api-Key: ps-key"];
    for (i, path) in ["/stream/residents", "/open/residents", "/open/residents"].iter().enumerate() {
        let r = curl(&[ps[0], ps[1], &url(&gw, path)]);
        assert_eq!(r.status, 200, "request {i}: {}", r.text());
        assert!(r.text().contains(ID), "request {i}: public security sees ID numbers in clear: {}", r.text());
        if path.starts_with("/open/") {
            assert!(r.text().contains(CARD), "everything in clear on /open/: {}", r.text());
        }
    }
    // the third crossed the limit of 3: the next is refused, with the quota and when to retry
    let r = curl(&[ps[0], ps[1], &url(&gw, "/stream/residents")]);
    assert_eq!(r.status, 429, "{}", r.text());
    assert_eq!(r.json()["error"], "quota_exceeded");
    assert_eq!(r.json()["quota"], "bulk-ids");
    assert!(r.header("retry-after").is_some_and(|v| v.parse::<u64>().is_ok_and(|s| s > 0)), "{:?}", r.headers);
    assert!(!r.text().contains(ID));
    // others go on: civil affairs and unknown callers get the ID masked, which does not count
    for key in [&["-H", "X-Api-Key: civil-key"][..], &[][..]] {
        let mut args = key.to_vec();
        let u = url(&gw, "/stream/residents");
        args.push(&u);
        let r = curl(&args);
        assert_eq!(r.status, 200, "{}", r.text());
        assert!(r.text().contains(ID_MASKED), "{}", r.text());
    }
    let m = curl(&[&format!("http://127.0.0.1:{}/metrics", gw.admin)]).text();
    let exceeded = |quota: &str, dept: &str| {
        m.lines()
            .find(|l| {
                l.starts_with("dlpgate_quota_exceeded_total{")
                    && l.contains(&format!("quota=\"{quota}\""))
                    && l.contains(&format!("department=\"{dept}\""))
            })
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse::<u64>().ok())
    };
    assert_eq!(exceeded("bulk-ids", "public-security"), Some(1), "{m}");
    // the alert quota (every department, core values) crossed at 2 and blocked nothing
    assert_eq!(exceeded("watch-ids", "public-security"), Some(1), "{m}");
    assert_eq!(exceeded("watch-ids", "civil"), Some(0), "masked values are not received in clear: {m}");
    assert!(
        m.lines().any(|l| l.starts_with("dlpgate_blocked_total{")
            && l.contains("department=\"public-security\"")
            && l.contains("reason=\"quota\"")
            && l.ends_with(" 1")),
        "the refused request is a block for reason quota: {m}"
    );
    // audited, without the values
    let audit = wait_for_file(&dir.join("audit.jsonl"), |t| {
        t.matches("\"dlp.quota\"").count() >= 2 && t.contains("\"reason\":\"quota exceeded\"")
    });
    assert!(
        audit.lines().any(|l| l.contains("\"dlp.block\"")
            && l.contains("\"reason\":\"quota exceeded\"")
            && l.contains("\"status\":429")),
        "the refused request is audited as a block: {audit}"
    );
    let quota_events: Vec<&str> = audit.lines().filter(|l| l.contains("\"dlp.quota\"")).collect();
    assert!(quota_events.iter().any(|l| l.contains("quota bulk-ids: 3 values in clear")), "{audit}");
    assert!(
        quota_events.iter().all(|l| l.contains("\"department\":\"public-security\"") && !l.contains(ID)),
        "{audit}"
    );
}

#[test]
fn a_quota_naming_an_unknown_category_is_refused_with_its_line() {
    let text = offline(format!(
        "{}quotas:\n  - {{id: q, categories: [personal.shoe_size], limit: 1, window_seconds: 60}}\n  - {{id: r, limit: 1, window_seconds: 90}}\n",
        config(1, "none", "allow")
    ));
    let err = refused("check", "badquota", &text);
    let line = text.lines().position(|l| l.contains("personal.shoe_size")).expect("line") + 1;
    assert!(err.contains(&format!("dlpgate.yaml:{line}")), "{err}");
    assert!(err.contains("quota q: no loaded rule has category \"personal.shoe_size\""), "{err}");
    // every problem at once: a window the buckets cannot divide evenly is refused too
    let line = text.lines().position(|l| l.contains("window_seconds: 90")).expect("line") + 1;
    assert!(err.contains(&format!("dlpgate.yaml:{line}")), "{err}");
    assert!(err.contains("quota r: window_seconds must be 1..=60, or a multiple of 60"), "{err}");
}

/// What follows an upgrade (WebSocket frames) is never inspected: refused where the route
/// inspects traffic for the caller and fails closed.
#[test]
fn protocol_upgrades_on_inspected_routes_fail_closed() {
    let (gw, up) = start("upgrade", "none", "allow");
    let r = curl(&[
        "--http1.1",
        "-H",
        "Connection: Upgrade",
        "-H",
        "Upgrade: websocket",
        "-H",
        "Sec-WebSocket-Version: 13",
        "-H",
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==",
        &url(&gw, "/stream/ws"),
    ]);
    assert_eq!(r.status, 403, "{}", r.text());
    assert!(r.json()["reason"].as_str().is_some_and(|s| s.contains("upgrade")), "{}", r.text());
    assert!(up.requests().is_empty(), "{:?}", up.requests());
}

/// Round robin over a route's addresses; an address that refuses connections is skipped for the
/// request at hand (the next one is tried) and left out until its health check passes.
#[test]
fn upstream_pools_round_robin_and_fail_over() {
    let a = Upstream::start(|r| Reply::json(format!("{{\"who\":\"a\",\"path\":\"{}\"}}", r.path)));
    let b = Upstream::start(|r| Reply::json(format!("{{\"who\":\"b\",\"path\":\"{}\"}}", r.path)));
    let dead = free_port();
    let routes = format!(
        "routes:\n  - {{id: pair, path_prefix: /pair/, policy: mask, upstream: {{addrs: [\"127.0.0.1:{}\", \"127.0.0.1:{}\"]}}}}\n  - {{id: half, path_prefix: /half/, policy: mask, upstream: {{addrs: [\"127.0.0.1:{dead}\", \"127.0.0.1:{}\"], health_check_interval_s: 0}}}}\n  - {{id: checked, path_prefix: /checked/, policy: mask, upstream: {{addrs: [\"127.0.0.1:{dead}\", \"127.0.0.1:{}\"], health_check_interval_s: 1}}}}\n",
        a.port, b.port, a.port, a.port
    );
    let dir = setup("pools");
    let gw = start_gateway(&dir, &config(a.port, "none", "allow").replacen("routes:\n", &routes, 1));
    let who: Vec<String> =
        (0..6).map(|_| curl(&[&url(&gw, "/pair/x")]).json()["who"].as_str().unwrap_or("?").to_string()).collect();
    assert_eq!(who.iter().filter(|w| *w == "a").count(), 3, "{who:?}");
    assert_eq!(who.iter().filter(|w| *w == "b").count(), 3, "{who:?}");
    // half of the pool is down and no health check runs to notice: every request is still
    // served, GET (the gateway's own exchange) and POST (Pingora's path) alike
    for i in 0..4 {
        let g = curl(&[&url(&gw, &format!("/half/get{i}"))]);
        assert_eq!(g.status, 200, "GET {i}: {}", g.text());
        let p = curl(&[
            "-X",
            "POST",
            "-H",
            "content-type: application/json",
            "-d",
            "{}",
            &url(&gw, &format!("/half/post{i}")),
        ]);
        assert_eq!(p.status, 200, "POST {i}: {}", p.text());
        assert_eq!(p.json()["who"], "a");
    }
    // health checks run and notice the dead address (on their own, in parallel with the others)
    let noticed = |t: &str| t.lines().any(|l| l.contains("upstream health changed") && l.contains(&format!(":{dead}")));
    let log = wait_for_file(&dir.join("gateway.log"), noticed);
    assert!(noticed(&log), "{log}");
}

/// Hop-by-hop fields, those the client's `Connection` names, and the client's own identity claims
/// do not reach the upstream, on both paths (GET: the gateway's own exchange; POST: Pingora's).
#[test]
fn hop_by_hop_fields_stay_with_the_gateway() {
    let (gw, up) = start("hop", "none", "allow");
    let sent = [
        "Keep-Alive: timeout=5",
        "Proxy-Connection: keep-alive",
        "TE: trailers",
        "Trailer: x-sum",
        "HTTP2-Settings: AAMAAABkAAQAAP__",
        "Connection: X-Drop-Me",
        "X-Drop-Me: 1",
        "X-Real-IP: 203.0.113.9",
        "Forwarded: for=203.0.113.9",
        "X-Kept: 1",
    ];
    for method in ["GET", "POST"] {
        let mut args = vec!["-X", method];
        for h in &sent {
            args.extend(["-H", h]);
        }
        let u = url(&gw, "/stream/etag");
        args.push(&u);
        let r = curl(&args);
        assert_eq!(r.status, 200, "{method}: {}", r.text());
    }
    let reqs = up.requests();
    assert_eq!(reqs.len(), 2, "{reqs:?}");
    for q in &reqs {
        for h in ["keep-alive", "proxy-connection", "te", "trailer", "http2-settings", "x-drop-me", "forwarded"] {
            assert!(q.header(h).is_none(), "{h} reached the upstream: {q:?}");
        }
        assert_ne!(q.header("x-real-ip"), Some("203.0.113.9"), "{q:?}");
        assert_eq!(q.header("x-kept"), Some("1"), "an end-to-end field is forwarded: {q:?}");
    }
}

/// Ranges, validators, caches and body-less responses on an inspected route, on both paths (GET:
/// the gateway's own exchange; POST: Pingora's).
#[test]
fn ranges_validators_and_bodiless_responses() {
    let (gw, up) = start("ranges", "none", "allow");
    for method in ["GET", "POST"] {
        let r = curl(&["-X", method, "-H", "Range: bytes=0-9", "-H", "If-Range: \"v1\"", &url(&gw, "/stream/etag")]);
        assert_eq!(r.status, 200, "{method}: a full response, not a range of the rewritten body");
        assert!(r.text().contains(ID_MASKED) && !r.text().contains(ID), "{method}: {}", r.text());
        for h in ["etag", "accept-ranges", "content-range"] {
            assert!(r.header(h).is_none(), "{method}: {h} describes the upstream's body: {:?}", r.headers);
        }
        let cc = r.header("cache-control").unwrap_or_default().to_string();
        assert!(cc.contains("private") && !cc.contains("public") && !cc.contains("s-maxage"), "{method}: {cc}");
        assert!(cc.contains("max-age=60"), "{method}: the client's own cache may keep it: {cc}");
    }
    assert!(
        up.requests().iter().all(|q| q.header("range").is_none() && q.header("if-range").is_none()),
        "{:?}",
        up.requests()
    );
    let head = curl(&["-I", &url(&gw, "/stream/etag")]);
    assert_eq!(head.status, 200);
    assert!(!head.text().contains("sfzh"), "no body: {}", head.text());
    assert!(head.header("etag").is_none() && head.header("accept-ranges").is_none(), "{:?}", head.headers);
    for (path, status) in [("/stream/nocontent", 204), ("/stream/notmod", 304)] {
        for method in ["GET", "POST"] {
            let r = curl(&["-X", method, &url(&gw, path)]);
            assert_eq!(r.status, status, "{method} {path}: {}", r.text());
            assert!(r.body.is_empty(), "{method} {path}: {}", r.text());
            assert!(r.header("transfer-encoding").is_none(), "{method} {path}: {:?}", r.headers);
        }
    }
}

/// A `block` finding past `max_buffer`: the head and the first part are gone, so the stream is
/// aborted and the incident recorded; the marked part never reaches the client.
#[test]
fn a_response_block_past_max_buffer_aborts_the_stream() {
    let (gw, _up) = start("abort", "none", "allow");
    let r = curl(&[&url(&gw, "/capped/bignotice")]);
    assert!(!r.text().contains("机密") && !r.text().contains("通知"), "{:.100}", r.text());
    assert!(r.exit != 0, "the client sees the transfer fail, not a complete response (exit {})", r.exit);
    let audit = wait_for_file(&gw.dir.join("audit.jsonl"), |t| t.contains("dlp.block"));
    assert!(audit.contains("secret.marking"), "{audit}");
}

/// Over HTTP/2: a streamed response past the 64 KiB hold with a value split between upstream
/// chunks, and a POST (Pingora's own body filters, not the gateway's exchange).
#[test]
fn http2_streamed_and_posted_bodies_are_masked() {
    let (gw, up) = start("h2stream", "none", "allow");
    let r = curl(&["--http2-prior-knowledge", &url(&gw, "/stream/bigsplit")]);
    assert_eq!(r.status, 200);
    assert_eq!(r.version, "HTTP/2");
    assert!(r.text().ends_with(&format!("\"sfzh\":\"{ID_MASKED}\"}}")), "{:.200}", r.text());
    assert!(!r.text().contains(ID));
    let body = format!("{{\"phone\":\"{MOBILE}\"}}");
    let r = post_json(&gw, "/stream/residents", &body, &["--http2-prior-knowledge"]);
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(r.text().contains(ID_MASKED) && !r.text().contains(ID), "{:.200}", r.text());
    let got = up.requests().into_iter().find(|q| q.method == "POST").expect("forwarded");
    assert_eq!(got.body, b"{\"phone\":\"138****8000\"}");
}

/// Runs of digits in `text` that look like a resident ID (17 digits and a check digit or X) and
/// like a mainland mobile (11 digits starting with 1), whole runs only.
fn clear_values(text: &str) -> (usize, usize) {
    let b = text.as_bytes();
    let (mut ids, mut mobiles, mut i) = (0, 0, 0);
    while i < b.len() {
        if b[i].is_ascii_digit() {
            let start = i;
            while i < b.len() && (b[i].is_ascii_digit() || (i - start == 17 && b[i] == b'X')) {
                i += 1;
            }
            match i - start {
                18 => ids += 1,
                11 if b[start] == b'1' => mobiles += 1,
                _ => {}
            }
        } else {
            i += 1;
        }
    }
    (ids, mobiles)
}

/// `dlpgate demo`, the README's first command, shows what issue 3 promises: per department
/// views of the same data, the marked document and the card upload blocked, mTLS over HTTP/2.
#[test]
fn demo_shows_each_department_its_own_view() {
    let dir = tempdir("demo");
    let (http, https, admin, backend) = (free_port(), free_port(), free_port(), free_port());
    let out = std::fs::File::create(dir.join("demo.out")).expect("out");
    let ports = [http.to_string(), https.to_string(), admin.to_string(), backend.to_string()];
    let child = std::process::Command::new(bin())
        .args(["demo", "--dir"])
        .arg(dir.join("demo"))
        .args(["--http", &ports[0], "--https", &ports[1], "--admin", &ports[2], "--backend", &ports[3]])
        .stdout(std::process::Stdio::null())
        .stderr(out)
        .spawn()
        .expect("spawn demo");
    let gw = Gateway { child, http, https, admin, dir: dir.clone() };
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while curl(&[&format!("http://127.0.0.1:{admin}/healthz")]).status != 200 {
        assert!(std::time::Instant::now() < deadline, "demo did not start");
        std::thread::sleep(Duration::from_millis(100));
    }
    let residents = |extra: &[&str]| {
        let mut args = extra.to_vec();
        let u = url(&gw, "/api/residents");
        args.push(&u);
        let r = curl(&args);
        assert_eq!(r.status, 200, "{extra:?}: {}", r.text());
        clear_values(&r.text())
    };
    let (ids, mobiles) = residents(&[]);
    assert_eq!((ids, mobiles), (0, 0), "an unknown caller sees every identifier masked");
    // names and addresses (issue 14): masked for the unknown caller, in clear for public security
    let unknown = curl(&[&url(&gw, "/api/residents")]).text();
    assert!(unknown.contains("\"name\":\"张*\"") && unknown.contains("\"name\":\"欧阳**\""), "{unknown}");
    assert!(unknown.contains("\"zz\":\"河南省郑州市金水区****\"") && !unknown.contains("文化路"), "{unknown}");
    let ps = curl(&["-H", "X-Api-Key: demo-public-security", &url(&gw, "/api/residents")]).text();
    assert!(ps.contains("\"name\":\"张伟\"") && ps.contains("文化路85号"), "{ps}");
    let (ids, mobiles) = residents(&["-H", "X-Api-Key: demo-civil-affairs"]);
    assert!(ids == 0 && mobiles > 0, "民政厅: mobiles, no ID numbers ({ids}, {mobiles})");
    let (ids, _) = residents(&["-H", "X-Api-Key: demo-public-security"]);
    assert!(ids > 0, "公安厅 sees ID numbers");
    let d = dir.join("demo");
    let p = |n: &str| d.join(n).to_string_lossy().into_owned();
    let mtls = curl(&[
        "--http2",
        "--cacert",
        &p("ca.crt"),
        "--cert",
        &p("client-ps.crt"),
        "--key",
        &p("client-ps.key"),
        &format!("https://localhost:{https}/api/residents"),
    ]);
    assert_eq!((mtls.status, mtls.version.as_str()), (200, "HTTP/2"), "{}", mtls.text());
    assert!(clear_values(&mtls.text()).0 > 0, "the OU 公安厅 certificate sees ID numbers");
    let notice = curl(&[&url(&gw, "/docs/notice")]);
    assert_eq!(notice.status, 403);
    assert_eq!(notice.json()["error"], "blocked_by_dlp");
    let card = curl(&[
        "-X",
        "POST",
        "-H",
        "content-type: application/json",
        "-d",
        "{\"card\":\"6212265658323320978\"}",
        &url(&gw, "/api/echo"),
    ]);
    assert_eq!(card.status, 403, "{}", card.text());
    let printed = std::fs::read_to_string(dir.join("demo.out")).unwrap_or_default();
    assert!(printed.contains(&format!("curl -s http://127.0.0.1:{http}/api/residents")), "{printed}");
}

/// A client that waits for `100 Continue` before its body (curl does for uploads) hears it from
/// the gateway when the gateway reads the body before contacting the upstream, on both paths.
#[test]
fn expect_100_continue_is_answered_when_the_gateway_reads_the_body() {
    use std::io::{Read, Write};
    let (gw, up) = start("expect", "none", "allow");
    let clean = format!("{{\"phone\":\"{MOBILE}\"}}");
    let card = format!("{{\"card\":\"{CARD}\"}}");
    for (path, body, status) in [
        ("/upload/echo", &clean, 200),
        ("/strict/echo", &clean, 200),
        ("/upload/echo", &card, 403),
        ("/strict/echo", &card, 403),
    ] {
        let mut s = std::net::TcpStream::connect(("127.0.0.1", gw.http)).expect("connect");
        s.set_read_timeout(Some(Duration::from_secs(3))).expect("timeout");
        let head = format!(
            "POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\nExpect: 100-continue\r\nConnection: close\r\n\r\n",
            body.len()
        );
        s.write_all(head.as_bytes()).expect("head");
        let mut buf = [0u8; 256];
        let n = s.read(&mut buf).unwrap_or(0);
        let interim = String::from_utf8_lossy(&buf[..n]).into_owned();
        assert!(interim.starts_with("HTTP/1.1 100"), "{path}: before the body, 100 Continue: {interim:?}");
        s.write_all(body.as_bytes()).expect("body");
        let mut rest = String::new();
        let _ = s.read_to_string(&mut rest);
        // after the interim 100, the final answer: the gateway's own (a block) included
        assert!(rest.contains(&format!("HTTP/1.1 {status} ")), "{path}: {status} expected: {rest}");
    }
    assert!(up.requests().iter().all(|q| q.header("expect").is_none()), "{:?}", up.requests());
}
