//! A listener's TLS settings, served from the active snapshot: certificates and client-certificate
//! verifiers that a reload replaces without a restart. TLS 1.2+ only (rustls through Pingora).

use std::sync::Arc;

use pingora::listeners::tls::TlsSettings;
use pingora::tls::sign::CertifiedKey;
use pingora::tls::{ClientHello, ResolvesServerCert};

use super::state::Store;
use super::tls::{IdentityCallback, client_verifier};
use crate::config::{GuomiMode, TlsSettings as TlsConfig};

/// Serves the listener's certificate from the active snapshot, so a reload (SIGHUP or
/// `POST /reload`) replaces certificates and keys without a restart.
#[derive(Debug)]
pub struct ReloadableCert {
    pub store: Store,
    pub listener: String,
}

impl ResolvesServerCert for ReloadableCert {
    /// The SM2 certificate for a client that offers the SM suites (where the listener's `guomi`
    /// allows), else the ordinary one (none with `guomi: only`, which refuses the handshake).
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let active = self.store.load();
        let mode = active
            .listeners
            .iter()
            .find(|l| l.name == self.listener)
            .and_then(|l| l.tls.as_ref())
            .map_or(GuomiMode::Off, |t| t.guomi);
        let sm2 = (mode != GuomiMode::Off && crate::guomi::wants_guomi(&hello))
            .then(|| active.sm2_certs.get(&self.listener).cloned())
            .flatten();
        crate::guomi::set_guomi_hello(sm2.is_some());
        if sm2.is_some() {
            crate::guomi::steer(hello.named_groups().map_or(0, <[_]>::len));
        }
        match mode {
            _ if sm2.is_some() => sm2,
            GuomiMode::Only => None,
            _ => active.certs.get(&self.listener).cloned(),
        }
    }
}

/// Build Pingora TLS settings for a listener. Certificate, key and client-certificate verifier
/// come from the active snapshot (checked when it is built, so a bad file is an error naming its
/// path, not a panic inside Pingora), so a reload replaces them.
pub fn settings(cfg: &TlsConfig, h2: bool, store: &Store, listener: &str) -> Result<TlsSettings, String> {
    let mut tls = TlsSettings::with_callbacks(Box::new(IdentityCallback { listener: listener.to_string() }))
        .map_err(|e| format!("tls settings: {e}"))?;
    tls.set_cert_resolver(Arc::new(ReloadableCert { store: store.clone(), listener: listener.to_string() }));
    if h2 {
        tls.enable_h2();
    }
    // checked now so that start-up fails on a bad bundle; served from the snapshot from then on
    client_verifier(cfg)?;
    tls.set_client_cert_verifier(Arc::new(ReloadableVerifier { store: store.clone(), listener: listener.to_string() }));
    Ok(tls)
}

/// Verifies client certificates with the listener's verifier in the active snapshot, so a reload
/// applies a changed `client_ca` (a CA withdrawn after a compromise) or `client_auth` without a
/// restart. A listener without client authentication asks for no certificate.
#[derive(Debug)]
pub struct ReloadableVerifier {
    pub store: Store,
    pub listener: String,
}

impl ReloadableVerifier {
    fn current(&self) -> Option<Arc<dyn pingora::tls::ClientCertVerifier>> {
        self.store.load().verifiers.get(&self.listener).cloned()
    }
}

fn no_client_auth() -> rustls::Error {
    rustls::Error::General("this listener does not take client certificates".into())
}

impl pingora::tls::ClientCertVerifier for ReloadableVerifier {
    fn offer_client_auth(&self) -> bool {
        self.current().is_some_and(|v| v.offer_client_auth())
    }

    fn client_auth_mandatory(&self) -> bool {
        self.current().is_some_and(|v| v.client_auth_mandatory())
    }

    fn root_hint_subjects(&self) -> &[rustls::DistinguishedName] {
        // hints are advisory; the CA list can change with a reload, and clients send theirs anyway
        &[]
    }

    fn verify_client_cert(
        &self,
        end_entity: &pingora::tls::CertificateDer<'_>,
        intermediates: &[pingora::tls::CertificateDer<'_>],
        now: pingora::tls::UnixTime,
    ) -> Result<pingora::tls::ClientCertVerified, rustls::Error> {
        self.current().ok_or_else(no_client_auth)?.verify_client_cert(end_entity, intermediates, now)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &pingora::tls::CertificateDer<'_>,
        dss: &pingora::tls::DigitallySignedStruct,
    ) -> Result<pingora::tls::HandshakeSignatureValid, rustls::Error> {
        self.current().ok_or_else(no_client_auth)?.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &pingora::tls::CertificateDer<'_>,
        dss: &pingora::tls::DigitallySignedStruct,
    ) -> Result<pingora::tls::HandshakeSignatureValid, rustls::Error> {
        self.current().ok_or_else(no_client_auth)?.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<pingora::tls::SignatureScheme> {
        // RFC 8998: a 国密 handshake's CertificateRequest names sm2sig_sm3 alone
        if crate::guomi::guomi_hello() {
            return vec![crate::guomi::SM2SIG_SM3];
        }
        match self.current() {
            Some(v) => v.supported_verify_schemes(),
            None => pingora::tls::CryptoProvider::get_default()
                .map(|p| p.signature_verification_algorithms.supported_schemes())
                .unwrap_or_default(),
        }
    }
}
