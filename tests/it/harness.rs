//! Test harness: a real upstream HTTP/1.1 server, the real gateway binary on loopback ports,
//! certificates generated at test time (rcgen), and curl as the client.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair, KeyUsagePurpose, SanType,
};

/// A number no other call in this test process gets (for file names: a port number from
/// [`free_port`] is reused by the OS and would let concurrent tests share a file).
pub fn unique() -> usize {
    static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
}

/// A loopback port nothing listens on, and never handed out before in this test process: tests
/// run in parallel, and a port released by one `bind` may otherwise come back to another test
/// (one gateway's HTTP port turning out to be another's admin port).
pub fn free_port() -> u16 {
    static GIVEN: Mutex<Vec<u16>> = Mutex::new(Vec::new());
    loop {
        let port = TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("free port");
        let mut given = GIVEN.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if !given.contains(&port) {
            given.push(port);
            return port;
        }
    }
}

pub fn tempdir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("dlpgate-it-{name}-{}-{}", std::process::id(), unique()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).expect("tempdir");
    d
}

/// A request as the upstream received it.
#[derive(Debug, Clone, Default)]
#[allow(dead_code)]
pub struct Received {
    pub method: String,
    pub path: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

/// The first value of header `name` (any case) in `headers`.
fn find_header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
}

impl Received {
    pub fn header(&self, name: &str) -> Option<&str> {
        find_header(&self.headers, name)
    }

    /// Every value of header `name`, in order.
    pub fn header_all(&self, name: &str) -> Vec<&str> {
        self.headers.iter().filter(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str()).collect()
    }
}

/// What the upstream answers.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    /// More than one chunk: sent with chunked encoding (or, with a `content-length` header, as they
    /// are), flushed separately, `delay` apart.
    pub chunks: Vec<Vec<u8>>,
    pub delay: Duration,
    /// Sent before the response, as is (e.g. a `103 Early Hints` head).
    pub interim: Option<&'static str>,
}

impl Reply {
    pub fn json(body: impl Into<Vec<u8>>) -> Reply {
        Reply {
            status: 200,
            headers: vec![("content-type".into(), "application/json".into())],
            chunks: vec![body.into()],
            delay: Duration::ZERO,
            interim: None,
        }
    }
    pub fn with_header(mut self, k: &str, v: &str) -> Reply {
        self.headers.push((k.into(), v.into()));
        self
    }
}

type Handler = Arc<dyn Fn(&Received) -> Reply + Send + Sync>;

/// A real HTTP/1.1 upstream on an ephemeral loopback port that records what it receives.
pub struct Upstream {
    pub port: u16,
    pub received: Arc<Mutex<Vec<Received>>>,
    /// Body bytes read per connection, even when the request never completed.
    pub body_bytes: Arc<Mutex<usize>>,
    /// Request heads received (counted before the body is read: a request the gateway gives up
    /// after sending its head is counted here and not in `requests`).
    pub heads: Arc<std::sync::atomic::AtomicUsize>,
}

impl Upstream {
    pub fn start(handler: impl Fn(&Received) -> Reply + Send + Sync + 'static) -> Upstream {
        let l = TcpListener::bind("127.0.0.1:0").expect("bind upstream");
        let port = l.local_addr().expect("addr").port();
        let received = Arc::new(Mutex::new(Vec::new()));
        let body_bytes = Arc::new(Mutex::new(0));
        let h: Handler = Arc::new(handler);
        let heads = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let (r2, b2, n2) = (received.clone(), body_bytes.clone(), heads.clone());
        std::thread::spawn(move || {
            for s in l.incoming().flatten() {
                let (h, r, b, n) = (h.clone(), r2.clone(), b2.clone(), n2.clone());
                std::thread::spawn(move || serve(s, h, r, b, &n));
            }
        });
        Upstream { port, received, body_bytes, heads }
    }

    pub fn requests(&self) -> Vec<Received> {
        self.received.lock().map(|v| v.clone()).unwrap_or_default()
    }
}

