//! Operations: metrics, audit events, hot reload, `dlpgate check`, deployment files.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use super::gateway::{CARD, ID, ID_MASKED, MOBILE, setup, start};
use super::harness::*;

fn admin(gw: &Gateway, path: &str) -> String {
    format!("http://127.0.0.1:{}{path}", gw.admin)
}

fn metric(text: &str, name: &str, labels: &[(&str, &str)]) -> f64 {
    text.lines()
        .filter(|l| l.starts_with(name) && l[name.len()..].starts_with('{'))
        .filter(|l| labels.iter().all(|(k, v)| l.contains(&format!("{k}=\"{v}\""))))
        .filter_map(|l| l.rsplit(' ').next().and_then(|v| v.parse::<f64>().ok()))
        .sum()
}

#[test]
fn metrics_count_known_traffic() {
    let (gw, _up) = start("metrics", "none", "allow");
    metrics_of_known_traffic(&gw);
    // without an audit sink the gateway keeps no samples or fingerprints; the counts are the same
    let up = super::gateway::upstream();
    let cfg = super::gateway::config(up.port, "none", "allow");
    let sink = "sinks: [{type: file, path: audit.jsonl}]";
    assert!(cfg.contains(sink));
    let gw = start_gateway(&setup("metrics-noaudit"), &cfg.replace(sink, "sinks: []"));
    metrics_of_known_traffic(&gw);
    assert!(!gw.dir.join("audit.jsonl").exists());
}

fn metrics_of_known_traffic(gw: &Gateway) {
    for _ in 0..3 {
        assert_eq!(curl(&[&format!("http://127.0.0.1:{}/stream/residents", gw.http)]).status, 200);
    }
    assert_eq!(curl(&[&format!("http://127.0.0.1:{}/strict/notice", gw.http)]).status, 403);
    std::thread::sleep(Duration::from_millis(200));
    let m = curl(&[&admin(gw, "/metrics")]).text();
    for family in [
        "dlpgate_requests_total",
        "dlpgate_request_duration_seconds",
        "dlpgate_findings_total",
        "dlpgate_blocked_total",
        "dlpgate_inspected_bytes_total",
        "dlpgate_scan_duration_seconds",
        "dlpgate_config_reloads_total",
        "dlpgate_config_last_reload_success_timestamp_seconds",
        "dlpgate_rules_loaded",
        "dlpgate_build_info",
    ] {
        assert!(m.contains(family), "missing family {family}");
    }
    let stream = [("route", "stream"), ("department", "unknown")];
    assert_eq!(metric(&m, "dlpgate_requests_total", &[stream[0], stream[1], ("status_class", "2xx")]), 3.0, "{m}");
    assert_eq!(
        metric(
            &m,
            "dlpgate_findings_total",
            &[("rule", "cn.id_card"), ("direction", "response"), ("action", "mask"), ("department", "unknown")]
        ),
        3.0
    );
    assert_eq!(
        metric(&m, "dlpgate_blocked_total", &[("route", "strict"), ("direction", "response"), ("reason", "dlp_rule")]),
        1.0
    );
    assert_eq!(
        metric(&m, "dlpgate_rules_loaded", &[])
            + m.lines()
                .filter(|l| l.starts_with("dlpgate_rules_loaded "))
                .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
                .sum::<f64>(),
        16.0
    );
    // closed label sets: no path, client address or value ever appears
    for leak in ["/stream/residents", "127.0.0.1", ID, MOBILE] {
        assert!(!m.contains(leak), "metrics leak {leak}");
    }
    let h = curl(&[&admin(gw, "/healthz")]);
    assert_eq!(h.status, 200);
    let r = curl(&[&admin(gw, "/readyz")]);
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["rules"], 16);
}

#[test]
fn audit_events_carry_no_raw_values() {
    let (gw, _up) = start("audit", "none", "allow");
    let base = format!("http://127.0.0.1:{}", gw.http);
    assert_eq!(curl(&[&format!("{base}/stream/residents")]).status, 200);
    assert_eq!(curl(&["-H", "X-Api-Key: civil-key", &format!("{base}/stream/residents")]).status, 200);
    let body = format!("{{\"card\":\"{CARD}\"}}");
    assert_eq!(
        curl(&[
            "-X",
            "POST",
            "-H",
            "content-type: application/json",
            "-d",
            &body,
            &format!("{base}/strict/{ID}/echo?x=1")
        ])
        .status,
        403
    );
    assert_eq!(curl(&[&format!("{base}/stream/nothing-sensitive")]).status, 404);
    let text = wait_for_file(&gw.dir.join("audit.jsonl"), |t| t.lines().count() >= 3);
    let events: Vec<serde_json::Value> =
        text.lines().map(|l| serde_json::from_str(l).expect("one JSON object per line")).collect();
    assert_eq!(events.len(), 3, "{text}");
    for raw in [ID, CARD, MOBILE, "13800138000", "6212265658323320978"] {
        assert!(!text.contains(raw), "audit contains raw value {raw}");
    }
    let unknown = &events[0];
    for field in [
        "ts",
        "event",
        "incident",
        "request_id",
        "listener",
        "route",
        "department",
        "client_ip",
        "method",
        "path",
        "direction",
        "action",
        "status",
        "findings",
    ] {
        assert!(!unknown[field].is_null(), "missing {field}: {unknown}");
    }
    assert_eq!(unknown["department"], "unknown");
    assert_eq!(unknown["event"], "dlp.finding");
    let id = unknown["findings"]
        .as_array()
        .expect("findings")
        .iter()
        .find(|f| f["rule"] == "cn.id_card")
        .expect("id finding");
    assert_eq!(id["sample"], ID_MASKED);
    assert_eq!(id["count"], 1);
    let fp = id["fingerprints"][0].as_str().expect("fingerprint").to_string();
    assert_eq!(fp.len(), 16);
    // the same ID pulled by another department has the same fingerprint
    let civil = &events[1];
    assert_eq!(civil["department"], "civil");
    let civil_id =
        civil["findings"].as_array().expect("findings").iter().find(|f| f["rule"] == "cn.id_card").expect("id finding");
    assert_eq!(civil_id["fingerprints"][0], fp.as_str());
    let block = &events[2];
    assert_eq!(block["event"], "dlp.block");
    assert_eq!(block["path"], format!("/strict/{ID_MASKED}/echo"), "query removed, the ID in the path masked");
    assert_eq!(block["status"], 403);
    assert_eq!(block["direction"], "request");
}

