//! Issue 14 through the real gateway: names and addresses found by the field they stand in
//! (JSON, CSV, XML, text labels, forms, multipart, query strings), masked for a caller without
//! clearance, in clear for public security, split across chunks, and never raw in audit events.

use std::time::Duration;

use super::gateway::setup;
use super::harness::*;

const NAME: &str = "欧阳娜娜";
const ADDRESS: &str = "河南省郑州市金水区文化路85号3号楼2单元1501室";
const ADDRESS_MASKED: &str = "河南省郑州市金水区****";

fn upstream() -> Upstream {
    Upstream::start(|req| {
        let p = req.path.rsplit('/').next().unwrap_or("").split('?').next().unwrap_or("").to_string();
        let text =
            |ct: &str, body: String| Reply { headers: vec![("content-type".into(), ct.into())], ..Reply::json(body) };
        match p.as_str() {
            "residents" => Reply::json(format!(
                r#"{{"data":[{{"xm":"张伟","zz":"{ADDRESS}","city":"张家界"}},{{"customer_name":"{NAME}","note":"张家界"}},{{"姓名":"阿依古丽·买买提"}}]}}"#
            )),
            "residents.csv" => text(
                "text/csv",
                "编号,姓名,住址,备注\n1,张伟,郑州金水区花园路12号,张家界\n2,李秀英,北京市海淀区中关村大街27号,无\n"
                    .into(),
            ),
            "residents.xml" => text(
                "application/xml",
                format!("<rs><r><hzxm>王芳</hzxm><jtzz>{ADDRESS}</jtzz><city>张家界</city></r></rs>"),
            ),
            "residents.html" => text(
                "text/html; charset=utf-8",
                "<table><tr><th>姓名</th><th>住址</th></tr><tr><td>赵丽</td><td>郑州金水区花园路12号</td></tr></table><p>张家界</p>".into(),
            ),
            "notice" => text(
                "text/plain; charset=utf-8",
                format!("联系人：王芳，家住{ADDRESS}。周一去张家界，黄河路上的万元户。\n"),
            ),
            // the key in one chunk, its value in the next
            "split" => Reply {
                chunks: vec![
                    b"{\"records\":[{\"id\":1,\"xm\":\"".to_vec(),
                    format!("{NAME}\",\"zz\":\"{ADDRESS}\"}}]}}").into_bytes(),
                ],
                delay: Duration::from_millis(100),
                ..Reply::json("")
            },
            "echo" => Reply::json(req.body.clone()),
            _ => Reply::json("{}"),
        }
    })
}

fn config(up: u16) -> String {
    format!(
        r#"
server: {{threads: 1, pid_file: "{{DIR}}/pid", upgrade_sock: "{{DIR}}/up.sock", grace_period_seconds: 1, graceful_shutdown_timeout_seconds: 1}}
listeners: [{{name: plain, addr: "127.0.0.1:{{HTTP}}"}}]
admin: {{addr: "127.0.0.1:{{ADMIN}}", token_file: admin.token}}
rules: {{dirs: [rules]}}
identity: {{api_key_header: x-api-key, unknown: allow}}
departments:
  - id: public-security
    name: 公安厅
    clearance: important
    match: {{api_key_sha256: ["{ps}"]}}
  - id: unknown
    name: 未识别
    clearance: none
policies: [{{id: mask}}]
routes:
  - {{id: api, path_prefix: /api/, policy: mask, upstream: {{addrs: ["127.0.0.1:{up}"]}}}}
audit:
  fingerprint_key_file: fp.key
  sinks: [{{type: file, path: audit.jsonl}}]
"#,
        ps = sha256_hex("test-public-security"),
    )
}

fn start(name: &str) -> (Gateway, Upstream) {
    let up = upstream();
    let dir = setup(name);
    let gw = start_gateway(&dir, &config(up.port));
    (gw, up)
}

fn get(gw: &Gateway, path: &str, key: Option<&str>) -> String {
    let url = format!("http://127.0.0.1:{}{path}", gw.http);
    let header = key.map(|k| format!("x-api-key: {k}"));
    let mut args = vec![url.as_str()];
    if let Some(h) = &header {
        args.extend(["-H", h.as_str()]);
    }
    let r = curl(&args);
    assert_eq!(r.status, 200, "{path}: {}", r.text());
    r.text()
}

