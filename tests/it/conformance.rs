//! HTTP conformance through the real gateway: pipelining, Host, upstream faults, client timeouts.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::time::{Duration, Instant};

use super::gateway::{ID, ID_MASKED, setup, upstream};
use super::harness::*;

/// Connect to the gateway's plain listener.
fn connect(gw: &Gateway) -> TcpStream {
    let s = TcpStream::connect(("127.0.0.1", gw.http)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10))).expect("timeout");
    s
}

/// Read until the peer closes (or 10 s pass).
fn read_all(s: &mut TcpStream) -> String {
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    String::from_utf8_lossy(&out).into_owned()
}

/// The status codes of the responses in `reply`, in order.
fn statuses(reply: &str) -> Vec<u16> {
    reply.split("HTTP/1.1 ").skip(1).filter_map(|r| r.get(..3).and_then(|c| c.parse().ok())).collect()
}

fn base_config(up: u16, listener_extra: &str, routes_extra: &str) -> String {
    format!(
        r#"
server: {{threads: 1, grace_period_seconds: 1, graceful_shutdown_timeout_seconds: 1}}
listeners:
  - {{name: plain, addr: "127.0.0.1:{{HTTP}}", h2: true{listener_extra}}}
admin: {{addr: "127.0.0.1:{{ADMIN}}", token_file: admin.token}}
rules: {{dirs: [rules]}}
policies:
  - id: mask
    overrides:
      - {{categories: [financial.bank_card], direction: request, action: mask}}
routes:
{routes_extra}  - {{id: stream, path_prefix: /stream/, policy: mask, upstream: {{addrs: ["127.0.0.1:{up}"]}}}}
  - {{id: upload, path_prefix: /upload/, policy: mask, upstream: {{addrs: ["127.0.0.1:{up}"]}}}}
audit:
  fingerprint_key_file: fp.key
  sinks: [{{type: file, path: audit.jsonl}}]
"#
    )
}

#[test]
fn pipelined_requests_are_answered_in_order() {
    let up = upstream();
    let dir = setup("pipeline");
    let gw = start_gateway(&dir, &base_config(up.port, "", ""));
    // both requests in one segment: a GET the gateway exchanges itself, then a POST with a body
    // through Pingora's proxy path, then one more GET that closes
    let body = format!("{{\"sfzh\":\"{ID}\"}}");
    let all = format!(
        "GET /stream/residents HTTP/1.1\r\nHost: x\r\n\r\n\
         POST /upload/echo HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}\
         GET /stream/notice HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        body.len()
    );
    let mut s = connect(&gw);
    s.write_all(all.as_bytes()).expect("write");
    let reply = read_all(&mut s);
    // (the unknown caller may not receive a classification marking: the notice is blocked)
    assert_eq!(statuses(&reply), vec![200, 200, 403], "three answers, in order: {reply:.2000}");
    let (a, b) = (reply.find("138****8000"), reply.find("blocked_by_dlp"));
    assert!(a.is_some() && b.is_some() && a < b, "the residents first, the notice last: {reply:.2000}");
    assert_eq!(reply.matches(ID_MASKED).count(), 2, "both bodies masked: {reply:.2000}");
    assert!(!reply.contains(ID), "{reply:.2000}");

    // the second request arrives while the first response is being written (its upstream
    // sends it in two chunks 100 ms apart)
    let mut s = connect(&gw);
    s.write_all(b"GET /stream/bigsplit HTTP/1.1\r\nHost: x\r\n\r\n").expect("write");
    std::thread::sleep(Duration::from_millis(50));
    s.write_all(b"GET /stream/residents HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").expect("write");
    let reply = read_all(&mut s);
    assert_eq!(statuses(&reply), vec![200, 200], "{:.300}", reply.replace(&"x".repeat(1000), "…"));
    assert_eq!(reply.matches(ID_MASKED).count(), 2);
    let paths: Vec<String> = up.requests().iter().map(|r| r.path.clone()).collect();
    assert_eq!(paths.iter().filter(|p| *p == "/stream/residents").count(), 2, "{paths:?}");
}

