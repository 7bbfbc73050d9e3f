//! Idle upstream connections kept between the gateway's own exchanges (see [`super::exchange`]).
//!
//! Pingora's pool spawns a task for every connection it takes back (to watch it while idle), and
//! keeps it behind a shared lock, a notification pair and an LRU: with the task's scheduling,
//! 18 k instructions a request, an eighth of a small inspected request. Each event loop has its own
//! [`super::proxy::Gateway`], so this list is one loop's, and taking a connection from it is a
//! lock that is never contended and a one-byte read that does not wait:
//! - a connection is taken most recently released first, and only while it is open and silent
//!   (the upstream has not closed it nor sent anything unasked), as Pingora's pool checks;
//! - at most [`MAX_IDLE`] are kept, and none longer than [`IDLE_FOR`];
//! - a sweep every [`SWEEP_EVERY`] closes those the upstream closed or that waited too long, so an
//!   idle gateway does not sit on closed connections.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use pingora::connectors::http::Connector;
use pingora::prelude::*;
use pingora::protocols::Stream;
use pingora::protocols::http::client::HttpSession as ClientSession;
use pingora::protocols::http::v1::client::HttpSession as H1Session;
use pingora::upstreams::peer::{HttpPeer, Peer};

/// Most idle connections one event loop keeps (Pingora's pool keeps 128 a connector).
pub const MAX_IDLE: usize = 128;
/// How long an idle connection is kept.
pub const IDLE_FOR: Duration = Duration::from_secs(60);
/// How often the idle connections are looked over.
pub const SWEEP_EVERY: Duration = Duration::from_secs(5);

struct Idle {
    key: u64,
    since: Instant,
    stream: Stream,
}

/// One event loop's upstream connections: Pingora's connector for new ones, and the idle ones.
pub struct Connections {
    connector: Connector,
    list: Arc<Mutex<Vec<Idle>>>,
    sweeping: std::sync::atomic::AtomicBool,
}

impl Default for Connections {
    fn default() -> Self {
        Connections { connector: Connector::new(None), list: Arc::default(), sweeping: Default::default() }
    }
}

impl Connections {
    /// An HTTP/1.1 session to `peer` on a kept connection (`true`), or else a new one.
    pub async fn session(&self, peer: &HttpPeer) -> Result<(ClientSession, bool)> {
        let key = peer.reuse_hash();
        while let Some(mut stream) = self.take(key) {
            if quiet(&mut stream) {
                return Ok((ClientSession::H1(H1Session::new_with_options(stream, peer)), true));
            }
        }
        // boxed: connecting (a TLS handshake's state included) is 8.8 KB of future, which would
        // otherwise be held in every exchange's own state for as long as its response streams
        Box::pin(self.connector.get_http_session(peer)).await
    }

    /// Keep `up`'s connection for a later exchange with `peer`, when it can be used again: its
    /// response was read to the end and neither side asked to close.
    pub async fn release(&self, up: ClientSession, peer: &HttpPeer) {
        let ClientSession::H1(mut h1) = up else {
            // not one of ours (an HTTP/2 upstream): Pingora's pool keeps it. Boxed: its future
            // (3 KB) would otherwise be part of every exchange's, copied with it per request
            return Box::pin(self.connector.release_http_session(up, peer, Some(IDLE_FOR))).await;
        };
        h1.respect_keepalive();
        let Some(mut stream) = h1.reuse().await else { return };
        if !quiet(&mut stream) {
            return;
        }
        let Ok(mut list) = self.list.lock() else { return };
        if list.len() >= MAX_IDLE {
            list.remove(0);
        }
        list.push(Idle { key: peer.reuse_hash(), since: Instant::now(), stream });
        drop(list);
        self.sweep_later();
    }

    /// The most recently released connection for `key` that has not waited too long.
    fn take(&self, key: u64) -> Option<Stream> {
        let mut list = self.list.lock().ok()?;
        loop {
            let i = list.iter().rposition(|c| c.key == key)?;
            let c = list.remove(i);
            if c.since.elapsed() < IDLE_FOR {
                return Some(c.stream);
            }
        }
    }

    /// Start this loop's sweep, once, on the runtime of the first release.
    fn sweep_later(&self) {
        use std::sync::atomic::Ordering;
        if self.sweeping.swap(true, Ordering::Relaxed) {
            return;
        }
        let list = Arc::downgrade(&self.list);
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(SWEEP_EVERY).await;
                let Some(list) = list.upgrade() else { return };
                let Ok(mut list) = list.lock() else { return };
                list.retain_mut(|c| c.since.elapsed() < IDLE_FOR && quiet(&mut c.stream));
            }
        });
    }
}

/// Whether an idle connection is still open and has nothing to read: the upstream neither closed
/// it nor sent anything unasked (which would be read as the next response). One read that does
/// not wait, as Pingora's pool does before it hands a connection out.
fn quiet(stream: &mut Stream) -> bool {
    use std::future::Future;
    use std::task::{Context, Poll, Waker};
    use tokio::io::AsyncReadExt;
    let mut buf = [0u8; 1];
    // unconstrained: the task's budget must not make a ready read look pending
    let read = tokio::task::unconstrained(stream.read(&mut buf));
    let mut read = std::pin::pin!(read);
    matches!(read.as_mut().poll(&mut Context::from_waker(Waker::noop())), Poll::Pending)
}