#[test]
fn names_and_addresses_are_masked_by_their_field_and_shown_to_public_security() {
    let (gw, _up) = start("names");
    // JSON keys, pinyin, English and Chinese; a compound surname; a name with ·
    let json = get(&gw, "/api/residents", None);
    let v: serde_json::Value = serde_json::from_str(&json).expect("json");
    assert_eq!(v["data"][0]["xm"], "张*", "{json}");
    assert_eq!(v["data"][0]["zz"], ADDRESS_MASKED, "{json}");
    assert_eq!(v["data"][1]["customer_name"], "欧阳**", "{json}");
    assert_eq!(v["data"][2]["姓名"], "阿***·***", "{json}");
    // the same word outside a name field stays
    assert_eq!(v["data"][0]["city"], "张家界", "{json}");
    assert_eq!(v["data"][1]["note"], "张家界", "{json}");
    // CSV columns by their header; a short-form division (郑州) kept down to the district
    let csv = get(&gw, "/api/residents.csv", None);
    assert_eq!(csv, "编号,姓名,住址,备注\n1,张*,郑州金水区****,张家界\n2,李**,北京市海淀区****,无\n");
    // XML elements
    let xml = get(&gw, "/api/residents.xml", None);
    assert_eq!(xml, format!("<rs><r><hzxm>王*</hzxm><jtzz>{ADDRESS_MASKED}</jtzz><city>张家界</city></r></rs>"));
    // HTML table cells by their column's header cell
    let html = get(&gw, "/api/residents.html", None);
    assert_eq!(
        html,
        "<table><tr><th>姓名</th><th>住址</th></tr><tr><td>赵*</td><td>郑州金水区****</td></tr></table><p>张家界</p>"
    );
    // labels in running text; an address on its own; decoy words left alone
    let notice = get(&gw, "/api/notice", None);
    assert_eq!(notice, format!("联系人：王*，家住{ADDRESS_MASKED}。周一去张家界，黄河路上的万元户。\n"));
    // a key and its value in different chunks
    let split = get(&gw, "/api/split", None);
    assert_eq!(split, format!("{{\"records\":[{{\"id\":1,\"xm\":\"欧阳**\",\"zz\":\"{ADDRESS_MASKED}\"}}]}}"));
    // public security (clearance important) sees them in clear
    let clear = get(&gw, "/api/residents", Some("test-public-security"));
    assert!(clear.contains("\"xm\":\"张伟\"") && clear.contains(ADDRESS) && clear.contains(NAME), "{clear}");
    // audit: the rule, a masked sample, never the value
    let audit = wait_for_file(&gw.dir.join("audit.jsonl"), |t| t.contains("cn.address"));
    assert!(audit.contains("\"rule\":\"cn.name\"") && audit.contains("\"sample\":\"张*\""), "{audit}");
    for raw in [NAME, "张伟", "文化路85号", "王芳"] {
        assert!(!audit.contains(raw), "audit holds {raw}: {audit}");
    }
}

#[test]
fn names_in_uploads_are_masked_before_the_upstream_sees_them() {
    let (gw, up) = start("names-up");
    let url = format!("http://127.0.0.1:{}/api/echo", gw.http);
    // a form body, percent-encoded as browsers send it
    let form = format!("xm={}&zz={}&city=%E5%BC%A0%E5%AE%B6%E7%95%8C", pct("张伟"), pct(ADDRESS));
    let r =
        curl(&["-X", "POST", "-H", "content-type: application/x-www-form-urlencoded", "--data-binary", &form, &url]);
    assert_eq!(r.status, 200, "{}", r.text());
    // a query string
    let q = curl(&[&format!("{url}?xm={}&page=1", pct(NAME))]);
    assert_eq!(q.status, 200, "{}", q.text());
    // a multipart form
    let m = curl(&["-F", "xm=李秀英", "-F", &format!("jtzz={ADDRESS}"), "-F", "city=张家界", &url]);
    assert_eq!(m.status, 200, "{}", m.text());
    let got = up.requests();
    let decoded = |s: &[u8]| percent_decode(s);
    let form_seen = decoded(&got[0].body);
    assert!(
        form_seen.contains("xm=张*&") && form_seen.contains(ADDRESS_MASKED) && form_seen.contains("张家界"),
        "{form_seen}"
    );
    assert!(got[0].body.is_ascii(), "the form stays percent-encoded: {:?}", String::from_utf8_lossy(&got[0].body));
    let query_seen = decoded(got[1].path.as_bytes());
    assert!(query_seen.contains("xm=欧阳**&page=1"), "{query_seen}");
    let multipart = String::from_utf8_lossy(&got[2].body).into_owned();
    assert!(multipart.contains("\r\n\r\n李**\r\n") && multipart.contains(ADDRESS_MASKED), "{multipart}");
    assert!(multipart.contains("张家界") && !multipart.contains("李秀英"), "{multipart}");
}

fn pct(s: &str) -> String {
    s.bytes().map(|b| format!("%{b:02X}")).collect()
}

fn percent_decode(s: &[u8]) -> String {
    let mut out = Vec::new();
    let mut i = 0;
    while i < s.len() {
        if s[i] == b'%' && i + 2 < s.len() {
            if let Ok(b) = u8::from_str_radix(&String::from_utf8_lossy(&s[i + 1..i + 3]), 16) {
                out.push(b);
                i += 3;
                continue;
            }
        }
        out.push(s[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}
