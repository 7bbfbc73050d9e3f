//! Listener TLS: rustls via Pingora, TLS 1.2+ only, optional mutual TLS, and the caller's identity
//! parsed from the client certificate at the end of the handshake (Pingora's digest has no
//! subject fields, so the certificate is parsed here and attached as a digest extension).

use std::any::Any;
use std::sync::Arc;

use async_trait::async_trait;
use pingora::listeners::TlsAccept;
use pingora::protocols::tls::TlsRef;
use x509_parser::prelude::*;

use std::path::Path;

use pingora::tls::sign::CertifiedKey;

use crate::config::{ClientAuth, TlsSettings as TlsConfig};
use crate::policy::CertIdentity;

/// Counts the handshake by suite, and extracts CN, OU and SANs from a verified client certificate.
#[derive(Debug)]
pub struct IdentityCallback {
    pub listener: String,
}

#[async_trait]
impl TlsAccept for IdentityCallback {
    async fn handshake_complete_callback(&self, tls: &TlsRef) -> Option<Arc<dyn Any + Send + Sync>> {
        // rustls 0.23 has no names for the RFC 8998 suites: they are the only ones it cannot name
        let suite = tls.current_cipher_name().unwrap_or("TLS_SM4_SM3");
        crate::telemetry::Metrics::get().tls_handshakes.with_label_values(&[self.listener.as_str(), suite]).inc();
        let der = tls.peer_certificate_der()?;
        let id = cert_identity(der)?;
        Some(Arc::new(id))
    }
}

/// Subject CN/OU and SAN entries (DNS, e-mail, URI) of a DER certificate.
pub fn cert_identity(der: &[u8]) -> Option<CertIdentity> {
    let (_, cert) = parse_x509_certificate(der).ok()?;
    let subject = cert.subject();
    let cn = subject.iter_common_name().filter_map(attr_text).collect();
    let ou = subject.iter_organizational_unit().filter_map(attr_text).collect();
    let mut sans = Vec::new();
    if let Ok(Some(ext)) = cert.subject_alternative_name() {
        for n in &ext.value.general_names {
            match n {
                GeneralName::DNSName(s) | GeneralName::RFC822Name(s) | GeneralName::URI(s) => {
                    sans.push((*s).to_string())
                }
                _ => {}
            }
        }
    }
    Some(CertIdentity { cn, ou, sans })
}

/// The text of a name attribute in any of the string types CAs use: UTF8String and friends, and
/// BMPString (UTF-16, which some enterprise CAs use for non-ASCII names such as 公安厅).
fn attr_text(a: &AttributeTypeAndValue<'_>) -> Option<String> {
    let v = a.attr_value();
    match v.tag() {
        x509_parser::der_parser::asn1_rs::Tag::BmpString => {
            let d = v.data;
            if d.len() % 2 != 0 {
                return None;
            }
            let units: Vec<u16> = d.chunks_exact(2).map(|c| u16::from_be_bytes([c[0], c[1]])).collect();
            String::from_utf16(&units).ok()
        }
        x509_parser::der_parser::asn1_rs::Tag::T61String | x509_parser::der_parser::asn1_rs::Tag::VisibleString => {
            std::str::from_utf8(v.data).ok().map(str::to_string)
        }
        _ => a.as_str().ok().map(str::to_string),
    }
}

/// Load a certificate chain and its key into a rustls `CertifiedKey`, with the path in every error.
pub fn certified_key(cert: &Path, key: &Path) -> Result<Arc<CertifiedKey>, String> {
    check_pem(cert, "CERTIFICATE")?;
    check_pem(key, "PRIVATE KEY")?;
    let (c, k) = (cert.to_string_lossy().to_string(), key.to_string_lossy().to_string());
    let (certs, key_der) = match pingora::tls::load_certs_and_key_files(&c, &k) {
        Ok(Some(x)) => x,
        Ok(None) => return Err(format!("{c}: no certificate or key found")),
        Err(e) => return Err(format!("{c} / {k}: {e}")),
    };
    // ring and RFC 8998 (an SM2 key loads too), before Pingora installs ring alone
    crate::guomi::install();
    let provider = pingora::tls::CryptoProvider::get_default().ok_or("no TLS crypto provider")?;
    let signing =
        provider.key_provider.load_private_key(key_der).map_err(|e| format!("{k}: unusable private key: {e}"))?;
    let ck = CertifiedKey::new(certs, signing);
    // a half-done rotation (new certificate, old key) would fail every handshake
    ck.keys_match().map_err(|e| format!("{c} and {k} do not belong together: {e}"))?;
    Ok(Arc::new(ck))
}

