//! Known answers from the standards, and whole RFC 8998 handshakes between rustls peers.

use std::sync::Arc;

use rustls::pki_types::CertificateDer;

use super::devcert;
use super::sign::{CERT_ID, TLS13_ID};
use super::*;

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

#[test]
fn sm3_known_answers() {
    use rustls::crypto::hash::Hash;
    // GB/T 32905-2016, appendix A
    assert_eq!(hex(SM3.hash(b"abc").as_ref()), "66c7f0f462eeedd9d1f2d46bdc10e4e24167c4875cf2f7a2297da02b8f4ba8e0");
    let long = b"abcd".repeat(16);
    assert_eq!(hex(SM3.hash(&long).as_ref()), "debe9ff92275b8a138604889c18e5a4d6fdb70e5387e5765293dcba39c0c5732");
    // the streaming context agrees with the one-shot hash
    let mut c = SM3.start();
    c.update(b"ab");
    let fork = c.fork_finish();
    c.update(b"c");
    assert_eq!(c.finish().as_ref(), SM3.hash(b"abc").as_ref());
    assert_eq!(fork.as_ref(), SM3.hash(b"ab").as_ref());
}

#[test]
fn sm4_known_answer() {
    use sm4::cipher::{BlockCipherEncrypt, KeyInit};
    // GB/T 32907-2016, appendix A.1
    let key = [0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef, 0xfe, 0xdc, 0xba, 0x98, 0x76, 0x54, 0x32, 0x10];
    let c = sm4::Sm4::new(&key.into());
    let mut block = key.into();
    c.encrypt_block(&mut block);
    assert_eq!(hex(&block), "681edf34d206965e86b3e94f536e4246");
}

#[test]
fn hmac_sm3_is_hmac_over_sm3() {
    // HMAC (RFC 2104) built by hand over SM3 agrees with the keyed one
    use rustls::crypto::hash::Hash;
    let key = b"key";
    let mut k = [0u8; 64];
    k[..key.len()].copy_from_slice(key);
    let ipad: Vec<u8> = k.iter().map(|b| b ^ 0x36).chain(b"message".iter().copied()).collect();
    let inner = SM3.hash(&ipad);
    let opad: Vec<u8> = k.iter().map(|b| b ^ 0x5c).chain(inner.as_ref().iter().copied()).collect();
    assert_eq!(hmac_sm3(key, &[b"mess", b"age"]), SM3.hash(&opad).as_ref());
}

/// A random SM2 key pair.
fn sm2_key() -> (sm2::SecretKey, Sm2Key) {
    let secret = devcert::random_secret().expect("secret");
    let key = Sm2Key::new(&secret).expect("key");
    (secret, key)
}

pub(crate) struct Pki {
    pub ca: CertificateDer<'static>,
    pub leaf: CertificateDer<'static>,
    pub key: Sm2Key,
}

pub(crate) fn pki() -> Pki {
    let (ca_secret, ca_key) = sm2_key();
    let ca =
        devcert::sm2_cert(("sm2 test CA", ""), "sm2 test CA", &ca_key.public_point(), &ca_secret, true).expect("ca");
    let (_, key) = sm2_key();
    let leaf =
        devcert::sm2_cert(("localhost", ""), "sm2 test CA", &key.public_point(), &ca_secret, false).expect("leaf");
    Pki { ca, leaf, key }
}

#[test]
fn sm2_signatures_verify_only_under_their_id() {
    use rustls::pki_types::SignatureVerificationAlgorithm;
    let (_, key) = sm2_key();
    let signer = rustls::sign::SigningKey::choose_scheme(&key, &[SM2SIG_SM3]).expect("sm2sig_sm3");
    let sig = signer.sign(b"handshake transcript").expect("sign");
    let point = key.public_point();
    assert!(sign::Sm2Verify(TLS13_ID).verify_signature(&point, b"handshake transcript", &sig).is_ok());
    assert!(sign::Sm2Verify(TLS13_ID).verify_signature(&point, b"another transcript", &sig).is_err());
    assert!(sign::Sm2Verify(CERT_ID).verify_signature(&point, b"handshake transcript", &sig).is_err(), "the ID counts");
    assert!(rustls::sign::SigningKey::choose_scheme(&key, &[SignatureScheme::ECDSA_NISTP256_SHA256]).is_none());
}

#[derive(Debug)]
struct Resolver {
    sm2: Arc<rustls::sign::CertifiedKey>,
    ordinary: Option<Arc<rustls::sign::CertifiedKey>>,
}

