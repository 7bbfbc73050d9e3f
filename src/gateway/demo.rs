//! `dlpgate demo`: the gateway with a bundled configuration in front of a built-in demo backend
//! that serves synthetic data (valid check digits, no real person or company).
//!
//! Development certificates (a CA, a server certificate for localhost/127.0.0.1 and a client
//! certificate with OU 公安厅) are generated on first run into the demo directory.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair, KeyUsagePurpose, SanType,
};

/// Ports and directory of the demo.
#[derive(Debug, Clone)]
pub struct DemoOptions {
    pub dir: PathBuf,
    pub http: u16,
    pub https: u16,
    pub admin: u16,
    pub backend: u16,
}

impl Default for DemoOptions {
    fn default() -> Self {
        Self { dir: PathBuf::from(".dlpgate-demo"), http: 8080, https: 8443, admin: 9090, backend: 18080 }
    }
}

const RESIDENTS: &str = r#"{"code":0,"data":[
 {"name":"张伟","sfzh":"11010519491231002X","mobile":"13800138000","bankCard":"6212265658323320978","email":"zhangwei@example.com","zz":"河南省郑州市金水区文化路85号3号楼2单元1501室"},
 {"name":"李娜","sfzh":"340102194303289206","mobile":"+86 139-1234-5678","bankCard":"5525996473976268","email":"lina@example.com","zz":"郑州二七区大学路40号院"},
 {"name":"欧阳娜娜","sfzh":"41010320030116279X","mobile":"18612345678","bankCard":"6217 9907 8969 2948 627","email":"wangfang@example.com","zz":"北京市海淀区中关村大街27号"}
]}
"#;

const COMPANIES: &str = r#"{"code":0,"data":[
 {"name":"郑州示例科技有限公司","creditCode":"91410700425648857P","contact":"0371-65123456"},
 {"name":"河南示例数据服务中心","creditCode":"51410100MAX3F7L8XL","contact":"0371-65987654"}
]}
"#;

const NOTICE: &str = "机密★1年\n关于数据共享平台升级的通知\n各单位：平台将于本周六进行升级维护，届时暂停服务。\n";

/// A minimal HTTP/1.1 backend, one thread per connection. Demo use only.
pub fn start_backend(port: u16) -> Result<()> {
    let listener = TcpListener::bind(("127.0.0.1", port))
        .with_context(|| format!("demo backend: cannot bind 127.0.0.1:{port}"))?;
    std::thread::Builder::new().name("demo-backend".into()).spawn(move || {
        for stream in listener.incoming().flatten() {
            let _ = std::thread::Builder::new().spawn(move || serve(stream));
        }
    })?;
    Ok(())
}

fn serve(mut s: TcpStream) {
    let _ = s.set_read_timeout(Some(std::time::Duration::from_secs(30)));
    let mut buf = Vec::new();
    loop {
        // read one request head
        let head_end = loop {
            if let Some(p) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break p + 4;
            }
            let mut tmp = [0u8; 4096];
            match s.read(&mut tmp) {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&tmp[..n]),
            }
            if buf.len() > 1 << 20 {
                return;
            }
        };
        let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
        let mut lines = head.lines();
        let first = lines.next().unwrap_or_default().to_string();
        let mut parts = first.split_whitespace();
        let method = parts.next().unwrap_or_default().to_string();
        let path = parts.next().unwrap_or_default().to_string();
        let len: usize = lines
            .filter_map(|l| l.split_once(':'))
            .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
            .and_then(|(_, v)| v.trim().parse().ok())
            .unwrap_or(0);
        if len > 1 << 20 {
            return; // demo backend: no bodies over 1 MiB
        }
        while buf.len() < head_end + len {
            let mut tmp = [0u8; 4096];
            match s.read(&mut tmp) {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&tmp[..n]),
            }
        }
        let body = buf[head_end..head_end + len].to_vec();
        buf.drain(..head_end + len);
        let (status, ctype, out): (u16, &str, Vec<u8>) = match (method.as_str(), path.split('?').next().unwrap_or("")) {
            ("GET", "/api/residents") => (200, "application/json; charset=utf-8", RESIDENTS.as_bytes().to_vec()),
            ("GET", "/api/companies") => (200, "application/json; charset=utf-8", COMPANIES.as_bytes().to_vec()),
            ("GET", "/docs/notice") => (200, "text/plain; charset=utf-8", NOTICE.as_bytes().to_vec()),
            ("POST", "/api/echo") => (200, "application/json; charset=utf-8", body),
            _ => (404, "application/json", b"{\"error\":\"not found\"}".to_vec()),
        };
        let resp = format!("HTTP/1.1 {status} OK\r\ncontent-type: {ctype}\r\ncontent-length: {}\r\n\r\n", out.len());
        if s.write_all(resp.as_bytes()).and_then(|_| s.write_all(&out)).is_err() {
            return;
        }
    }
}

