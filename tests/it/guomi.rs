//! 国密 TLS (RFC 8998) against Tongsuo: the gateway's listeners serve SM2/SM3/SM4 clients next to
//! ordinary ones, and reach an upstream that speaks only RFC 8998.
//!
//! Needs `openssl` (SM2 certificates are made at test time) and Python with `tongsuopy`
//! (`pip install tongsuopy==1.0.1`), driven through tests/tools/tongsuo_peer.py.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use super::gateway::{ID, ID_MASKED, config, setup, upstream};
use super::harness::*;

const PEER: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/tools/tongsuo_peer.py");

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl").args(args).current_dir(dir).output().expect("openssl must be installed");
    assert!(out.status.success(), "openssl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
}

/// An SM2 CA, a server certificate for localhost and 127.0.0.1, and a client certificate of
/// 公安厅 (OU), made with OpenSSL 3 as README.md says.
fn sm2_pki(dir: &Path) {
    let id = "distid:1234567812345678";
    openssl(dir, &["genpkey", "-algorithm", "SM2", "-out", "sm2ca.key"]);
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-new",
            "-key",
            "sm2ca.key",
            "-sm3",
            "-sigopt",
            id,
            "-subj",
            "/CN=sm2 test CA",
            "-days",
            "30",
            "-out",
            "sm2ca.crt",
        ],
    );
    std::fs::write(dir.join("srv.ext"), "subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n")
        .expect("ext");
    std::fs::write(dir.join("cli.ext"), "extendedKeyUsage=clientAuth\n").expect("ext");
    for (name, subj, ext) in [("sm2", "/CN=localhost", "srv.ext"), ("sm2client", "/CN=officer-7/OU=公安厅", "cli.ext")]
    {
        openssl(dir, &["genpkey", "-algorithm", "SM2", "-out", &format!("{name}.key")]);
        openssl(
            dir,
            &[
                "req",
                "-new",
                "-key",
                &format!("{name}.key"),
                "-sm3",
                "-sigopt",
                id,
                "-utf8",
                "-subj",
                subj,
                "-out",
                &format!("{name}.csr"),
            ],
        );
        openssl(
            dir,
            &[
                "x509",
                "-req",
                "-in",
                &format!("{name}.csr"),
                "-CA",
                "sm2ca.crt",
                "-CAkey",
                "sm2ca.key",
                "-CAcreateserial",
                "-sm3",
                "-sigopt",
                id,
                "-vfyopt",
                id,
                "-extfile",
                ext,
                "-days",
                "30",
                "-out",
                &format!("{name}.crt"),
            ],
        );
    }
    // one bundle of client CAs: the ordinary test CA and the SM2 one
    let bundle = std::fs::read_to_string(dir.join("ca.crt")).expect("ca")
        + &std::fs::read_to_string(dir.join("sm2ca.crt")).expect("sm2 ca");
    std::fs::write(dir.join("clients.crt"), bundle).expect("bundle");
}

/// Run the Tongsuo peer; (exit code, stdout + stderr).
fn peer(args: &[&str]) -> (i32, String) {
    let out = Command::new("python3").arg(PEER).args(args).output().expect("python3");
    let text = String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    (out.status.code().unwrap_or(-1), text)
}

/// GET `path` from `target` as a Tongsuo RFC 8998 client verifying the server against `ca` (as
/// localhost), with `extra` arguments (a suite, a client certificate, a header).
fn tongsuo_get(target: &str, ca: &str, path: &str, extra: &[&str]) -> (i32, String) {
    let mut args = vec!["client", "--connect", target, "--ca", ca, "--host", "localhost", "--get", path];
    args.extend_from_slice(extra);
    peer(&args)
}

fn tongsuo_available() {
    let out = Command::new("python3").args(["-c", "import tongsuopy"]).output().expect("python3");
    assert!(out.status.success(), "the 国密 tests need tongsuopy: pip install tongsuopy==1.0.1");
}

