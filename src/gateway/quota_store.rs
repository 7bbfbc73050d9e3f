//! Quota counters shared by replicas through Redis (`cluster.redis`).
//!
//! Each (quota, department) is one Redis hash, `{prefix}quota:{id}:{window}:{department}`: a field
//! per bucket (bucket number = Redis time / bucket width), the same buckets as the local counters
//! ([`super::quota`]), updated by one Lua script that drops the buckets that left the window, adds
//! an increment and returns what is left, atomically, on Redis's clock. The hash expires by itself
//! one window after its last increment.
//!
//! The request path never waits on Redis per value, and only rarely per request:
//! - what a replica's responses delivered is added to a local `pending` count; a background task
//!   sends every pending count, and reads back every state a request asked about, in one pipeline
//!   per `sync_ms`;
//! - a request is decided on the last state read (plus what this replica has not sent yet); only
//!   when there is none, or it is older than [`STALE`], does the request read it, bounded by
//!   `timeout_ms` (a replica just started, a department not seen for a while);
//! - the crossing of a limit is seen by exactly one replica (the script returns the count before
//!   and after the increment), which counts, logs and audits it.
//!
//! Overshoot: a replica sends its counts and sees the others' within one `sync_ms` (plus a round
//! trip), so once the shared count has reached a limit, the cluster can still deliver what the
//! replicas serve that department within about two sync intervals, plus responses in flight. With
//! requests further apart than that, the first request after the crossing is refused on every
//! replica: the same as one process.
//!
//! When Redis cannot be reached, `on_store_error` decides: `local` (the default) falls back to the
//! counts of this process, which are always kept; `block` refuses the departments a `block` quota
//! covers (503); `alert` serves them and logs it. Recovery is automatic: the background task keeps
//! trying, and counts not yet sent are sent when it succeeds (unless a whole window has passed).

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crate::config::{ClusterSettings, Quota, quota_buckets};
use crate::telemetry::{AuditEvent, Metrics};

/// A state read longer ago than this is not used to decide a request: it is read again first
/// (at least; longer sync intervals stretch it, see `Shared::stale`).
pub const STALE: Duration = Duration::from_secs(2);

/// With nothing to send or read, the store is still tried this often.
const PROBE: Duration = Duration::from_secs(1);

