//! Snapshot → Pingora server: listeners, admin, background tasks (health checks, signals), and
//! reload (build a complete new snapshot, swap one `ArcSwap`, keep the old one on any error).

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use pingora::apps::HttpServerOptions;
use pingora::listeners::{L4BufferSettings, ListenerConfig, TcpSocketOptions};
use pingora::server::ShutdownWatch;
use pingora::server::configuration::{Opt, ServerConf};
use pingora::services::background::{BackgroundService, background_service};
use pingora::services::listening::Service;

use super::conn::ClientTimeouts;
use super::proxy::Gateway;
use super::state::{Active, Store};
use crate::config::{self};
use crate::telemetry::AuditWriter;

/// Read buffer of a client connection. Pingora's default is 64 KiB per connection, held for the
/// connection's life. Request heads and bodies are read into buffers of their own, so a plain
/// connection reads through unbuffered (a stream waiting on a slow client holds none); rustls
/// reads at most 4 KiB at a time, so a TLS connection keeps a record's worth (16 KiB) to read
/// from rather than a system call each 4 KiB.
fn client_read_buffer(tls: bool) -> usize {
    if tls { 16 << 10 } else { 0 }
}

/// SIGHUP → reload; SIGUSR1 → reopen audit files.
struct Signals {
    store: Store,
    audit: AuditWriter,
}

#[async_trait]
impl BackgroundService for Signals {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        use tokio::signal::unix::{SignalKind, signal};
        let (Ok(mut hup), Ok(mut usr1)) = (signal(SignalKind::hangup()), signal(SignalKind::user_defined1())) else {
            tracing::error!("cannot install SIGHUP/SIGUSR1 handlers");
            return;
        };
        loop {
            tokio::select! {
                _ = hup.recv() => {
                    let store = self.store.clone();
                    let _ = tokio::task::spawn_blocking(move || store.reload()).await;
                }
                _ = usr1.recv() => self.audit.reopen(),
                _ = shutdown.changed() => return,
            }
        }
    }
}

/// Take over SIGHUP and SIGUSR1 before anything else: their default action ends the process,
/// and `systemctl reload` or logrotate may send them while the rules are still compiling. Tokio
/// keeps a signal's handler installed for the life of the process once it is registered, so one
/// registration here covers the start-up; the background service listens for them afterwards.
fn hold_reload_signals() -> anyhow::Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let rt = tokio::runtime::Builder::new_current_thread().enable_io().build()?;
    rt.block_on(async {
        drop(signal(SignalKind::hangup())?);
        drop(signal(SignalKind::user_defined1())?);
        Ok::<(), std::io::Error>(())
    })?;
    Ok(())
}

/// Shared quota counters: every `sync_ms`, what this replica counted goes to Redis and what the
/// others counted comes back ([`super::quota_store`]); crossings seen here are reported.
struct QuotaSync {
    store: Store,
    quotas: Arc<super::quota::Counters>,
    audit: AuditWriter,
}

#[async_trait]
impl BackgroundService for QuotaSync {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        let Some(shared) = self.quotas.shared() else { return };
        shared.connect().await;
        loop {
            let snap = self.store.load();
            for (id, dept, total, event) in shared.sync(&snap.quotas).await {
                if let Some(q) = snap.quotas.iter().find(|q| q.id == id) {
                    super::quota::report_crossing(&self.audit, q, &dept, total, event);
                }
            }
            tokio::select! {
                _ = tokio::time::sleep(shared.conf.sync) => {}
                _ = shutdown.changed() => {
                    // what was counted since the last sync is not lost with the process
                    let _ = shared.sync(&self.store.load().quotas).await;
                    return;
                }
            }
        }
    }
}

/// TCP health checks of every upstream address of the active snapshot.
struct HealthCheck {
    store: Store,
}

#[async_trait]
impl BackgroundService for HealthCheck {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        loop {
            let active = self.store.load();
            let mut wait = Duration::from_secs(5);
            // every address at once: a black-holed one must not delay the others' checks
            let mut probes = tokio::task::JoinSet::new();
            for (r, (route, pool)) in active.routes.iter().zip(active.pools.iter()).enumerate() {
                if route.upstream.health_check_interval.is_zero() {
                    continue;
                }
                wait = wait.min(route.upstream.health_check_interval);
                for (k, addr) in pool.addrs.iter().copied().enumerate() {
                    let timeout = route.upstream.connect_timeout;
                    probes.spawn(async move {
                        let ok = matches!(
                            tokio::time::timeout(timeout, tokio::net::TcpStream::connect(addr)).await,
                            Ok(Ok(_))
                        );
                        (r, k, ok)
                    });
                }
            }
            while let Some(Ok((r, k, ok))) = probes.join_next().await {
                let (Some(route), Some(pool)) = (active.routes.get(r), active.pools.get(r)) else { continue };
                let (Some(addr), Some(healthy)) = (pool.addrs.get(k), pool.healthy.get(k)) else { continue };
                let was = healthy.swap(ok, std::sync::atomic::Ordering::Relaxed);
                if was != ok {
                    tracing::warn!(route = %route.id, upstream = %addr, healthy = ok, "upstream health changed");
                }
            }
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = shutdown.changed() => return,
            }
        }
    }
}

