//! The active configuration: one [`Store`] holding an `Arc<Active>` behind an `ArcSwap`, the
//! gateway state derived from a snapshot (certificates, verifiers, CA lists, pools), and reload
//! (build a complete new one, swap it, keep the old one on any error).

use std::ops::Deref;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};
use std::time::{SystemTime, UNIX_EPOCH};

use arc_swap::ArcSwap;

use crate::config::{self, Snapshot};
use crate::telemetry::Metrics;

/// Upstream CA lists per route, in Pingora's type.
pub type CaList = Arc<pingora::protocols::tls::CaType>;

/// The active configuration plus what the gateway derived from it.
#[derive(Debug)]
pub struct Active {
    pub snap: Snapshot,
    pub cas: Vec<Option<CaList>>,
    /// Listener name → certificate and key (served by `tls::ReloadableCert`).
    pub certs: std::collections::HashMap<String, Arc<pingora::tls::sign::CertifiedKey>>,
    /// Listener name → SM2 certificate and key, for 国密 clients (`guomi` prefer or only).
    pub sm2_certs: std::collections::HashMap<String, Arc<pingora::tls::sign::CertifiedKey>>,
    /// Listener name → client-certificate verifier, if it asks for one (`tls::ReloadableVerifier`).
    pub verifiers: std::collections::HashMap<String, Arc<dyn pingora::tls::ClientCertVerifier>>,
    /// Per route: upstream addresses with health and round-robin state.
    pub pools: Vec<Arc<super::pool::Pool>>,
    /// The request series of every route and department, resolved once.
    pub series: RequestSeries,
}

/// The request, duration and findings series of a configuration's routes, departments and rules,
/// each looked up by label the first time it counts and then held: a request adds to its own
/// series by index (a label lookup hashes every label and takes a lock, for each request). Series
/// that never count are never created here (`loaded` creates the ones shown at zero).
#[derive(Debug)]
pub struct RequestSeries {
    departments: usize,
    /// per route, then per department, then per status class in [`STATUS_CLASSES`] order
    requests: Box<[OnceLock<prometheus::IntCounter>]>,
    /// per route
    duration: Box<[OnceLock<prometheus::Histogram>]>,
    /// per rule, direction, action and department
    findings: Box<[OnceLock<prometheus::IntCounter>]>,
}

/// Actions, in the order of their slots in [`RequestSeries::findings`].
const ACTIONS: usize = 6;

/// At most this many findings series are held (a slot is a few dozen bytes): past it, thousands
/// of rules and departments, findings are counted by label.
const MAX_FINDING_SLOTS: usize = 1 << 17;

/// The status classes of `dlpgate_requests_total`, as `status_class` names them.
const STATUS_CLASSES: [&str; 6] = ["1xx", "2xx", "3xx", "4xx", "5xx", "other"];

fn slots<T>(n: usize) -> Box<[OnceLock<T>]> {
    (0..n).map(|_| OnceLock::new()).collect()
}

impl RequestSeries {
    fn new(snap: &Snapshot) -> RequestSeries {
        let departments = snap.departments.len();
        let findings = snap.rules.rules().len() * 2 * ACTIONS * departments;
        RequestSeries {
            departments,
            requests: slots(snap.routes.len() * departments * STATUS_CLASSES.len()),
            duration: slots(snap.routes.len()),
            findings: slots(if findings <= MAX_FINDING_SLOTS { findings } else { 0 }),
        }
    }

    /// The counter of findings of `rule` in `dir` on which `action` was taken, from `department`.
    pub fn findings(
        &self,
        snap: &Snapshot,
        rule: usize,
        dir: crate::policy::Direction,
        action: crate::engine::Action,
        department: usize,
    ) -> Option<&prometheus::IntCounter> {
        use crate::engine::Action;
        let a = match action {
            Action::Allow => 0,
            Action::Alert => 1,
            Action::Mask => 2,
            Action::Redact => 3,
            Action::Hash => 4,
            Action::Block => 5,
        };
        let d = usize::from(dir == crate::policy::Direction::Response);
        let r = snap.rules.rules().get(rule)?;
        let dept = snap.departments.get(department)?;
        let slot = self.findings.get(((rule * 2 + d) * ACTIONS + a) * self.departments + department)?;
        Some(slot.get_or_init(|| {
            Metrics::get().findings.with_label_values(&[
                &r.id,
                r.level.as_str(),
                dir.as_str(),
                dept.id.as_str(),
                action.as_str(),
            ])
        }))
    }

    /// The counter of requests on `route` from `department` that ended with `status`.
    pub fn requests(
        &self,
        snap: &Snapshot,
        route: usize,
        department: usize,
        status: u16,
    ) -> Option<&prometheus::IntCounter> {
        let class = crate::telemetry::metrics::status_class(status);
        let c = STATUS_CLASSES.iter().position(|s| *s == class)?;
        let (r, d) = (snap.routes.get(route)?, snap.departments.get(department)?);
        let slot = self.requests.get((route * self.departments + department) * STATUS_CLASSES.len() + c)?;
        Some(slot.get_or_init(|| Metrics::get().requests.with_label_values(&[r.id.as_str(), d.id.as_str(), class])))
    }