impl rustls::server::ResolvesServerCert for Resolver {
    fn resolve(&self, hello: rustls::server::ClientHello<'_>) -> Option<Arc<rustls::sign::CertifiedKey>> {
        let guomi = wants_guomi(&hello);
        set_guomi_hello(guomi);
        if guomi {
            steer(hello.named_groups().map_or(0, <[_]>::len));
            Some(self.sm2.clone())
        } else {
            self.ordinary.clone()
        }
    }
}

/// Move what `from` has to send into `to`, and let `to` process it.
fn transfer<A, B, DA, DB>(from: &mut A, to: &mut B) -> Result<(), rustls::Error>
where
    A: std::ops::DerefMut<Target = rustls::ConnectionCommon<DA>>,
    B: std::ops::DerefMut<Target = rustls::ConnectionCommon<DB>>,
    DA: rustls::SideData,
    DB: rustls::SideData,
{
    let mut buf = Vec::new();
    from.write_tls(&mut buf).expect("out");
    let mut r = &buf[..];
    while !r.is_empty() {
        to.read_tls(&mut r).expect("in");
    }
    to.process_new_packets().map(|_| ())
}

/// Run a handshake and one message each way in memory; the negotiated suite and group.
fn handshake(
    client: rustls::ClientConfig,
    server: rustls::ServerConfig,
) -> Result<(rustls::CipherSuite, Option<rustls::NamedGroup>), rustls::Error> {
    use std::io::{Read, Write};
    let mut c = rustls::ClientConnection::new(Arc::new(client), "localhost".try_into().expect("name"))?;
    let mut s = rustls::ServerConnection::new(Arc::new(server))?;
    c.writer().write_all(b"GET / HTTP/1.1\r\n\r\n").expect("write");
    for _ in 0..10 {
        transfer(&mut c, &mut s)?;
        transfer(&mut s, &mut c)?;
        if !c.is_handshaking() && !s.is_handshaking() {
            break;
        }
    }
    s.writer().write_all(b"HTTP/1.1 200 OK\r\n\r\n").expect("write");
    transfer(&mut s, &mut c)?;
    let mut got = Vec::new();
    let _ = c.reader().read_to_end(&mut got);
    assert!(got.starts_with(b"HTTP/1.1 200"), "{:?}", String::from_utf8_lossy(&got));
    let mut req = Vec::new();
    let _ = s.reader().read_to_end(&mut req);
    assert!(req.starts_with(b"GET /"), "{:?}", String::from_utf8_lossy(&req));
    let suite = c.negotiated_cipher_suite().map(|s| s.suite()).ok_or(rustls::Error::HandshakeNotComplete)?;
    Ok((suite, c.negotiated_key_exchange_group().map(|g| g.name())))
}

fn client(provider: rustls::crypto::CryptoProvider, ca: &CertificateDer<'static>) -> rustls::ClientConfig {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(ca.clone()).expect("root");
    rustls::ClientConfig::builder_with_provider(Arc::new(provider))
        .with_protocol_versions(&[&rustls::version::TLS13])
        .expect("versions")
        .with_root_certificates(roots)
        .with_no_client_auth()
}

fn server(provider: rustls::crypto::CryptoProvider, resolver: Resolver) -> rustls::ServerConfig {
    rustls::ServerConfig::builder_with_provider(Arc::new(provider))
        .with_protocol_versions(&[&rustls::version::TLS12, &rustls::version::TLS13])
        .expect("versions")
        .with_no_client_auth()
        .with_cert_resolver(Arc::new(resolver))
}

#[test]
fn both_suites_complete_between_rustls_peers_with_verification() {
    let p = pki();
    let ck = Arc::new(rustls::sign::CertifiedKey::new(vec![p.leaf.clone(), p.ca.clone()], Arc::new(p.key)));
    for suite in [TLS_SM4_GCM_SM3, TLS_SM4_CCM_SM3] {
        let mut cp = sm_only_provider();
        cp.cipher_suites = vec![suite];
        let r = handshake(client(cp, &p.ca), server(provider(), Resolver { sm2: ck.clone(), ordinary: None }));
        let (negotiated, group) = r.expect("handshake");
        assert_eq!(negotiated, suite.suite());
        assert_eq!(group, Some(rustls::NamedGroup::Unknown(0x0029)));
    }
    // a client that does not trust the CA fails verification
    let other = pki();
    assert!(
        handshake(client(sm_only_provider(), &other.ca), server(provider(), Resolver { sm2: ck, ordinary: None }))
            .is_err()
    );
}

