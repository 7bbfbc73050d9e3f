//! SM2 signatures: the server's signing key, and verification of certificates and of
//! CertificateVerify (server's and clients').

use std::sync::{Arc, OnceLock};

use rustls::crypto::{KeyProvider, WebPkiSupportedAlgorithms};
use rustls::pki_types::{
    AlgorithmIdentifier, InvalidSignature, PrivateKeyDer, SignatureVerificationAlgorithm, SubjectPublicKeyInfoDer,
};
use rustls::sign::{Signer, SigningKey};
use rustls::{SignatureAlgorithm, SignatureScheme};
use sm2::elliptic_curve::sec1::ToSec1Point;
use sm2::pkcs8::DecodePrivateKey;

use super::SM2SIG_SM3;

/// The distinguishing ID of TLS 1.3 CertificateVerify signatures (RFC 8998 §3.2.1).
pub const TLS13_ID: &str = "TLSv1.3+GM+Cipher+Suite";
/// The distinguishing ID of certificate signatures (GB/T 35276; what OpenSSL's `distid` sets).
pub const CERT_ID: &str = "1234567812345678";

/// SubjectPublicKeyInfo.algorithm of an SM2 key: id-ecPublicKey with the SM2 curve
/// (1.2.156.10197.1.301), without the SEQUENCE header, as webpki compares it.
const SM2_PUBLIC_KEY: &[u8] = &[
    0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, // id-ecPublicKey
    0x06, 0x08, 0x2a, 0x81, 0x1c, 0xcf, 0x55, 0x01, 0x82, 0x2d, // sm2 curve
];
/// SM2-with-SM3 (1.2.156.10197.1.501), no parameters.
const SM2_WITH_SM3: &[u8] = &[0x06, 0x08, 0x2a, 0x81, 0x1c, 0xcf, 0x55, 0x01, 0x83, 0x75];

/// An SM2 private key, signing with SM3 and the TLS 1.3 distinguishing ID.
#[derive(Debug)]
pub struct Sm2Key {
    key: Arc<sm2::dsa::SigningKey>,
}

impl Sm2Key {
    pub(crate) fn new(secret: &sm2::SecretKey) -> Result<Sm2Key, String> {
        let key = sm2::dsa::SigningKey::new(TLS13_ID, secret).map_err(|e| format!("SM2 key: {e}"))?;
        Ok(Sm2Key { key: Arc::new(key) })
    }

    /// The uncompressed public point.
    pub fn public_point(&self) -> Vec<u8> {
        self.key.verifying_key().as_affine().to_sec1_point(false).as_bytes().to_vec()
    }
}

/// An SM2 private key from PEM: PKCS#8 `PRIVATE KEY` (as `openssl genpkey -algorithm SM2` writes
/// it), or SEC1 as `EC PRIVATE KEY` or OpenSSL 3's `SM2 PRIVATE KEY` (`openssl ec`).
pub fn load_sm2_key(pem: &[u8]) -> Result<Sm2Key, String> {
    use rustls::pki_types::pem::PemObject;
    let secret = match PrivateKeyDer::from_pem_slice(pem) {
        Ok(der) => sm2_secret(&der),
        Err(_) => {
            let text = std::str::from_utf8(pem).map_err(|_| "not a PEM private key".to_string())?;
            let start = text.find("-----BEGIN SM2 PRIVATE KEY-----").ok_or("not a PEM private key")?;
            let (label, der) = sm2::pkcs8::der::pem::decode_vec(&text.as_bytes()[start..])
                .map_err(|e| format!("not a PEM private key: {e}"))?;
            (label == "SM2 PRIVATE KEY").then(|| sm2::SecretKey::from_sec1_der(&der).ok()).flatten()
        }
    };
    secret.ok_or_else(|| "not an SM2 private key".to_string()).and_then(|s| Sm2Key::new(&s))
}

fn sm2_secret(der: &PrivateKeyDer<'_>) -> Option<sm2::SecretKey> {
    match der {
        PrivateKeyDer::Pkcs8(k) => sm2::SecretKey::from_pkcs8_der(k.secret_pkcs8_der()).ok(),
        PrivateKeyDer::Sec1(k) => sm2::SecretKey::from_sec1_der(k.secret_sec1_der()).ok(),
        _ => None,
    }
}

fn der_len(out: &mut Vec<u8>, len: usize) {
    if len < 0x80 {
        out.push(len as u8);
    } else {
        out.extend_from_slice(&[0x81, len as u8]);
    }
}