fn reload(gw: &Gateway, token: &str) -> Resp {
    curl(&["-X", "POST", "-H", &format!("Authorization: Bearer {token}"), &admin(gw, "/reload")])
}

#[test]
fn reload_with_a_broken_rule_keeps_the_old_rules() {
    let (gw, _up) = start("reload", "none", "allow");
    let url = format!("http://127.0.0.1:{}/stream/residents", gw.http);
    assert!(curl(&[&url]).text().contains(ID_MASKED));
    assert_eq!(reload(&gw, "wrong-token-0123456789").status, 401);
    assert_eq!(curl(&["-X", "POST", &admin(&gw, "/reload")]).status, 401);
    let ok = reload(&gw, "test-admin-token-0123456789");
    assert_eq!(ok.status, 200, "{}", ok.text());
    // break a rule file: an invalid regex and an unknown key
    let bad = "rules:\n  - id: test.bad\n    name: {en: Bad}\n    category: test\n    level: core\n    detector: {regex: '([a-z'}\n    action: mask\n    examples: {match: [x]}\n  - id: test.typo\n    name: {en: Typo}\n    category: test\n    level: core\n    detector: {keywords: [abc]}\n    action: mask\n    colour: red\n    examples: {match: [abc]}\n";
    std::fs::write(gw.dir.join("rules/zz_bad.yaml"), bad).expect("write bad rule");
    let r = reload(&gw, "test-admin-token-0123456789");
    assert_eq!(r.status, 422, "{}", r.text());
    let errs = r.json()["errors"].as_array().cloned().unwrap_or_default();
    let all: Vec<String> = errs.iter().filter_map(|e| e.as_str().map(String::from)).collect();
    assert!(
        all.iter().any(|e| e.contains("zz_bad.yaml:2") && e.contains("test.bad") && e.contains("regex")),
        "{all:?}"
    );
    assert!(all.iter().any(|e| e.contains("zz_bad.yaml:15") && e.contains("colour")), "{all:?}");
    // the old rules keep serving
    let after = curl(&[&url]);
    assert_eq!(after.status, 200);
    assert!(after.text().contains(ID_MASKED));
    let m = curl(&[&admin(&gw, "/metrics")]).text();
    assert!(metric(&m, "dlpgate_config_reloads_total", &[("result", "error")]) >= 1.0);
    // SIGHUP reload after fixing the file picks up a new rule
    let good = "rules:\n  - id: test.codeword\n    name: {en: Codeword}\n    category: test\n    level: core\n    detector: {keywords: [蓝鲸计划]}\n    action: redact\n    label: '[CODEWORD]'\n    examples: {match: [蓝鲸计划启动]}\n";
    std::fs::write(gw.dir.join("rules/zz_bad.yaml"), good).expect("write good rule");
    let pid = gw.child.id().to_string();
    assert!(std::process::Command::new("kill").args(["-HUP", &pid]).status().expect("kill").success());
    let mut seen = false;
    for _ in 0..50 {
        std::thread::sleep(Duration::from_millis(100));
        if curl(&[&admin(&gw, "/readyz")]).json()["rules"] == 17 {
            seen = true;
            break;
        }
    }
    assert!(seen, "SIGHUP reload did not load the new rule");
}

/// A minimal keep-alive HTTP/1.1 client: returns the status of each request.
fn get_status(stream: &mut TcpStream, path: &str) -> Option<u16> {
    let req = format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n");
    stream.write_all(req.as_bytes()).ok()?;
    let mut buf = Vec::new();
    let mut tmp = [0u8; 8192];
    loop {
        let n = stream.read(&mut tmp).ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&tmp[..n]);
        let text = String::from_utf8_lossy(&buf);
        if let Some(h) = text.find("\r\n\r\n") {
            let head = &text[..h];
            let status = head.split_whitespace().nth(1)?.parse().ok()?;
            if let Some(cl) = head
                .lines()
                .find_map(|l| l.to_ascii_lowercase().strip_prefix("content-length:").map(|v| v.trim().to_string()))
            {
                let len: usize = cl.parse().ok()?;
                if buf.len() >= h + 4 + len {
                    return Some(status);
                }
            } else if text[h..].contains("\r\n0\r\n\r\n") {
                return Some(status);
            }
        }
    }
}

