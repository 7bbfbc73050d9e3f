//! Snapshot → Pingora server: listeners, admin, background tasks (health checks, signals), and
//! reload (build a complete new snapshot, swap one `ArcSwap`, keep the old one on any error).

use std::ops::Deref;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use arc_swap::ArcSwap;
use async_trait::async_trait;
use pingora::apps::HttpServerOptions;
use pingora::listeners::TcpSocketOptions;
use pingora::server::ShutdownWatch;
use pingora::server::configuration::{Opt, ServerConf};
use pingora::services::background::{BackgroundService, background_service};
use pingora::services::listening::Service;

use super::proxy::Gateway;
use crate::config::{self, Snapshot};
use crate::telemetry::{AuditWriter, Metrics};

/// Upstream CA lists per route, in Pingora's type.
pub type CaList = Arc<pingora::protocols::tls::CaType>;

/// The active configuration plus what the gateway derived from it.
#[derive(Debug)]
pub struct Active {
    pub snap: Snapshot,
    pub cas: Vec<Option<CaList>>,
    /// Listener name → certificate and key (served by `tls::ReloadableCert`).
    pub certs: std::collections::HashMap<String, Arc<pingora::tls::sign::CertifiedKey>>,
    /// Listener name → client-certificate verifier, if it asks for one (`tls::ReloadableVerifier`).
    pub verifiers: std::collections::HashMap<String, Arc<dyn pingora::tls::ClientCertVerifier>>,
    /// Per route: upstream addresses with health and round-robin state.
    pub pools: Vec<Arc<super::pool::Pool>>,
}

impl Deref for Active {
    type Target = Snapshot;
    fn deref(&self) -> &Snapshot {
        &self.snap
    }
}

/// A problem found while the gateway's own state is built from a snapshot (certificates, keys,
/// CA bundles): where (a listener or route) and what, with the file in the message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadError {
    /// `listener NAME` or `route ID`
    pub place: String,
    pub msg: String,
}

impl std::fmt::Display for LoadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.place, self.msg)
    }
}

impl Active {
    /// Derive gateway state (certificates, client verifiers, upstream CA lists, pools) from a
    /// snapshot. Every listener and route is tried, and every problem returned.
    pub fn new(snap: Snapshot) -> Result<Active, Vec<LoadError>> {
        let mut errs = Vec::new();
        let mut cas = Vec::new();
        for r in &snap.routes {
            cas.push(match r.upstream.ca_file.as_deref().map(load_ca_list) {
                None => None,
                Some(Ok(list)) => Some(list),
                Some(Err(msg)) => {
                    errs.push(LoadError { place: format!("route {}", r.id), msg });
                    None
                }
            });
        }
        let mut certs = std::collections::HashMap::new();
        let mut verifiers = std::collections::HashMap::new();
        for l in &snap.listeners {
            let Some(t) = &l.tls else { continue };
            let place = || format!("listener {}", l.name);
            match super::tls::certified_key(&t.cert, &t.key) {
                Ok(ck) => {
                    certs.insert(l.name.clone(), ck);
                }
                Err(msg) => errs.push(LoadError { place: place(), msg }),
            }
            match super::tls::client_verifier(t) {
                Ok(Some(v)) => {
                    verifiers.insert(l.name.clone(), v);
                }
                Ok(None) => {}
                Err(msg) => errs.push(LoadError { place: place(), msg }),
            }
        }
        if !errs.is_empty() {
            return Err(errs);
        }
        let pools = snap.routes.iter().map(|r| Arc::new(super::pool::Pool::new(r.upstream.addrs.clone()))).collect();
        Ok(Active { snap, cas, certs, verifiers, pools })
    }
}

/// The certificates of a CA bundle, each checked to parse (Pingora's parser panics on bad DER).
fn load_ca_list(path: &Path) -> Result<CaList, String> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;
    let ders: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(path)
        .and_then(Iterator::collect)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    if ders.is_empty() {
        return Err(format!("{}: no PEM certificate found", path.display()));
    }
    let mut list = Vec::new();
    for der in ders {
        if x509_parser::parse_x509_certificate(&der).is_err() {
            return Err(format!("{}: invalid certificate", path.display()));
        }
        list.push(pingora::utils::tls::WrappedX509::new(der.to_vec(), pingora::utils::tls::parse_x509));
    }
    Ok(Arc::from(list.into_boxed_slice()))
}