/// The window script: KEYS[1] the hash; ARGV width (seconds per bucket), n (buckets), increment.
/// Returns `[now, count before the increment, bucket, count, bucket, count …]` (after it).
const SCRIPT: &str = r"
local width = tonumber(ARGV[1])
local n = tonumber(ARGV[2])
local incr = tonumber(ARGV[3])
local now = tonumber(redis.call('TIME')[1])
local head = math.floor(now / width)
local flat = redis.call('HGETALL', KEYS[1])
local before = 0
local out = {now, 0}
for i = 1, #flat, 2 do
  local b = tonumber(flat[i])
  if b <= head - n then
    redis.call('HDEL', KEYS[1], flat[i])
  else
    local c = tonumber(flat[i + 1])
    before = before + c
    out[#out + 1] = b
    out[#out + 1] = c
  end
end
if incr > 0 then
  redis.call('HINCRBY', KEYS[1], head, incr)
  redis.call('EXPIRE', KEYS[1], n * width + width)
  out[#out + 1] = head
  out[#out + 1] = incr
end
out[2] = before
return out
";

/// A (quota, department) window as Redis last returned it.
#[derive(Debug, Clone)]
pub struct Remote {
    /// When it was read, and Redis's clock (seconds) then.
    pub at: Instant,
    pub redis_now: u64,
    /// (bucket number, count) of the buckets inside the window.
    pub buckets: Vec<(u64, u64)>,
}

impl Remote {
    pub fn total(&self) -> u64 {
        self.buckets.iter().map(|b| b.1).sum()
    }

    /// Redis's clock now, as far as this process can tell.
    pub fn now(&self) -> u64 {
        self.redis_now + self.at.elapsed().as_secs()
    }
}

/// One (quota, department) as this replica knows it.
#[derive(Debug, Default)]
struct Entry {
    window_seconds: u64,
    /// Values counted here and not yet sent, and since when.
    pending: u64,
    pending_since: Option<Instant>,
    /// Values sent in a sync whose reply has not come yet (counted all the same).
    in_flight: u64,
    /// The last request counted into `pending`: the context of a `dlp.quota` event, should the
    /// increment cross the limit.
    template: Option<AuditEvent>,
    remote: Option<Remote>,
    /// When a request last asked: such entries are kept fresh by the background task.
    asked: Option<Instant>,
}

/// Per quota id, per department.
type Entries = HashMap<String, HashMap<String, Entry>>;

/// The entry of (`q`, `dept`), made on first use (no allocation once it exists); one of another
/// window (the quota changed on a reload) starts again.
fn entry<'a>(entries: &'a mut Entries, q: &str, dept: &str, window_seconds: u64) -> &'a mut Entry {
    if !entries.contains_key(q) {
        entries.insert(q.to_string(), HashMap::new());
    }
    let per_dept = entries.get_mut(q).unwrap_or_else(|| unreachable!("inserted above"));
    if !per_dept.contains_key(dept) {
        per_dept.insert(dept.to_string(), Entry { window_seconds, ..Entry::default() });
    }
    let e = per_dept.get_mut(dept).unwrap_or_else(|| unreachable!("inserted above"));
    if e.window_seconds != window_seconds {
        *e = Entry { window_seconds, ..Entry::default() };
    }
    e
}

/// What to send or read for one entry in a sync.
struct Due {
    key: (String, String),
    window_seconds: u64,
    incr: u64,
    /// Since when the increment has been waiting to be sent.
    since: Option<Instant>,
    template: Option<AuditEvent>,
}

/// A crossing of a quota's limit seen by this replica: quota id, department, count after.
pub type Crossing = (String, String, u64, Option<AuditEvent>);

/// The shared counters: the connection and this replica's view of them.
pub struct Shared {
    pub conf: ClusterSettings,
    client: redis::Client,
    /// Made on first use, inside a Tokio runtime (its driver task runs there; Pingora's runtimes
    /// live as long as the process), and made again by itself whenever the connection breaks.
    conn: std::sync::OnceLock<Option<redis::aio::ConnectionManager>>,
    entries: Mutex<Entries>,
    up: AtomicBool,
    /// A round trip has succeeded once: the connection exists (before that, an exchange may
    /// also take the time to connect).
    connected: AtomicBool,
    /// When the last round trip was tried.
    last_trip: Mutex<Instant>,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared").field("conf", &self.conf).field("up", &self.up).finish_non_exhaustive()
    }
}

/// One small runtime of its own for Redis I/O: the connection's driver and reconnections run
/// there, so a long body scan on a gateway thread never delays the shared counts (nor flaps the
/// store to "down"). Made once, kept for the life of the process.
fn redis_runtime() -> Option<&'static tokio::runtime::Runtime> {
    static RT: std::sync::OnceLock<Option<tokio::runtime::Runtime>> = std::sync::OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("dlpgate-redis")
            .enable_all()
            .build()
            .map_err(|e| tracing::error!(error = %e, "cluster.redis: no runtime of its own; Redis I/O runs on the gateway's"))
            .ok()
    })
    .as_ref()
}

/// Run `work` on the Redis runtime, waiting at most `limit` (the work is abandoned after that).
async fn on_redis_runtime<T: Send + 'static>(
    limit: Duration,
    work: impl std::future::Future<Output = redis::RedisResult<T>> + Send + 'static,
) -> Result<redis::RedisResult<T>, tokio::time::error::Elapsed> {
    let Some(rt) = redis_runtime() else { return tokio::time::timeout(limit, work).await };
    let task = rt.spawn(work);
    let abort = task.abort_handle();
    let r = tokio::time::timeout(limit, task).await;
    if r.is_err() {
        abort.abort();
    }
    r.map(|joined| joined.unwrap_or_else(|_| Err(redis::RedisError::from((redis::ErrorKind::Client, "task ended")))))
}