#[test]
fn twenty_reloads_under_load_fail_no_request() {
    let (gw, _up) = start("reloadload", "none", "allow");
    let stop = Arc::new(AtomicBool::new(false));
    let ok = Arc::new(AtomicUsize::new(0));
    let failed = Arc::new(AtomicUsize::new(0));
    let mut workers = Vec::new();
    for w in 0..4 {
        let (stop, ok, failed, port) = (stop.clone(), ok.clone(), failed.clone(), gw.http);
        workers.push(std::thread::spawn(move || {
            let path = if w % 2 == 0 { "/stream/residents" } else { "/strict/residents" };
            let mut conn: Option<TcpStream> = None;
            while !stop.load(Ordering::Relaxed) {
                if conn.is_none() {
                    conn = TcpStream::connect(("127.0.0.1", port)).ok();
                }
                let Some(c) = conn.as_mut() else {
                    failed.fetch_add(1, Ordering::Relaxed);
                    continue;
                };
                match get_status(c, path) {
                    Some(200) => {
                        ok.fetch_add(1, Ordering::Relaxed);
                    }
                    _ => {
                        failed.fetch_add(1, Ordering::Relaxed);
                        conn = None;
                    }
                }
            }
        }));
    }
    std::thread::sleep(Duration::from_millis(300));
    for i in 0..20 {
        let r = reload(&gw, "test-admin-token-0123456789");
        assert_eq!(r.status, 200, "reload {i}: {}", r.text());
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_millis(200));
    stop.store(true, Ordering::Relaxed);
    for w in workers {
        let _ = w.join();
    }
    let (ok, failed) = (ok.load(Ordering::Relaxed), failed.load(Ordering::Relaxed));
    println!("during 20 reloads: {ok} requests ok, {failed} failed");
    assert!(ok > 100, "load generator made too few requests: {ok}");
    assert_eq!(failed, 0);
    let m = curl(&[&admin(&gw, "/metrics")]).text();
    assert!(metric(&m, "dlpgate_config_reloads_total", &[("result", "success")]) >= 21.0);
}

#[test]
fn check_reports_each_kind_of_mistake_with_file_and_line() {
    let dir = super::gateway::setup("check");
    let good = super::gateway::config(9, "none", "allow")
        .replace("{HTTP}", "18001")
        .replace("{HTTPS}", "18002")
        .replace("{ADMIN}", "18003")
        .replace("{DIR}", "/tmp");
    let path = dir.join("dlpgate.yaml");
    let run = |text: &str| {
        std::fs::write(&path, text).expect("write");
        std::process::Command::new(bin()).args(["check", "-c"]).arg(&path).output().expect("check")
    };
    let out = run(&good);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let line_of = |needle: &str| good.lines().position(|l| l.contains(needle)).expect("needle") + 1;
    let cases: Vec<(String, usize, &str)> = vec![
        (
            good.replacen("identity: {unknown: allow}", "identity: {unknown: allow, colour: blue}", 1),
            line_of("identity:"),
            "colour",
        ),
        (
            good.replacen("addr: \"127.0.0.1:18001\"", "addr: \"127.0.0.1:notaport\"", 1),
            line_of("127.0.0.1:18001"),
            "invalid listen address",
        ),
        (
            good.replacen("addr: \"127.0.0.1:18001\"", "addr: \"127.0.0.1:0\"", 1),
            line_of("127.0.0.1:18001"),
            "a listener needs a fixed port",
        ),
        (good.replacen("policy: strict,", "policy: nosuch,", 1), line_of("policy: strict,"), "unknown policy"),
        (good.replacen("cert: server.crt", "cert: missing.crt", 1), line_of("cert: server.crt"), "missing.crt"),
        (good.replacen("client_auth: none", "client_auth: sometimes", 1), line_of("client_auth: none"), "sometimes"),
        (
            good.replacen(
                "categories: [financial.bank_card], direction: request",
                "categories: [financial.nothing], direction: request",
                1,
            ),
            line_of("categories: [financial.bank_card], direction: request"),
            "financial.nothing",
        ),
    ];
    let mut ran = 0;
    for (text, line, needle) in &cases {
        let out = run(text);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{needle}: {err}");
        assert!(err.contains(&format!("dlpgate.yaml:{line}")), "{needle}: expected line {line}: {err}");
        assert!(err.contains(needle), "{needle}: {err}");
        ran += 1;
    }
    assert_eq!(ran, cases.len());
    // two mistakes at once: both reported
    let two =
        good.replacen("policy: strict,", "policy: nosuch,", 1).replacen("cert: server.crt", "cert: missing.crt", 1);
    let err = String::from_utf8_lossy(&run(&two).stderr).into_owned();
    assert!(err.contains("nosuch") && err.contains("missing.crt"), "{err}");
    // a rule file mistake is reported with the rule file's line
    std::fs::write(dir.join("rules/zz.yaml"), "rules:\n  - id: x.y\n    name: {en: X}\n    category: c\n    level: core\n    detector: {builtin: nope}\n    action: mask\n    examples: {match: [a]}\n").expect("rule");
    let out = run(&good);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1));
    assert!(err.contains("zz.yaml:2") && err.contains("unknown builtin"), "{err}");
}

