//! Configuration tests: path normal form, loading, line finding.

use std::path::Path;

use super::error::find_line;
use super::*;

#[test]
fn paths_in_normal_form() {
    let strict = |p: &str| normal_path(p, false).map(|n| n.unwrap_or_else(|| p.to_string()));
    let loose = |p: &str| normal_path(p, true).map(|n| n.unwrap_or_else(|| p.to_string()));
    for (raw, norm) in [
        ("/api/residents", "/api/residents"),
        ("/%61pi/residents", "/api/residents"),
        ("//api//residents", "/api/residents"),
        ("/x/../api/residents", "/api/residents"),
        ("/x/%2e%2e/api/", "/api/"),
        ("/api/./residents/.", "/api/residents/"),
        ("/../../etc", "/etc"),
        ("/a%2Fb", "/a%2Fb"), // an encoded slash is data, not a separator
        ("/a%20b/%E6%9C%BA", "/a%20b/%E6%9C%BA"),
        ("/api;v=1/x", "/api;v=1/x"),
        ("*", "*"),
        ("", ""),
    ] {
        assert_eq!(strict(raw).as_deref(), Ok(norm), "{raw}");
    }
    // what lenient servers make of the same paths
    for (raw, norm) in [
        ("/public/..%2Fapi/x", "/api/x"),
        ("/public/..%5capi/x", "/api/x"),
        ("/public/..\\api/x", "/api/x"),
        ("/public/..;/api/x", "/api/x"),
        ("/public/x/..;/../api/x", "/api/x"),
        ("/public/.;/../api/x", "/api/x"),
        ("/%2Fapi/x", "/api/x"),
        ("/api;jsessionid=1/x", "/api/x"),
        ("/projects/group%2Fname", "/projects/group/name"),
    ] {
        assert_eq!(loose(raw).as_deref(), Ok(norm), "{raw}");
    }
    for raw in ["/x/%2%65%2%65/api", "/x/%%32%65", "/x/%"] {
        assert_eq!(strict(raw), Err("malformed percent-encoding in path"), "{raw}");
    }
}

#[test]
fn minimal_config_loads_with_defaults() {
    let text = "listeners: [{addr: \"127.0.0.1:8080\"}]\npolicies: [{id: p}]\nroutes: [{id: r, policy: p, upstream: {addrs: [\"127.0.0.1:9000\"]}}]\n";
    let s = load_str(Path::new("min.yaml"), text).expect("minimal config");
    assert_eq!(s.audit.queue, 10_000);
    assert_eq!(s.admin.addr.to_string(), "127.0.0.1:9090");
    assert_eq!(s.departments[s.unknown].id, "unknown");
    assert_eq!(s.routes[0].inspect.on_error, FailMode::Block);
}

#[test]
fn department_ids_must_be_header_safe() {
    let text = "listeners: [{addr: \"127.0.0.1:8080\"}]\ndepartments:\n  - {id: 公安厅, clearance: core}\npolicies: [{id: p}]\nroutes: [{id: r, policy: p, upstream: {addrs: [\"127.0.0.1:9000\"]}}]\n";
    let e = load_str(Path::new("d.yaml"), text).expect_err("non-ASCII department id");
    assert!(e.to_string().contains("d.yaml:3: departments[0].id: department id"), "{e}");
}

#[test]
fn find_line_locates_keys_and_values() {
    let t = "a:\n  b: 1\nroutes:\n  - id: x\n    policy: nope\n";
    assert_eq!(find_line(t, "policy", Some("nope")), 5);
    assert_eq!(find_line(t, "b", None), 2);
}

#[test]
fn content_types() {
    let i = Inspect {
        request: true,
        response: true,
        max_buffer: 1,
        on_error: FailMode::Block,
        on_binary: BinaryMode::Pass,
        content_types: vec![],
        max_decompressed: 1,
        max_ratio: 1,
        max_document: 1,
        on_unmaskable: UnmaskableMode::Block,
        request_coding: RequestCoding::Identity,
        archive: crate::documents::Limits::default(),
    };
    assert!(i.scannable(Some("application/json; charset=utf-8")));
    assert!(i.scannable(Some("text/html")));
    assert!(i.scannable(Some("application/vnd.api+json")));
    assert!(!i.scannable(Some("image/png")));
    assert!(!i.scannable(Some("application/octet-stream")));
    assert!(i.scannable(None));
    // as the header may spell it: any ASCII case, parameters, spaces
    assert!(i.scannable(Some(" Application/JSON ;charset=UTF-8")));
    assert!(i.scannable(Some("TEXT/Csv")));
    assert!(i.scannable(Some("application/LD+Json")));
    assert!(!i.scannable(Some("IMAGE/PNG")));
    assert!(!i.scannable(Some("application/jsonx")));
    assert!(!i.scannable(Some("json")));
    assert!(!i.scannable(Some("text")));
    assert!(i.scannable(Some(" ; charset=utf-8")));
    // a route's own list: exact types and `type/` prefixes, in any case on either side
    let own = Inspect { content_types: vec!["Application/X-Records".into(), "model/".into()], ..i };
    assert!(own.scannable(Some("application/x-records; v=2")));
    assert!(own.scannable(Some("MODEL/Gltf+json")));
    assert!(!own.scannable(Some("application/json")));
    assert!(!own.scannable(Some("application/x-records2")));
}