/// The test config with its TLS listener in `guomi: prefer` (an SM2 certificate next to the
/// ordinary one, client certificates of either CA), and one more listener in `guomi: only`.
fn guomi_config(up: u16, only_port: u16) -> String {
    let tls = "tls: {cert: server.crt, key: server.key, client_ca: ca.crt, client_auth: optional}";
    let cfg = config(up, "optional", "allow");
    assert!(cfg.contains(tls));
    let sm = "cert: server.crt, key: server.key, sm2_cert: sm2.crt, sm2_key: sm2.key, client_ca: clients.crt, client_auth: optional";
    cfg.replace(tls, &format!("tls: {{{sm}, guomi: prefer}}")).replace(
        "admin: {",
        &format!("  - {{name: sm-only, addr: \"127.0.0.1:{only_port}\", tls: {{{sm}, guomi: only}}}}\nadmin: {{"),
    )
}

#[test]
fn tongsuo_clients_and_ordinary_clients_share_a_port() {
    tongsuo_available();
    let up = upstream();
    let dir = setup("guomi");
    sm2_pki(&dir);
    let only = free_port();
    let gw = start_gateway(&dir, &guomi_config(up.port, only));
    let target = format!("127.0.0.1:{}", gw.https);
    let ca = dir.join("sm2ca.crt");
    let ca = ca.to_str().expect("path");
    // both suites, the server certificate verified against the SM2 CA, a masked response
    for suite in ["TLS_SM4_GCM_SM3", "TLS_SM4_CCM_SM3"] {
        let (code, out) = tongsuo_get(&target, ca, "/stream/residents", &["--suite", suite]);
        assert_eq!(code, 0, "{suite}: {out}");
        assert!(out.contains(&format!("handshake ok: TLSv1.3 {suite}")), "{out}");
        assert!(out.contains("HTTP/1.1 200") && out.contains(ID_MASKED) && !out.contains(ID), "{suite}: {out}");
    }
    // an SM2 client certificate of 公安厅 (OU): that department's view (ID numbers in clear)
    let (cert, key) = (dir.join("sm2client.crt"), dir.join("sm2client.key"));
    let (code, out) = tongsuo_get(
        &target,
        ca,
        "/stream/residents",
        &["--cert", cert.to_str().expect("path"), "--key", key.to_str().expect("path")],
    );
    assert_eq!(code, 0, "{out}");
    assert!(out.contains(ID), "public security, by its SM2 certificate, sees ID numbers in clear: {out}");
    // an API key names the department as for any client
    let (code, out) = tongsuo_get(&target, ca, "/stream/residents", &["--header", "X-Api-Key: ps-key"]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains(ID), "public security sees ID numbers in clear: {out}");
    // an ordinary client on the same port: ECDHE/AES with the ordinary certificate
    let plain = curl(&[
        "--cacert",
        &dir.join("ca.crt").display().to_string(),
        "-w",
        "%{http_code}",
        &format!("https://localhost:{}/stream/residents", gw.https),
    ]);
    assert_eq!(plain.status, 200, "{plain:?}");
    assert!(plain.text().contains(ID_MASKED));
    // `only` refuses it, and serves the 国密 client
    let refused = curl(&[
        "--cacert",
        &dir.join("ca.crt").display().to_string(),
        &format!("https://localhost:{only}/stream/residents"),
    ]);
    assert_ne!(refused.exit, 0, "an ordinary client is refused by guomi: only");
    let (code, out) = tongsuo_get(&format!("127.0.0.1:{only}"), ca, "/stream/residents", &[]);
    assert_eq!(code, 0, "{out}");
    // handshakes counted by listener and suite
    let m = curl(&[&format!("http://127.0.0.1:{}/metrics", gw.admin)]).text();
    let count = |listener: &str, suite: &str| {
        m.lines()
            .filter(|l| {
                l.starts_with("dlpgate_tls_handshakes_total{")
                    && l.contains(&format!("listener=\"{listener}\""))
                    && l.contains(suite)
            })
            .filter_map(|l| l.rsplit(' ').next().and_then(|v| v.parse::<f64>().ok()))
            .sum::<f64>()
    };
    assert!(count("tls", "TLS_SM4_SM3") >= 3.0, "{m}");
    assert!(count("tls", "TLS13_AES") >= 1.0, "{m}");
    assert!(count("sm-only", "TLS_SM4_SM3") >= 1.0, "{m}");
}