/// Development PKI written into `dir`: ca.crt, server.crt/key, client-公安厅.crt/key, and for 国密
/// clients sm2ca.crt and sm2.crt/key; clients.crt holds both CAs (client certificates of either).
pub fn dev_certs(dir: &Path) -> Result<()> {
    if ["server.crt", "client-ps.crt", "sm2.crt"].iter().all(|f| dir.join(f).exists()) {
        return Ok(());
    }
    std::fs::create_dir_all(dir)?;
    let ca_key = KeyPair::generate()?;
    let mut ca = CertificateParams::new(Vec::<String>::new())?;
    ca.distinguished_name.push(DnType::CommonName, "dlpgate demo CA");
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
    let ca_cert = ca.self_signed(&ca_key)?;

    let srv_key = KeyPair::generate()?;
    let mut srv = CertificateParams::new(vec!["localhost".to_string()])?;
    srv.subject_alt_names.push(SanType::IpAddress(std::net::IpAddr::from([127, 0, 0, 1])));
    srv.distinguished_name.push(DnType::CommonName, "localhost");
    srv.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let srv_cert = srv.signed_by(&srv_key, &ca_cert, &ca_key)?;

    let cli_key = KeyPair::generate()?;
    let mut cli = CertificateParams::new(Vec::<String>::new())?;
    cli.distinguished_name.push(DnType::CommonName, "demo-officer");
    cli.distinguished_name.push(DnType::OrganizationalUnitName, "公安厅");
    cli.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    let cli_cert = cli.signed_by(&cli_key, &ca_cert, &ca_key)?;

    let w = |name: &str, data: String| {
        std::fs::write(dir.join(name), data).with_context(|| format!("writing {}", dir.join(name).display()))
    };
    w("ca.crt", ca_cert.pem())?;
    w("server.crt", srv_cert.pem())?;
    w("server.key", srv_key.serialize_pem())?;
    w("client-ps.crt", cli_cert.pem())?;
    w("client-ps.key", cli_key.serialize_pem())?;
    let sm2 = crate::guomi::devcert::dev_pki().context("making the development SM2 certificates")?;
    w("sm2ca.crt", sm2.ca_pem.clone())?;
    w("sm2.crt", sm2.cert_pem)?;
    w("sm2.key", sm2.key_pem)?;
    w("clients.crt", ca_cert.pem() + &sm2.ca_pem)?;
    Ok(())
}

fn sha256_hex(s: &str) -> String {
    crate::config::api_key_digest(s.as_bytes()).iter().map(|b| format!("{b:02x}")).collect()
}