/// A Redis client for `conf` (nothing is sent yet).
pub fn client(conf: &ClusterSettings) -> redis::RedisResult<redis::Client> {
    let mut info = redis::IntoConnectionInfo::into_connection_info(conf.url.as_str())?;
    let mut settings = info.redis_settings().clone();
    if let Some(u) = &conf.username {
        settings = settings.set_username(u);
    }
    if let Some(p) = &conf.password {
        settings = settings.set_password(p);
    }
    info = info.set_redis_settings(settings);
    if conf.ca.is_some() || conf.client_cert.is_some() {
        let certs = redis::TlsCertificates {
            client_tls: conf
                .client_cert
                .clone()
                .map(|(client_cert, client_key)| redis::ClientTlsConfig { client_cert, client_key }),
            root_cert: conf.ca.clone(),
        };
        return redis::Client::build_with_tls(info, certs);
    }
    redis::Client::open(info)
}

/// `PING` through a fresh connection, within `conf.timeout` (for `dlpgate check --connect`).
pub async fn ping(conf: &ClusterSettings) -> Result<String, String> {
    let c = client(conf).map_err(|e| e.to_string())?;
    let attempt = async {
        let mut conn = c.get_multiplexed_async_connection().await?;
        redis::cmd("PING").query_async::<String>(&mut conn).await
    };
    match tokio::time::timeout(conf.timeout.max(Duration::from_secs(2)), attempt).await {
        Ok(Ok(pong)) => Ok(pong),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err("timed out".to_string()),
    }
}

/// What the script returns: Redis's clock, the count before the increment, the buckets after.
#[derive(Debug, PartialEq, Eq)]
struct Reply {
    now: u64,
    before: u64,
    buckets: Vec<(u64, u64)>,
}

fn parse(v: &redis::Value) -> Option<Reply> {
    let redis::Value::Array(items) = v else { return None };
    let num = |v: &redis::Value| match v {
        redis::Value::Int(i) => u64::try_from(*i).ok(),
        _ => None,
    };
    let now = num(items.first()?)?;
    let before = num(items.get(1)?)?;
    let mut buckets = Vec::new();
    for pair in items.get(2..)?.chunks(2) {
        if let [b, c] = pair {
            buckets.push((num(b)?, num(c)?));
        }
    }
    Some(Reply { now, before, buckets })
}

impl Shared {
    /// The shared counters for `conf`; nothing is sent until the first sync or request.
    pub fn new(conf: ClusterSettings) -> redis::RedisResult<Shared> {
        let client = client(&conf)?;
        Ok(Shared {
            conf,
            client,
            conn: std::sync::OnceLock::new(),
            entries: Mutex::new(HashMap::new()),
            up: AtomicBool::new(true),
            connected: AtomicBool::new(false),
            last_trip: Mutex::new(Instant::now()),
        })
    }

    /// The connection, made on the Redis runtime (see [`on_redis_runtime`]).
    fn conn(&self) -> Option<redis::aio::ConnectionManager> {
        self.conn
            .get_or_init(|| {
                let _in = redis_runtime().map(tokio::runtime::Runtime::enter);
                let cfg = redis::aio::ConnectionManagerConfig::new()
                    .set_response_timeout(Some(self.conf.timeout))
                    .set_connection_timeout(Some(self.connect_timeout()))
                    .set_number_of_retries(1);
                redis::aio::ConnectionManager::new_lazy_with_config(self.client.clone(), cfg)
                    .map_err(|e| tracing::error!(error = %e, "cluster.redis: cannot make a connection"))
                    .ok()
            })
            .clone()
    }

    pub fn is_up(&self) -> bool {
        self.up.load(Ordering::Relaxed)
    }

