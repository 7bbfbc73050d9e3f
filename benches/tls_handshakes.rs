#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]
//! Handshake cost on one listener (issue 17): a 国密 client (TLS_SM4_GCM_SM3, curveSM2, an SM2
//! certificate) next to an ordinary one (TLS_AES_128_GCM_SHA256, X25519, an ECDSA P-256
//! certificate), both served by the gateway's provider and certificate choice. Only the server's
//! side is timed (its `process_new_packets` and `write_tls`), in memory, on one core.
//!
//!     cargo bench --bench tls_handshakes

use std::sync::Arc;
use std::time::{Duration, Instant};

use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;

#[derive(Debug)]
struct Resolver {
    sm2: Arc<rustls::sign::CertifiedKey>,
    ordinary: Arc<rustls::sign::CertifiedKey>,
}

impl rustls::server::ResolvesServerCert for Resolver {
    fn resolve(&self, hello: rustls::server::ClientHello<'_>) -> Option<Arc<rustls::sign::CertifiedKey>> {
        let guomi = dlpgate::guomi::wants_guomi(&hello);
        dlpgate::guomi::set_guomi_hello(guomi);
        if guomi {
            dlpgate::guomi::steer(hello.named_groups().map_or(0, <[_]>::len));
        }
        Some(if guomi { self.sm2.clone() } else { self.ordinary.clone() })
    }
}

/// One handshake; the server's share of the time.
fn handshake(client: &Arc<rustls::ClientConfig>, server: &Arc<rustls::ServerConfig>) -> Duration {
    let mut c = rustls::ClientConnection::new(client.clone(), "localhost".try_into().expect("name")).expect("client");
    let mut s = rustls::ServerConnection::new(server.clone()).expect("server");
    let mut spent = Duration::ZERO;
    while c.is_handshaking() || s.is_handshaking() {
        let mut buf = Vec::new();
        c.write_tls(&mut buf).expect("client out");
        let mut r = &buf[..];
        let t = Instant::now();
        while !r.is_empty() {
            s.read_tls(&mut r).expect("server in");
        }
        s.process_new_packets().expect("server");
        let mut out = Vec::new();
        s.write_tls(&mut out).expect("server out");
        spent += t.elapsed();
        let mut r = &out[..];
        while !r.is_empty() {
            c.read_tls(&mut r).expect("client in");
        }
        c.process_new_packets().expect("client");
    }
    spent
}

fn main() {
    // the development SM2 PKI the demo uses (made in Rust, signed as OpenSSL signs)
    let pki = dlpgate::guomi::devcert::dev_pki().expect("SM2 certificates");
    let sm2 = dlpgate::guomi::certified_key(pki.cert_pem.as_bytes(), pki.key_pem.as_bytes()).expect("sm2 key");
    let sm2_ca = CertificateDer::from_pem_slice(pki.ca_pem.as_bytes()).expect("ca");

    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("params");
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let ca_key = rcgen::KeyPair::generate().expect("key");
    let ca = ca_params.self_signed(&ca_key).expect("ca");
    let key = rcgen::KeyPair::generate().expect("key"); // ECDSA P-256
    let cert =
        rcgen::CertificateParams::new(vec!["localhost".into()]).expect("p").signed_by(&key, &ca, &ca_key).expect("c");
    let signing = rustls::crypto::ring::sign::any_supported_type(&rustls::pki_types::PrivateKeyDer::Pkcs8(
        key.serialize_der().into(),
    ))
    .expect("key");
    let ordinary = Arc::new(rustls::sign::CertifiedKey::new(vec![cert.der().clone()], signing));

    let server = Arc::new(
        rustls::ServerConfig::builder_with_provider(Arc::new(dlpgate::guomi::provider()))
            .with_protocol_versions(&[&rustls::version::TLS12, &rustls::version::TLS13])
            .expect("versions")
            .with_no_client_auth()
            .with_cert_resolver(Arc::new(Resolver { sm2, ordinary })),
    );
    let client = |provider: rustls::crypto::CryptoProvider, root: CertificateDer<'static>| {
        let mut roots = rustls::RootCertStore::empty();
        roots.add(root).expect("root");
        Arc::new(
            rustls::ClientConfig::builder_with_provider(Arc::new(provider))
                .with_protocol_versions(&[&rustls::version::TLS13])
                .expect("versions")
                .with_root_certificates(roots)
                .with_no_client_auth(),
        )
    };
    let mut gm = dlpgate::guomi::sm_only_provider();
    gm.cipher_suites = vec![dlpgate::guomi::TLS_SM4_GCM_SM3];
    let mut plain = rustls::crypto::ring::default_provider();
    plain.cipher_suites = vec![rustls::crypto::ring::cipher_suite::TLS13_AES_128_GCM_SHA256];
    plain.kx_groups = vec![rustls::crypto::ring::kx_group::X25519];
    let cases = [
        ("SM2 / curveSM2 / TLS_SM4_GCM_SM3", client(gm, sm2_ca)),
        ("ECDSA P-256 / X25519 / TLS_AES_128_GCM_SHA256", client(plain, ca.der().clone())),
    ];
    println!("server side of full TLS 1.3 handshakes on one core (median of 5 rounds of 200)");
    for (name, c) in &cases {
        let mut rounds: Vec<f64> = (0..5)
            .map(|_| {
                let spent: Duration = (0..200).map(|_| handshake(c, &server)).sum();
                200.0 / spent.as_secs_f64()
            })
            .collect();
        rounds.sort_by(f64::total_cmp);
        println!("{name:<48} {:>8.0} handshakes/s", rounds[2]);
    }
}