/// The address Pingora binds for event loop `i` of a listener. Pingora keys inherited sockets
/// (graceful upgrade) by this string, so each loop's socket needs its own key: loop `i` writes the
/// port with `i` leading zeros, which parses to the same address (`127.0.0.1:08080`). An upgrade
/// to fewer threads closes the sockets no loop claims.
fn listen_key(addr: std::net::SocketAddr, i: usize) -> String {
    let s = addr.to_string();
    let colon = s.rfind(':').map_or(0, |c| c + 1);
    format!("{}{}{}", &s[..colon], "0".repeat(i), &s[colon..])
}

/// Options for [`run_server`].
#[derive(Debug, Default)]
pub struct RunOptions {
    /// Take over listening sockets from a running instance (graceful binary upgrade).
    pub upgrade: bool,
}

/// Load the config, build the Pingora server and run it until shutdown.
pub fn run_server(path: &Path, opts: RunOptions) -> anyhow::Result<()> {
    hold_reload_signals()?;
    // ring and RFC 8998 for every TLS configuration Pingora builds, listeners and upstreams
    crate::guomi::install();
    let snap = config::load(path).map_err(|e| anyhow::anyhow!("{e}"))?;
    crate::telemetry::init_logging(&snap.logging);
    let active = Active::new(snap).map_err(|errs| {
        let lines: Vec<String> = errs.iter().map(|e| format!("{}: {e}", path.display())).collect();
        anyhow::anyhow!("{}", lines.join("\n"))
    })?;
    super::state::loaded(&active);

    let conf = ServerConf {
        threads: active.server.threads,
        pid_file: active.server.pid_file.clone(),
        upgrade_sock: active.server.upgrade_sock.clone(),
        grace_period_seconds: Some(active.server.grace_period_seconds),
        graceful_shutdown_timeout_seconds: Some(active.server.graceful_shutdown_timeout_seconds),
        work_stealing: active.server.work_stealing,
        ..ServerConf::default()
    };
    let opt = Opt { upgrade: opts.upgrade, daemon: false, nocapture: false, test: false, conf: None };
    let mut server = pingora::server::Server::new_with_opt_and_conf(opt, conf);
    server.bootstrap();

    let audit = AuditWriter::start(active.audit.sinks.clone(), active.audit.queue);
    let listeners = active.listeners.clone();
    let admin_addr = active.admin.addr;
    let (threads, work_stealing) = (active.server.threads, active.server.work_stealing);
    let store = Store::new(path.to_path_buf(), active);

    if !opts.upgrade {
        // The listeners below set SO_REUSEPORT, which would let this process silently share a
        // port with one already running; a plain bind first makes that the usual clear error.
        for l in &listeners {
            std::net::TcpListener::bind(l.addr)
                .map_err(|e| anyhow::anyhow!("listener {}: cannot listen on {}: {e}", l.name, l.addr))?;
        }
    }
    let quotas = Arc::new(super::quota::Counters::new(store.load().cluster.as_ref()).map_err(anyhow::Error::msg)?);
    for l in &listeners {
        // Without work stealing, each thread is its own event loop with its own listening socket
        // (SO_REUSEPORT): a connection is accepted, registered and served on one thread. One
        // Pingora service with N threads would accept on one thread and hand each connection to
        // a random one, so every readiness event would cross threads (an eventfd write and a
        // wake-up per event), which measured a third slower than a single thread.
        let loops = if work_stealing { 1 } else { threads };
        for i in 0..loops {
            let gw = Gateway {
                store: store.clone(),
                audit: audit.clone(),
                quotas: quotas.clone(),
                conns: Default::default(),
            };
            let mut proxy = pingora::proxy::http_proxy(&server.configuration, gw);
            let mut o = HttpServerOptions::default();
            o.h2c = l.h2 && l.tls.is_none();
            // an HTTP/2 connection with no stream open is closed as an idle HTTP/1 one is
            let idle = if l.timeouts.keepalive.is_zero() { l.timeouts.header } else { l.timeouts.keepalive };
            o.h2_idle_timeout = Some(idle);
            proxy.server_options = Some(o);
            let app = ClientTimeouts { app: Arc::new(proxy), store: store.clone(), listener: l.name.clone() };
            let mut svc = Service::new(format!("dlpgate {}", l.name), app);
            let mut sock = TcpSocketOptions::default();
            if !work_stealing {
                svc.threads = Some(1);
                sock.so_reuseport = Some(true);
            }
            let addr = listen_key(l.addr, i);
            let mut endpoint = ListenerConfig::tcp(addr.as_str())
                .tcp_socket_options(sock)
                .l4_buffer(L4BufferSettings::default().read(client_read_buffer(l.tls.is_some())));
            if let Some(t) = &l.tls {
                let settings = super::listener_tls::settings(t, l.h2, &store, &l.name)
                    .map_err(|e| anyhow::anyhow!("listener {}: {e}", l.name))?;
                endpoint = endpoint.tls(settings);
            }
            svc.add_listener(endpoint);
            server.add_service(svc);
        }
    }
    let mut admin = Service::new("dlpgate admin".into(), super::admin::Admin { store: store.clone() });
    admin.threads = Some(1);
    admin.add_tcp(&admin_addr.to_string());
    server.add_service(admin);
    let audit_for_sync = audit.clone();
    server.add_service(background_service("dlpgate signals", Signals { store: store.clone(), audit }));
    if quotas.shared().is_some() {
        let sync = QuotaSync { store: store.clone(), quotas, audit: audit_for_sync };
        server.add_service(background_service("dlpgate quota sync", sync));
    }
    server.add_service(background_service("dlpgate health checks", HealthCheck { store }));
    tracing::info!(config = %path.display(), "dlpgate starting");
    server.run_forever()
}