    fn set_up(&self, up: bool) {
        if let Ok(mut t) = self.last_trip.lock() {
            *t = Instant::now();
        }
        let was = self.up.swap(up, Ordering::Relaxed);
        Metrics::get().quota_store_up.set(i64::from(up));
        if was && !up {
            tracing::warn!(
                url = %self.conf.url,
                on_store_error = ?self.conf.on_store_error,
                "quota store unreachable: quotas are not shared until it is back"
            );
        } else if !was && up {
            tracing::info!(url = %self.conf.url, "quota store reachable again: quotas are shared");
        }
    }

    /// A state read longer ago than this is read again before a request is decided on it: 2 s,
    /// or three sync intervals when those are longer.
    fn stale(&self) -> Duration {
        STALE.max(self.conf.sync * 3)
    }

    /// How long making the connection may take (a TLS handshake, AUTH).
    fn connect_timeout(&self) -> Duration {
        self.conf.timeout.max(Duration::from_millis(500))
    }

    /// Make the connection now (at start-up, so that the first requests find it made).
    pub async fn connect(&self) {
        let conn = self.conn();
        let ping = async move {
            let mut conn = conn.ok_or_else(|| redis::RedisError::from((redis::ErrorKind::Client, "no connection")))?;
            redis::cmd("PING").query_async::<String>(&mut conn).await
        };
        let ok = matches!(on_redis_runtime(self.connect_timeout() + self.conf.timeout, ping).await, Ok(Ok(_)));
        if ok {
            self.connected.store(true, Ordering::Relaxed);
        } else {
            Metrics::get().quota_store_errors.with_label_values(&["sync"]).inc();
        }
        self.set_up(ok);
    }