/// One line, with bytes that are not UTF-8 replaced (header values may carry any byte).
fn read_line_lossy(r: &mut impl BufRead) -> Option<String> {
    let mut line = Vec::new();
    match r.read_until(b'\n', &mut line) {
        Ok(0) | Err(_) => None,
        Ok(_) => Some(String::from_utf8_lossy(&line).into_owned()),
    }
}

fn serve(
    s: TcpStream,
    h: Handler,
    rec: Arc<Mutex<Vec<Received>>>,
    bytes: Arc<Mutex<usize>>,
    heads: &std::sync::atomic::AtomicUsize,
) {
    let _ = s.set_read_timeout(Some(Duration::from_secs(10)));
    let mut w = s.try_clone().expect("clone");
    let mut r = BufReader::new(s);
    loop {
        let Some(line) = read_line_lossy(&mut r) else { return };
        let mut parts = line.split_whitespace();
        let method = parts.next().unwrap_or_default().to_string();
        let path = parts.next().unwrap_or_default().to_string();
        let version = parts.next().unwrap_or_default().to_string();
        let mut headers = Vec::new();
        loop {
            let Some(l) = read_line_lossy(&mut r) else { return };
            let l = l.trim_end().to_string();
            if l.is_empty() {
                heads.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                break;
            }
            if let Some((k, v)) = l.split_once(':') {
                headers.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
            }
        }
        let get = |n: &str| find_header(&headers, n).map(str::to_string);
        let mut body = Vec::new();
        if let Some(len) = get("content-length").and_then(|v| v.parse::<usize>().ok()) {
            let mut buf = [0u8; 8192];
            while body.len() < len {
                let want = (len - body.len()).min(buf.len());
                match r.read(&mut buf[..want]) {
                    Ok(0) | Err(_) => {
                        *bytes.lock().expect("lock") += body.len();
                        return;
                    }
                    Ok(n) => body.extend_from_slice(&buf[..n]),
                }
            }
        } else if get("transfer-encoding").is_some_and(|v| v.contains("chunked")) {
            loop {
                let mut sz = String::new();
                if r.read_line(&mut sz).unwrap_or(0) == 0 {
                    *bytes.lock().expect("lock") += body.len();
                    return;
                }
                let n = usize::from_str_radix(sz.trim(), 16).unwrap_or(0);
                let mut chunk = vec![0u8; n + 2];
                if r.read_exact(&mut chunk).is_err() {
                    *bytes.lock().expect("lock") += body.len();
                    return;
                }
                body.extend_from_slice(&chunk[..n]);
                if n == 0 {
                    break;
                }
            }
        }
        *bytes.lock().expect("lock") += body.len();
        let req = Received { method, path, headers, body };
        // as strict as a real HTTP/1.1 origin: its version, a Host, no HTTP/2 leftovers
        let bad = if version != "HTTP/1.1" {
            Some(format!("request line version {version:?}"))
        } else if find_header(&req.headers, "host").is_none() {
            Some("no host header".to_string())
        } else {
            ["connection", "keep-alive", "te", "upgrade", "expect", "http2-settings"]
                .iter()
                .find(|h| find_header(&req.headers, h).is_some_and(|v| !v.eq_ignore_ascii_case("keep-alive")))
                .map(|h| format!("hop-by-hop header {h} forwarded"))
        };
        let req_method = req.method.clone();
        let reply = match bad {
            Some(why) => {
                Reply { status: 400, ..Reply::json(format!("{{\"upstream_rejected\":\"{why}\"}}").into_bytes()) }
            }
            None => h(&req),
        };
        rec.lock().expect("lock").push(req);
        if let Some(interim) = reply.interim {
            let _ = w.write_all(interim.as_bytes());
            let _ = w.flush();
        }
        let mut head = format!("HTTP/1.1 {} X\r\n", reply.status);
        for (k, v) in &reply.headers {
            head.push_str(&format!("{k}: {v}\r\n"));
        }
        let announced = reply.headers.iter().any(|(k, _)| k.eq_ignore_ascii_case("content-length"));
        if reply.chunks.len() > 1 && announced {
            // a length announced up front, the body sent in pieces apart
            head.push_str("\r\n");
            let _ = w.write_all(head.as_bytes());
            for c in &reply.chunks {
                let _ = w.write_all(c);
                let _ = w.flush();
                std::thread::sleep(reply.delay);
            }
        } else if reply.chunks.len() > 1 {
            head.push_str("transfer-encoding: chunked\r\n\r\n");
            if w.write_all(head.as_bytes()).is_err() {
                return;
            }
            for c in &reply.chunks {
                let _ = w.write_all(format!("{:x}\r\n", c.len()).as_bytes());
                let _ = w.write_all(c);
                let _ = w.write_all(b"\r\n");
                let _ = w.flush();
                std::thread::sleep(reply.delay);
            }
            let _ = w.write_all(b"0\r\n\r\n");
        } else {
            let body = reply.chunks.first().cloned().unwrap_or_default();
            head.push_str(&format!("content-length: {}\r\n\r\n", body.len()));
            let _ = w.write_all(head.as_bytes());
            // as HTTP has it: no body after a HEAD, a 204 or a 304 (the length is the GET's)
            if req_method != "HEAD" && !matches!(reply.status, 204 | 304) {
                let _ = w.write_all(&body);
            }
        }
        let _ = w.flush();
    }
}

