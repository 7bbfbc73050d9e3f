//! Development SM2 certificates (the demo, tests): a CA and a server certificate for localhost,
//! made in Rust, signed as OpenSSL signs them (SM2-with-SM3, distinguishing ID
//! `1234567812345678`). Production certificates come from the deployer's CA (README: OpenSSL 3).

use rustls::pki_types::CertificateDer;
use sm2::pkcs8::der::pem::LineEnding;

use super::sign::CERT_ID;

/// PEM files of a development SM2 PKI.
#[derive(Debug)]
pub struct DevPki {
    pub ca_pem: String,
    pub cert_pem: String,
    pub key_pem: String,
}

/// A random SM2 secret key.
pub fn random_secret() -> Option<sm2::SecretKey> {
    let rng = rustls::crypto::ring::default_provider().secure_random;
    for _ in 0..16 {
        let mut bytes = [0u8; 32];
        rng.fill(&mut bytes).ok()?;
        if let Ok(s) = sm2::SecretKey::from_slice(&bytes) {
            return Some(s);
        }
    }
    None
}

fn pem(label: &str, der: &[u8]) -> Option<String> {
    sm2::pkcs8::der::pem::encode_string(label, LineEnding::LF, der).ok()
}

/// A CA and a server certificate for localhost and 127.0.0.1, with the server's key (PKCS#8).
pub fn dev_pki() -> Option<DevPki> {
    use sm2::elliptic_curve::sec1::ToSec1Point;
    use sm2::pkcs8::EncodePrivateKey;
    let point = |s: &sm2::SecretKey| s.public_key().as_affine().to_sec1_point(false).as_bytes().to_vec();
    let ca_secret = random_secret()?;
    let ca = sm2_cert(("dlpgate demo SM2 CA", ""), "dlpgate demo SM2 CA", &point(&ca_secret), &ca_secret, true)?;
    let secret = random_secret()?;
    let leaf = sm2_cert(("localhost", ""), "dlpgate demo SM2 CA", &point(&secret), &ca_secret, false)?;
    let key = secret.to_pkcs8_der().ok()?;
    Some(DevPki {
        ca_pem: pem("CERTIFICATE", &ca)?,
        cert_pem: pem("CERTIFICATE", &leaf)? + &pem("CERTIFICATE", &ca)?,
        key_pem: pem("PRIVATE KEY", key.as_bytes())?,
    })
}

fn tlv(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    let n = content.len();
    if n < 0x80 {
        out.push(n as u8);
    } else if n < 0x100 {
        out.extend_from_slice(&[0x81, n as u8]);
    } else {
        out.extend_from_slice(&[0x82, (n >> 8) as u8, n as u8]);
    }
    out.extend_from_slice(content);
    out
}

fn name(cn: &str, ou: &str) -> Vec<u8> {
    let mut rdns = Vec::new();
    if !ou.is_empty() {
        rdns.extend(tlv(0x31, &tlv(0x30, &[tlv(0x06, &[0x55, 0x04, 0x0b]), tlv(0x0c, ou.as_bytes())].concat())));
    }
    rdns.extend(tlv(0x31, &tlv(0x30, &[tlv(0x06, &[0x55, 0x04, 0x03]), tlv(0x0c, cn.as_bytes())].concat())));
    tlv(0x30, &rdns)
}

/// An X.509 v3 certificate signed with SM2-with-SM3 (certificate ID), as OpenSSL makes them: a CA
/// (basicConstraints, keyCertSign) or a leaf for `localhost` and 127.0.0.1 (server and client
/// auth).
pub fn sm2_cert(
    subject: (&str, &str),
    issuer: &str,
    public_point: &[u8],
    signer: &sm2::SecretKey,
    ca: bool,
) -> Option<CertificateDer<'static>> {
    use sm2::dsa::signature::Signer as _;
    let alg = tlv(0x30, &[0x06, 0x08, 0x2a, 0x81, 0x1c, 0xcf, 0x55, 0x01, 0x83, 0x75]);
    let spki_alg = tlv(
        0x30,
        &[
            0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x08, 0x2a, 0x81, 0x1c, 0xcf, 0x55, 0x01, 0x82,
            0x2d,
        ],
    );
    let spki = tlv(0x30, &[spki_alg, tlv(0x03, &[&[0u8][..], public_point].concat())].concat());
    let validity = tlv(0x30, &[tlv(0x17, b"250101000000Z"), tlv(0x17, b"351231000000Z")].concat());
    let ext = if ca {
        let bc = tlv(
            0x30,
            &[tlv(0x06, &[0x55, 0x1d, 0x13]), tlv(0x01, &[0xff]), tlv(0x04, &tlv(0x30, &tlv(0x01, &[0xff])))].concat(),
        );
        let ku = tlv(0x30, &[tlv(0x06, &[0x55, 0x1d, 0x0f]), tlv(0x04, &tlv(0x03, &[0x01, 0x06]))].concat());
        [bc, ku].concat()
    } else {
        let san = {
            // dNSName localhost, iPAddress 127.0.0.1
            let names = [tlv(0x82, b"localhost"), tlv(0x87, &[127, 0, 0, 1])].concat();
            tlv(0x30, &[tlv(0x06, &[0x55, 0x1d, 0x11]), tlv(0x04, &tlv(0x30, &names))].concat())
        };
        let eku = tlv(
            0x30,
            &[
                tlv(0x06, &[0x55, 0x1d, 0x25]),
                tlv(
                    0x04,
                    &tlv(
                        0x30,
                        &[
                            tlv(0x06, &[0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x03, 0x01]),
                            tlv(0x06, &[0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x03, 0x02]),
                        ]
                        .concat(),
                    ),
                ),
            ]
            .concat(),
        );
        [san, eku].concat()
    };
    let tbs = tlv(
        0x30,
        &[
            tlv(0xa0, &tlv(0x02, &[2])),
            tlv(0x02, &[if ca { 1 } else { 2 }]),
            alg.clone(),
            name(issuer, ""),
            validity,
            name(subject.0, subject.1),
            spki,
            tlv(0xa3, &tlv(0x30, &ext)),
        ]
        .concat(),
    );
    let key = sm2::dsa::SigningKey::new(CERT_ID, signer).ok()?;
    let sig: sm2::dsa::Signature = key.sign(&tbs);
    let sig = sig.to_der();
    Some(CertificateDer::from(tlv(0x30, &[tbs, alg, tlv(0x03, &[&[0u8][..], sig.as_bytes()].concat())].concat())))
}
