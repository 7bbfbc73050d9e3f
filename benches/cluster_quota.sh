#!/usr/bin/env bash
# What sharing quotas through Redis costs (issue 16): the same gateway, with a quota that counts
# every response (ID numbers in clear for the caller), once with per-process counters and once with
# `cluster.redis`, in one run. Prints CPU time per request of the gateway and wrk's p50 latency,
# at 1 KiB and 16 KiB, and the same two figures for a third gateway without any quota.
#
#   benches/cluster_quota.sh     # needs: nginx wrk redis-server python3 (apt-get install -y …)
#   DURATION=10 CONNS=16 ROUNDS=3 benches/cluster_quota.sh
#
# Each gateway runs on CPU 0 alone (one thread); wrk, the upstream nginx and Redis on CPU 1.
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${DURATION:-6}
CONNS=${CONNS:-16}
ROUNDS=${ROUNDS:-5}
for t in nginx wrk redis-server python3 taskset; do command -v $t >/dev/null || { echo "missing $t" >&2; exit 1; }; done
cargo build --release --quiet
W=$(mktemp -d /tmp/dlpgate-cluster.XXXXXX); chmod 755 "$W"
trap 'for p in $W/*.pid; do kill $(cat $p) 2>/dev/null || true; done; nginx -s stop -c $W/up.conf 2>/dev/null || true' EXIT
python3 benches/gen_pii_dense.py "$W/www" >/dev/null 2>&1

UP=19281; REDIS=19282
. benches/dlpgate_configs.sh
payload_upstream "$W" $UP
taskset -c 1 redis-server --port $REDIS --bind 127.0.0.1 --save "" --appendonly no >/dev/null 2>&1 & echo $! > $W/redis.pid

# name port admin extra-yaml
gateway() {
  cat > "$W/$1.yaml" <<YAML
server: {threads: 1, pid_file: $W/$1.pidfile, upgrade_sock: $W/$1.sock, grace_period_seconds: 1, graceful_shutdown_timeout_seconds: 1}
listeners: [{name: bench, addr: "127.0.0.1:$2", h2: false}]
admin: {addr: "127.0.0.1:$3"}
policies:
  - id: p
    overrides:
      - {categories: [personal.id_number], action: allow}
routes:
  - {id: bench, path_prefix: /, policy: p, upstream: {addrs: ["127.0.0.1:$UP"]}}
logging: {level: warn}
$4
YAML
  taskset -c 0 ./target/release/dlpgate run -c "$W/$1.yaml" 2>"$W/$1.log" & echo $! > "$W/$1.pid"
}
QUOTA='quotas: [{id: bench, departments: [unknown], categories: [personal.id_number], limit: 1000000000, window_seconds: 60}]'
gateway none 19283 19284 ""
gateway local 19285 19286 "$QUOTA"
gateway cluster 19287 19288 "$QUOTA
cluster: {redis: {url: \"redis://127.0.0.1:$REDIS/0\", key_prefix: \"bench:\"}}"
declare -A PORT=([none]=19283 [local]=19285 [cluster]=19287)
for t in none local cluster; do
  for _ in $(seq 100); do curl -s -o /dev/null http://127.0.0.1:${PORT[$t]}/1k.json && break; sleep 0.1; done
done
ticks() { awk '{print $14 + $15}' /proc/$(cat $W/$1.pid)/stat; }
HZ=$(getconf CLK_TCK)
echo "µs of gateway CPU per request / wrk p50 latency, median of $ROUNDS interleaved rounds of ${DURATION}s, $CONNS connections"
printf '%-6s %22s %22s %22s\n' size "no quota" "quota, per process" "quota, cluster.redis"
# rounds interleave the three gateways, so that the machine's drift spreads over all of them; the
# median round of each is shown (single rounds differ by ±10 % on these machines)
measure() { # target size -> "cpu p50"
  taskset -c 1 wrk -t1 -c$CONNS -d1s http://127.0.0.1:${PORT[$1]}/$2.json >/dev/null 2>&1 || true
  local a b out n p50
  a=$(ticks $1)
  out=$(taskset -c 1 wrk -t1 -c$CONNS -d${DURATION}s --latency http://127.0.0.1:${PORT[$1]}/$2.json)
  b=$(ticks $1)
  n=$(echo "$out" | awk '/requests in/ {print $1}')
  p50=$(echo "$out" | awk '$1 == "50%" {print $2}')
  echo "$(python3 -c "print(f'{($b - $a) / $HZ * 1e6 / max($n, 1):.1f}')") $p50"
}
for size in 1k 16k; do
  declare -A ALL=()
  for _ in $(seq "$ROUNDS"); do
    for t in none local cluster; do ALL[$t]="${ALL[$t]:-} $(measure $t $size | tr ' ' ,)"; done
  done
  row="$size"
  for t in none local cluster; do
    row="$row $(python3 - ${ALL[$t]} <<'PY'
import sys, statistics
rounds = [r.split(",") for r in sys.argv[1:]]
cpu = statistics.median(float(c) for c, _ in rounds)
def us(v): return float(v[:-2]) * 1000 if v.endswith("ms") else float(v[:-2])
p50 = statistics.median(us(p) for _, p in rounds)
print(f"{cpu:>10.1f} µs / {p50:>5.0f} µs")
PY
)"
  done
  echo "$row"
  unset ALL
done
# the shared counter really moved
echo "shared count in Redis (bench quota, unknown): $(redis-cli -p $REDIS hvals bench:quota:bench:60:unknown | python3 -c 'import sys; print(sum(int(x) for x in sys.stdin.read().split()))')"