#[test]
fn a_route_reaches_an_upstream_that_speaks_only_rfc8998() {
    tongsuo_available();
    let dir = setup("guomi-up");
    sm2_pki(&dir);
    let port = free_port();
    let (cert, key) = (dir.join("sm2.crt"), dir.join("sm2.key"));
    let server = Command::new("python3")
        .arg(PEER)
        .args([
            "server",
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--cert",
            cert.to_str().expect("p"),
            "--key",
            key.to_str().expect("p"),
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("python3");
    // (it accepts one connection only: no probe and no health checks; it listens within a second)
    std::thread::sleep(Duration::from_millis(1500));
    let up = upstream();
    let cfg = config(up.port, "none", "allow").replace(
        "routes:\n",
        &format!("routes:\n  - {{id: guomi, path_prefix: /gm/, policy: mask, upstream: {{addrs: [\"127.0.0.1:{port}\"], tls: true, sni: localhost, ca_file: sm2ca.crt, health_check_interval_s: 0}}}}\n"),
    );
    let gw = start_gateway(&dir, &cfg);
    let r = curl(&[&format!("http://127.0.0.1:{}/gm/hello", gw.http)]);
    let out = server.wait_with_output().expect("server");
    let log = String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert_eq!(r.status, 200, "{} / {log}", r.text());
    assert!(log.contains("handshake ok: TLSv1.3 TLS_SM4_GCM_SM3"), "{log}");
}

/// `rules.hash_algorithm` and `audit.fingerprint_algorithm: hmac-sm3`: `hash` tokens and audit
/// fingerprints are HMAC-SM3 under the configured keys.
#[test]
fn hash_tokens_and_fingerprints_can_be_hmac_sm3() {
    use super::gateway::MOBILE;
    let up = upstream();
    let dir = setup("hmac-sm3");
    std::fs::write(dir.join("hash.key"), "hash-key-0123456789abcdef\n").expect("key");
    let cfg = config(up.port, "none", "allow")
        .replace("rules: {dirs: [rules]}", "rules: {dirs: [rules], hash_key_file: hash.key, hash_algorithm: hmac-sm3}")
        .replace("  fingerprint_key_file: fp.key", "  fingerprint_key_file: fp.key\n  fingerprint_algorithm: hmac-sm3")
        .replace(
            "      - {categories: [secret.credential], action: redact}\n",
            "      - {categories: [secret.credential], action: redact}\n      - {categories: [personal.phone], action: hash}\n",
        );
    assert!(cfg.contains("hash_algorithm: hmac-sm3") && cfg.contains("fingerprint_algorithm: hmac-sm3"));
    assert!(cfg.contains("action: hash"));
    let gw = start_gateway(&dir, &cfg);
    let r = curl(&[&format!("http://127.0.0.1:{}/stream/residents", gw.http)]);
    assert_eq!(r.status, 200, "{}", r.text());
    let hash = dlpgate::engine::HashKey::from_file(&dir.join("hash.key")).expect("key").sm3();
    let fp = dlpgate::engine::HashKey::from_file(&dir.join("fp.key")).expect("key").sm3();
    let token = format!("[h:{}]", hash.fingerprint(MOBILE.as_bytes()));
    assert!(r.text().contains(&token), "{token} in {}", r.text());
    let audit = wait_for_file(&gw.dir.join("audit.jsonl"), |t| t.contains("cn.mobile"));
    assert!(audit.contains(&fp.fingerprint(MOBILE.as_bytes())), "{audit}");
    let sha = dlpgate::engine::HashKey::from_file(&dir.join("fp.key")).expect("key");
    assert!(!audit.contains(&sha.fingerprint(MOBILE.as_bytes())), "not HMAC-SHA256");
}

/// `dlpgate check` loads the SM2 pair and names the file of each mistake: a key of another
/// certificate, an SM2 certificate given as the ordinary one, guomi without an SM2 pair.
#[test]
fn check_refuses_mismatched_or_misplaced_sm2_certificates() {
    let up = upstream();
    let dir = setup("guomi-check");
    sm2_pki(&dir);
    let run = |cfg: &str| {
        let path = dir.join(format!("c{}.yaml", unique()));
        let cfg = cfg
            .replace("{HTTP}", &free_port().to_string())
            .replace("{HTTPS}", &free_port().to_string())
            .replace("{ADMIN}", &free_port().to_string())
            .replace("{DIR}", &dir.display().to_string());
        std::fs::write(&path, cfg).expect("config");
        let out = Command::new(bin()).args(["check", "-c"]).arg(&path).output().expect("check");
        (out.status.code(), String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr))
    };
    let good = guomi_config(up.port, free_port());
    let (code, out) = run(&good);
    assert_eq!(code, Some(0), "{out}");
    let (code, out) = run(&good.replace("sm2_key: sm2.key", "sm2_key: sm2client.key"));
    assert_eq!(code, Some(1), "{out}");
    assert!(
        out.contains("sm2.crt") && out.contains("sm2client.key") && out.contains("do not belong together"),
        "{out}"
    );
    let (code, out) =
        run(&good.replace("cert: server.crt, key: server.key, sm2_cert", "cert: sm2.crt, key: sm2.key, sm2_cert"));
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains("sm2.crt: an SM2 certificate"), "{out}");
    let (code, out) = run(&good.replace(", sm2_cert: sm2.crt, sm2_key: sm2.key", ""));
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains("guomi: prefer or only needs sm2_cert and sm2_key"), "{out}");
}