/// The one place the active configuration lives. Requests take an `Arc` at their start and keep
/// it to the end, so in-flight requests finish on the snapshot they started with.
#[derive(Clone, Debug)]
pub struct Store {
    inner: Arc<ArcSwap<Active>>,
    path: PathBuf,
    reload_lock: Arc<std::sync::Mutex<()>>,
}

impl Store {
    pub fn new(path: PathBuf, active: Active) -> Store {
        Store { inner: Arc::new(ArcSwap::from_pointee(active)), path, reload_lock: Arc::new(std::sync::Mutex::new(())) }
    }

    pub fn load(&self) -> Arc<Active> {
        self.inner.load_full()
    }

    /// Build a complete new snapshot from the config file and swap it in. On any error the old
    /// snapshot keeps serving and every problem is returned.
    pub fn reload(&self) -> Result<(), Vec<String>> {
        let _guard = self.reload_lock.lock().unwrap_or_else(|p| p.into_inner());
        let m = Metrics::get();
        let built = config::load(&self.path)
            .map_err(|e| e.0.iter().map(ToString::to_string).collect::<Vec<_>>())
            .and_then(|s| Active::new(s).map_err(|e| e.iter().map(ToString::to_string).collect()));
        match built {
            Ok(a) => {
                m.rules_loaded.set(a.rules.rules().len() as i64);
                self.inner.store(Arc::new(a));
                m.config_reloads.with_label_values(&["success"]).inc();
                m.last_reload_success.set(now_secs());
                tracing::info!(config = %self.path.display(), "configuration reloaded");
                Ok(())
            }
            Err(errs) => {
                m.config_reloads.with_label_values(&["error"]).inc();
                for e in &errs {
                    tracing::error!(error = %e, "reload refused; the previous configuration keeps serving");
                }
                Err(errs)
            }
        }
    }
}

fn now_secs() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0)
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
    let snap = config::load(path).map_err(|e| anyhow::anyhow!("{e}"))?;
    crate::telemetry::init_logging(&snap.logging);
    let active = Active::new(snap).map_err(|errs| {
        let lines: Vec<String> = errs.iter().map(|e| format!("{}: {e}", path.display())).collect();
        anyhow::anyhow!("{}", lines.join("\n"))
    })?;
    let m = Metrics::get();
    m.rules_loaded.set(active.rules.rules().len() as i64);
    m.config_reloads.with_label_values(&["success"]).inc();
    m.last_reload_success.set(now_secs());

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
    let quotas = Arc::new(super::quota::Counters::default());
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
                connector: pingora::connectors::http::Connector::new(None),
            };
            let mut svc =
                pingora::proxy::http_proxy_service_with_name(&server.configuration, gw, &format!("dlpgate {}", l.name));
            let mut sock = TcpSocketOptions::default();
            if !work_stealing {
                svc.threads = Some(1);
                sock.so_reuseport = Some(true);
            }
            let addr = listen_key(l.addr, i);
            match &l.tls {
                Some(t) => {
                    let settings = super::tls::settings(t, l.h2, &store, &l.name)
                        .map_err(|e| anyhow::anyhow!("listener {}: {e}", l.name))?;
                    svc.add_tls_with_settings(&addr, Some(sock), settings);
                }
                None => {
                    if l.h2 {
                        let mut o = HttpServerOptions::default();
                        o.h2c = true;
                        if let Some(app) = svc.app_logic_mut() {
                            app.server_options = Some(o);
                        }
                    }
                    svc.add_tcp_with_settings(&addr, sock);
                }
            }
            server.add_service(svc);
        }
    }
    let mut admin = Service::new("dlpgate admin".into(), super::admin::Admin { store: store.clone() });
    admin.threads = Some(1);
    admin.add_tcp(&admin_addr.to_string());
    server.add_service(admin);
    server.add_service(background_service("dlpgate signals", Signals { store: store.clone(), audit }));
    server.add_service(background_service("dlpgate health checks", HealthCheck { store }));
    tracing::info!(config = %path.display(), "dlpgate starting");
    server.run_forever()
}