    /// The duration histogram of requests on `route`.
    pub fn duration(&self, snap: &Snapshot, route: usize) -> Option<&prometheus::Histogram> {
        let r = snap.routes.get(route)?;
        let slot = self.duration.get(route)?;
        Some(slot.get_or_init(|| Metrics::get().request_duration.with_label_values(&[r.id.as_str()])))
    }
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
        let mut sm2_certs = std::collections::HashMap::new();
        let mut verifiers = std::collections::HashMap::new();
        for l in &snap.listeners {
            let Some(t) = &l.tls else { continue };
            let place = || format!("listener {}", l.name);
            let is_sm2 = |ck: &pingora::tls::sign::CertifiedKey| ck.key.algorithm() == crate::guomi::SM2_ALGORITHM;
            match super::tls::certified_key(&t.cert, &t.key) {
                Ok(ck) if is_sm2(&ck) => errs.push(LoadError {
                    place: place(),
                    msg: format!(
                        "{}: an SM2 certificate: give it as sm2_cert (with guomi: prefer or only)",
                        t.cert.display()
                    ),
                }),
                Ok(ck) => {
                    certs.insert(l.name.clone(), ck);
                }
                Err(msg) => errs.push(LoadError { place: place(), msg }),
            }
            if let Some((c2, k2)) = &t.sm2 {
                match super::tls::sm2_certified_key(c2, k2) {
                    Ok(ck) if is_sm2(&ck) => {
                        sm2_certs.insert(l.name.clone(), ck);
                    }
                    Ok(_) => errs.push(LoadError {
                        place: place(),
                        msg: format!("{}: sm2_cert must be an SM2 certificate with an SM2 key", c2.display()),
                    }),
                    Err(msg) => errs.push(LoadError { place: place(), msg }),
                }
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
        let series = RequestSeries::new(&snap);
        Ok(Active { snap, cas, certs, sm2_certs, verifiers, pools, series })
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
                loaded(&a);
                self.inner.store(Arc::new(a));
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

/// A configuration was loaded (at start or by a reload): the gauges, and every series of a known
/// label set created at zero, so that dashboards show 0 rather than "no data" and `rate()` alerts
/// can fire on the first increase.
pub fn loaded(a: &Active) {
    use super::inspect::Uninspectable;
    let m = Metrics::get();
    m.rules_loaded.set(a.rules.rules().len() as i64);
    m.config_reloads.with_label_values(&["success"]).inc();
    m.config_reloads.with_label_values(&["error"]);
    m.last_reload_success.set(now_secs());
    for reason in ["unknown_api_key", "unrecognised"] {
        m.identity_failures.with_label_values(&[reason]);
    }
    for dir in ["request", "response"] {
        m.inspected_bytes.with_label_values(&[dir]);
    }
    let mut reasons: Vec<&str> = Uninspectable::ALL.iter().map(|u| u.label()).collect();
    reasons.sort_unstable();
    reasons.dedup();
    for r in &a.routes {
        for reason in &reasons {
            m.uninspected.with_label_values(&[r.id.as_str(), reason]);
        }
        for kind in super::respond::UPSTREAM_ERROR_KINDS {
            m.upstream_errors.with_label_values(&[r.id.as_str(), kind]);
        }
        for d in &a.departments {
            for class in ["2xx", "4xx", "5xx"] {
                m.requests.with_label_values(&[r.id.as_str(), d.id.as_str(), class]);
            }
            for dir in ["request", "response"] {
                m.blocked.with_label_values(&[r.id.as_str(), d.id.as_str(), dir, "dlp_rule"]);
            }
        }
    }
    if a.cluster.is_some() {
        for op in ["sync", "read"] {
            m.quota_store_errors.with_label_values(&[op]);
        }
    }
    for q in &a.quotas {
        for d in &a.departments {
            m.quota_exceeded.with_label_values(&[q.id.as_str(), d.id.as_str()]);
        }
    }
}

pub(crate) fn now_secs() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::Action;
    use crate::policy::Direction;

    #[test]
    fn each_rule_direction_action_and_department_has_its_own_findings_series() {
        let dir = std::env::temp_dir().join(format!("dlpgate-series-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let path = dir.join("dlpgate.yaml");
        std::fs::write(
            &path,
            "listeners: [{name: l, addr: \"127.0.0.1:18999\"}]\n\
             policies: [{id: p}]\n\
             routes: [{id: r, path_prefix: /, policy: p, upstream: {addrs: [\"127.0.0.1:9\"]}}]\n",
        )
        .expect("config");
        let a = Active::new(config::load(&path).expect("load")).expect("active");
        let s = &a.series;
        let dept = a.unknown.0;
        let c = |rule, dir, action| s.findings(&a, rule, dir, action, dept).expect("series").clone();
        let others = || {
            [
                c(0, Direction::Request, Action::Mask),
                c(0, Direction::Response, Action::Redact),
                c(1, Direction::Response, Action::Mask),
            ]
            .map(|o| o.get())
        };
        // (the registry is the process's: compared before and after, not with zero)
        let (before, others_before) = (c(0, Direction::Response, Action::Mask).get(), others());
        c(0, Direction::Response, Action::Mask).inc_by(5);
        // the same series again; any other coordinate is another series
        assert_eq!(c(0, Direction::Response, Action::Mask).get(), before + 5);
        assert_eq!(others(), others_before);
        assert!(s.findings(&a, a.rules.rules().len(), Direction::Response, Action::Mask, dept).is_none());
        assert!(s.findings(&a, 0, Direction::Response, Action::Mask, a.departments.len()).is_none());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