/// The bundled demo configuration.
pub fn demo_config(o: &DemoOptions) -> String {
    format!(
        r#"# dlpgate demo configuration (generated by `dlpgate demo`)
server:
  threads: 2
  pid_file: {dir}/dlpgate.pid
  upgrade_sock: {dir}/upgrade.sock
  grace_period_seconds: 1
  graceful_shutdown_timeout_seconds: 1
listeners:
  - name: demo-http
    addr: 127.0.0.1:{http}
    h2: true
  - name: demo-https
    addr: 127.0.0.1:{https}
    tls:
      cert: server.crt
      key: server.key
      client_ca: clients.crt
      client_auth: optional
      # 国密 clients (RFC 8998: SM2, SM3, SM4) on the same port, with the SM2 certificate
      sm2_cert: sm2.crt
      sm2_key: sm2.key
      guomi: prefer
    h2: true
admin:
  addr: 127.0.0.1:{admin}
  token_file: admin.token
identity:
  api_key_header: x-api-key
  unknown: allow
departments:
  - id: public-security
    name: 公安厅
    clearance: important
    match:
      cert_ou: [公安厅]
      api_key_sha256: [{ps}]
  - id: civil-affairs
    name: 民政厅
    clearance: important
    match:
      api_key_sha256: [{ca}]
  - id: unknown
    name: 未识别
    clearance: none
policies:
  - id: demo
    overrides:
      - departments: [public-security]
        routes: [residents]
        categories: [personal.id_number]
        direction: response
        action: allow
      - categories: [financial.bank_card]
        direction: request
        action: block
routes:
  - id: residents
    path_prefix: /api/residents
    policy: demo
    upstream: {{addrs: ["127.0.0.1:{backend}"]}}
  - id: api
    path_prefix: /api/
    policy: demo
    upstream: {{addrs: ["127.0.0.1:{backend}"]}}
  - id: docs
    path_prefix: /docs/
    policy: demo
    upstream: {{addrs: ["127.0.0.1:{backend}"]}}
audit:
  queue: 1000
  sinks:
    - type: file
      path: audit.jsonl
logging:
  format: text
  level: info
"#,
        dir = o.dir.canonicalize().unwrap_or_else(|_| o.dir.clone()).display(),
        http = o.http,
        https = o.https,
        admin = o.admin,
        backend = o.backend,
        ps = sha256_hex("demo-public-security"),
        ca = sha256_hex("demo-civil-affairs"),
    )
}

/// Prepare the demo directory (certs, token, config) and return the config path.
pub fn prepare(o: &DemoOptions) -> Result<PathBuf> {
    dev_certs(&o.dir)?;
    let token = o.dir.join("admin.token");
    if !token.exists() {
        let k = crate::config::random_key().map_err(anyhow::Error::msg)?.fingerprint(b"demo-admin-token");
        std::fs::write(&token, format!("demo-{k}\n"))?;
    }
    let path = o.dir.join("dlpgate.yaml");
    std::fs::write(&path, demo_config(o))?;
    Ok(path)
}

/// The curl commands the demo prints.
pub fn walkthrough(o: &DemoOptions) -> String {
    let d = o.dir.display();
    let (h, s, a) = (o.http, o.https, o.admin);
    format!(
        r#"
dlpgate demo is running. Try:

  # 1. an unknown caller: every identifier is masked, names keep their surname (张*, 欧阳**),
  #    addresses their divisions (河南省郑州市金水区****)
  curl -s http://127.0.0.1:{h}/api/residents
  # 2. 民政厅 (civil affairs) by API key: mobiles in clear, ID numbers masked
  curl -s -H 'X-Api-Key: demo-civil-affairs' http://127.0.0.1:{h}/api/residents
  # 3. 公安厅 (public security) by API key: ID numbers, names and addresses in clear on /api/residents
  curl -s -H 'X-Api-Key: demo-public-security' http://127.0.0.1:{h}/api/residents
  # 4. the same department by client certificate (mTLS, OU 公安厅), over HTTP/2
  curl -s --http2 --cacert {d}/ca.crt --cert {d}/client-ps.crt --key {d}/client-ps.key https://localhost:{s}/api/residents
  # 5. company credit codes, masked for an unknown caller
  curl -s http://127.0.0.1:{h}/api/companies
  # 6. a document marked 机密★: blocked with 403 JSON
  curl -s -i http://127.0.0.1:{h}/docs/notice
  # 7. uploading a bank card number: blocked before it reaches the backend
  curl -s -i -X POST -H 'content-type: application/json' -d '{{"card":"6212265658323320978"}}' http://127.0.0.1:{h}/api/echo
  # 8. metrics and the audit trail (no raw values in either)
  curl -s http://127.0.0.1:{a}/metrics | grep dlpgate_findings_total
  tail -n 3 {d}/audit.jsonl
  # 9. a 国密 client (RFC 8998, Tongsuo: pip install tongsuopy==1.0.1) on the same HTTPS port
  python3 tests/tools/tongsuo_peer.py client --connect 127.0.0.1:{s} --ca {d}/sm2ca.crt --host localhost --get /api/residents

Press Ctrl-C to stop.
"#
    )
}