#[test]
fn check_accepts_the_deploy_example() {
    // deploy/dlpgate.yaml names files relative to its directory (/etc/dlpgate in production):
    // build that layout in a temporary directory with generated certificates and keys
    let dir = tempdir("deploy");
    let text =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/dlpgate.yaml")).expect("deploy config");
    std::fs::create_dir_all(dir.join("tls")).expect("tls");
    std::fs::create_dir_all(dir.join("secrets")).expect("secrets");
    Pki::new(&dir.join("tls"));
    for f in ["client-ca.crt", "upstream-ca.crt"] {
        std::fs::copy(dir.join("tls/ca.crt"), dir.join("tls").join(f)).expect("ca copy");
    }
    for f in ["admin.token", "hash.key", "fingerprint.key", "redis.password"] {
        std::fs::write(dir.join("secrets").join(f), "0123456789abcdef0123456789abcdef\n").expect("secret");
    }
    let rules = dir.join("rules");
    std::fs::create_dir_all(&rules).expect("rules");
    for (p, t) in dlpgate::engine::DEFAULT_RULE_FILES {
        std::fs::write(rules.join(p.replace('/', "_")), t).expect("rule");
    }
    let path = dir.join("dlpgate.yaml");
    std::fs::write(&path, text).expect("config");
    let out = std::process::Command::new(bin()).args(["check", "--print", "-c"]).arg(&path).output().expect("check");
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("department public-security"), "{stdout}");
    assert!(stdout.contains("route population"), "{stdout}");

    // the Kubernetes ConfigMap's dlpgate.yaml, with /etc/dlpgate/ laid out the same way
    let cm: serde_yaml_ng::Value = serde_yaml_ng::from_str(
        &std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/kubernetes/configmap.yaml"))
            .expect("configmap"),
    )
    .expect("configmap yaml");
    let text = cm["data"]["dlpgate.yaml"].as_str().expect("dlpgate.yaml in the ConfigMap");
    assert!(text.contains("cluster:") && text.contains("password_file"), "replicas share quotas");
    let path = dir.join("k8s.yaml");
    std::fs::write(&path, text.replace("/etc/dlpgate/", &format!("{}/", dir.display()))).expect("config");
    let out = std::process::Command::new(bin()).args(["check", "-c"]).arg(&path).output().expect("check");
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn deploy_files_parse() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy");
    let mut stack = vec![root];
    let (mut yaml, mut json) = (0, 0);
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).expect("deploy dir").flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
                continue;
            }
            let text = std::fs::read_to_string(&p).unwrap_or_default();
            match p.extension().and_then(|x| x.to_str()) {
                Some("yaml" | "yml") => {
                    for doc in serde_yaml_ng::Deserializer::from_str(&text) {
                        serde_yaml_ng::Value::deserialize(doc).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
                    }
                    yaml += 1;
                }
                Some("json") => {
                    serde_json::from_str::<serde_json::Value>(&text).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
                    json += 1;
                }
                _ => {}
            }
        }
    }
    assert!(yaml >= 10 && json >= 1, "yaml {yaml}, json {json}");
    // promtool, where installed, checks the alert rules
    if let Ok(out) = std::process::Command::new("promtool")
        .args(["check", "rules", concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/prometheus/alerts.yaml")])
        .output()
    {
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    }
}

use serde::Deserialize;

#[test]
fn audit_goes_to_syslog_and_files_are_reopened_after_rotation() {
    let up = super::gateway::upstream();
    let dir = super::gateway::setup("syslog");
    let sock = std::net::UdpSocket::bind("127.0.0.1:0").expect("udp");
    sock.set_read_timeout(Some(Duration::from_secs(5))).expect("timeout");
    let port = sock.local_addr().expect("addr").port();
    let cfg = super::gateway::config(up.port, "none", "allow").replace(
        "sinks: [{type: file, path: audit.jsonl}]",
        &format!("sinks: [{{type: file, path: audit.jsonl}}, {{type: syslog, addr: \"udp://127.0.0.1:{port}\"}}]"),
    );
    let gw = start_gateway(&dir, &cfg);
    let url = format!("http://127.0.0.1:{}/stream/residents", gw.http);
    assert_eq!(curl(&[&url]).status, 200);
    let mut buf = [0u8; 65536];
    let n = sock.recv(&mut buf).expect("a syslog datagram");
    let msg = String::from_utf8_lossy(&buf[..n]).into_owned();
    assert!(msg.starts_with("<133>1 "), "RFC 5424 header: {msg}");
    assert!(msg.contains("dlpgate") && msg.contains("\"event\":\"dlp.finding\""), "{msg}");
    assert!(!msg.contains(ID), "{msg}");
    // rotate: move the file away, signal, and the next event lands in a new file
    let path = dir.join("audit.jsonl");
    std::thread::sleep(Duration::from_millis(100));
    std::fs::rename(&path, dir.join("audit.jsonl.1")).expect("rotate");
    let pid = gw.child.id().to_string();
    assert!(std::process::Command::new("kill").args(["-USR1", &pid]).status().expect("kill").success());
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(curl(&[&url]).status, 200);
    let mut lines = 0;
    for _ in 0..50 {
        lines = std::fs::read_to_string(&path).map(|t| t.lines().count()).unwrap_or(0);
        if lines > 0 {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(lines, 1, "the reopened file holds the new event");
    assert_eq!(std::fs::read_to_string(dir.join("audit.jsonl.1")).map(|t| t.lines().count()).unwrap_or(0), 1);
}

#[test]
fn reload_replaces_server_certificates() {
    let (gw, _up) = start("certreload", "optional", "allow");
    let d = gw.dir.clone();
    let https = format!("https://localhost:{}/stream/residents", gw.https);
    let old_ca = d.join("ca.crt").to_string_lossy().into_owned();
    assert_eq!(curl(&["--cacert", &old_ca, &https]).status, 200);
    // a new server certificate from a new CA
    let fresh = d.join("fresh");
    std::fs::create_dir_all(&fresh).expect("dir");
    Pki::new(&fresh);
    std::fs::copy(fresh.join("server.crt"), d.join("server.crt")).expect("crt");
    std::fs::copy(fresh.join("server.key"), d.join("server.key")).expect("key");
    let r = reload(&gw, "test-admin-token-0123456789");
    assert_eq!(r.status, 200, "{}", r.text());
    let new_ca = fresh.join("ca.crt").to_string_lossy().into_owned();
    assert_eq!(curl(&["--cacert", &new_ca, &https]).status, 200, "new certificate served after reload");
    assert_ne!(curl(&["--cacert", &old_ca, &https]).exit, 0, "old CA no longer verifies the server");
    // a broken key file is refused and the current certificate keeps serving
    std::fs::write(d.join("server.key"), "not a key").expect("write");
    let r = reload(&gw, "test-admin-token-0123456789");
    assert_eq!(r.status, 422);
    assert!(r.text().contains("server.key"), "{}", r.text());
    assert_eq!(curl(&["--cacert", &new_ca, &https]).status, 200);
}

/// Listening sockets in LISTEN state on loopback `port` (from /proc/net/tcp).
fn listening_sockets(port: u16) -> usize {
    let want = format!("0100007F:{port:04X}");
    std::fs::read_to_string("/proc/net/tcp")
        .unwrap_or_default()
        .lines()
        .filter(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            f.get(1) == Some(&want.as_str()) && f.get(3) == Some(&"0A")
        })
        .count()
}

#[test]
fn each_thread_listens_and_serves_and_a_second_instance_is_refused() {
    let up = super::gateway::upstream();
    let dir = setup("threads");
    let cfg = super::gateway::config(up.port, "none", "allow").replacen("threads: 1,", "threads: 3,", 1);
    assert!(cfg.contains("threads: 3,"));
    let gw = start_gateway(&dir, &cfg);
    // one event loop per thread, each with its own socket (each binds as its loop starts: the
    // gateway answering on one of them does not mean all are bound yet)
    let counts = || (listening_sockets(gw.http), listening_sockets(gw.https), listening_sockets(gw.admin));
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while counts() != (3, 3, 1) && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(counts(), (3, 3, 1), "HTTP, TLS and admin listening sockets");
    // concurrent clients on separate connections are all served and masked
    let url = format!("http://127.0.0.1:{}/stream/residents", gw.http);
    let served: Vec<_> = (0..6)
        .map(|_| {
            let url = url.clone();
            std::thread::spawn(move || {
                (0..5).map(|_| curl(&[&url])).filter(|r| r.status == 200 && r.text().contains(ID_MASKED)).count()
            })
        })
        .collect();
    let ok: usize = served.into_iter().map(|h| h.join().unwrap_or(0)).sum();
    assert_eq!(ok, 30);
    // a second instance on the same ports fails with the reason, instead of sharing the sockets
    let dir2 = setup("threads-second");
    let cfg2 = cfg
        .replace("{HTTP}", &gw.http.to_string())
        .replace("{HTTPS}", &gw.https.to_string())
        .replace("{ADMIN}", &free_port().to_string())
        .replace("{DIR}", &dir2.display().to_string());
    std::fs::write(dir2.join("dlpgate.yaml"), cfg2).expect("write");
    let mut second = std::process::Command::new(bin())
        .args(["run", "-c"])
        .arg(dir2.join("dlpgate.yaml"))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run");
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while second.try_wait().ok().flatten().is_none() && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = second.kill();
    let out = second.wait_with_output().expect("wait");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "the second instance must exit 1: {err}");
    assert!(err.contains(&format!("cannot listen on 127.0.0.1:{}", gw.http)), "{err}");
    assert_eq!(listening_sockets(gw.http), 3);
    assert_eq!(curl(&[&url]).status, 200, "the first instance still serves");
}

/// Without a key file, the audit fingerprint key (and the `hash` key) is one per process: a
/// reload does not change the fingerprints SOC analysts correlate on.
#[test]
fn fingerprints_survive_a_reload_without_a_key_file() {
    let up = super::gateway::upstream();
    let dir = setup("fp-stable");
    let cfg = super::gateway::config(up.port, "none", "allow").replace("  fingerprint_key_file: fp.key\n", "");
    assert!(!cfg.contains("fingerprint_key_file"));
    let gw = start_gateway(&dir, &cfg);
    let url = format!("http://127.0.0.1:{}/stream/residents", gw.http);
    let fingerprint = |n: usize| {
        let text = wait_for_file(&gw.dir.join("audit.jsonl"), |t| t.lines().count() >= n);
        let line = text.lines().nth(n - 1).unwrap_or_default().to_string();
        let v: serde_json::Value = serde_json::from_str(&line).unwrap_or_default();
        v["findings"]
            .as_array()
            .and_then(|f| f.iter().find(|f| f["rule"] == "cn.id_card"))
            .map(|f| f["fingerprints"][0].clone())
    };
    assert_eq!(curl(&[&url]).status, 200);
    let before = fingerprint(1).expect("fingerprint");
    assert_eq!(reload(&gw, "test-admin-token-0123456789").status, 200);
    assert_eq!(curl(&[&url]).status, 200);
    assert_eq!(fingerprint(2).expect("fingerprint"), before);
}

/// `dlpgate check` runs the second stage too: a key that does not belong to its certificate, two
/// listeners of one name, and a client CA bundle with no certificate are refused.
#[test]
fn check_refuses_mismatched_keys_duplicate_listeners_and_bad_client_cas() {
    let base = super::gateway::config(1, "required", "allow")
        .replace("{HTTP}", &free_port().to_string())
        .replace("{HTTPS}", &free_port().to_string())
        .replace("{ADMIN}", &free_port().to_string());
    for (name, cfg, expect) in [
        ("mismatch", base.replace("key: server.key", "key: ps.key"), "do not belong together"),
        ("dupname", base.replace("name: tls", "name: plain"), "used twice"),
        ("badca", base.replace("client_ca: ca.crt", "client_ca: server.key"), "no PEM CERTIFICATE"),
    ] {
        let dir = setup(name);
        let cfg = cfg.replace("{DIR}", &dir.display().to_string());
        let path = dir.join("dlpgate.yaml");
        std::fs::write(&path, &cfg).expect("config");
        let out = std::process::Command::new(bin()).args(["check", "-c"]).arg(&path).output().expect("check");
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{name}: {err}");
        assert!(err.contains(expect), "{name}: {err}");
    }
}

/// A reload applies `client_auth` and `client_ca` too: a CA withdrawn after a compromise stops
/// being trusted without a restart.
#[test]
fn client_authentication_follows_a_reload() {
    let (gw, _up) = start("careload", "optional", "allow");
    let d = gw.dir.clone();
    let p = |n: &str| d.join(n).to_string_lossy().into_owned();
    let https = format!("https://localhost:{}/stream/residents", gw.https);
    let anonymous = || curl(&["--cacert", &p("ca.crt"), &https]);
    let with_cert = || curl(&["--cacert", &p("ca.crt"), "--cert", &p("ps.crt"), "--key", &p("ps.key"), &https]);
    assert_eq!(anonymous().status, 200);
    assert!(with_cert().text().contains(ID), "公安厅 by certificate");
    // optional → required
    let cfg = std::fs::read_to_string(d.join("dlpgate.yaml")).expect("config");
    std::fs::write(d.join("dlpgate.yaml"), cfg.replace("client_auth: optional", "client_auth: required"))
        .expect("write");
    assert_eq!(reload(&gw, "test-admin-token-0123456789").status, 200);
    assert_ne!(anonymous().status, 200, "a certificate is now required");
    assert_eq!(with_cert().status, 200);
    // the department CA is replaced: its old certificates are refused
    let fresh = d.join("fresh");
    std::fs::create_dir_all(&fresh).expect("dir");
    Pki::new(&fresh);
    let cfg = std::fs::read_to_string(d.join("dlpgate.yaml")).expect("config");
    std::fs::write(d.join("dlpgate.yaml"), cfg.replace("client_ca: ca.crt", "client_ca: fresh/ca.crt")).expect("write");
    assert_eq!(reload(&gw, "test-admin-token-0123456789").status, 200);
    assert_ne!(with_cert().status, 200, "a certificate of the withdrawn CA");
    let fresh_cert =
        curl(&["--cacert", &p("ca.crt"), "--cert", &p("fresh/ps.crt"), "--key", &p("fresh/ps.key"), &https]);
    assert_eq!(fresh_cert.status, 200, "a certificate of the new CA");
}

/// `systemctl reload` (SIGHUP) or logrotate (SIGUSR1) arriving while the gateway is still
/// starting (loading and compiling rules) does not end it: their default action would.
#[test]
fn a_reload_signal_during_start_up_does_not_end_the_gateway() {
    let dir = setup("early-hup");
    let (http, admin_port) = (free_port(), free_port());
    let cfg = format!(
        "server: {{threads: 1, pid_file: \"{d}/pid\", upgrade_sock: \"{d}/up.sock\"}}\nlisteners: [{{name: p, addr: \"127.0.0.1:{http}\"}}]\nadmin: {{addr: \"127.0.0.1:{admin_port}\"}}\nrules: {{dirs: [rules]}}\npolicies: [{{id: mask}}]\nroutes: [{{id: r, path_prefix: /, policy: mask, upstream: {{addrs: [\"127.0.0.1:9\"]}}}}]\n",
        d = dir.display()
    );
    let path = dir.join("dlpgate.yaml");
    std::fs::write(&path, cfg).expect("config");
    // a large keyword list, so that start-up (compiling it) takes a while
    let words: Vec<String> = (0..40_000).map(|i| format!("项目代号{i:05}")).collect();
    let rule = format!(
        "rules:\n  - id: test.codewords\n    name: {{en: Codewords}}\n    category: test\n    level: core\n    detector: {{keywords: [{}]}}\n    action: redact\n    examples: {{match: [项目代号00001]}}\n",
        words.join(", ")
    );
    std::fs::write(dir.join("rules/zz_codewords.yaml"), rule).expect("rule");
    let mut child = std::process::Command::new(bin())
        .args(["run", "-c"])
        .arg(&path)
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("spawn");
    // a moment for the process to start, then SIGHUP every 5 ms until it serves
    std::thread::sleep(Duration::from_millis(40));
    let pid = child.id().to_string();
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let mut up = false;
    while std::time::Instant::now() < deadline && child.try_wait().ok().flatten().is_none() {
        let _ = std::process::Command::new("kill").args(["-HUP", &pid]).status();
        if std::net::TcpStream::connect(("127.0.0.1", admin_port)).is_ok() {
            up = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    let status = child.try_wait().ok().flatten();
    let _ = child.kill();
    let _ = child.wait();
    assert!(up, "the gateway came up after an early SIGHUP (exit status {status:?})");
}

/// Issue 11: `check` reports every broken certificate, key and CA bundle at once, each with its
/// listener or route and file, not only the first.
#[test]
fn check_reports_every_tls_problem_at_once() {
    let base = super::gateway::config(1, "required", "allow")
        .replace("{HTTP}", &free_port().to_string())
        .replace("{HTTPS}", &free_port().to_string())
        .replace("{ADMIN}", &free_port().to_string());
    let dir = setup("three-tls");
    std::fs::write(dir.join("empty.pem"), "not a certificate\n").expect("write");
    let cfg = base
        // 1. a key that does not belong to its certificate
        .replace("key: server.key", "key: ps.key")
        // 2. a client CA bundle without a certificate
        .replace("client_ca: ca.crt", "client_ca: empty.pem")
        // 3. an upstream CA bundle without a certificate
        .replace(
            "{id: stream, path_prefix: /stream/, policy: mask, upstream: {addrs: [\"127.0.0.1:1\"], receive_buffer: 16384}}",
            "{id: stream, path_prefix: /stream/, policy: mask, upstream: {addrs: [\"127.0.0.1:1\"], tls: true, sni: localhost, ca_file: empty.pem}}",
        )
        .replace("{DIR}", &dir.display().to_string());
    assert!(cfg.contains("ca_file: empty.pem"), "the route was not rewritten");
    let path = dir.join("dlpgate.yaml");
    std::fs::write(&path, &cfg).expect("config");
    let out = std::process::Command::new(bin()).args(["check", "-c"]).arg(&path).output().expect("check");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("listener tls") && err.contains("do not belong together"), "{err}");
    assert!(err.contains("listener tls") && err.contains("empty.pem: no PEM CERTIFICATE"), "{err}");
    assert!(err.contains("route stream") && err.contains("empty.pem"), "{err}");
    assert!(err.contains("3 problem(s)"), "{err}");
}

/// Issue 15: every known series exists at zero from the start; findings a department may receive
/// in clear are counted (`action="allow"`); a wrong API key is counted, audited, and refused when
/// the config says so; log files get no colour codes.
#[test]
fn operators_see_zero_series_allowed_findings_and_wrong_api_keys() {
    let (gw, _up) = start("opsmetrics", "none", "allow");
    let m = curl(&[&admin(&gw, "/metrics")]).text();
    for (name, labels) in [
        ("dlpgate_uninspected_total", &[("route", "stream"), ("reason", "oversize")][..]),
        ("dlpgate_uninspected_total", &[("route", "upload"), ("reason", "decompression_limit")][..]),
        ("dlpgate_upstream_errors_total", &[("route", "down"), ("kind", "connect")][..]),
        ("dlpgate_upstream_errors_total", &[("route", "stream"), ("kind", "closed")][..]),
        ("dlpgate_identity_failures_total", &[("reason", "unknown_api_key")][..]),
        ("dlpgate_requests_total", &[("route", "stream"), ("department", "civil"), ("status_class", "5xx")][..]),
        ("dlpgate_blocked_total", &[("route", "strict"), ("department", "unknown"), ("direction", "request")][..]),
        ("dlpgate_config_reloads_total", &[("result", "error")][..]),
    ] {
        let line =
            m.lines().find(|l| l.starts_with(name) && labels.iter().all(|(k, v)| l.contains(&format!("{k}=\"{v}\""))));
        assert!(line.is_some_and(|l| l.ends_with(" 0")), "{name} {labels:?} exists at zero: {line:?}");
    }
    let get = |key: &str| {
        let mut args = vec![];
        let h = format!("X-Api-Key: {key}");
        if !key.is_empty() {
            args.extend_from_slice(&["-H", h.as_str()]);
        }
        let u = format!("http://127.0.0.1:{}/stream/residents", gw.http);
        args.push(&u);
        curl(&args)
    };
    // public-security may receive ID numbers in clear: counted all the same
    let r = get("ps-key");
    assert_eq!(r.status, 200);
    assert!(r.text().contains(ID), "{}", r.text());
    // a wrong key: the unknown department (everything masked), counted and audited
    let r = get("not-a-key-0123");
    assert_eq!(r.status, 200);
    assert!(!r.text().contains(ID));
    std::thread::sleep(Duration::from_millis(200));
    let m = curl(&[&admin(&gw, "/metrics")]).text();
    let allowed = [("rule", "cn.id_card"), ("action", "allow"), ("department", "public-security")];
    assert_eq!(metric(&m, "dlpgate_findings_total", &allowed), 1.0, "{m}");
    assert_eq!(metric(&m, "dlpgate_identity_failures_total", &[("reason", "unknown_api_key")]), 1.0);
    let audit = wait_for_file(&gw.dir.join("audit.jsonl"), |t| t.contains("dlp.identity"));
    let ev: serde_json::Value = audit
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .find(|e: &serde_json::Value| e["event"] == "dlp.identity")
        .expect("identity event");
    assert_eq!(ev["action"], "alert");
    assert_eq!(ev["department"], "unknown");
    assert!(!audit.contains("not-a-key-0123"), "never the key itself");
    let log = std::fs::read_to_string(gw.dir.join("gateway.log")).unwrap_or_default();
    assert!(!log.is_empty() && !log.contains('\x1b'), "no colour codes in a log file: {log:.300}");
    drop(gw);

    // refused when the config says so; a right key and no key at all are served as before
    let up = super::gateway::upstream();
    let cfg = super::gateway::config(up.port, "none", "allow")
        .replace("identity: {unknown: allow}", "identity: {unknown: allow, unknown_api_key: refuse}");
    assert!(cfg.contains("unknown_api_key: refuse"));
    let gw = start_gateway(&setup("opsrefuse"), &cfg);
    let u = format!("http://127.0.0.1:{}/stream/residents", gw.http);
    let r = curl(&["-H", "X-Api-Key: not-a-key-0123", &u]);
    assert_eq!(r.status, 401, "{}", r.text());
    assert_eq!(r.json()["error"], "api_key_not_recognised");
    assert!(r.header("www-authenticate").is_some());
    assert_eq!(curl(&["-H", "X-Api-Key: civil-key", &u]).status, 200);
    assert_eq!(curl(&[&u]).status, 200);
    let audit = wait_for_file(&gw.dir.join("audit.jsonl"), |t| t.contains("dlp.identity"));
    assert!(audit.contains("\"action\":\"block\""), "{audit}");
}

/// Issue 15: the Chinese documentation covers what the English one does: every metric family,
/// every key of the configuration table, every error code and the command reference.
#[test]
fn the_chinese_documentation_keeps_up_with_the_english_one() {
    let read = |f: &str| std::fs::read_to_string(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(f)).expect(f);
    let (en, zh) = (read("README.md"), read("README.zh-CN.md"));
    assert!(en.contains("(README.zh-CN.md)") && zh.contains("(README.md)"), "each links to the other");
    let words = |text: &str, start: &str| -> Vec<String> {
        text.match_indices(start)
            .map(|(i, _)| text[i..].chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect::<String>())
            .collect()
    };
    let mut missing = Vec::new();
    for m in words(&en, "dlpgate_") {
        if !zh.contains(&m) {
            missing.push(m);
        }
    }
    // the configuration table: every `key` in its rows
    let table = en.split("### Configuration").nth(1).and_then(|s| s.split("\n\n**").next()).unwrap_or("");
    for row in table.lines().filter(|l| l.starts_with("| `")) {
        for (i, part) in row.split('`').enumerate() {
            if i % 2 == 1 && !zh.contains(part) {
                missing.push(part.to_string());
            }
        }
    }
    assert!(table.lines().filter(|l| l.starts_with("| `")).count() >= 12, "the configuration table was found");
    // error codes and the command reference
    for e in
        ["blocked_by_dlp", "api_key_not_recognised", "request_timeout", "quota_store_unavailable", "upstream_error"]
    {
        if en.contains(e) && !zh.contains(e) {
            missing.push(e.to_string());
        }
    }
    let commands = en.split("### Command line").nth(1).and_then(|s| s.split("```").nth(1)).unwrap_or("");
    for line in commands.lines().filter(|l| l.starts_with("dlpgate ")) {
        if !zh.contains(line) {
            missing.push(line.to_string());
        }
    }
    missing.sort();
    missing.dedup();
    assert!(missing.is_empty(), "README.zh-CN.md lacks: {missing:?}");
}
