//! curveSM2 key exchange, and keeping a 国密 handshake on it.

use std::cell::Cell;
use std::time::{Duration, Instant};

use elliptic_curve::sec1::ToSec1Point;
use rustls::crypto::{ActiveKeyExchange, SharedSecret, SupportedKxGroup};
use rustls::{NamedGroup, ProtocolVersion};

/// curveSM2 (RFC 8998): ECDH on the SM2 curve, shares as uncompressed points.
#[derive(Debug)]
pub struct CurveSm2;

pub static CURVE_SM2: CurveSm2 = CurveSm2;

struct Sm2Share {
    secret: sm2::NonZeroScalar,
    public: Vec<u8>,
}

fn random_scalar() -> Result<sm2::NonZeroScalar, rustls::Error> {
    let rng = rustls::crypto::ring::default_provider().secure_random;
    for _ in 0..16 {
        let mut bytes = sm2::FieldBytes::default();
        rng.fill(&mut bytes).map_err(|_| rustls::Error::FailedToGetRandomBytes)?;
        if let Some(s) = Option::<sm2::NonZeroScalar>::from(sm2::NonZeroScalar::from_repr(bytes)) {
            return Ok(s);
        }
    }
    Err(rustls::Error::FailedToGetRandomBytes)
}

impl SupportedKxGroup for CurveSm2 {
    fn start(&self) -> Result<Box<dyn ActiveKeyExchange>, rustls::Error> {
        let secret = random_scalar()?;
        let public = sm2::PublicKey::from_secret_scalar(&secret).as_affine().to_sec1_point(false).as_bytes().to_vec();
        Ok(Box::new(Sm2Share { secret, public }))
    }

    fn name(&self) -> NamedGroup {
        NamedGroup::Unknown(0x0029)
    }

    fn usable_for_version(&self, version: ProtocolVersion) -> bool {
        if steered() {
            count_down();
        }
        version == ProtocolVersion::TLSv1_3
    }
}

impl ActiveKeyExchange for Sm2Share {
    fn complete(self: Box<Self>, peer: &[u8]) -> Result<SharedSecret, rustls::Error> {
        // only uncompressed points (RFC 8998 §3.2.2, as RFC 8446 has it for the NIST curves)
        if peer.first() != Some(&0x04) || peer.len() != 65 {
            return Err(rustls::Error::from(rustls::PeerMisbehaved::InvalidKeyShare));
        }
        let peer = sm2::PublicKey::from_sec1_bytes(peer)
            .map_err(|_| rustls::Error::from(rustls::PeerMisbehaved::InvalidKeyShare))?;
        let shared = elliptic_curve::ecdh::diffie_hellman(self.secret, peer.as_affine());
        Ok(SharedSecret::from(shared.raw_secret_bytes().as_slice()))
    }

    fn pub_key(&self) -> &[u8] {
        &self.public
    }

    fn group(&self) -> NamedGroup {
        CURVE_SM2.name()
    }
}

thread_local! {
    /// How many more of rustls's group checks belong to this thread's steered ClientHello (see
    /// [`steer`]), and until when at the latest.
    static STEERED: Cell<(u32, Option<Instant>)> = const { Cell::new((0, None)) };
    /// Whether the last ClientHello this thread resolved a certificate for was a 国密 one.
    static GUOMI_HELLO: Cell<bool> = const { Cell::new(false) };
}

/// Whether the server handshake this thread is processing is a 国密 one: set by [`steer`] from
/// the certificate resolver, which runs first for every ClientHello. RFC 8998 wants a
/// CertificateRequest of such a handshake to name sm2sig_sm3 alone (Tongsuo's strict mode
/// refuses any other list), which the client-certificate verifier reads here.
pub fn guomi_hello() -> bool {
    GUOMI_HELLO.with(Cell::get)
}

/// rustls picks the key-exchange group in the client's order, whatever the suite: a Tongsuo
/// client offering `[X25519, …, curveSM2]` would get an X25519 share with an SM suite, which it
/// refuses. The certificate resolver calls this when it has just chosen the SM2 certificate for a
/// ClientHello offering `groups` groups: ring's groups then say they are unusable for exactly the
/// checks rustls makes for that ClientHello, right after resolving, in the same call. rustls
/// checks the provider's groups in order for each offered group until one is usable and has its
/// name; with ring's unusable, each offered group ends at curveSM2, the last one, which counts
/// the checks down. The steering also ends when the SM2 key is asked for a scheme, and after 5 ms
/// at the latest, so nothing else on the thread (an upstream handshake) is ever steered.
pub fn steer(groups: usize) {
    let n = u32::try_from(groups).unwrap_or(u32::MAX);
    STEERED.with(|s| s.set((n, (n > 0).then(|| Instant::now() + Duration::from_millis(5)))));
}

/// Mark the ClientHello being resolved as a 国密 one or not (every resolve sets it).
pub fn set_guomi_hello(on: bool) {
    GUOMI_HELLO.with(|g| g.set(on));
    if !on {
        unsteer();
    }
}

/// The groups no longer need steering.
pub(crate) fn unsteer() {
    STEERED.with(|s| s.set((0, None)));
}

/// One of rustls's group checks for the steered ClientHello has reached curveSM2.
fn count_down() {
    STEERED.with(|s| {
        let (n, until) = s.get();
        s.set(if n > 1 { (n - 1, until) } else { (0, None) });
    });
}

/// Whether this thread's handshake is steered now (for tests).
#[cfg(test)]
pub(crate) fn is_steered() -> bool {
    steered()
}

fn steered() -> bool {
    STEERED.with(|s| matches!(s.get(), (n, Some(until)) if n > 0 && Instant::now() < until))
}

/// One of ring's groups, unusable while a 国密 handshake is steered.
#[derive(Debug)]
struct Steered(&'static dyn SupportedKxGroup);

impl SupportedKxGroup for Steered {
    fn start(&self) -> Result<Box<dyn ActiveKeyExchange>, rustls::Error> {
        self.0.start()
    }
    fn name(&self) -> NamedGroup {
        self.0.name()
    }
    fn usable_for_version(&self, version: ProtocolVersion) -> bool {
        !steered() && self.0.usable_for_version(version)
    }
    fn fips(&self) -> bool {
        self.0.fips()
    }
}

/// ring's groups, each wrapped so that a steered handshake passes over it (made once).
pub fn steered_ring_groups() -> Vec<&'static dyn SupportedKxGroup> {
    static GROUPS: std::sync::OnceLock<Vec<&'static dyn SupportedKxGroup>> = std::sync::OnceLock::new();
    GROUPS
        .get_or_init(|| {
            rustls::crypto::ring::default_provider()
                .kx_groups
                .iter()
                .map(|g| &*Box::leak(Box::new(Steered(*g))) as &'static dyn SupportedKxGroup)
                .collect()
        })
        .clone()
}