#[test]
fn host_is_required_of_http11_and_supplied_for_http10() {
    let up = upstream();
    let dir = setup("host");
    let hosted = format!(
        "  - {{id: hosted, hosts: [api.example], path_prefix: /only/, policy: mask, upstream: {{addrs: [\"127.0.0.1:{}\"]}}}}\n",
        up.port
    );
    let gw = start_gateway(&dir, &base_config(up.port, "", &hosted));
    let ask = |req: &str| {
        let mut s = connect(&gw);
        s.write_all(req.as_bytes()).expect("write");
        read_all(&mut s)
    };
    let r = ask("GET /stream/residents HTTP/1.1\r\nConnection: close\r\n\r\n");
    assert_eq!(statuses(&r), vec![400], "{r}");
    assert!(r.contains("without Host"), "{r}");
    let r = ask("GET /stream/residents HTTP/1.1\r\nHost: a\r\nHost: b\r\nConnection: close\r\n\r\n");
    assert_eq!(statuses(&r), vec![400], "{r}");
    // HTTP/1.0 without Host: served by a route without hosts, and the upstream (strict HTTP/1.1)
    // gets a Host
    let r = ask("GET /stream/headers HTTP/1.0\r\n\r\n");
    assert!(r.starts_with("HTTP/1.1 200") || r.starts_with("HTTP/1.0 200"), "{r}");
    let seen = up.requests().into_iter().find(|q| q.path == "/stream/headers").expect("forwarded");
    assert_eq!(seen.header("host"), Some(format!("127.0.0.1:{}", up.port).as_str()));
    // ... and never by a route that names its hosts
    let r = ask("GET /only/residents HTTP/1.0\r\n\r\n");
    assert!(r.contains(" 404 "), "{r}");
    let r = ask("GET /only/residents HTTP/1.1\r\nHost: api.example\r\nConnection: close\r\n\r\n");
    assert_eq!(statuses(&r), vec![200], "{r}");
}

/// An upstream that misbehaves in the way its path names.
fn faulty_upstream() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = l.local_addr().expect("addr").port();
    std::thread::spawn(move || {
        for s in l.incoming().flatten() {
            std::thread::spawn(move || {
                let mut w = s.try_clone().expect("clone");
                let mut r = BufReader::new(s);
                let mut line = String::new();
                if r.read_line(&mut line).unwrap_or(0) == 0 {
                    return;
                }
                loop {
                    let mut h = String::new();
                    if r.read_line(&mut h).unwrap_or(0) == 0 || h.trim().is_empty() {
                        break;
                    }
                }
                let fault = line.split('/').nth(2).unwrap_or("").split_whitespace().next().unwrap_or("").to_string();
                let body = format!("{{\"sfzh\":\"{ID}\"}}");
                match fault.as_str() {
                    "close" => {}
                    "status" => {
                        let _ = w.write_all(b"HTTP/1.1 two hundred OK\r\n\r\n");
                    }
                    "garbage" => {
                        let _ = w.write_all(b"\x00\x01 not http at all\r\n\r\n");
                    }
                    "reset" => {
                        let _ = w.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 1000\r\n\r\n{\"sfzh\":\"");
                        let _ = w.flush();
                        std::thread::sleep(Duration::from_millis(50));
                        let s = r.into_inner();
                        // SO_LINGER 0 would be the textbook reset; closing with unread input does
                        // the same on Linux, which is what an upstream crash looks like
                        let _ = s.shutdown(std::net::Shutdown::Both);
                        return;
                    }
                    "truncated" => {
                        let _ = w.write_all(
                            format!(
                                "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n",
                                body.len() + 100
                            )
                            .as_bytes(),
                        );
                        let _ = w.write_all(&body.as_bytes()[..10]);
                    }
                    _ => {
                        let _ = w.write_all(
                            format!("HTTP/1.1 200 OK\r\ncontent-length: {}\r\n\r\n{body}", body.len()).as_bytes(),
                        );
                    }
                }
                let _ = w.flush();
            });
        }
    });
    port
}

fn metric(gw: &Gateway, name: &str, labels: &[(&str, &str)]) -> f64 {
    let text = curl(&[&format!("http://127.0.0.1:{}/metrics", gw.admin)]).text();
    text.lines()
        .filter(|l| l.starts_with(name) && labels.iter().all(|(k, v)| l.contains(&format!("{k}=\"{v}\""))))
        .filter_map(|l| l.rsplit(' ').next().and_then(|v| v.parse::<f64>().ok()))
        .sum()
}

#[test]
fn upstream_faults_are_502_and_counted() {
    let up = faulty_upstream();
    let dir = setup("faults");
    let plain = format!(
        "  - {{id: plain, path_prefix: /plain/, policy: mask, upstream: {{addrs: [\"127.0.0.1:{up}\"]}}, inspect: {{request: false, response: false}}}}\n"
    );
    let gw = start_gateway(&dir, &base_config(up, "", &plain));
    // GET on /stream/ is exchanged by the gateway itself; POST on /upload/ and anything on
    // /plain/ (not inspected) go through Pingora's proxy path
    for fault in ["close", "status", "garbage", "reset", "truncated"] {
        for (route, post) in [("stream", false), ("upload", true), ("plain", false), ("plain", true)] {
            let u = format!("http://127.0.0.1:{}/{route}/{fault}", gw.http);
            let before = metric(&gw, "dlpgate_upstream_errors_total", &[("route", route)]);
            let r = if post {
                curl(&["-X", "POST", "-H", "content-type: application/json", "-d", "{\"a\":1}", &u])
            } else {
                curl(&[&u])
            };
            let what = format!("{fault} on {route} (POST: {post})");
            let after = metric(&gw, "dlpgate_upstream_errors_total", &[("route", route)]);
            assert!(after > before, "{what}: counted in dlpgate_upstream_errors_total");
            assert!(!r.text().contains(ID), "{what}");
            if route == "plain" && matches!(fault, "reset" | "truncated") {
                // not inspected, so relayed as it comes: the head was already sent, and the
                // client sees the response cut short, never a complete one
                assert_eq!(r.status, 200, "{what}");
                assert_ne!(r.exit, 0, "{what}: a cut-short response must not look complete");
                continue;
            }
            assert_eq!(r.status, 502, "{what}: {}", r.text());
            assert_eq!(r.json()["error"], "upstream_error", "{what}: {}", r.text());
            // (an upstream that closes with the request body unread resets the connection)
            let kinds: &[&str] = match fault {
                "close" => &["closed", "reset"],
                "status" | "garbage" => &["protocol"],
                _ => continue,
            };
            assert!(kinds.iter().any(|k| r.json()["kind"] == *k), "{what}: {}", r.text());
        }
    }
    // the gateway is fine
    let ok = curl(&[&format!("http://127.0.0.1:{}/stream/fine", gw.http)]);
    assert_eq!(ok.status, 200);
    assert!(ok.text().contains(ID_MASKED), "{}", ok.text());
}

