//! Bulk-exfiltration quotas (DESIGN §4): per department, a sliding-window count of the sensitive
//! values it received in clear. Crossing a quota's limit is counted and audited; with
//! `action: block` the department's further requests get 429 until the window slides below it.
//!
//! The counters live outside the configuration snapshot, so a reload keeps them (a quota whose
//! window changes starts again from zero). Without `cluster` they are per process: behind a load
//! balancer each replica counts what it served. With `cluster.redis` the replicas share them
//! ([`super::quota_store`]); the counts of this process are kept all the same, for when Redis
//! cannot be reached (`on_store_error: local`).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use super::quota_store::{Remote, Shared};
use crate::config::{ClusterSettings, Quota, StoreErrorMode};
use crate::telemetry::{AuditEvent, AuditWriter, Metrics};

use crate::config::quota_buckets as buckets;

/// At most this many buckets per window (see [`crate::config::quota_buckets`]).
const BUCKETS: usize = crate::config::MAX_QUOTA_BUCKETS as usize;

/// One department's count under one quota.
#[derive(Debug)]
struct Window {
    window_seconds: u64,
    /// buckets in use (`buckets(window_seconds)`) and seconds per bucket
    n: u64,
    width: u64,
    buckets: [u64; BUCKETS],
    /// bucket number (seconds since start / width) of the newest bucket
    head: u64,
}

impl Window {
    fn new(window_seconds: u64) -> Window {
        let n = buckets(window_seconds);
        Window { window_seconds, n, width: (window_seconds / n).max(1), buckets: [0; BUCKETS], head: 0 }
    }

    /// The window a shared state describes, at Redis's clock `now`, with the count this replica
    /// knows of beyond it (`total`: its counts not yet sent) in the newest bucket.
    fn of_remote(window_seconds: u64, r: &Remote, now: u64, total: u64) -> Window {
        let mut w = Window::new(window_seconds);
        w.head = now / w.width;
        for &(b, c) in &r.buckets {
            if b <= w.head && b + w.n > w.head {
                w.buckets[(b % w.n) as usize] += c;
            }
        }
        let unsent = total.saturating_sub(w.total());
        w.buckets[(w.head % w.n) as usize] += unsent;
        w
    }

    /// Move the newest bucket to `now` (seconds), emptying the buckets that left the window.
    fn advance(&mut self, now: u64) {
        let at = now / self.width;
        if at > self.head {
            let stale = (at - self.head).min(self.n);
            for k in 1..=stale {
                self.buckets[((self.head + k) % self.n) as usize] = 0;
            }
            self.head = at;
        }
    }

    fn total(&self) -> u64 {
        self.buckets.iter().sum()
    }

    fn add(&mut self, count: u64) {
        self.buckets[(self.head % self.n) as usize] += count;
    }

    /// Seconds from `now` until the count is below `limit` again with nothing added: the oldest
    /// buckets leave the window one by one (bucket number `b` leaves when the newest is `b + n`).
    fn seconds_until_below(&self, limit: u64, now: u64) -> u64 {
        let n = self.n;
        let mut left = self.total();
        // `b + n` for each bucket in the window, oldest first (kept non-negative)
        for leaves in self.head + 1..=self.head + n {
            if left < limit {
                break;
            }
            if leaves < n {
                continue; // before the first bucket: nothing was counted there
            }
            left -= self.buckets[(leaves % n) as usize];
            if left < limit {
                return (leaves * self.width).saturating_sub(now).max(1);
            }
        }
        1
    }
}

/// The state of a quota for a department, as the request path sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Exceeded {
    pub quota: usize,
    /// Seconds until the count falls below the limit, if nothing more is received.
    pub retry_after: u64,
}

/// What the quotas say of a department's next request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Check {
    Under,
    Over(Exceeded),
    /// The shared store cannot be reached and `on_store_error: block` refuses the request.
    StoreDown,
}

/// Counters per quota id, then per department id, shared by all of the gateway's threads (and,
/// with `cluster`, by the replicas).
#[derive(Debug)]
pub struct Counters {
    start: Instant,
    windows: Mutex<HashMap<String, HashMap<String, Window>>>,
    shared: Option<Arc<Shared>>,
}

impl Default for Counters {
    fn default() -> Self {
        Counters { start: Instant::now(), windows: Mutex::new(HashMap::new()), shared: None }
    }
}

impl Counters {
    /// Counters for this process, shared through Redis when `cluster` says so.
    pub fn new(cluster: Option<&ClusterSettings>) -> Result<Counters, String> {
        let shared = match cluster {
            None => None,
            Some(c) => {
                Metrics::get().quota_store_up.set(1);
                Some(Arc::new(Shared::new(c.clone()).map_err(|e| format!("cluster.redis: {e}"))?))
            }
        };
        Ok(Counters { shared, ..Counters::default() })
    }

