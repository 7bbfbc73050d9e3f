//! Upstream address pools: round robin over healthy addresses, health state shared by every thread.

use std::net::SocketAddr;

/// Upstream addresses of a route: round robin over the healthy ones (all, when none is healthy).
#[derive(Debug)]
pub struct Pool {
    pub addrs: Vec<SocketAddr>,
    pub healthy: Vec<std::sync::atomic::AtomicBool>,
    next: std::sync::atomic::AtomicUsize,
}

impl Pool {
    pub fn new(addrs: Vec<SocketAddr>) -> Pool {
        let healthy = addrs.iter().map(|_| std::sync::atomic::AtomicBool::new(true)).collect();
        Pool { addrs, healthy, next: std::sync::atomic::AtomicUsize::new(0) }
    }

    /// A connection to `addr` failed: skip it until a health check finds it up again. Only when
    /// health checks run (`checked`): otherwise nothing would ever bring it back.
    pub fn connect_failed(&self, addr: SocketAddr, checked: bool) {
        if !checked {
            return;
        }
        if let Some(h) = self.addrs.iter().position(|a| *a == addr).and_then(|i| self.healthy.get(i)) {
            h.store(false, std::sync::atomic::Ordering::Relaxed);
        }
    }

    /// The next address, skipping unhealthy ones.
    ///
    /// # Panics
    /// Never: a route always has at least one address (checked at load).
    pub fn pick(&self, failed: &[SocketAddr]) -> SocketAddr {
        use std::sync::atomic::Ordering;
        let n = self.addrs.len().max(1);
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        // healthy and not yet failed for this request; then any not failed; then any
        let usable = |k: usize, healthy_only: bool| {
            self.addrs.get(k).filter(|a| {
                !failed.contains(a) && (!healthy_only || self.healthy.get(k).is_some_and(|h| h.load(Ordering::Relaxed)))
            })
        };
        for healthy_only in [true, false] {
            if let Some(a) = (0..n).find_map(|i| usable((start + i) % n, healthy_only)) {
                return *a;
            }
        }
        self.addrs.get(start % n).copied().unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 9)))
    }
}
