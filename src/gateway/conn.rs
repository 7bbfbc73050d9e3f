//! Client connections: the timeouts nginx admins expect (`client_header_timeout`,
//! `client_body_timeout`, `keepalive_timeout`), per listener.
//!
//! Pingora times each read of a request head separately (60 s), so a client that trickles one
//! byte at a time holds a connection forever, and once a keep-alive connection has served a
//! request, it waits for the next one without any limit. Its parser is kept; what changes is the
//! stream under it: [`ClientTimeouts`] wraps each accepted connection in a [`Timed`] stream whose
//! reads fail with `TimedOut` once
//! - the head of a request has not arrived whole within `client_header_timeout_s` of the
//!   connection being accepted, or of the first byte of a further request on it;
//! - a keep-alive connection has stayed silent for `keepalive_timeout_s` after a response.
//!
//! The gateway tells the stream where the exchange stands ([`Timed::head_done`] when a head was
//! parsed, [`Timed::request_done`] when the exchange ended) and sets Pingora's per-read timeout to
//! `client_body_timeout_s` for the body, as nginx times the body: between two reads. HTTP/2
//! connections are left to Pingora (their streams are not exchanges on one stream).

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering::Relaxed};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use pingora::apps::ServerApp;
use pingora::protocols::raw_connect::ProxyDigest;
use pingora::protocols::tls::TlsRef;
use pingora::protocols::{
    ALPN, GetProxyDigest, GetSocketDigest, GetTimingDigest, Peek, Shutdown, SocketDigest, Ssl, TimingDigest, UniqueID,
    UniqueIDType,
};
use pingora::protocols::{Stream, tls::SslDigest};
use pingora::server::ShutdownWatch;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use super::state::Store;
use crate::config::Timeouts;

/// A Pingora application (the proxy) whose client connections are [`Timed`].
pub struct ClientTimeouts<A> {
    pub app: Arc<A>,
    pub store: Store,
    pub listener: String,
}

#[async_trait]
impl<A: ServerApp + Send + Sync + 'static> ServerApp for ClientTimeouts<A> {
    async fn process_new(self: &Arc<Self>, stream: Stream, shutdown: &ShutdownWatch) -> Option<Stream> {
        // read at accept time: a reload applies to the connections that follow it
        let timeouts = self.store.load().listeners.iter().find(|l| l.name == self.listener).map(|l| l.timeouts);
        let stream: Stream = Box::new(Timed::new(stream, timeouts.unwrap_or_default()));
        self.app.process_new(stream, shutdown).await
    }

    async fn cleanup(&self) {
        self.app.cleanup().await;
    }
}

const READING_HEAD: u8 = 0;
const IN_EXCHANGE: u8 = 1;
const IDLE: u8 = 2;
const UNTIMED: u8 = 3;

/// A client connection whose reads time out as the module says.
pub struct Timed {
    inner: Stream,
    pub timeouts: Timeouts,
    /// `READING_HEAD`, `IN_EXCHANGE`, `IDLE` or `UNTIMED` (HTTP/2).
    phase: AtomicU8,
    /// When the current phase's time runs out, in nanoseconds after `base`.
    deadline: AtomicU64,
    base: Instant,
    /// Bytes read so far (only whether any were, and the first ones, matter).
    seen: u64,
    /// The bytes seen so far are the start of the HTTP/2 preface.
    preface_possible: bool,
    timer: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl std::fmt::Debug for Timed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Timed").field("inner", &self.inner).field("timeouts", &self.timeouts).finish()
    }
}

impl Timed {
    fn new(inner: Stream, timeouts: Timeouts) -> Timed {
        // (an HTTP/2 connection, by ALPN or h2c, is timed until its preface has arrived whole)
        let t = Timed {
            inner,
            timeouts,
            phase: AtomicU8::new(READING_HEAD),
            deadline: AtomicU64::new(0),
            base: Instant::now(),
            seen: 0,
            preface_possible: true,
            timer: None,
        };
        t.arm(timeouts.header);
        t
    }

    /// The connection under a Pingora session, when it is one of these.
    pub fn of(stream: Option<&Stream>) -> Option<&Timed> {
        stream.and_then(|s| (**s).as_any().downcast_ref::<Timed>())
    }

    fn arm(&self, after: Duration) {
        let at = self.base.elapsed().saturating_add(after);
        self.deadline.store(u64::try_from(at.as_nanos()).unwrap_or(u64::MAX), Relaxed);
    }

    /// A request head was parsed: its body is timed per read by Pingora, and nothing is timed
    /// while the upstream answers.
    pub fn head_done(&self) {
        if self.phase.load(Relaxed) != UNTIMED {
            self.phase.store(IN_EXCHANGE, Relaxed);
        }
    }

    /// The exchange ended: the connection may now wait `keepalive` for the next request.
    pub fn request_done(&self) {
        if self.phase.load(Relaxed) != UNTIMED {
            self.arm(self.timeouts.keepalive);
            self.phase.store(IDLE, Relaxed);
        }
    }

