//! 国密 TLS: RFC 8998 (TLS 1.3 with SM2, SM3 and SM4) as a rustls 0.23 `CryptoProvider`, in pure
//! Rust (RustCrypto's `sm2`, `sm3`, `sm4`, `aes-gcm`, `ccm`).
//!
//! - suites TLS_SM4_GCM_SM3 (0x00C6) and TLS_SM4_CCM_SM3 (0x00C7): SM3 as the suite hash, HKDF over
//!   HMAC-SM3, SM4 in GCM or CCM with 12-byte nonces and 16-byte tags;
//! - key exchange curveSM2 (0x0029): ECDH on the SM2 curve, uncompressed points;
//! - signatures sm2sig_sm3 (0x0708): SM2 with SM3, the distinguishing ID
//!   `TLSv1.3+GM+Cipher+Suite` in CertificateVerify (RFC 8998 §3.2.1) and `1234567812345678` (GB/T
//!   35276) in certificate signatures; SM2 keys from PKCS#8 or SEC1 PEM.
//!
//! [`provider`] joins these to ring's suites, groups and algorithms: one process-wide provider
//! serves ordinary and 国密 clients on the same port. Which certificate a client gets, and so which
//! world it is in, is decided by the listener's certificate resolver from what the client offers
//! ([`wants_guomi`]); [`steer`] then keeps the key exchange on curveSM2 for it, which rustls would
//! otherwise choose in the client's order, whatever the suite.

pub mod devcert;
mod kx;
mod sign;
mod suites;

use std::sync::Arc;

use rustls::SignatureScheme;
use rustls::crypto::CryptoProvider;

pub use kx::{guomi_hello, set_guomi_hello, steer};
pub use sign::{CERT_ID, Sm2Key, Sm2Verify, TLS13_ID, load_sm2_key};
pub use suites::{SM3, TLS_SM4_CCM_SM3, TLS_SM4_GCM_SM3, hmac_sm3};

/// What an SM2 signing key reports as its algorithm (rustls has no code point for it).
pub const SM2_ALGORITHM: rustls::SignatureAlgorithm = rustls::SignatureAlgorithm::Unknown(0xe2);

/// `sm2sig_sm3` (RFC 8998).
pub const SM2SIG_SM3: SignatureScheme = SignatureScheme::Unknown(0x0708);
/// The two suites' code points.
pub const SM_SUITES: [u16; 2] = [0x00c6, 0x00c7];

/// Whether a ClientHello asks for 国密: an SM suite and the sm2sig_sm3 signature among its offers.
pub fn wants_guomi(hello: &rustls::server::ClientHello<'_>) -> bool {
    hello.cipher_suites().iter().any(|s| SM_SUITES.contains(&u16::from(*s)))
        && hello.signature_schemes().contains(&SM2SIG_SM3)
}

/// ring's provider plus RFC 8998: what the process installs as its default before Pingora builds
/// any TLS configuration. The SM suites come after ring's (an ordinary client never offers them).
pub fn provider() -> CryptoProvider {
    let base = rustls::crypto::ring::default_provider();
    let mut cipher_suites = base.cipher_suites.clone();
    cipher_suites.extend([TLS_SM4_GCM_SM3, TLS_SM4_CCM_SM3]);
    let mut kx_groups = kx::steered_ring_groups();
    kx_groups.push(&kx::CURVE_SM2);
    CryptoProvider {
        cipher_suites,
        kx_groups,
        signature_verification_algorithms: sign::verification_algorithms(),
        secure_random: base.secure_random,
        key_provider: &sign::KEY_PROVIDER,
    }
}

/// Install [`provider`] as the process default (once; later calls keep the first).
pub fn install() {
    let _ = provider().install_default();
}

/// Only the SM suites, curveSM2 and sm2sig_sm3: for tests and for an upstream that speaks only
/// RFC 8998.
pub fn sm_only_provider() -> CryptoProvider {
    let base = rustls::crypto::ring::default_provider();
    CryptoProvider {
        cipher_suites: vec![TLS_SM4_GCM_SM3, TLS_SM4_CCM_SM3],
        kx_groups: vec![&kx::CURVE_SM2],
        signature_verification_algorithms: sign::verification_algorithms(),
        secure_random: base.secure_random,
        key_provider: &sign::KEY_PROVIDER,
    }
}

/// A certified key from an SM2 certificate chain and key (PEM).
pub fn certified_key(cert_pem: &[u8], key_pem: &[u8]) -> Result<Arc<rustls::sign::CertifiedKey>, String> {
    use rustls::pki_types::pem::PemObject;
    let certs: Vec<rustls::pki_types::CertificateDer<'static>> =
        rustls::pki_types::CertificateDer::pem_slice_iter(cert_pem)
            .collect::<Result<_, _>>()
            .map_err(|e| format!("not a PEM certificate chain: {e}"))?;
    if certs.is_empty() {
        return Err("no certificate in the file".into());
    }
    let key = load_sm2_key(key_pem)?;
    let ck = rustls::sign::CertifiedKey::new(certs, Arc::new(key));
    // the key must be the certificate's (rustls compares the SubjectPublicKeyInfo)
    ck.keys_match().map_err(|e| format!("the key does not belong to the certificate: {e}"))?;
    Ok(Arc::new(ck))
}

#[cfg(test)]
mod tests;