    fn key(&self, q: &str, window_seconds: u64, dept: &str) -> String {
        format!("{}quota:{q}:{window_seconds}:{dept}", self.conf.key_prefix)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Entries> {
        self.entries.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Count `n` values `dept` received under `q`, to be sent with the next sync. The context of
    /// the request (`template`) is kept only when this could cross the limit.
    pub fn add(&self, q: &Quota, dept: &str, n: u64, template: &dyn Fn() -> AuditEvent) {
        let mut entries = self.lock();
        let e = entry(&mut entries, &q.id, dept, q.window_seconds);
        e.pending += n;
        e.pending_since.get_or_insert_with(Instant::now);
        let known = e.remote.as_ref().map_or(0, Remote::total);
        if known + e.pending + e.in_flight >= q.limit || e.remote.is_none() {
            e.template = Some(template());
        }
    }

    /// The shared count of `q` for `dept` as this replica knows it (what Redis said plus what it
    /// has not sent yet), if what it knows is fresh enough to decide on; with the state read when
    /// the count has reached the limit (for `Retry-After`).
    pub fn known(&self, q: &Quota, dept: &str) -> Option<(u64, Option<Remote>)> {
        let mut entries = self.lock();
        let e = entry(&mut entries, &q.id, dept, q.window_seconds);
        e.asked = Some(Instant::now());
        let r = e.remote.as_ref().filter(|r| r.at.elapsed() <= self.stale())?;
        // buckets that left the window since the read no longer count
        let n = quota_buckets(q.window_seconds);
        let width = (q.window_seconds / n).max(1);
        let head = r.now() / width;
        let total = r.buckets.iter().filter(|(b, _)| *b + n > head).map(|b| b.1).sum::<u64>() + e.pending + e.in_flight;
        Some((total, (total >= q.limit).then(|| r.clone())))
    }

    /// Read the states of `quotas` for `dept` now (a request that has none fresh), within
    /// `timeout_ms`. False when Redis could not be reached.
    pub async fn refresh(&self, quotas: &[&Quota], dept: &str) -> bool {
        let due: Vec<Due> = quotas
            .iter()
            .map(|q| Due {
                key: (q.id.clone(), dept.to_string()),
                window_seconds: q.window_seconds,
                incr: 0,
                since: None,
                template: None,
            })
            .collect();
        self.exchange(due, &[], "read").await.is_some()
    }

    /// One round trip: send `due` (increments, or reads with 0), store what comes back. Returns
    /// the crossings of the quotas' limits, or `None` when Redis could not be reached (the
    /// increments are then pending again).
    async fn exchange(&self, due: Vec<Due>, quotas: &[Quota], op: &str) -> Option<Vec<Crossing>> {
        let mut pipe = redis::pipe();
        for d in &due {
            let n = quota_buckets(d.window_seconds);
            pipe.cmd("EVAL")
                .arg(SCRIPT)
                .arg(1)
                .arg(self.key(&d.key.0, d.window_seconds, &d.key.1))
                .arg((d.window_seconds / n).max(1))
                .arg(n)
                .arg(d.incr);
        }
        // until a first round trip has made the connection, it may take that long too
        let limit = if self.connected.load(Ordering::Relaxed) {
            self.conf.timeout
        } else {
            self.conf.timeout + self.connect_timeout()
        };
        // a connection that broke since the last use fails at once and is made again: one more
        // try, within the same time, for reads only (increments Redis may have applied before the
        // connection broke are not sent twice; they are given back for the next sync instead)
        let read_only = due.iter().all(|d| d.incr == 0);
        let conn = self.conn();
        let attempt = async move {
            let Some(mut conn) = conn else {
                return Err(redis::RedisError::from((redis::ErrorKind::Client, "no connection")));
            };
            match pipe.query_async::<Vec<redis::Value>>(&mut conn).await {
                Err(e) if read_only && (e.is_connection_dropped() || e.is_io_error()) => {
                    pipe.query_async::<Vec<redis::Value>>(&mut conn).await
                }
                r => r,
            }
        };
        let res = on_redis_runtime(limit, attempt).await;
        let values = match res {
            Ok(Ok(v)) if v.len() == due.len() => v,
            other => {
                let why = match other {
                    Err(_) => "timeout".to_string(),
                    Ok(Err(e)) => e.to_string(),
                    Ok(Ok(_)) => "unexpected reply".to_string(),
                };
                Metrics::get().quota_store_errors.with_label_values(&[op]).inc();
                tracing::debug!(error = %why, op, "quota store");
                self.set_up(false);
                self.give_back(due);
                return None;
            }
        };
        self.set_up(true);
        self.connected.store(true, Ordering::Relaxed);
        let at = Instant::now();
        let mut crossed = Vec::new();
        let mut entries = self.lock();
        for (d, v) in due.into_iter().zip(values) {
            let Some(Reply { now: redis_now, before, buckets }) = parse(&v) else { continue };
            let e = entry(&mut entries, &d.key.0, &d.key.1, d.window_seconds);
            e.in_flight = e.in_flight.saturating_sub(d.incr);
            e.remote = Some(Remote { at, redis_now, buckets });
            if d.incr > 0 {
                if let Some(q) = quotas.iter().find(|q| q.id == d.key.0) {
                    if before < q.limit && before + d.incr >= q.limit {
                        crossed.push((d.key.0, d.key.1, before + d.incr, d.template));
                    }
                }
            }
        }
        Some(crossed)
    }

    /// Increments that could not be sent are pending again, unless they have waited a whole
    /// window (they would no longer count); their age is kept across attempts.
    fn give_back(&self, due: Vec<Due>) {
        let mut entries = self.lock();
        for d in due.into_iter().filter(|d| d.incr > 0) {
            let e = entry(&mut entries, &d.key.0, &d.key.1, d.window_seconds);
            e.in_flight = e.in_flight.saturating_sub(d.incr);
            let since = d.since.unwrap_or_else(Instant::now);
            if since.elapsed() > Duration::from_secs(d.window_seconds) {
                continue;
            }
            e.pending_since = Some(e.pending_since.map_or(since, |p| p.min(since)));
            e.pending += d.incr;
            if e.template.is_none() {
                e.template = d.template;
            }
        }
    }

    /// One sync: send every pending count, read back every state a request asked about lately
    /// that is older than a sync interval. Entries of quotas no longer configured are dropped.
    pub async fn sync(&self, quotas: &[Quota]) -> Vec<Crossing> {
        let keep_fresh = self.stale() * 5;
        let due: Vec<Due> = {
            let mut entries = self.lock();
            entries.retain(|q, per_dept| {
                per_dept.retain(|_, e| {
                    e.pending > 0 || e.in_flight > 0 || e.asked.is_some_and(|a| a.elapsed() < keep_fresh)
                });
                quotas.iter().any(|x| &x.id == q) && !per_dept.is_empty()
            });
            let mut due = Vec::new();
            for (q, per_dept) in entries.iter_mut() {
                for (dept, e) in per_dept.iter_mut() {
                    if e.pending == 0 && e.remote.as_ref().is_some_and(|r| r.at.elapsed() < self.conf.sync) {
                        continue;
                    }
                    let incr = std::mem::take(&mut e.pending);
                    e.in_flight += incr;
                    let since = e.pending_since.take();
                    let key = (q.clone(), dept.clone());
                    let template = e.template.take();
                    due.push(Due { key, window_seconds: e.window_seconds, incr, since, template });
                }
            }
            due
        };
        if due.is_empty() {
            // nothing to send: a PING now and then keeps `up` true to the store, and the
            // connection made, for the next request that has to read
            if self.last_trip.lock().map(|t| t.elapsed() >= PROBE).unwrap_or(true) {
                self.connect().await;
            }
            return Vec::new();
        }
        self.exchange(due, quotas, "sync").await.unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replies_parse_into_buckets() {
        use redis::Value::{Array, Int};
        let v = Array(vec![Int(1000), Int(5), Int(16), Int(3), Int(16), Int(2), Int(17), Int(4)]);
        let Reply { now, before, buckets } = parse(&v).expect("reply");
        assert_eq!((now, before), (1000, 5));
        assert_eq!(buckets, vec![(16, 3), (16, 2), (17, 4)]);
        let r = Remote { at: Instant::now(), redis_now: now, buckets };
        assert_eq!(r.total(), 9);
        assert!(parse(&Int(3)).is_none());
    }

    fn quota(window_seconds: u64) -> Quota {
        Quota {
            id: "q".into(),
            departments: vec![],
            categories: vec![],
            level: None,
            limit: 100,
            window_seconds,
            block: true,
        }
    }

    /// Counts that could not be sent stay counted (pending, then in flight, then pending again)
    /// with their age, and are dropped once they have waited a whole window.
    #[test]
    fn unsent_counts_keep_their_age_and_expire_with_the_window() {
        let conf = ClusterSettings {
            url: "redis://127.0.0.1:1/0".into(),
            key_prefix: "t:".into(),
            timeout: Duration::from_millis(50),
            sync: Duration::from_millis(10),
            username: None,
            password: None,
            ca: None,
            client_cert: None,
            on_store_error: crate::config::StoreErrorMode::Local,
        };
        let s = Shared::new(conf).expect("shared");
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("rt");
        let q = quota(1);
        let ev = || AuditEvent {
            ts: String::new(),
            event: "dlp.quota",
            incident: String::new(),
            request_id: String::new(),
            listener: String::new(),
            route: String::new(),
            department: "d".into(),
            client_ip: String::new(),
            method: String::new(),
            path: String::new(),
            direction: "response",
            action: String::new(),
            status: 200,
            reason: None,
            document: None,
            file: None,
            findings: Vec::new(),
        };
        s.add(&q, "d", 3, &ev);
        let pending = |s: &Shared| s.lock().get("q").and_then(|m| m.get("d")).map(|e| (e.pending, e.in_flight));
        assert_eq!(pending(&s), Some((3, 0)));
        rt.block_on(s.sync(std::slice::from_ref(&q)));
        assert_eq!(pending(&s), Some((3, 0)), "given back after the failed sync, not in flight");
        assert!(!s.is_up());
        std::thread::sleep(Duration::from_millis(1100));
        rt.block_on(s.sync(std::slice::from_ref(&q)));
        assert_eq!(pending(&s).map(|p| p.0).unwrap_or(0), 0, "a whole window old: no longer counted");
    }
}
