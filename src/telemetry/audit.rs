//! Audit events: one JSON object per line for every request with findings or a block.
//!
//! An event never carries a raw value or a body: each finding has a masked `sample` and keyed
//! HMAC `fingerprints`, so the SOC can correlate the same value across departments without
//! seeing it. Writing never blocks a request: events go through a bounded queue to a writer
//! thread, and overflow is counted in `dlpgate_audit_dropped_total`.

use std::io::Write;
use std::net::{TcpStream, UdpSocket};
use std::os::unix::net::UnixDatagram;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};
use std::time::{Duration, Instant};

use serde::Serialize;

use super::Metrics;
use crate::config::Sink;

/// One finding summarised for the audit trail.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct AuditFinding {
    pub rule: String,
    pub category: String,
    pub level: String,
    pub action: String,
    pub count: u64,
    /// Masked preview of the first value, e.g. `410102********123X`.
    pub sample: String,
    /// Keyed fingerprints of distinct values (at most 16).
    pub fingerprints: Vec<String>,
    /// Where in a document the values were (`导出数据!C17`, `word/document.xml ¶3`; at most 16).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub locations: Vec<String>,
}

/// One audit event (schema documented in README.md, "Audit events").
#[derive(Debug, Clone, Serialize)]
pub struct AuditEvent {
    pub ts: String,
    /// `dlp.finding` (findings, nothing blocked) or `dlp.block`
    pub event: &'static str,
    pub incident: String,
    pub request_id: String,
    pub listener: String,
    pub route: String,
    pub department: String,
    pub client_ip: String,
    pub method: String,
    /// Path without the query string.
    pub path: String,
    pub direction: &'static str,
    /// The strongest action taken.
    pub action: String,
    pub status: u16,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The body was a document of this kind (`xlsx`, `docx`, `zip` …).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub document: Option<&'static str>,
    /// Its file name (from `Content-Disposition`), with any value the rules find in it masked.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub file: Option<String>,
    pub findings: Vec<AuditFinding>,
}

/// Handle to the audit writer thread; cheap to clone.
#[derive(Debug, Clone)]
pub struct AuditWriter {
    tx: Option<SyncSender<String>>,
    reopen: Arc<AtomicBool>,
}

impl AuditWriter {
    /// Start the writer thread for `sinks` with a queue of `queue` events. No sinks: events are
    /// dropped silently (and not counted as drops).
    pub fn start(sinks: Vec<Sink>, queue: usize) -> AuditWriter {
        let reopen = Arc::new(AtomicBool::new(false));
        if sinks.is_empty() {
            return AuditWriter { tx: None, reopen };
        }
        let (tx, rx) = sync_channel::<String>(queue.max(1));
        let r = reopen.clone();
        let spawned = std::thread::Builder::new().name("dlpgate-audit".into()).spawn(move || run(rx, sinks, r));
        if let Err(e) = spawned {
            tracing::error!(error = %e, "cannot start the audit writer; audit events will be dropped");
            return AuditWriter { tx: None, reopen };
        }
        AuditWriter { tx: Some(tx), reopen }
    }

    /// Whether any sink is configured.
    pub fn enabled(&self) -> bool {
        self.tx.is_some()
    }

    /// Queue an event; never blocks. A full queue drops the event and counts it.
    pub fn emit(&self, ev: &AuditEvent) {
        let Some(tx) = &self.tx else { return };
        let Ok(line) = serde_json::to_string(ev) else { return };
        match tx.try_send(line) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => Metrics::get().audit_dropped.inc(),
        }
    }

    /// Ask the writer to reopen file sinks (SIGUSR1, after log rotation).
    pub fn reopen(&self) {
        self.reopen.store(true, Ordering::SeqCst);
    }
}

enum Out {
    File { path: PathBuf, f: Option<std::fs::File>, ino: u64, checked: Instant },
    Stdout,
    Syslog(Syslog),
}

enum Syslog {
    Udp(UdpSocket),
    Tcp(String, Option<TcpStream>),
    Unix(String, UnixDatagram),
    Broken,
}

fn open_file(path: &PathBuf) -> (Option<std::fs::File>, u64) {
    use std::os::unix::fs::MetadataExt;
    match std::fs::OpenOptions::new().create(true).append(true).open(path) {
        Ok(f) => {
            let ino = f.metadata().map(|m| m.ino()).unwrap_or(0);
            (Some(f), ino)
        }
        Err(e) => {
            tracing::error!(path = %path.display(), error = %e, "cannot open audit file");
            (None, 0)
        }
    }
}