/// The gateway binary, killed on drop.
pub struct Gateway {
    pub child: Child,
    pub http: u16,
    pub https: u16,
    pub admin: u16,
    pub dir: PathBuf,
}

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_dlpgate")
}

/// Test PKI: a CA, a server certificate for 127.0.0.1/localhost, client certificates.
#[allow(dead_code)]
pub struct Pki {
    pub dir: PathBuf,
}

impl Pki {
    pub fn new(dir: &Path) -> Pki {
        let ca_key = KeyPair::generate().expect("key");
        let mut ca = CertificateParams::new(Vec::<String>::new()).expect("params");
        ca.distinguished_name.push(DnType::CommonName, "test CA");
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::DigitalSignature];
        let ca_cert = ca.self_signed(&ca_key).expect("ca");
        let srv_key = KeyPair::generate().expect("key");
        let mut srv = CertificateParams::new(vec!["localhost".to_string()]).expect("params");
        srv.subject_alt_names.push(SanType::IpAddress([127, 0, 0, 1].into()));
        srv.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let srv_cert = srv.signed_by(&srv_key, &ca_cert, &ca_key).expect("srv");
        let write = |n: &str, s: String| std::fs::write(dir.join(n), s).expect("write pem");
        write("ca.crt", ca_cert.pem());
        write("server.crt", srv_cert.pem());
        write("server.key", srv_key.serialize_pem());
        // clients of the test CA: OU 公安厅; a CN only; a DNS SAN only; and one from a foreign CA
        for (name, ou, san, foreign) in [
            ("ps", "公安厅", "", false),
            ("cn", "", "", false),
            ("san", "", "civil.gov.example", false),
            ("stranger", "公安厅", "", true),
        ] {
            let k = KeyPair::generate().expect("key");
            let sans = if san.is_empty() { Vec::new() } else { vec![san.to_string()] };
            let mut p = CertificateParams::new(sans).expect("params");
            p.distinguished_name.push(DnType::CommonName, format!("{name}-user"));
            if !ou.is_empty() {
                p.distinguished_name.push(DnType::OrganizationalUnitName, ou);
            }
            p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
            let c = if foreign {
                let fk = KeyPair::generate().expect("key");
                let mut fca = CertificateParams::new(Vec::<String>::new()).expect("params");
                fca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
                let fca = fca.self_signed(&fk).expect("fca");
                p.signed_by(&k, &fca, &fk).expect("client")
            } else {
                p.signed_by(&k, &ca_cert, &ca_key).expect("client")
            };
            write(&format!("{name}.crt"), c.pem());
            write(&format!("{name}.key"), k.serialize_pem());
        }
        Pki { dir: dir.to_path_buf() }
    }
}