    pub fn shared(&self) -> Option<&Arc<Shared>> {
        self.shared.as_ref()
    }

    fn now(&self) -> u64 {
        self.start.elapsed().as_secs()
    }

    /// Whether `dept`'s next request may go on: the first `block` quota whose count has reached
    /// its limit, shared when there is a cluster (see [`super::quota_store`]). Waits on Redis only
    /// when this replica has no fresh state to decide on, and then at most `timeout_ms`.
    pub async fn check(&self, quotas: &[Quota], dept: &str) -> Check {
        let Some(s) = &self.shared else {
            return self.blocking(quotas, dept).map_or(Check::Under, Check::Over);
        };
        let blocks = |q: &Quota| q.block && q.applies_to(dept);
        if !quotas.iter().any(blocks) {
            return Check::Under;
        }
        if s.is_up() {
            let over = |i: usize, q: &Quota, total: u64, r: &Remote| {
                let now = r.now();
                let w = Window::of_remote(q.window_seconds, r, now, total);
                Check::Over(Exceeded { quota: i, retry_after: w.seconds_until_below(q.limit, now) })
            };
            // states this replica does not know well enough (allocated only when there are some)
            let mut missing: Vec<(usize, &Quota)> = Vec::new();
            for (i, q) in quotas.iter().enumerate() {
                if !blocks(q) {
                    continue;
                }
                match s.known(q, dept) {
                    Some((total, Some(r))) => return over(i, q, total, &r),
                    Some((_, None)) => {}
                    None => missing.push((i, q)),
                }
            }
            if missing.is_empty() {
                return Check::Under;
            }
            let qs: Vec<&Quota> = missing.iter().map(|m| m.1).collect();
            if s.refresh(&qs, dept).await {
                for (i, q) in missing {
                    if let Some((total, Some(r))) = s.known(q, dept) {
                        return over(i, q, total, &r);
                    }
                }
                return Check::Under;
            }
        }
        match s.conf.on_store_error {
            StoreErrorMode::Local => self.blocking(quotas, dept).map_or(Check::Under, Check::Over),
            StoreErrorMode::Block => Check::StoreDown,
            StoreErrorMode::Alert => Check::Under,
        }
    }

    /// The first `block` quota of `dept` whose count in this process has reached its limit.
    pub fn blocking(&self, quotas: &[Quota], dept: &str) -> Option<Exceeded> {
        let now = self.now();
        let mut windows = self.windows.lock().unwrap_or_else(|p| p.into_inner());
        quotas.iter().enumerate().filter(|(_, q)| q.block && q.applies_to(dept)).find_map(|(i, q)| {
            let w = windows.get_mut(q.id.as_str())?.get_mut(dept)?;
            if w.window_seconds != q.window_seconds {
                return None; // the window changed on a reload: counted again from zero
            }
            w.advance(now);
            (w.total() >= q.limit).then(|| Exceeded { quota: i, retry_after: w.seconds_until_below(q.limit, now) })
        })
    }

    /// Add what `dept` received in clear, `count(quota)` values per quota, and return the quotas
    /// whose limit this crossed (count before < limit <= count after), with the new count. With a
    /// cluster the counts are also sent to the shared store, where the crossing is seen (by the
    /// background sync, with `template` as the event's context); this process's own crossings are
    /// then returned only while the store is down and `on_store_error: local`.
    /// Counters of quotas no longer configured are dropped.
    pub fn add(
        &self,
        quotas: &[Quota],
        dept: &str,
        count: impl Fn(&Quota) -> u64,
        template: &dyn Fn() -> AuditEvent,
    ) -> Vec<(usize, u64)> {
        let crossed = self.add_local(quotas, dept, &count);
        let Some(s) = &self.shared else { return crossed };
        for q in quotas.iter().filter(|q| q.applies_to(dept)) {
            let n = count(q);
            if n > 0 {
                s.add(q, dept, n, template);
            }
        }
        if !s.is_up() && s.conf.on_store_error == StoreErrorMode::Local { crossed } else { Vec::new() }
    }

