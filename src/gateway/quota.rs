//! Bulk-exfiltration quotas (DESIGN §4): per department, a sliding-window count of the sensitive
//! values it received in clear. Crossing a quota's limit is counted and audited; with
//! `action: block` the department's further requests get 429 until the window slides below it.
//!
//! The counters live outside the configuration snapshot, so a reload keeps them (a quota whose
//! window changes starts again from zero). They are per process: behind a load balancer each
//! replica counts what it served.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Instant;

use crate::config::Quota;

/// Buckets per window: the window slides in steps of `window / BUCKETS` (at least a second).
const BUCKETS: usize = 60;

/// One department's count under one quota.
#[derive(Debug)]
struct Window {
    /// seconds per bucket
    width: u64,
    buckets: [u64; BUCKETS],
    /// bucket number (seconds since start / width) of the newest bucket
    head: u64,
}

impl Window {
    fn new(window_seconds: u64) -> Window {
        Window { width: (window_seconds / BUCKETS as u64).max(1), buckets: [0; BUCKETS], head: 0 }
    }

    /// Move the newest bucket to `now` (seconds), emptying the buckets that left the window.
    fn advance(&mut self, now: u64) {
        let at = now / self.width;
        if at > self.head {
            let stale = (at - self.head).min(BUCKETS as u64);
            for k in 1..=stale {
                self.buckets[((self.head + k) % BUCKETS as u64) as usize] = 0;
            }
            self.head = at;
        }
    }

    fn total(&self) -> u64 {
        self.buckets.iter().sum()
    }
}

/// The state of a quota for a department, as the request path sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Exceeded {
    pub quota: usize,
    /// Seconds until the oldest bucket leaves the window (an upper bound on when it may clear).
    pub retry_after: u64,
}

/// Counters for every (quota, department) pair seen, shared by all of the gateway's threads.
#[derive(Debug)]
pub struct Counters {
    start: Instant,
    windows: Mutex<HashMap<(String, String), Window>>,
}

impl Default for Counters {
    fn default() -> Self {
        Counters { start: Instant::now(), windows: Mutex::new(HashMap::new()) }
    }
}

impl Counters {
    fn now(&self) -> u64 {
        self.start.elapsed().as_secs()
    }

    /// The first `block` quota of `dept` whose count has reached its limit.
    pub fn blocking(&self, quotas: &[Quota], dept: &str) -> Option<Exceeded> {
        let now = self.now();
        let mut windows = self.windows.lock().unwrap_or_else(|p| p.into_inner());
        quotas.iter().enumerate().filter(|(_, q)| q.block && q.applies_to(dept)).find_map(|(i, q)| {
            let w = windows.get_mut(&(q.id.clone(), dept.to_string()))?;
            if w.width != Window::new(q.window_seconds).width {
                return None; // the window changed on a reload: counted again from zero
            }
            w.advance(now);
            (w.total() >= q.limit).then(|| Exceeded { quota: i, retry_after: w.width * BUCKETS as u64 })
        })
    }

    /// Add what `dept` received in clear, `count(quota)` values per quota, and return the quotas
    /// whose limit this crossed (count before < limit <= count after), with the new count.
    pub fn add(&self, quotas: &[Quota], dept: &str, count: impl Fn(&Quota) -> u64) -> Vec<(usize, u64)> {
        let now = self.now();
        let mut crossed = Vec::new();
        let mut windows = self.windows.lock().unwrap_or_else(|p| p.into_inner());
        for (i, q) in quotas.iter().enumerate() {
            let n = count(q);
            if n == 0 || !q.applies_to(dept) {
                continue;
            }
            let fresh = Window::new(q.window_seconds);
            let w = windows.entry((q.id.clone(), dept.to_string())).or_insert_with(|| Window::new(q.window_seconds));
            if w.width != fresh.width {
                *w = fresh;
            }
            w.advance(now);
            let before = w.total();
            w.buckets[(w.head % BUCKETS as u64) as usize] += n;
            if before < q.limit && before + n >= q.limit {
                crossed.push((i, before + n));
            }
        }
        crossed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_window_forgets_what_slid_out_of_it() {
        let mut w = Window::new(60); // one-second buckets
        w.advance(0);
        w.buckets[0] += 5;
        w.advance(30);
        w.buckets[(w.head % 60) as usize] += 2;
        assert_eq!(w.total(), 7);
        w.advance(59);
        assert_eq!(w.total(), 7, "second 0 is still inside a 60 s window at second 59");
        w.advance(60);
        assert_eq!(w.total(), 2, "second 0 left the window");
        w.advance(1000);
        assert_eq!(w.total(), 0);
        let w = Window::new(600);
        assert_eq!(w.width, 10);
    }
}
