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

/// Seconds per bucket for a window of `window_seconds`.
fn width(window_seconds: u64) -> u64 {
    (window_seconds / BUCKETS as u64).max(1)
}

impl Window {
    fn new(window_seconds: u64) -> Window {
        Window { width: width(window_seconds), buckets: [0; BUCKETS], head: 0 }
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

    /// Seconds from `now` until the count is below `limit` again with nothing added: the oldest
    /// buckets leave the window one by one (bucket number `b` leaves when the newest is `b + 60`).
    fn seconds_until_below(&self, limit: u64, now: u64) -> u64 {
        let n = BUCKETS as u64;
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
            if w.width != width(q.window_seconds) {
                return None; // the window changed on a reload: counted again from zero
            }
            w.advance(now);
            (w.total() >= q.limit).then(|| Exceeded { quota: i, retry_after: w.seconds_until_below(q.limit, now) })
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
            let w = windows.entry((q.id.clone(), dept.to_string())).or_insert_with(|| Window::new(q.window_seconds));
            if w.width != width(q.window_seconds) {
                *w = Window::new(q.window_seconds);
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

    #[test]
    fn retry_after_is_when_enough_old_buckets_have_left() {
        let mut w = Window::new(60); // one-second buckets
        for (t, n) in [(10, 3), (20, 2), (30, 4)] {
            w.advance(t);
            w.buckets[(w.head % 60) as usize] += n;
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
