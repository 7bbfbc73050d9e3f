//! Text in GBK, GB2312 and UTF-16 through the real gateway: decoded for the engine, masked, and
//! sent on in the charset it came in; a body that is not valid in its charset follows the fail
//! mode. The upstream serves and receives bytes in those charsets; curl fetches them.

use encoding_rs::GBK;

use super::documents::zip_of;
use super::gateway::{ID, ID_MASKED, setup};
use super::harness::*;

const MOBILE: &str = "13800138000";
const MOBILE_MASKED: &str = "138****8000";

fn gbk(s: &str) -> Vec<u8> {
    let (b, _, unmappable) = GBK.encode(s);
    assert!(!unmappable, "{s}");
    b.into_owned()
}

fn from_gbk(b: &[u8]) -> String {
    let (s, malformed) = GBK.decode_without_bom_handling(b);
    assert!(!malformed, "not GBK: {b:?}");
    s.into_owned()
}

fn utf16(s: &str) -> Vec<u8> {
    [&[0xFF, 0xFE][..], &s.encode_utf16().flat_map(u16::to_le_bytes).collect::<Vec<_>>()].concat()
}

fn record(i: usize) -> String {
    format!(r#"{{"xh":{i},"xm":"张伟","sfzh":"{ID}","lxdh":"{MOBILE}","bz":"无"}}"#)
}

fn masked_record(i: usize) -> String {
    format!(r#"{{"xh":{i},"xm":"张*","sfzh":"{ID_MASKED}","lxdh":"{MOBILE_MASKED}","bz":"无"}}"#)
}

/// 1,500 records (about 110 KiB): past the gateway's hold, so it is streamed.
fn many(rec: fn(usize) -> String) -> String {
    format!("[{}]", (0..1500).map(rec).collect::<Vec<_>>().join(","))
}

/// 5 KB of Latin-1 whose accented letters GB18030 would also read, until a later `é `.
fn latin1() -> Vec<u8> {
    let text = "Grüße aus München. ".repeat(200) + "Café au lait.";
    text.chars().map(|c| c as u32 as u8).collect()
}

fn serve() -> Upstream {
    Upstream::start(|req| {
        let name = req.path.rsplit('/').next().unwrap_or("").to_string();
        let one =
            |body: Vec<u8>, ct: &str| Reply { headers: vec![("content-type".into(), ct.into())], ..Reply::json(body) };
        match name.as_str() {
            "gbk.json" => one(gbk(&record(1)), "application/json; charset=GBK"),
            "unlabelled.json" => one(gbk(&record(1)), "application/json"),
            "utf16.txt" => one(utf16(&format!("姓名\t手机\r\n张伟\t{MOBILE}\r\n")), "text/plain; charset=utf-16"),
            "notice.html" => one(gbk("<p>本文件属机密，请勿外传</p>"), "text/html; charset=gb2312"),
            "bad.json" => one([&gbk(&record(1))[..], b"\xFF"].concat(), "application/json; charset=gbk"),
            "streamed.json" => {
                // in pieces of 1,001 bytes: many cut a two-byte character in half
                let body = gbk(&many(record));
                Reply {
                    chunks: body.chunks(1001).map(<[u8]>::to_vec).collect(),
                    ..one(Vec::new(), "application/json;charset=gbk")
                }
            }
            // the first piece ASCII, the Chinese after it (a page as it streams)
            "page.html" => Reply {
                chunks: vec![b"<!DOCTYPE html>\n".to_vec(), gbk("<p>本文件属机密</p>")],
                ..one(Vec::new(), "text/html")
            },
            // 20 KiB of ASCII script before the first Chinese character
            "scripted.html" => one([b"<script>".repeat(2560), gbk("<p>姓名：张伟</p>")].concat(), "text/html"),
            // UTF-8 labelled GBK, a common misconfiguration: its marking must not hide
            "mislabelled.json" => one("{\"title\":\"机密文件\"}".as_bytes().to_vec(), "application/json; charset=GBK"),
            // Latin-1, declared or not, is passed as it is
            "latin1.txt" => one(latin1(), "text/plain; charset=ISO-8859-1"),
            "latin1-unlabelled.txt" => one(latin1(), "text/plain"),
            // no finding, and code points with twins (A3A0 reads as A1A1, 0x80 as A2E3 reads)
            "twins.txt" => one([gbk("无"), vec![0xA3, 0xA0, 0x80], gbk("无")].concat(), "text/plain; charset=gbk"),
            // a UTF-16 CSV with a stray last byte: its values cannot be read, the archive is refused
            "odd.zip" => one(
                zip_of(&[("名单.csv", [utf16(&format!("姓名\t手机\r\n张伟\t{MOBILE}\r\n")), b"\n".to_vec()].concat())]),
                "application/zip",
            ),
            "export.zip" => one(
                zip_of(&[
                    // as Excel saves CSV on a Chinese Windows: GBK, no byte order mark
                    ("名单.csv", gbk(&format!("姓名,身份证号,手机\r\n张伟,{ID},{MOBILE}\r\n"))),
                    // as it saves "Unicode text": UTF-16LE with its mark, tab-separated
                    ("名单.txt", utf16(&format!("姓名\t手机\r\n张伟\t{MOBILE}\r\n"))),
                    // text by its bytes, whatever its name
                    ("contact.vcf", format!("BEGIN:VCARD\r\nTEL:{MOBILE}\r\nEND:VCARD\r\n").into_bytes()),
                    ("data", format!("id={ID}\n").into_bytes()),
                    ("photo.bin", vec![0x89, b'P', b'N', b'G', 0, 1, 2, 3]),
                    // text at its start, not past it: scanned as it is, the archive not refused
                    (
                        "mixed.dat",
                        [gbk(&"姓名，".repeat(1000)), vec![0xFF, 0xFE, 0xFF], format!(" {ID}").into_bytes()].concat(),
                    ),
                ]),
                "application/zip",
            ),
            _ => Reply::json(b"{}".to_vec()),
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
policies: [{{id: mask}}]
routes:
  - {{id: api, path_prefix: /, policy: mask, upstream: {{addrs: ["127.0.0.1:{up}"]}}}}
audit:
  fingerprint_key_file: fp.key
  sinks: [{{type: file, path: audit.jsonl}}]
"#
    )
}

fn entry(zip: &[u8], name: &str) -> Vec<u8> {
    let mut z = zip::ZipArchive::new(std::io::Cursor::new(zip)).expect("zip");
    let mut out = Vec::new();
    std::io::Read::read_to_end(&mut z.by_name(name).expect(name), &mut out).expect("read");
    out
}

#[test]
fn gbk_and_utf16_text_is_masked_in_its_own_charset() {
    let up = serve();
    let dir = setup("charsets");
    let gw = start_gateway(&dir, &config(up.port));
    let get = |path: &str| curl(&[&format!("http://127.0.0.1:{}{path}", gw.http)]);

    // declared GBK, and GBK told by its bytes: the name is found, everything stays GBK
    for path in ["/gbk.json", "/unlabelled.json"] {
        let r = get(path);
        assert_eq!(r.status, 200, "{path}: {}", r.text());
        assert_eq!(from_gbk(&r.body), masked_record(1), "{path}");
    }
    assert_eq!(get("/gbk.json").header("content-type"), Some("application/json; charset=GBK"));
    // streamed in pieces that cut characters in half
    let r = get("/streamed.json");
    assert_eq!(r.status, 200);
    assert_eq!(from_gbk(&r.body), many(masked_record));
    // UTF-16 with its byte order mark, kept
    let r = get("/utf16.txt");
    assert_eq!(r.body, utf16(&format!("姓名\t手机\r\n张*\t{MOBILE_MASKED}\r\n")));
    // a classification marking in GB2312 is found: the page is refused
    let r = get("/notice.html");
    assert_eq!(r.status, 403, "{}", r.text());
    assert_eq!(r.json()["error"], "blocked_by_dlp");
    // a page streamed ASCII first, and one with 20 KiB of ASCII before its Chinese: read as GBK
    let r = get("/page.html");
    assert_eq!(r.status, 403, "{}", r.text());
    let r = get("/scripted.html");
    assert!(from_gbk(&r.body).ends_with("<p>姓名：张*</p>"), "{}", r.text());
    // UTF-8 labelled GBK is read as the UTF-8 it is
    assert_eq!(get("/mislabelled.json").status, 403);
    // Latin-1: byte for byte
    for path in ["/latin1.txt", "/latin1-unlabelled.txt"] {
        let r = get(path);
        assert_eq!((r.status, r.body == latin1()), (200, true), "{path}");
    }
    // a held body without findings goes out as it came, twins and all
    let r = get("/twins.txt");
    assert_eq!(r.body, [gbk("无"), vec![0xA3, 0xA0, 0x80], gbk("无")].concat());
    let r = get("/odd.zip");
    assert_eq!(r.status, 502, "{}", r.text());
    assert!(!r.body.windows(4).any(|w| w == b"PK\x03\x04"), "nothing of the archive passes");
    // bytes that are not GBK: fail closed, nothing of the body passes
    let r = get("/bad.json");
    assert_eq!(r.status, 502, "{}", r.text());
    assert_eq!(r.json()["reason"], "undecodable body");
    assert!(!r.text().contains(MOBILE));

    // an archive's entries: GBK CSV, UTF-16 text, text under any name; binary copied as it was
    let r = get("/export.zip");
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        from_gbk(&entry(&r.body, "名单.csv")),
        format!("姓名,身份证号,手机\r\n张*,{ID_MASKED},{MOBILE_MASKED}\r\n")
    );
    assert_eq!(entry(&r.body, "名单.txt"), utf16(&format!("姓名\t手机\r\n张*\t{MOBILE_MASKED}\r\n")));
    assert_eq!(
        String::from_utf8(entry(&r.body, "contact.vcf")).expect("utf-8"),
        format!("BEGIN:VCARD\r\nTEL:{MOBILE_MASKED}\r\nEND:VCARD\r\n")
    );
    assert_eq!(String::from_utf8(entry(&r.body, "data")).expect("utf-8"), format!("id={ID_MASKED}\n"));
    assert_eq!(entry(&r.body, "photo.bin"), [0x89, b'P', b'N', b'G', 0, 1, 2, 3]);
    let mixed = entry(&r.body, "mixed.dat");
    assert!(mixed.ends_with(format!(" {ID_MASKED}").as_bytes()) && mixed.starts_with(&gbk("姓名，")));

    // uploads: whole (with a length) and streamed (chunked), the upstream gets masked GBK
    let body = dir.join("upload.json");
    std::fs::write(&body, gbk(&record(7))).expect("body");
    let url = format!("http://127.0.0.1:{}/upload", gw.http);
    let at = format!("@{}", body.display());
    for chunked in [false, true] {
        let mut args = vec!["-H", "content-type: application/json; charset=GBK", "--data-binary", &at, &url];
        if chunked {
            args.splice(0..0, ["-H", "transfer-encoding: chunked"]);
        }
        let r = curl(&args);
        assert_eq!(r.status, 200, "chunked {chunked}: {}", r.text());
        let got = up.requests().last().expect("request").body.clone();
        assert_eq!(from_gbk(&got), masked_record(7), "chunked {chunked}");
    }
    // an uploaded CSV as Excel saves one on a Chinese Windows (GBK), in a multipart form
    let csv = dir.join("upload.csv");
    std::fs::write(&csv, gbk(&format!("姓名,手机\r\n张伟,{MOBILE}\r\n"))).expect("csv");
    let r = curl(&["-F", &format!("file=@{};type=text/csv", csv.display()), "-F", "memo=无", &url]);
    assert_eq!(r.status, 200, "{}", r.text());
    let got = up.requests().last().expect("request").body.clone();
    let want = gbk(&format!("姓名,手机\r\n张*,{MOBILE_MASKED}\r\n"));
    assert!(got.windows(want.len()).any(|w| w == want), "{}", String::from_utf8_lossy(&got));
    // the audit trail is UTF-8 and names the masked value, never the raw one
    let audit = wait_for_file(&dir.join("audit.jsonl"), |t| t.matches("/upload").count() >= 3);
    assert!(audit.contains("cn.name") && !audit.contains("张伟") && !audit.contains(MOBILE), "{audit}");
}
