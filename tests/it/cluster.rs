//! Scale-out: quota counters shared by replicas through a real `redis-server`.

use std::time::{Duration, Instant};

use super::gateway::{ID, config, setup, upstream};
use super::harness::*;

/// The test config plus a quota of `limit` ID numbers in clear for public security within
/// `window` seconds, shared through the Redis on `redis_port`.
fn cluster_config(up: u16, redis_port: u16, limit: u64, window: u64, on_store_error: &str) -> String {
    format!(
        "{}quotas:\n  - {{id: bulk-ids, departments: [public-security], categories: [personal.id_number], limit: {limit}, window_seconds: {window}}}\n\
         cluster:\n  redis: {{url: \"redis://127.0.0.1:{redis_port}/0\", key_prefix: \"t:\", timeout_ms: 50, sync_ms: 20}}\n  on_store_error: {on_store_error}\n",
        config(up, "none", "allow")
    )
}

/// GET /stream/residents as public security (one ID number in clear per response).
fn fetch(gw: &Gateway) -> Resp {
    curl(&["-H", "X-Api-Key: ps-key", &format!("http://127.0.0.1:{}/stream/residents", gw.http)])
}

fn metrics(gw: &Gateway) -> String {
    curl(&[&format!("http://127.0.0.1:{}/metrics", gw.admin)]).text()
}

fn value(m: &str, name: &str, label: &str) -> Option<f64> {
    m.lines()
        .filter(|l| l.starts_with(name) && l.contains(label))
        .find_map(|l| l.rsplit(' ').next().and_then(|v| v.parse().ok()))
}