#[test]
fn a_guomi_client_listing_x25519_first_is_kept_on_curve_sm2_and_ordinary_clients_get_ecdhe() {
    let p = pki();
    let ck = Arc::new(rustls::sign::CertifiedKey::new(vec![p.leaf.clone(), p.ca.clone()], Arc::new(p.key)));
    // as Tongsuo offers: SM suites, but X25519 first among its groups
    let mut cp = sm_only_provider();
    let ring = rustls::crypto::ring::default_provider();
    cp.kx_groups = ring
        .kx_groups
        .iter()
        .copied()
        .chain([&kx::CURVE_SM2 as &'static dyn rustls::crypto::SupportedKxGroup])
        .collect();
    let (suite, group) = handshake(client(cp, &p.ca), server(provider(), Resolver { sm2: ck.clone(), ordinary: None }))
        .expect("steered");
    assert_eq!(suite, rustls::CipherSuite::Unknown(0x00c6));
    assert_eq!(group, Some(rustls::NamedGroup::Unknown(0x0029)));
    assert!(!kx::is_steered(), "the steering ends with the ClientHello it was for (here after a HelloRetryRequest)");
    // counted down by the group checks alone: four offered groups, four checks reach curveSM2
    steer(4);
    for _ in 0..3 {
        assert!(!rustls::crypto::SupportedKxGroup::usable_for_version(
            kx::steered_ring_groups()[0],
            rustls::ProtocolVersion::TLSv1_3
        ));
        assert!(rustls::crypto::SupportedKxGroup::usable_for_version(&kx::CURVE_SM2, rustls::ProtocolVersion::TLSv1_3));
    }
    assert!(kx::is_steered());
    assert!(rustls::crypto::SupportedKxGroup::usable_for_version(&kx::CURVE_SM2, rustls::ProtocolVersion::TLSv1_3));
    assert!(!kx::is_steered(), "the fourth check ends it");
    assert!(rustls::crypto::SupportedKxGroup::usable_for_version(
        kx::steered_ring_groups()[0],
        rustls::ProtocolVersion::TLSv1_3
    ));
    // an ordinary client on the same provider gets ECDHE/AES with the ordinary certificate
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("params");
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let ca_key = rcgen::KeyPair::generate().expect("key");
    let ca_cert = ca_params.self_signed(&ca_key).expect("ca");
    let k = rcgen::KeyPair::generate().expect("key");
    let cert = rcgen::CertificateParams::new(vec!["localhost".to_string()])
        .expect("params")
        .signed_by(&k, &ca_cert, &ca_key)
        .expect("cert");
    let key = rustls::crypto::ring::sign::any_supported_type(&rustls::pki_types::PrivateKeyDer::Pkcs8(
        k.serialize_der().into(),
    ))
    .expect("key");
    let ordinary = Arc::new(rustls::sign::CertifiedKey::new(vec![cert.der().clone()], key));
    let mut roots = rustls::RootCertStore::empty();
    roots.add(ca_cert.der().clone()).expect("root");
    let plain = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    let (suite, group) =
        handshake(plain, server(provider(), Resolver { sm2: ck, ordinary: Some(ordinary) })).expect("plain");
    assert!(
        matches!(
            suite,
            rustls::CipherSuite::TLS13_AES_256_GCM_SHA384
                | rustls::CipherSuite::TLS13_AES_128_GCM_SHA256
                | rustls::CipherSuite::TLS13_CHACHA20_POLY1305_SHA256
        ),
        "{suite:?}"
    );
    assert_eq!(group, Some(rustls::NamedGroup::X25519));
    // steering lapses: nothing is left on the thread for the next handshake
    assert!(!kx::is_steered());
}

#[test]
fn development_certificates_load_and_verify() {
    let p = devcert::dev_pki().expect("dev pki");
    let ck = certified_key(p.cert_pem.as_bytes(), p.key_pem.as_bytes()).expect("the pair loads and matches");
    use rustls::pki_types::pem::PemObject;
    let ca = CertificateDer::from_pem_slice(p.ca_pem.as_bytes()).expect("ca");
    let (suite, _) =
        handshake(client(sm_only_provider(), &ca), server(provider(), Resolver { sm2: ck, ordinary: None }))
            .expect("handshake with the development certificate");
    assert_eq!(suite, rustls::CipherSuite::Unknown(0x00c6));
}