#[test]
fn slow_and_idle_clients_are_cut_and_others_are_not() {
    let up = upstream();
    let dir = setup("timeouts");
    // HTTP/1 only, so that every read goes through the gateway's timing (an h2c listener peeks
    // first)
    let cfg =
        base_config(up.port, ", client_header_timeout_s: 2, client_body_timeout_s: 2, keepalive_timeout_s: 2", "")
            .replace("h2: true, client_header", "h2: false, client_header");
    assert!(cfg.contains("h2: false"));
    let gw = start_gateway(&dir, &cfg);
    let t0 = Instant::now();
    // a client that trickles its head, one byte every 300 ms (each read well within any per-read
    // timeout), starting with the `P` an HTTP/2 preface starts with
    let trickler = {
        let port = gw.http;
        std::thread::spawn(move || {
            let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
            let head =
                b"POST /stream/residents HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nX-Pad: aaaaaaaaaaaaaaaaaaaaaaa\r\n\r\n";
            for b in head {
                if s.write_all(&[*b]).is_err() {
                    return (Instant::now(), true);
                }
                std::thread::sleep(Duration::from_millis(300));
            }
            let mut out = Vec::new();
            s.set_read_timeout(Some(Duration::from_secs(5))).expect("timeout");
            let _ = s.read_to_end(&mut out);
            (Instant::now(), out.is_empty())
        })
    };
    // a silent connection, and a body that stops after 10 bytes
    let mut silent = connect(&gw);
    let mut stalled = connect(&gw);
    stalled
        .write_all(b"POST /upload/echo HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"a\":\"bbbb")
        .expect("write");
    // meanwhile a normal client on the same listener, on a keep-alive connection, every 500 ms
    let mut normal = connect(&gw);
    for _ in 0..6 {
        normal.write_all(b"GET /stream/residents HTTP/1.1\r\nHost: x\r\n\r\n").expect("write");
        let mut r = BufReader::new(normal.try_clone().expect("clone"));
        let mut line = String::new();
        r.read_line(&mut line).expect("status line");
        assert!(line.starts_with("HTTP/1.1 200"), "{line}");
        let mut len = 0;
        loop {
            let mut h = String::new();
            r.read_line(&mut h).expect("header");
            if h.trim().is_empty() {
                break;
            }
            if let Some(v) = h.to_ascii_lowercase().strip_prefix("content-length:") {
                len = v.trim().parse().unwrap_or(0);
            }
        }
        let mut body = vec![0; len];
        r.read_exact(&mut body).expect("body");
        assert!(String::from_utf8_lossy(&body).contains(ID_MASKED));
        std::thread::sleep(Duration::from_millis(500));
    }
    let silent_reply = read_all(&mut silent);
    let silent_at = t0.elapsed();
    assert!(silent_reply.is_empty(), "a connection that never sent a byte is closed without a word: {silent_reply}");
    assert!(silent_at < Duration::from_secs(6), "silent connection cut after {silent_at:?}");
    let stalled_reply = read_all(&mut stalled);
    assert_eq!(statuses(&stalled_reply), vec![408], "{stalled_reply}");
    assert!(stalled_reply.contains("request_timeout"), "{stalled_reply}");
    let (cut_at, nothing) = trickler.join().expect("trickler");
    assert!(nothing, "the trickling client gets no response");
    let cut = cut_at - t0;
    assert!(cut < Duration::from_secs(8), "the trickler is cut by the header timeout, not after its head: {cut:?}");
    // the idle keep-alive connection of the normal client is closed after keepalive_timeout
    let idle_from = Instant::now();
    let rest = read_all(&mut normal);
    assert!(rest.is_empty(), "{rest}");
    let idle = idle_from.elapsed();
    assert!(idle < Duration::from_secs(5), "idle keep-alive closed after {idle:?}");
    assert!(up.requests().iter().all(|q| q.path != "/upload/echo"), "the stalled body never reached the upstream");
}