    fn add_local(&self, quotas: &[Quota], dept: &str, count: &dyn Fn(&Quota) -> u64) -> Vec<(usize, u64)> {
        let now = self.now();
        let mut crossed = Vec::new();
        let mut windows = self.windows.lock().unwrap_or_else(|p| p.into_inner());
        if windows.len() > quotas.len() {
            windows.retain(|id, _| quotas.iter().any(|q| &q.id == id));
        }
        for (i, q) in quotas.iter().enumerate() {
            let n = count(q);
            if n == 0 || !q.applies_to(dept) {
                continue;
            }
            let per_dept = windows.entry(q.id.clone()).or_default();
            let w = match per_dept.get_mut(dept) {
                Some(w) => w,
                None => per_dept.entry(dept.to_string()).or_insert_with(|| Window::new(q.window_seconds)),
            };
            if w.window_seconds != q.window_seconds {
                *w = Window::new(q.window_seconds);
            }
            w.advance(now);
            let before = w.total();
            w.add(n);
            if before < q.limit && before + n >= q.limit {
                crossed.push((i, before + n));
            }
        }
        crossed
    }
}

/// A department crossed a quota's limit (seen here, or by the shared sync): counted in
/// `dlpgate_quota_exceeded_total`, logged, and audited as `dlp.quota` in the context of `event`.
pub fn report_crossing(audit: &AuditWriter, q: &Quota, dept: &str, total: u64, event: Option<AuditEvent>) {
    Metrics::get().quota_exceeded.with_label_values(&[q.id.as_str(), dept]).inc();
    let what = if q.block { "further requests refused" } else { "alert" };
    tracing::warn!(quota = %q.id, department = dept, values = total, window_seconds = q.window_seconds, "quota exceeded: {what}");
    if audit.enabled() {
        // the request whose count crossed it, when this replica kept its context (it keeps it
        // only for counts near a limit, see quota_store); otherwise the quota and department alone
        let ev = event.unwrap_or_else(|| {
            let incident = super::ctx::Incident::new().to_string();
            AuditEvent {
                ts: crate::telemetry::rfc3339(std::time::SystemTime::now()),
                event: "dlp.quota",
                request_id: incident.clone(),
                incident,
                listener: String::new(),
                route: String::new(),
                department: dept.to_string(),
                client_ip: String::new(),
                method: String::new(),
                path: String::new(),
                direction: crate::policy::Direction::Response.as_str(),
                action: String::new(),
                status: 0,
                reason: None,
                document: None,
                file: None,
                findings: Vec::new(),
            }
        });
        audit.emit(&AuditEvent {
            action: if q.block { "block" } else { "alert" }.to_string(),
            reason: Some(format!(
                "quota {}: {total} values in clear within {} s (limit {})",
                q.id, q.window_seconds, q.limit
            )),
            ..ev
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_window_forgets_what_slid_out_of_it() {
        let mut w = Window::new(60); // one-second buckets
        w.advance(0);
        w.add(5);
        w.advance(30);
        w.add(2);
        assert_eq!(w.total(), 7);
        w.advance(59);
        assert_eq!(w.total(), 7, "second 0 is still inside a 60 s window at second 59");
        w.advance(60);
        assert_eq!(w.total(), 2, "second 0 left the window");
        w.advance(1000);
        assert_eq!(w.total(), 0);
        let w = Window::new(600);
        assert_eq!((w.n, w.width), (60, 10));
        // a 10 s window is ten one-second buckets: it forgets after 10 s, not 60
        let mut w = Window::new(10);
        w.advance(0);
        w.add(4);
        w.advance(9);
        assert_eq!(w.total(), 4);
        w.advance(10);
        assert_eq!(w.total(), 0);
    }

    #[test]
    fn retry_after_is_when_enough_old_buckets_have_left() {
        let mut w = Window::new(60); // one-second buckets
        for (t, n) in [(10, 3), (20, 2), (30, 4)] {
            w.advance(t);
            w.add(n);
        }
        // 9 values at second 30; limit 8: the 3 of second 10 leave at second 70
        assert_eq!(w.seconds_until_below(8, 30), 40);
        // limit 5: also the 2 of second 20, at second 80
        assert_eq!(w.seconds_until_below(5, 30), 50);
        // limit 4: then the 4 of second 30 must go too, at second 90
        assert_eq!(w.seconds_until_below(4, 30), 60);
        assert_eq!(w.seconds_until_below(10, 30), 1, "already below");
    }

    /// A shared window counts this replica's unsent values in its newest bucket: they leave the
    /// window last.
    #[test]
    fn retry_after_of_a_shared_window_counts_unsent_values() {
        let r = Remote { at: Instant::now(), redis_now: 1000, buckets: vec![(970, 3)] };
        // 3 sent at second 970, 2 not yet sent (known total 5), one-second buckets over 60 s
        let w = Window::of_remote(60, &r, 1000, 5);
        assert_eq!(w.total(), 5);
        assert_eq!(w.seconds_until_below(4, 1000), 30, "the 3 of second 970 leave at 1030");
        assert_eq!(w.seconds_until_below(2, 1000), 60, "the 2 unsent ones leave a window from now");
    }
}