    /// On a pending read: `Ready` once the phase's deadline has passed.
    fn poll_deadline(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        let phase = self.phase.load(Relaxed);
        if phase == IN_EXCHANGE || phase == UNTIMED {
            return Poll::Pending;
        }
        let at = self.base + Duration::from_nanos(self.deadline.load(Relaxed));
        let at = tokio::time::Instant::from_std(at);
        match self.timer.as_mut() {
            Some(t) if t.deadline() == at => {}
            Some(t) => t.as_mut().reset(at),
            None => self.timer = Some(Box::pin(tokio::time::sleep_until(at))),
        }
        match self.timer.as_mut() {
            Some(t) => t.as_mut().poll(cx),
            None => Poll::Pending,
        }
    }
}

use std::future::Future;

const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

impl AsyncRead for Timed {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        match Pin::new(&mut self.inner).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                let got = &buf.filled()[before..];
                if !got.is_empty() {
                    // HTTP/2 (ALPN h2, or h2c): once its whole preface has come, its streams
                    // are timed by Pingora's HTTP/2 server (`h2_idle_timeout`). Compared byte
                    // by byte across reads, so a client cannot turn the timeouts off with a
                    // first read of `P`.
                    let seen = usize::try_from(self.seen).unwrap_or(usize::MAX);
                    if self.preface_possible && seen < H2_PREFACE.len() {
                        let n = got.len().min(H2_PREFACE.len() - seen);
                        if got[..n] != H2_PREFACE[seen..seen + n] {
                            self.preface_possible = false;
                        } else if seen + n == H2_PREFACE.len() {
                            self.phase.store(UNTIMED, Relaxed);
                        }
                    }
                    self.seen = self.seen.saturating_add(got.len() as u64);
                    if self.phase.load(Relaxed) == IDLE {
                        // the first byte of the next request: its head has `header` to arrive
                        self.arm(self.timeouts.header);
                        self.phase.store(READING_HEAD, Relaxed);
                    }
                }
                Poll::Ready(Ok(()))
            }
            Poll::Pending => match self.poll_deadline(cx) {
                Poll::Ready(()) => {
                    let what = if self.phase.load(Relaxed) == IDLE { "keepalive" } else { "client header" };
                    Poll::Ready(Err(std::io::Error::new(std::io::ErrorKind::TimedOut, format!("{what} timeout"))))
                }
                Poll::Pending => Poll::Pending,
            },
            other => other,
        }
    }
}

impl AsyncWrite for Timed {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }
    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

#[async_trait]
impl Shutdown for Timed {
    async fn shutdown(&mut self) {
        self.inner.shutdown().await;
    }
}

impl UniqueID for Timed {
    fn id(&self) -> UniqueIDType {
        self.inner.id()
    }
}

impl Ssl for Timed {
    fn get_ssl(&self) -> Option<&TlsRef> {
        self.inner.get_ssl()
    }
    fn get_ssl_digest(&self) -> Option<Arc<SslDigest>> {
        self.inner.get_ssl_digest()
    }
    fn selected_alpn_proto(&self) -> Option<ALPN> {
        self.inner.selected_alpn_proto()
    }
}

impl GetTimingDigest for Timed {
    fn get_timing_digest(&self) -> Vec<Option<TimingDigest>> {
        self.inner.get_timing_digest()
    }
    fn get_read_pending_time(&self) -> Duration {
        self.inner.get_read_pending_time()
    }
    fn get_write_pending_time(&self) -> Duration {
        self.inner.get_write_pending_time()
    }
}

impl GetProxyDigest for Timed {
    fn get_proxy_digest(&self) -> Option<Arc<ProxyDigest>> {
        self.inner.get_proxy_digest()
    }
    fn set_proxy_digest(&mut self, digest: ProxyDigest) {
        self.inner.set_proxy_digest(digest);
    }
}

impl GetSocketDigest for Timed {
    fn get_socket_digest(&self) -> Option<Arc<SocketDigest>> {
        self.inner.get_socket_digest()
    }
    fn set_socket_digest(&mut self, digest: SocketDigest) {
        self.inner.set_socket_digest(digest);
    }
}

#[async_trait]
impl Peek for Timed {
    /// Pingora peeks for the HTTP/2 preface before it reads a request (h2c listeners): a client
    /// that sends nothing is cut here by the header timeout.
    async fn try_peek(&mut self, buf: &mut [u8]) -> std::io::Result<bool> {
        let at = self.base + Duration::from_nanos(self.deadline.load(Relaxed));
        if self.phase.load(Relaxed) != READING_HEAD {
            return self.inner.try_peek(buf).await;
        }
        match tokio::time::timeout_at(tokio::time::Instant::from_std(at), self.inner.try_peek(buf)).await {
            Ok(r) => r,
            Err(_) => Err(std::io::Error::new(std::io::ErrorKind::TimedOut, "client header timeout")),
        }
    }
}
