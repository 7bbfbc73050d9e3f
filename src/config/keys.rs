//! Keys: hash and fingerprint keys (from a file or random per process) and API-key digests.

use sha2::Digest;

use super::error::Ctx;
use crate::engine::HashKey;

/// A key from a file, or a random per-process key when no file is configured.
pub(crate) fn key_or_random(c: &mut Ctx<'_>, key: &str, file: Option<&str>) -> Option<HashKey> {
    match file {
        Some(f) => {
            let p = c.readable(key, f)?;
            match HashKey::from_file(&p) {
                Ok(k) => Some(k),
                Err(e) => {
                    c.err(key, Some(f), e);
                    None
                }
            }
        }
        None => {
            // one key per process and purpose, so a reload keeps tokens and fingerprints stable
            type Keys = std::sync::Mutex<std::collections::HashMap<String, HashKey>>;
            static KEYS: std::sync::OnceLock<Keys> = std::sync::OnceLock::new();
            let keys = KEYS.get_or_init(Default::default);
            let mut keys = keys.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            match keys.get(key) {
                Some(k) => Some(k.clone()),
                None => match random_key() {
                    Ok(k) => {
                        keys.insert(key.to_string(), k.clone());
                        Some(k)
                    }
                    Err(e) => {
                        c.err(key, None, e);
                        None
                    }
                },
            }
        }
    }
}

/// 32 random bytes from the OS.
pub fn random_key() -> Result<HashKey, String> {
    use std::io::Read;
    let mut k = [0u8; 32];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut k))
        .map_err(|e| format!("no random key: /dev/urandom: {e}"))?;
    Ok(HashKey::new(k))
}

/// SHA-256 of an API key, as stored in `api_key_sha256`.
pub fn api_key_digest(key: &[u8]) -> [u8; 32] {
    sha2::Sha256::digest(key).into()
}
