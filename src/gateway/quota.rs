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

/// Counters per quota id, then per department id, shared by all of the gateway's threads.
#[derive(Debug)]
pub struct Counters {
    start: Instant,
    windows: Mutex<HashMap<String, HashMap<String, Window>>>,
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
            let w = windows.get_mut(q.id.as_str())?.get_mut(dept)?;
            if w.window_seconds != q.window_seconds {
                return None; // the window changed on a reload: counted again from zero
            }
            w.advance(now);
            (w.total() >= q.limit).then(|| Exceeded { quota: i, retry_after: w.seconds_until_below(q.limit, now) })
        })
    }

    /// Add what `dept` received in clear, `count(quota)` values per quota, and return the quotas
    /// whose limit this crossed (count before < limit <= count after), with the new count.
    /// Counters of quotas no longer configured are dropped.
    pub fn add(&self, quotas: &[Quota], dept: &str, count: impl Fn(&Quota) -> u64) -> Vec<(usize, u64)> {
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
}