/// `dlpgate demo` serves 国密 clients on its HTTPS port, with SM2 certificates it makes itself.
#[test]
fn the_demo_serves_guomi_clients() {
    tongsuo_available();
    let dir = tempdir("guomi-demo");
    let (http, https, admin, backend) = (free_port(), free_port(), free_port(), free_port());
    let ports = [http.to_string(), https.to_string(), admin.to_string(), backend.to_string()];
    let child = Command::new(bin())
        .args(["demo", "--dir"])
        .arg(dir.join("demo"))
        .args(["--http", &ports[0], "--https", &ports[1], "--admin", &ports[2], "--backend", &ports[3]])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("spawn demo");
    let _gw = Gateway { child, http, https, admin, dir: dir.clone() };
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while curl(&[&format!("http://127.0.0.1:{admin}/healthz")]).status != 200 {
        assert!(std::time::Instant::now() < deadline, "demo did not start");
        std::thread::sleep(Duration::from_millis(100));
    }
    let ca = dir.join("demo/sm2ca.crt");
    let (code, out) = tongsuo_get(&format!("127.0.0.1:{https}"), ca.to_str().expect("path"), "/api/residents", &[]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("TLS_SM4_GCM_SM3") && out.contains("HTTP/1.1 200") && out.contains("********"), "{out}");
}

/// SM2 keys load from PKCS#8 (`openssl genpkey`) and from SEC1 (`openssl ec`), and
/// an OpenSSL SM2 signature verifies under the certificate ID with the gateway's verifier.
#[test]
fn sm2_keys_load_from_pkcs8_and_sec1() {
    let dir = tempdir("sm2-keys");
    openssl(&dir, &["genpkey", "-algorithm", "SM2", "-out", "p8.key"]);
    // OpenSSL 3 writes an SM2 key in SEC1 form as `SM2 PRIVATE KEY`
    openssl(&dir, &["ec", "-in", "p8.key", "-out", "sec1.key"]);
    let p8 = std::fs::read(dir.join("p8.key")).expect("key");
    let sec1 = std::fs::read(dir.join("sec1.key")).expect("key");
    assert!(String::from_utf8_lossy(&p8).contains("BEGIN PRIVATE KEY"));
    assert!(String::from_utf8_lossy(&sec1).contains("BEGIN SM2 PRIVATE KEY"));
    dlpgate::guomi::load_sm2_key(&p8).expect("PKCS#8");
    dlpgate::guomi::load_sm2_key(&sec1).expect("SEC1");
    // a signature made by OpenSSL with the certificate ID verifies; with another message it does not
    openssl(&dir, &["pkey", "-in", "p8.key", "-pubout", "-outform", "DER", "-out", "pub.der"]);
    std::fs::write(dir.join("msg"), b"signed by OpenSSL").expect("msg");
    openssl(
        &dir,
        &[
            "pkeyutl",
            "-sign",
            "-digest",
            "sm3",
            "-rawin",
            "-in",
            "msg",
            "-inkey",
            "p8.key",
            "-pkeyopt",
            "distid:1234567812345678",
            "-out",
            "sig",
        ],
    );
    let spki = std::fs::read(dir.join("pub.der")).expect("pub");
    let point = &spki[spki.len() - 65..];
    let sig = std::fs::read(dir.join("sig")).expect("sig");
    use rustls::pki_types::SignatureVerificationAlgorithm;
    let v = dlpgate::guomi::Sm2Verify(dlpgate::guomi::CERT_ID);
    assert!(v.verify_signature(point, b"signed by OpenSSL", &sig).is_ok());
    assert!(v.verify_signature(point, b"signed by someone else", &sig).is_err());
}