/// An SM2 certificate chain and key (any of the PEM forms OpenSSL writes SM2 keys in), with the
/// paths in every error.
pub fn sm2_certified_key(cert: &Path, key: &Path) -> Result<Arc<CertifiedKey>, String> {
    check_pem(cert, "CERTIFICATE")?;
    let read = |p: &Path| std::fs::read(p).map_err(|e| format!("{}: {e}", p.display()));
    crate::guomi::certified_key(&read(cert)?, &read(key)?).map_err(|e| {
        if e.contains("belong") {
            format!("{} and {} do not belong together: {e}", cert.display(), key.display())
        } else if e.contains("key") {
            format!("{}: {e}", key.display())
        } else {
            format!("{}: {e}", cert.display())
        }
    })
}

/// The client-certificate verifier a listener's `client_auth` and `client_ca` ask for. Also run
/// by `dlpgate check` and reload, so a bad CA bundle is reported there, not only at start-up.
pub fn client_verifier(cfg: &TlsConfig) -> Result<Option<Arc<dyn pingora::tls::ClientCertVerifier>>, String> {
    if cfg.client_auth == ClientAuth::None {
        return Ok(None);
    }
    let ca = cfg.client_ca.as_ref().ok_or("client_auth needs client_ca")?;
    check_pem(ca, "CERTIFICATE")?;
    let mut roots = pingora::tls::RootCertStore::empty();
    pingora::tls::load_ca_file_into_store(ca, &mut roots).map_err(|e| format!("{}: {e}", ca.display()))?;
    let builder = pingora::tls::WebPkiClientVerifier::builder(Arc::new(roots));
    let builder = if cfg.client_auth == ClientAuth::Optional { builder.allow_unauthenticated() } else { builder };
    let verifier = builder.build().map_err(|e| format!("{}: client verifier: {e}", ca.display()))?;
    Ok(Some(verifier))
}

/// The file exists, is readable and holds at least one PEM block of `kind` (read with
/// rustls-pki-types, before Pingora's loaders, whose errors name no file).
fn check_pem(path: &std::path::Path, kind: &str) -> Result<(), String> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let found = if kind == "CERTIFICATE" {
        CertificateDer::pem_file_iter(path).map(|mut it| it.next().is_some_and(|c| c.is_ok()))
    } else {
        match PrivateKeyDer::from_pem_file(path) {
            Ok(_) => Ok(true),
            Err(rustls::pki_types::pem::Error::NoItemsFound) => Ok(false),
            Err(e) => Err(e),
        }
    };
    match found {
        Ok(true) => Ok(()),
        Ok(false) => Err(format!("{}: no PEM {kind} found", path.display())),
        Err(e) => Err(format!("{}: {e}", path.display())),
    }
}

#[cfg(test)]
mod tests {
    use super::cert_identity;
    use rcgen::{BmpString, CertificateParams, DnType, DnValue, KeyPair};

    #[test]
    fn subject_names_in_bmp_and_utf8_strings() {
        let key = KeyPair::generate().expect("key");
        let mut p = CertificateParams::new(vec!["civil.gov.example".to_string()]).expect("params");
        p.distinguished_name.push(DnType::CommonName, "张三");
        let ou = BmpString::try_from("公安厅").expect("bmp");
        p.distinguished_name.push(DnType::OrganizationalUnitName, DnValue::BmpString(ou));
        let cert = p.self_signed(&key).expect("cert");
        let id = cert_identity(cert.der()).expect("identity");
        assert_eq!(id.ou, ["公安厅"], "a BMPString OU, as enterprise CAs write it");
        assert_eq!(id.cn, ["张三"]);
        assert_eq!(id.sans, ["civil.gov.example"]);
    }
}