pub fn sha256_hex(s: &str) -> String {
    dlpgate::config::api_key_digest(s.as_bytes()).iter().map(|b| format!("{b:02x}")).collect()
}

/// Write `config` (with `{HTTP}`, `{HTTPS}`, `{ADMIN}`, `{DIR}` placeholders) and start the
/// gateway; waits until `/healthz` answers.
pub fn start_gateway(dir: &Path, config: &str) -> Gateway {
    let (http, https, admin) = (free_port(), free_port(), free_port());
    let cfg = config
        .replace("{HTTP}", &http.to_string())
        .replace("{HTTPS}", &https.to_string())
        .replace("{ADMIN}", &admin.to_string())
        .replace("{DIR}", &dir.display().to_string());
    let path = dir.join("dlpgate.yaml");
    std::fs::write(&path, cfg).expect("write config");
    let log = std::fs::File::create(dir.join("gateway.log")).expect("log");
    let child = Command::new(bin())
        .args(["run", "-c"])
        .arg(&path)
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("spawn gateway");
    let gw = Gateway { child, http, https, admin, dir: dir.to_path_buf() };
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if TcpStream::connect(("127.0.0.1", admin)).is_ok() && TcpStream::connect(("127.0.0.1", http)).is_ok() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "gateway did not start:\n{}",
            std::fs::read_to_string(dir.join("gateway.log")).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    gw
}

/// A curl response.
#[derive(Debug)]
pub struct Resp {
    pub status: u16,
    pub version: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    pub exit: i32,
}

impl Resp {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
    pub fn header(&self, name: &str) -> Option<&str> {
        find_header(&self.headers, name)
    }
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or(serde_json::Value::Null)
    }
}

/// Run curl with `args`; headers and body are captured separately.
pub fn curl(args: &[&str]) -> Resp {
    let hfile = std::env::temp_dir().join(format!("dlpgate-it-h-{}-{}", std::process::id(), unique()));
    let out = Command::new("curl")
        .args(["-s", "-S", "--max-time", "20", "-D"])
        .arg(&hfile)
        .args(args)
        .output()
        .expect("curl must be installed");
    let head = std::fs::read_to_string(&hfile).unwrap_or_default();
    let _ = std::fs::remove_file(&hfile);
    // the last response block (skip 100-continue)
    let block = head.split("\r\n\r\n").filter(|b| !b.trim().is_empty()).last().unwrap_or("").to_string();
    let mut lines = block.lines();
    let first = lines.next().unwrap_or("");
    let mut p = first.split_whitespace();
    let version = p.next().unwrap_or("").to_string();
    let status = p.next().and_then(|s| s.parse().ok()).unwrap_or(0);
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    Resp { status, version, headers, body: out.stdout, exit: out.status.code().unwrap_or(-1) }
}

/// The text of `path` once `ready` says so (the audit writer is asynchronous), or what it holds
/// after 2.5 s.
pub fn wait_for_file(path: &Path, ready: impl Fn(&str) -> bool) -> String {
    let mut text = String::new();
    for _ in 0..50 {
        text = std::fs::read_to_string(path).unwrap_or_default();
        if ready(&text) {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    text
}

/// A real `redis-server` on a free loopback port, without persistence; killed on drop.
pub struct Redis {
    pub port: u16,
    child: Option<Child>,
}

impl Redis {
    pub fn start() -> Redis {
        let mut r = Redis { port: free_port(), child: None };
        r.restart();
        r
    }

    /// Start it (again, on the same port, empty).
    pub fn restart(&mut self) {
        self.stop();
        let child = Command::new("redis-server")
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server must be installed for the cluster tests (apt-get install redis-server)");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(Instant::now() < deadline, "redis-server did not start on port {}", self.port);
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        self.stop();
    }
}
