//! Prometheus families, registered once in a process-wide registry.

use std::sync::OnceLock;

use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry, TextEncoder,
};

/// Every metric family of DESIGN §7 (plus audit queue health).
#[derive(Debug)]
pub struct Metrics {
    pub registry: Registry,
    pub requests: IntCounterVec,
    pub request_duration: HistogramVec,
    pub findings: IntCounterVec,
    pub blocked: IntCounterVec,
    pub quota_exceeded: IntCounterVec,
    pub inspected_bytes: IntCounterVec,
    pub uninspected: IntCounterVec,
    pub scan_duration: HistogramVec,
    pub upstream_errors: IntCounterVec,
    pub identity_failures: IntCounterVec,
    pub tls_handshakes: IntCounterVec,
    pub quota_store_errors: IntCounterVec,
    pub quota_store_up: IntGauge,
    pub config_reloads: IntCounterVec,
    pub last_reload_success: IntGauge,
    pub rules_loaded: IntGauge,
    pub build_info: IntGaugeVec,
    pub audit_events: IntCounter,
    pub audit_dropped: IntCounter,
}

fn counter(r: &Registry, name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    let c = IntCounterVec::new(Opts::new(name, help), labels).unwrap_or_else(|e| panic!("metric {name}: {e}"));
    let _ = r.register(Box::new(c.clone()));
    c
}

fn histogram(r: &Registry, name: &str, help: &str, labels: &[&str], buckets: Vec<f64>) -> HistogramVec {
    let h = HistogramVec::new(HistogramOpts::new(name, help).buckets(buckets), labels)
        .unwrap_or_else(|e| panic!("metric {name}: {e}"));
    let _ = r.register(Box::new(h.clone()));
    h
}

impl Metrics {
    /// The process-wide metrics (created on first use).
    ///
    /// # Panics
    /// Only if a family definition above is invalid, which the unit test rules out.
    pub fn get() -> &'static Metrics {
        static M: OnceLock<Metrics> = OnceLock::new();
        M.get_or_init(Metrics::new)
    }

    fn new() -> Metrics {
        let r = Registry::new();
        let lat = vec![0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];
        let scan = vec![0.00001, 0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.05, 0.1];
        let last = IntGauge::new(
            "dlpgate_config_last_reload_success_timestamp_seconds",
            "Unix time of the last successful config load",
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let _ = r.register(Box::new(last.clone()));
        let rules =
            IntGauge::new("dlpgate_rules_loaded", "Rules in the active rule set").unwrap_or_else(|e| panic!("{e}"));
        let _ = r.register(Box::new(rules.clone()));
        let build = IntGaugeVec::new(Opts::new("dlpgate_build_info", "Build information"), &["version"])
            .unwrap_or_else(|e| panic!("{e}"));
        let _ = r.register(Box::new(build.clone()));
        build.with_label_values(&[env!("CARGO_PKG_VERSION")]).set(1);
        let store_up = IntGauge::new(
            "dlpgate_quota_store_up",
            "1 while the shared quota store (cluster.redis) answers, 0 while it does not",
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let _ = r.register(Box::new(store_up.clone()));
        let audit_events =
            IntCounter::new("dlpgate_audit_events_total", "Audit events written").unwrap_or_else(|e| panic!("{e}"));
        let _ = r.register(Box::new(audit_events.clone()));
        let audit_dropped = IntCounter::new(
            "dlpgate_audit_dropped_total",
            "Audit events dropped because the queue was full or a sink failed",
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let _ = r.register(Box::new(audit_dropped.clone()));
        Metrics {
            requests: counter(
                &r,
                "dlpgate_requests_total",
                "Requests handled",
                &["route", "department", "status_class"],
            ),
            request_duration: histogram(&r, "dlpgate_request_duration_seconds", "Request duration", &["route"], lat),
            findings: counter(
                &r,
                "dlpgate_findings_total",
                "Sensitive values found",
                &["rule", "level", "direction", "department", "action"],
            ),
            blocked: counter(
                &r,
                "dlpgate_blocked_total",
                "Requests or responses blocked",
                &["route", "department", "direction", "reason"],
            ),
            quota_exceeded: counter(
                &r,
                "dlpgate_quota_exceeded_total",
                "Times a department crossed a quota's limit of values received in clear",
                &["quota", "department"],
            ),
            inspected_bytes: counter(&r, "dlpgate_inspected_bytes_total", "Body bytes scanned", &["direction"]),
            uninspected: counter(
                &r,
                "dlpgate_uninspected_total",
                "Bodies passed without inspection",
                &["route", "reason"],
            ),
            scan_duration: histogram(
                &r,
                "dlpgate_scan_duration_seconds",
                "Time spent scanning per body",
                &["direction"],
                scan,
            ),
            upstream_errors: counter(&r, "dlpgate_upstream_errors_total", "Upstream failures", &["route", "kind"]),
            identity_failures: counter(
                &r,
                "dlpgate_identity_failures_total",
                "Callers not identified: an API key no department holds, or nothing that names a department",
                &["reason"],
            ),
            tls_handshakes: counter(
                &r,
                "dlpgate_tls_handshakes_total",
                "Completed TLS handshakes by listener and suite (the RFC 8998 suites are TLS_SM4_SM3)",
                &["listener", "suite"],
            ),
            quota_store_errors: counter(
                &r,
                "dlpgate_quota_store_errors_total",
                "Failed round trips to the shared quota store (op: sync, the background exchange; read, a request's)",
                &["op"],
            ),
            quota_store_up: store_up,
            config_reloads: counter(&r, "dlpgate_config_reloads_total", "Configuration loads and reloads", &["result"]),
            last_reload_success: last,
            rules_loaded: rules,
            build_info: build,
            audit_events,
            audit_dropped,
            registry: r,
        }
    }

    /// Text exposition of every family.
    pub fn render(&self) -> Vec<u8> {
        let mut buf = Vec::new();
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut buf);
        buf
    }
}

/// `2xx`, `4xx` … for a status code.
pub fn status_class(status: u16) -> &'static str {
    match status {
        100..=199 => "1xx",
        200..=299 => "2xx",
        300..=399 => "3xx",
        400..=499 => "4xx",
        500..=599 => "5xx",
        _ => "other",
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn families_register_and_render() {
        let m = super::Metrics::get();
        m.requests.with_label_values(&["r", "d", "2xx"]).inc();
        let text = String::from_utf8(m.render()).unwrap_or_default();
        assert!(text.contains("dlpgate_requests_total"));
        assert!(text.contains("dlpgate_build_info"));
    }
}
