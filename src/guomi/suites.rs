//! SM3 (hash, HMAC, HKDF) and SM4-GCM / SM4-CCM records for TLS 1.3.

use aes_gcm::aead::consts::{U12, U16};
use aes_gcm::aead::{AeadInOut, KeyInit};
use hmac_sm3::Mac;
use rustls::crypto::cipher::{
    AeadKey, InboundOpaqueMessage, InboundPlainMessage, Iv, MessageDecrypter, MessageEncrypter, Nonce,
    OutboundOpaqueMessage, OutboundPlainMessage, PrefixedPayload, Tls13AeadAlgorithm, UnsupportedOperationError,
    make_tls13_aad,
};
use rustls::crypto::tls13::HkdfUsingHmac;
use rustls::crypto::{hash, hmac};
use rustls::{CipherSuite, CipherSuiteCommon, ConnectionTrafficSecrets, ContentType, ProtocolVersion};
use rustls::{SupportedCipherSuite, Tls13CipherSuite};
use sm3::Digest;

/// SM3 as a rustls hash.
#[derive(Debug)]
pub struct Sm3Hash;

/// The SM3 hash.
pub static SM3: Sm3Hash = Sm3Hash;

struct Sm3Context(sm3::Sm3);

impl hash::Hash for Sm3Hash {
    fn start(&self) -> Box<dyn hash::Context> {
        Box::new(Sm3Context(sm3::Sm3::new()))
    }
    fn hash(&self, data: &[u8]) -> hash::Output {
        hash::Output::new(&sm3::Sm3::digest(data))
    }
    fn algorithm(&self) -> hash::HashAlgorithm {
        // no TLS 1.2 code point; rustls computes the empty hash itself for such ones
        hash::HashAlgorithm::Unknown(0xe3)
    }
    fn output_len(&self) -> usize {
        32
    }
}

impl hash::Context for Sm3Context {
    fn fork_finish(&self) -> hash::Output {
        hash::Output::new(&self.0.clone().finalize())
    }
    fn fork(&self) -> Box<dyn hash::Context> {
        Box::new(Sm3Context(self.0.clone()))
    }
    fn finish(self: Box<Self>) -> hash::Output {
        hash::Output::new(&self.0.finalize())
    }
    fn update(&mut self, data: &[u8]) {
        Digest::update(&mut self.0, data);
    }
}

type HmacSm3 = hmac_sm3::Hmac<sm3::Sm3>;

/// HMAC-SM3 of `data` under `key` (also for the `hash` action and fingerprints, when configured).
pub fn hmac_sm3(key: &[u8], data: &[&[u8]]) -> [u8; 32] {
    // HMAC takes a key of any length
    let Ok(mut m) = <HmacSm3 as KeyInit>::new_from_slice(key) else { return [0; 32] };
    for d in data {
        m.update(d);
    }
    m.finalize().into_bytes().into()
}

/// HMAC-SM3 as a rustls HMAC (for HKDF).
#[derive(Debug)]
pub struct Sm3Hmac;

static SM3_HMAC: Sm3Hmac = Sm3Hmac;

struct Sm3HmacKey(Vec<u8>);

impl hmac::Hmac for Sm3Hmac {
    fn with_key(&self, key: &[u8]) -> Box<dyn hmac::Key> {
        Box::new(Sm3HmacKey(key.to_vec()))
    }
    fn hash_output_len(&self) -> usize {
        32
    }
}

impl hmac::Key for Sm3HmacKey {
    fn sign_concat(&self, first: &[u8], middle: &[&[u8]], last: &[u8]) -> hmac::Tag {
        let mut parts: Vec<&[u8]> = Vec::with_capacity(middle.len() + 2);
        parts.push(first);
        parts.extend_from_slice(middle);
        parts.push(last);
        hmac::Tag::new(&hmac_sm3(&self.0, &parts))
    }
    fn tag_len(&self) -> usize {
        32
    }
}

static HKDF_SM3: HkdfUsingHmac<'static> = HkdfUsingHmac(&SM3_HMAC);

/// SM4 in GCM or CCM: 16-byte keys, 12-byte nonces, 16-byte tags.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sm4Mode {
    Gcm,
    Ccm,
}

type Sm4Gcm = aes_gcm::AesGcm<sm4::Sm4, U12>;
type Sm4Ccm = ccm::Ccm<sm4::Sm4, U16, U12>;

enum Cipher {
    Gcm(Box<Sm4Gcm>),
    Ccm(Box<Sm4Ccm>),
}

impl Cipher {
    fn new(mode: Sm4Mode, key: &[u8]) -> Option<Cipher> {
        Some(match mode {
            Sm4Mode::Gcm => Cipher::Gcm(Box::new(Sm4Gcm::new_from_slice(key).ok()?)),
            Sm4Mode::Ccm => Cipher::Ccm(Box::new(Sm4Ccm::new_from_slice(key).ok()?)),
        })
    }

    fn seal(&self, nonce: &[u8; 12], aad: &[u8], buf: &mut [u8]) -> Option<[u8; 16]> {
        let tag = match self {
            Cipher::Gcm(c) => c.encrypt_inout_detached(nonce.into(), aad, buf.into()).ok()?,
            Cipher::Ccm(c) => c.encrypt_inout_detached(nonce.into(), aad, buf.into()).ok()?,
        };
        Some(tag.into())
    }