/// Overshoot stated in the README: with requests further apart than two sync intervals, a quota
/// trips at the shared limit; the cluster may deliver at most one more response per replica.
#[test]
fn three_replicas_share_one_quota_and_a_restart_keeps_the_count() {
    let redis = Redis::start();
    let up = upstream();
    // on a loaded machine: the window holds the whole sequence (18 requests, a restart), so the
    // restarted replica still finds the count in it; and Redis has 500 ms to answer, not 50, so
    // no request falls back to counting alone (the outage tests cover that)
    let cfg = cluster_config(up.port, redis.port, 6, 12, "local").replace("timeout_ms: 50,", "timeout_ms: 500,");
    assert!(cfg.contains("timeout_ms: 500,"));
    let mut gws: Vec<Gateway> = (0..3).map(|i| start_gateway(&setup(&format!("cluster{i}")), &cfg)).collect();
    let mut served = 0;
    let mut first_refusal = None;
    for n in 0..18 {
        let r = fetch(&gws[n % 3]);
        match r.status {
            200 => {
                assert!(r.text().contains(ID), "public security gets ID numbers in clear");
                served += 1;
            }
            429 => {
                assert_eq!(r.json()["quota"], "bulk-ids");
                assert!(r.header("retry-after").is_some_and(|v| v.parse::<u64>().is_ok_and(|s| (1..=12).contains(&s))));
                first_refusal.get_or_insert(n);
            }
            s => panic!("request {n}: {s} {}", r.text()),
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let first = first_refusal.expect("the shared quota trips");
    assert!(first >= 6, "not before the shared limit of 6: refused at request {first}");
    assert!(first <= 6 + 2, "within one response per replica of the shared limit, not 3 × 6: request {first}");
    assert!(served <= 6 + 2, "{served} responses in clear");
    // the crossing is seen once in the cluster, by the replica whose count crossed it
    std::thread::sleep(Duration::from_millis(300));
    let crossings: f64 = gws
        .iter()
        .filter_map(|g| value(&metrics(g), "dlpgate_quota_exceeded_total{", "department=\"public-security\""))
        .sum();
    assert_eq!(crossings, 1.0);
    let events: usize = gws
        .iter()
        .map(|g| {
            let t = std::fs::read_to_string(g.dir.join("audit.jsonl")).unwrap_or_default();
            t.lines().filter(|l| l.contains("\"event\":\"dlp.quota\"")).count()
        })
        .sum();
    assert_eq!(events, 1, "one dlp.quota event in the cluster");
    // a replica restarted mid-window still sees the count
    let dir = gws[1].dir.clone();
    gws.remove(1);
    let restarted = start_gateway(&dir, &cfg);
    let t0 = Instant::now();
    let r = fetch(&restarted);
    assert_eq!(r.status, 429, "{}", r.text());
    assert!(t0.elapsed() < Duration::from_secs(2));
    // after the window slides, traffic flows again on every replica: values leave the window a
    // bucket at a time (Retry-After is when the first room frees, which one response may take),
    // so each replica is served within one more window
    let wait = r.header("retry-after").and_then(|v| v.parse::<u64>().ok()).unwrap_or(12);
    std::thread::sleep(Duration::from_secs(wait));
    for g in [&restarted, &gws[0]] {
        let deadline = Instant::now() + Duration::from_secs(13);
        loop {
            match fetch(g).status {
                200 => break,
                429 => assert!(Instant::now() < deadline, "still refused a window after Retry-After"),
                s => panic!("after the window: {s}"),
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

/// Redis killed: no request waits past the timeout, `local` counts in each process and says so;
/// Redis back: what was counted meanwhile is shared, and the store is up again.
#[test]
fn a_store_outage_falls_back_to_local_counts_and_recovers() {
    let mut redis = Redis::start();
    let up = upstream();
    let cfg = cluster_config(up.port, redis.port, 3, 60, "local");
    let a = start_gateway(&setup("outage-a"), &cfg);
    let b = start_gateway(&setup("outage-b"), &cfg);
    std::thread::sleep(Duration::from_millis(200));
    redis.stop();
    // replica a goes on alone: its own count reaches the limit, each request answered promptly
    let mut statuses = Vec::new();
    for _ in 0..5 {
        let t0 = Instant::now();
        statuses.push(fetch(&a).status);
        assert!(t0.elapsed() < Duration::from_millis(1500), "a request waited {:?}", t0.elapsed());
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(statuses, vec![200, 200, 200, 429, 429], "local counting: 3 values, then refused");
    let m = metrics(&a);
    assert_eq!(value(&m, "dlpgate_quota_store_up", ""), Some(0.0), "{m}");
    assert!(value(&m, "dlpgate_quota_store_errors_total{", "op=\"sync\"").is_some_and(|v| v > 0.0), "{m}");
    let log = std::fs::read_to_string(a.dir.join("gateway.log")).unwrap_or_default();
    assert!(log.contains("quota store unreachable"), "{log}");
    // back (empty, no persistence): the 3 values counted while it was down are sent, and replica
    // b, which served nothing, sees them
    // replica b, idle, finds out by itself within its probe interval
    let deadline = Instant::now() + Duration::from_secs(5);
    while value(&metrics(&b), "dlpgate_quota_store_up", "") != Some(0.0) {
        assert!(Instant::now() < deadline, "an idle replica notices the outage");
        std::thread::sleep(Duration::from_millis(50));
    }
    redis.restart();
    let deadline = Instant::now() + Duration::from_secs(10);
    while [&a, &b].iter().any(|g| value(&metrics(g), "dlpgate_quota_store_up", "") != Some(1.0)) {
        assert!(Instant::now() < deadline, "the store comes back up");
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_millis(200));
    let r = fetch(&b);
    assert_eq!(r.status, 429, "shared counting resumed: {}", r.text());
    let log = std::fs::read_to_string(a.dir.join("gateway.log")).unwrap_or_default();
    assert!(log.contains("quota store reachable again"), "{log}");
}

/// `on_store_error: block`: while Redis is down, departments under a `block` quota get 503;
/// others are served.
#[test]
fn a_store_outage_can_refuse_instead() {
    let mut redis = Redis::start();
    let up = upstream();
    let gw = start_gateway(&setup("outage-block"), &cluster_config(up.port, redis.port, 100, 60, "block"));
    assert_eq!(fetch(&gw).status, 200);
    redis.stop();
    std::thread::sleep(Duration::from_millis(200));
    let t0 = Instant::now();
    let r = fetch(&gw);
    assert_eq!(r.status, 503, "{}", r.text());
    assert_eq!(r.json()["error"], "quota_store_unavailable");
    assert!(t0.elapsed() < Duration::from_millis(1500));
    let other = curl(&["-H", "X-Api-Key: civil-key", &format!("http://127.0.0.1:{}/stream/residents", gw.http)]);
    assert_eq!(other.status, 200, "civil affairs is under no quota");
    redis.restart();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if fetch(&gw).status == 200 {
            break;
        }
        assert!(Instant::now() < deadline, "served again once the store is back");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn check_tries_the_network_only_when_asked() {
    let redis = Redis::start();
    let up = upstream();
    let dir = setup("cluster-check");
    let run = |cfg: &str, extra: &[&str]| {
        let path = dir.join(format!("c{}.yaml", unique()));
        std::fs::write(&path, cfg.replace("{DIR}", &dir.display().to_string())).expect("config");
        let mut args = vec!["check", "-c", path.to_str().expect("path")];
        args.extend_from_slice(extra);
        let out = std::process::Command::new(bin()).args(&args).output().expect("check");
        (out.status.code(), String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr))
    };
    let fill = |c: String| {
        c.replace("{HTTP}", &free_port().to_string())
            .replace("{HTTPS}", &free_port().to_string())
            .replace("{ADMIN}", &free_port().to_string())
    };
    let good = fill(cluster_config(up.port, redis.port, 10, 60, "local"));
    let (code, out) = run(&good, &["--connect"]);
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("cluster.redis") && out.contains("answers"), "{out}");
    let dead = good.replace(&format!("127.0.0.1:{}/0", redis.port), &format!("127.0.0.1:{}/0", free_port()));
    assert_eq!(run(&dead, &[]).0, Some(0), "without --connect nothing is tried");
    let (code, out) = run(&dead, &["--connect"]);
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains("cluster.redis"), "{out}");
    // mistakes in the section are reported with their lines
    let line_of = |cfg: &str, needle: &str| cfg.lines().position(|l| l.contains(needle)).map(|i| i + 1).unwrap_or(0);
    let with_password = good.replace("redis://127.0.0.1", "redis://:hunter2@127.0.0.1");
    let (code, out) = run(&with_password, &[]);
    assert_eq!(code, Some(1));
    assert!(out.contains(&format!(":{}: cluster.redis.url", line_of(&with_password, "redis://"))), "{out}");
    assert!(out.contains("no credentials") && !out.contains("hunter2"), "never echoed: {out}");
    let typo = good.replace("on_store_error: local", "on_store_eror: local");
    let (code, out) = run(&typo, &[]);
    assert_eq!(code, Some(1));
    assert!(out.contains(&format!(":{}:", line_of(&typo, "on_store_eror"))) && out.contains("on_store_eror"), "{out}");
}

/// A Redis that accepts connections and never answers (hung, or a black-holed network): requests
/// never wait on it for longer than `timeout_ms` once the connection attempt at start has failed,
/// and the fallback applies.
#[test]
fn a_silent_store_never_holds_requests() {
    let silent = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = silent.local_addr().expect("addr").port();
    let held = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let h2 = held.clone();
    std::thread::spawn(move || {
        for s in silent.incoming().flatten() {
            h2.lock().expect("lock").push(s); // kept open, never read or answered
        }
    });
    let up = upstream();
    let gw = start_gateway(&setup("silent-store"), &cluster_config(up.port, port, 2, 60, "local"));
    // the connection attempt at start gives up after its own timeout
    std::thread::sleep(Duration::from_millis(1200));
    let mut statuses = Vec::new();
    for _ in 0..4 {
        let t0 = Instant::now();
        statuses.push(fetch(&gw).status);
        let took = t0.elapsed();
        assert!(took < Duration::from_millis(400), "a request waited {took:?} on a silent store");
    }
    assert_eq!(statuses, vec![200, 200, 429, 429], "local counting meanwhile");
    let m = metrics(&gw);
    assert_eq!(value(&m, "dlpgate_quota_store_up", ""), Some(0.0), "{m}");
}