/// Issue 11: every unknown key and every bad value is reported, each at its own line, and the
/// checks after the parse still run when the only parse problems are unknown keys.
#[test]
fn every_problem_at_its_own_line() {
    let text = "\
listeners: [{addr: \"127.0.0.1:8080\"}]
departments:
  - id: a
    clearence: core
  - id: b
    clearence: core
policies: [{id: p}]
routes:
  - {id: r1, policy: nosuch, upstream: {addrs: [\"127.0.0.1:9000\"]}}
  - {id: r2, policy: nosuch, upstream: {addrs: [\"127.0.0.1:9000\"]}}
  - {id: r3, policy: nosuch, upstream: {addrs: [\"127.0.0.1:9000\"]}}
";
    let e = load_str(Path::new("c.yaml"), text).expect_err("problems");
    let at = |line: usize, what: &str| e.0.iter().any(|x| x.line == line && x.to_string().contains(what));
    assert!(at(4, "unknown field `clearence`"), "{e}");
    assert!(at(6, "unknown field `clearence`"), "{e}");
    assert!(at(9, "unknown policy"), "{e}");
    assert!(at(10, "unknown policy"), "{e}");
    assert!(at(11, "unknown policy"), "{e}");
    // bad values of several kinds, all at once
    let text = "\
server: {threads: many}
listeners: [{addr: \"127.0.0.1:8080\"}]
policies: [{id: p}]
routes:
  - {id: r1, policy: p, upstream: {addrs: [\"127.0.0.1:9000\"]}, inspect: {on_error: sometimes}}
  - {id: r2, policy: p, upstream: {addrs: [\"127.0.0.1:9000\"], connect_timeout_ms: soon}}
";
    let e = load_str(Path::new("c.yaml"), text).expect_err("problems");
    let at = |line: usize, what: &str| e.0.iter().any(|x| x.line == line && x.to_string().contains(what));
    assert!(at(1, "server.threads"), "{e}");
    assert!(at(5, "routes[0].inspect.on_error"), "{e}");
    assert!(at(6, "routes[1].upstream.connect_timeout_ms"), "{e}");
}

/// Issue 15: a misspelt log level, or a listener timeout of zero, is refused with its line; the
/// listener timeouts default to nginx's.
#[test]
fn log_levels_and_listener_timeouts_are_checked() {
    let cfg = |logging: &str, listener: &str| {
        format!(
            "listeners:\n  - {{addr: \"127.0.0.1:8080\"{listener}}}\npolicies: [{{id: p}}]\nroutes: [{{id: r, policy: p, upstream: {{addrs: [\"127.0.0.1:9000\"]}}}}]\nlogging:\n  level: {logging}\n"
        )
    };
    let s = load_str(Path::new("ok.yaml"), &cfg("info", "")).expect("defaults");
    let t = s.listeners[0].timeouts;
    assert_eq!((t.header.as_secs(), t.body.as_secs(), t.keepalive.as_secs()), (60, 60, 75));
    for good in ["debug", "WARN", "info,dlpgate=debug", "\"warn,pingora=error\"", "off"] {
        assert!(load_str(Path::new("ok.yaml"), &cfg(good, "")).is_ok(), "{good}");
    }
    for bad in ["infoo", "dlpgate=loud", "info,debug", "=info"] {
        let e = load_str(Path::new("bad.yaml"), &cfg(bad, "")).expect_err(bad).to_string();
        assert!(e.contains("bad.yaml:6") && e.contains("logging.level"), "{bad}: {e}");
    }
    let e = load_str(Path::new("t.yaml"), &cfg("info", ", client_body_timeout_s: 0")).expect_err("zero").to_string();
    assert!(e.contains("t.yaml:2") && e.contains("client_body_timeout_s"), "{e}");
    let s = load_str(Path::new("t.yaml"), &cfg("info", ", keepalive_timeout_s: 0")).expect("keep-alive off");
    assert!(s.listeners[0].timeouts.keepalive.is_zero());
}

/// A misspelt department is reported once, at its own lines, not again where a policy names it;
/// a department that does not exist is reported at each override that names it, on that line.
#[test]
fn department_errors_are_reported_where_they_are() {
    let text = "listeners: [{addr: \"127.0.0.1:8080\"}]
departments:
  - id: civil
    clearence: important
policies:
  - id: p
    overrides:
      - {departments: [civil], action: mask}
      - {departments: [civil, health], action: block}
      - {departments: [health], action: alert}
routes: [{id: r, policy: p, upstream: {addrs: [\"127.0.0.1:9000\"]}}]
";
    let e = load_str(Path::new("d.yaml"), text).expect_err("misspelt clearance").to_string();
    assert!(e.contains("d.yaml:4: departments[0].clearence: unknown field"), "{e}");
    assert!(!e.contains("unknown department \"civil\""), "{e}");
    assert!(
        e.contains("d.yaml:9: policies[0].overrides[1].departments: policy p: unknown department \"health\""),
        "{e}"
    );
    assert!(
        e.contains("d.yaml:10: policies[0].overrides[2].departments: policy p: unknown department \"health\""),
        "{e}"
    );
}

/// The identity header names are header names, checked when the configuration loads.
#[test]
fn identity_header_names_are_checked_on_load() {
    let text = "listeners: [{addr: \"127.0.0.1:8080\"}]\nidentity:\n  api_key_header: X-Api-Key\n  department_header: \"x dept\"\npolicies: [{id: p}]\nroutes: [{id: r, policy: p, upstream: {addrs: [\"127.0.0.1:9000\"]}}]\n";
    let e = load_str(Path::new("i.yaml"), text).expect_err("a space in a header name").to_string();
    assert!(e.contains("i.yaml:4: identity.department_header: \"x dept\" is not a header name"), "{e}");
    let s = load_str(Path::new("i.yaml"), &text.replace("\"x dept\"", "X-Department")).expect("valid names");
    assert_eq!(
        (s.identity.api_key_header.as_str(), s.identity.department_header.as_str()),
        ("x-api-key", "x-department")
    );
}