fn open_syslog(addr: &str) -> Syslog {
    if let Some(a) = addr.strip_prefix("udp://") {
        // bind the family of the target (an IPv6 collector needs an IPv6 socket)
        let local = if a.starts_with('[') { "[::]:0" } else { "0.0.0.0:0" };
        match UdpSocket::bind(local).and_then(|s| s.connect(a).map(|_| s)) {
            Ok(s) => return Syslog::Udp(s),
            Err(e) => tracing::error!(addr, error = %e, "cannot open syslog socket"),
        }
    } else if let Some(a) = addr.strip_prefix("tcp://") {
        return Syslog::Tcp(a.to_string(), None);
    } else if let Some(p) = addr.strip_prefix("unix://") {
        match UnixDatagram::unbound() {
            Ok(s) => return Syslog::Unix(p.to_string(), s),
            Err(e) => tracing::error!(addr, error = %e, "cannot open syslog socket"),
        }
    }
    Syslog::Broken
}

/// A TCP syslog connection with connect and write timeouts.
fn connect_tcp(addr: &str) -> Option<TcpStream> {
    use std::net::ToSocketAddrs;
    let target = addr.to_socket_addrs().ok()?.next()?;
    let s = TcpStream::connect_timeout(&target, Duration::from_secs(2)).ok()?;
    s.set_write_timeout(Some(Duration::from_secs(2))).ok()?;
    Some(s)
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname").map(|h| h.trim().to_string()).unwrap_or_else(|_| "-".into())
}

fn run(rx: Receiver<String>, sinks: Vec<Sink>, reopen: Arc<AtomicBool>) {
    let mut outs: Vec<Out> = sinks
        .into_iter()
        .map(|s| match s {
            Sink::File(path) => {
                let (f, ino) = open_file(&path);
                Out::File { path, f, ino, checked: Instant::now() }
            }
            Sink::Stdout => Out::Stdout,
            Sink::Syslog(a) => Out::Syslog(open_syslog(&a)),
        })
        .collect();
    let host = hostname();
    let pid = std::process::id();
    let m = Metrics::get();
    while let Ok(line) = rx.recv() {
        let force = reopen.swap(false, Ordering::SeqCst);
        let mut ok = true;
        for o in outs.iter_mut() {
            ok &= write_one(o, &line, force, &host, pid);
        }
        if ok {
            m.audit_events.inc();
        } else {
            m.audit_dropped.inc();
        }
    }
}

fn write_one(o: &mut Out, line: &str, force_reopen: bool, host: &str, pid: u32) -> bool {
    match o {
        Out::File { path, f, ino, checked } => {
            // reopen on SIGUSR1, or when the file was rotated away or could not be opened (checked
            // once a second, so a file that cannot be opened is not retried and logged per event)
            if force_reopen || checked.elapsed() > Duration::from_secs(1) {
                *checked = Instant::now();
                use std::os::unix::fs::MetadataExt;
                let current = std::fs::metadata(&*path).map(|m| m.ino()).ok();
                if force_reopen || f.is_none() || current != Some(*ino) {
                    let (nf, ni) = open_file(path);
                    *f = nf;
                    *ino = ni;
                }
            }
            // one write per line: another process appending to the same file (the old one
            // during a graceful upgrade) cannot land between a line and its newline
            match f {
                Some(file) => file.write_all(format!("{line}\n").as_bytes()).is_ok(),
                None => false,
            }
        }
        Out::Stdout => writeln!(std::io::stdout().lock(), "{line}").is_ok(),
        Out::Syslog(s) => {
            // RFC 5424: facility local0 (16), severity notice (5) → PRI 133
            let msg =
                format!("<133>1 {} {host} dlpgate {pid} audit - {line}", super::rfc3339(std::time::SystemTime::now()));
            match s {
                Syslog::Udp(sock) => sock.send(msg.as_bytes()).is_ok(),
                Syslog::Unix(path, sock) => sock.send_to(msg.as_bytes(), &*path).is_ok(),
                Syslog::Tcp(addr, stream) => {
                    if stream.is_none() {
                        // bounded: a collector that stops reading must not stall the other sinks
                        *stream = connect_tcp(addr);
                    }
                    // octet-counting framing (RFC 6587)
                    let framed = format!("{} {msg}", msg.len());
                    let ok = stream.as_mut().is_some_and(|st| st.write_all(framed.as_bytes()).is_ok());
                    if !ok {
                        *stream = None;
                    }
                    ok
                }
                Syslog::Broken => false,
            }
        }
    }
}