    fn open(&self, nonce: &[u8; 12], aad: &[u8], buf: &mut [u8], tag: &[u8; 16]) -> bool {
        match self {
            Cipher::Gcm(c) => c.decrypt_inout_detached(nonce.into(), aad, buf.into(), tag.into()).is_ok(),
            Cipher::Ccm(c) => c.decrypt_inout_detached(nonce.into(), aad, buf.into(), tag.into()).is_ok(),
        }
    }
}

/// The TLS 1.3 record protection of an SM suite.
#[derive(Debug)]
pub struct Sm4Aead(pub Sm4Mode);

struct Sm4Records {
    cipher: Cipher,
    iv: Iv,
}

const TAG_LEN: usize = 16;

impl Tls13AeadAlgorithm for Sm4Aead {
    fn encrypter(&self, key: AeadKey, iv: Iv) -> Box<dyn MessageEncrypter> {
        match Cipher::new(self.0, key.as_ref()) {
            Some(cipher) => Box::new(Sm4Records { cipher, iv }),
            None => Box::new(Broken),
        }
    }
    fn decrypter(&self, key: AeadKey, iv: Iv) -> Box<dyn MessageDecrypter> {
        match Cipher::new(self.0, key.as_ref()) {
            Some(cipher) => Box::new(Sm4Records { cipher, iv }),
            None => Box::new(Broken),
        }
    }
    fn key_len(&self) -> usize {
        16
    }
    fn extract_keys(&self, _key: AeadKey, _iv: Iv) -> Result<ConnectionTrafficSecrets, UnsupportedOperationError> {
        // rustls 0.23 has no SM4 variant: no kernel TLS for these suites
        Err(UnsupportedOperationError)
    }
}

impl MessageEncrypter for Sm4Records {
    fn encrypt(&mut self, msg: OutboundPlainMessage<'_>, seq: u64) -> Result<OutboundOpaqueMessage, rustls::Error> {
        let total_len = self.encrypted_payload_len(msg.payload.len());
        let mut payload = PrefixedPayload::with_capacity(total_len);
        payload.extend_from_chunks(&msg.payload);
        payload.extend_from_slice(&msg.typ.to_array());
        let nonce = Nonce::new(&self.iv, seq).0;
        let aad = make_tls13_aad(total_len);
        let tag = self.cipher.seal(&nonce, &aad, payload.as_mut()).ok_or(rustls::Error::EncryptError)?;
        payload.extend_from_slice(&tag);
        Ok(OutboundOpaqueMessage::new(ContentType::ApplicationData, ProtocolVersion::TLSv1_2, payload))
    }

    fn encrypted_payload_len(&self, payload_len: usize) -> usize {
        payload_len + 1 + TAG_LEN
    }
}

impl MessageDecrypter for Sm4Records {
    fn decrypt<'a>(
        &mut self,
        mut msg: InboundOpaqueMessage<'a>,
        seq: u64,
    ) -> Result<InboundPlainMessage<'a>, rustls::Error> {
        let payload = &mut msg.payload;
        if payload.len() < TAG_LEN {
            return Err(rustls::Error::DecryptError);
        }
        let aad = make_tls13_aad(payload.len());
        let nonce = Nonce::new(&self.iv, seq).0;
        let body_len = payload.len() - TAG_LEN;
        let (body, tag) = payload.split_at_mut(body_len);
        let tag: [u8; TAG_LEN] = (&*tag).try_into().map_err(|_| rustls::Error::DecryptError)?;
        if !self.cipher.open(&nonce, &aad, body, &tag) {
            return Err(rustls::Error::DecryptError);
        }
        payload.truncate(body_len);
        msg.into_tls13_unpadded_message()
    }
}

/// Keys of the wrong length (never, with rustls's key schedule): every record fails.
struct Broken;

impl MessageEncrypter for Broken {
    fn encrypt(&mut self, _m: OutboundPlainMessage<'_>, _s: u64) -> Result<OutboundOpaqueMessage, rustls::Error> {
        Err(rustls::Error::EncryptError)
    }
    fn encrypted_payload_len(&self, payload_len: usize) -> usize {
        payload_len + 1 + TAG_LEN
    }
}

impl MessageDecrypter for Broken {
    fn decrypt<'a>(&mut self, _m: InboundOpaqueMessage<'a>, _s: u64) -> Result<InboundPlainMessage<'a>, rustls::Error> {
        Err(rustls::Error::DecryptError)
    }
}

/// TLS_SM4_GCM_SM3 (RFC 8998).
pub static TLS_SM4_GCM_SM3: SupportedCipherSuite = SupportedCipherSuite::Tls13(&Tls13CipherSuite {
    common: CipherSuiteCommon {
        suite: CipherSuite::Unknown(0x00c6),
        hash_provider: &SM3,
        // as for AES-GCM (a 128-bit block cipher in the same mode)
        confidentiality_limit: 1 << 24,
    },
    hkdf_provider: &HKDF_SM3,
    aead_alg: &Sm4Aead(Sm4Mode::Gcm),
    quic: None,
});

/// TLS_SM4_CCM_SM3 (RFC 8998).
pub static TLS_SM4_CCM_SM3: SupportedCipherSuite = SupportedCipherSuite::Tls13(&Tls13CipherSuite {
    common: CipherSuiteCommon {
        suite: CipherSuite::Unknown(0x00c7),
        hash_provider: &SM3,
        confidentiality_limit: 1 << 24,
    },
    hkdf_provider: &HKDF_SM3,
    aead_alg: &Sm4Aead(Sm4Mode::Ccm),
    quic: None,
});