impl SigningKey for Sm2Key {
    fn choose_scheme(&self, offered: &[SignatureScheme]) -> Option<Box<dyn Signer>> {
        // rustls has chosen suite and group by now: the handshake needs no more steering
        super::kx::unsteer();
        offered.contains(&SM2SIG_SM3).then(|| Box::new(Sm2Signer(self.key.clone())) as Box<dyn Signer>)
    }

    fn public_key(&self) -> Option<SubjectPublicKeyInfoDer<'_>> {
        let point = self.public_point();
        let mut alg = vec![0x30];
        der_len(&mut alg, SM2_PUBLIC_KEY.len());
        alg.extend_from_slice(SM2_PUBLIC_KEY);
        let mut bits = vec![0x03];
        der_len(&mut bits, point.len() + 1);
        bits.push(0);
        bits.extend_from_slice(&point);
        let mut spki = vec![0x30];
        der_len(&mut spki, alg.len() + bits.len());
        spki.extend_from_slice(&alg);
        spki.extend_from_slice(&bits);
        Some(SubjectPublicKeyInfoDer::from(spki))
    }

    fn algorithm(&self) -> SignatureAlgorithm {
        // not ECDSA: no TLS 1.2 suite is ever paired with an SM2 key
        SignatureAlgorithm::Unknown(0xe2)
    }
}

#[derive(Debug)]
struct Sm2Signer(Arc<sm2::dsa::SigningKey>);

impl Signer for Sm2Signer {
    fn sign(&self, message: &[u8]) -> Result<Vec<u8>, rustls::Error> {
        use sm2::dsa::signature::Signer as _;
        let sig: sm2::dsa::Signature =
            self.0.try_sign(message).map_err(|e| rustls::Error::General(format!("SM2 signature: {e}")))?;
        Ok(sig.to_der().to_vec())
    }

    fn scheme(&self) -> SignatureScheme {
        SM2SIG_SM3
    }
}

/// SM2-with-SM3 verification under one distinguishing ID.
#[derive(Debug)]
pub struct Sm2Verify(pub &'static str);

impl SignatureVerificationAlgorithm for Sm2Verify {
    fn verify_signature(&self, public_key: &[u8], message: &[u8], signature: &[u8]) -> Result<(), InvalidSignature> {
        use sm2::dsa::signature::Verifier as _;
        let key = sm2::dsa::VerifyingKey::from_sec1_bytes(self.0, public_key).map_err(|_| InvalidSignature)?;
        let sig = sm2::dsa::Signature::from_der(signature).map_err(|_| InvalidSignature)?;
        key.verify(message, &sig).map_err(|_| InvalidSignature)
    }

    fn public_key_alg_id(&self) -> AlgorithmIdentifier {
        AlgorithmIdentifier::from_slice(SM2_PUBLIC_KEY)
    }

    fn signature_alg_id(&self) -> AlgorithmIdentifier {
        AlgorithmIdentifier::from_slice(SM2_WITH_SM3)
    }
}

static SM2_CERTS: Sm2Verify = Sm2Verify(CERT_ID);
static SM2_TLS13: Sm2Verify = Sm2Verify(TLS13_ID);
static SM2_TLS13_ONLY: [&dyn SignatureVerificationAlgorithm; 1] = [&SM2_TLS13];

/// ring's algorithms plus SM2: certificate chains (`all`, the certificate ID) and TLS 1.3
/// CertificateVerify (`mapping`, the TLS 1.3 ID).
pub fn verification_algorithms() -> WebPkiSupportedAlgorithms {
    static ALGS: OnceLock<WebPkiSupportedAlgorithms> = OnceLock::new();
    *ALGS.get_or_init(|| {
        let base = rustls::crypto::ring::default_provider().signature_verification_algorithms;
        let mut all: Vec<&'static dyn SignatureVerificationAlgorithm> = base.all.to_vec();
        all.push(&SM2_CERTS);
        let mut mapping = base.mapping.to_vec();
        mapping.push((SM2SIG_SM3, &SM2_TLS13_ONLY));
        WebPkiSupportedAlgorithms { all: Vec::leak(all), mapping: Vec::leak(mapping) }
    })
}

/// Loads SM2 keys, and everything else as ring does.
#[derive(Debug)]
pub struct Sm2KeyProvider;

pub static KEY_PROVIDER: Sm2KeyProvider = Sm2KeyProvider;

impl KeyProvider for Sm2KeyProvider {
    fn load_private_key(&self, key_der: PrivateKeyDer<'static>) -> Result<Arc<dyn SigningKey>, rustls::Error> {
        if let Some(secret) = sm2_secret(&key_der) {
            return Sm2Key::new(&secret).map(|k| Arc::new(k) as Arc<dyn SigningKey>).map_err(rustls::Error::General);
        }
        rustls::crypto::ring::default_provider().key_provider.load_private_key(key_der)
    }
}
