#!/usr/bin/env bash
# Proxy load benchmark: direct to the upstream vs an nginx reverse proxy vs dlpgate with masking,
# on 1 KiB, 16 KiB and 256 KiB JSON responses carrying ID numbers, in one run on loopback.
#
#   benches/proxy_load.sh            # needs: nginx, wrk, python3 (apt-get install -y nginx wrk)
#   DURATION=20 CONNS=64 ROUNDS=5 benches/proxy_load.sh
#   FLOOR=1 benches/proxy_load.sh    # also the floors from benches/proxy_floor.rs (see there)
#
# The upstream is nginx serving static files (so it is never the bottleneck). Figures are printed
# as ratios against nginx measured in the same run: these machines are noisy. `dlp_off` is the
# same gateway with inspection disabled on the route (Pingora's own cost); p50 latencies are in ms.
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${DURATION:-10}
CONNS=${CONNS:-32}
THREADS=${THREADS:-1}
ROUNDS=${ROUNDS:-3}
FLOOR=${FLOOR:-0}
for t in nginx wrk python3; do command -v $t >/dev/null || { echo "missing $t: apt-get install -y nginx wrk python3" >&2; exit 1; }; done
cargo build --release --quiet
if [ "$FLOOR" = 1 ]; then
  cargo bench --bench proxy_floor --no-run --quiet 2>/dev/null
  FLOORBIN=$(ls -t target/release/deps/proxy_floor-* | grep -v '\.d$' | head -1)
fi
W=$(mktemp -d /tmp/dlpgate-load.XXXXXX); chmod 755 "$W"
trap 'kill $(cat $W/*.pid 2>/dev/null) 2>/dev/null || true; nginx -s stop -c $W/nginx.conf 2>/dev/null || true; pkill -f "$W/dlpgate.yaml" 2>/dev/null || true' EXIT

# synthetic payloads with valid ID check digits
python3 - "$W" <<'PY'
import json, random, sys, os
W = sys.argv[1]; os.makedirs(W + "/www", exist_ok=True)
random.seed(7)
wts = [7,9,10,5,8,4,2,1,6,3,7,9,10,5,8,4,2]
def idc():
    body = "410102%04d%02d%02d%03d" % (random.randint(1950,2005), random.randint(1,12), random.randint(1,28), random.randint(0,999))
    return body + "10X98765432"[sum(int(a)*b for a,b in zip(body,wts)) % 11]
for name, size in [("1k", 1024), ("16k", 16384), ("256k", 262144)]:
    recs, out = [], ""
    i = 0
    while True:
        recs.append({"id": i, "name": "居民%d" % i, "sfzh": idc(), "status": "ACTIVE", "address": "河南省郑州市金水区示例路%d号" % i})
        out = json.dumps({"code": 0, "data": recs}, ensure_ascii=False)
        if len(out.encode()) >= size: break
        i += 1
    open(f"{W}/www/{name}.json", "w").write(out)
PY

UP=19081; NGX=19082; GW=19083; ADM=19084; GW0=19085; ADM0=19086; FP=19087; FT=19088
cat > $W/nginx.conf <<NGINX
worker_processes 2;
pid $W/nginx.pid;
error_log $W/nginx-error.log;
events { worker_connections 4096; }
http {
  access_log off;
  default_type application/json;
  upstream origin { server 127.0.0.1:$UP; keepalive 64; }
  server { listen 127.0.0.1:$UP; root $W/www; location / { try_files \$uri =404; } }
  server { listen 127.0.0.1:$NGX;
    location / { proxy_pass http://origin; proxy_http_version 1.1; proxy_set_header Connection ""; } }
}
NGINX
nginx -c $W/nginx.conf

. benches/dlpgate_configs.sh
dlpgate_configs "$W" 2 $GW $ADM $GW0 $ADM0 $UP
./target/release/dlpgate run -c $W/dlpgate.yaml 2>$W/dlpgate.log &
echo $! > $W/gw.pid
# the same gateway with inspection off: Pingora's own cost, for reference
./target/release/dlpgate run -c $W/off.yaml 2>$W/plain.log &
echo $! > $W/gw0.pid
if [ "$FLOOR" = 1 ]; then
  $FLOORBIN pingora 127.0.0.1:$FP 127.0.0.1:$UP 2>$W/floor-pingora.log & echo $! > $W/fp.pid
  $FLOORBIN tokio 127.0.0.1:$FT 127.0.0.1:$UP 2>$W/floor-tokio.log & echo $! > $W/ft.pid
fi
for _ in $(seq 50); do curl -s -o /dev/null http://127.0.0.1:$ADM/healthz && break; sleep 0.1; done
# sanity: dlpgate masks, nginx does not
curl -s http://127.0.0.1:$GW/1k.json | grep -q '\*\*\*\*\*\*\*\*' || { echo "dlpgate is not masking" >&2; exit 1; }

run() { # url -> "req/s p50_ms"
  wrk -t$THREADS -c$CONNS -d${DURATION}s --latency "$1" 2>/dev/null | awk '
    /Requests\/sec/ {rps=$2}
    /^ +50%/ {v=$2; if (v ~ /us$/) {sub(/us/,"",v); v=v/1000} else if (v ~ /ms$/) {sub(/ms/,"",v)} else if (v ~ /s$/) {sub(/s/,"",v); v=v*1000}; p50=v}
    END {printf "%s %s", rps, p50}'
}
# ROUNDS interleaved rounds per size; the table gives medians, and the ratios are the medians of
# each round's own ratio (both sides measured seconds apart), so a slow phase of the machine
# moves both sides of a ratio together.
for s in 1k 16k 256k; do
  for r in $(seq $ROUNDS); do
    read d dl <<<"$(run http://127.0.0.1:$UP/$s.json)"
    read n nl <<<"$(run http://127.0.0.1:$NGX/$s.json)"
    read o ol <<<"$(run http://127.0.0.1:$GW0/$s.json)"
    read g gl <<<"$(run http://127.0.0.1:$GW/$s.json)"
    floors=""
    if [ "$FLOOR" = 1 ]; then
      read p pl <<<"$(run http://127.0.0.1:$FP/$s.json)"
      read t tl <<<"$(run http://127.0.0.1:$FT/$s.json)"
      floors="$p $pl $t $tl"
    fi
    echo "$s $r $d $dl $n $nl $o $ol $g $gl $floors" >> $W/results
  done
done
python3 - $W/results <<'PY'
import sys, statistics as st
rows = [l.split() for l in open(sys.argv[1])]
med = lambda xs: st.median(float(x) for x in xs)
print(f"{'size':<6} {'direct':>9} {'nginx':>9} {'dlp_off':>9} {'dlpgate':>9} {'dlp/nginx':>10} {'off/nginx':>10}   p50 ms: {'direct':>6} {'nginx':>6} {'off':>6} {'dlp':>6}   rounds: dlp/nginx")
for size in ["1k", "16k", "256k"]:
    rs = [r for r in rows if r[0] == size]
    if not rs: continue
    col = lambda i: [r[i] for r in rs]
    ratios = [float(r[8]) / float(r[4]) for r in rs]
    offr = [float(r[6]) / float(r[4]) for r in rs]
    print(f"{size:<6} {med(col(2)):9.0f} {med(col(4)):9.0f} {med(col(6)):9.0f} {med(col(8)):9.0f} {st.median(ratios):9.2f}x {st.median(offr):9.2f}x"
          f"           {med(col(3)):6.2f} {med(col(5)):6.2f} {med(col(7)):6.2f} {med(col(9)):6.2f}   "
          + " ".join(f"{x:.2f}" for x in ratios))
if rows and len(rows[0]) > 10:
    print(f"\nfloors (benches/proxy_floor.rs), ratio against nginx in the same round:")
    print(f"{'size':<6} {'pingora-core loop':>18} {'tokio only':>11}   p50 ms: {'loop':>6} {'tokio':>6}")
    for size in ["1k", "16k", "256k"]:
        rs = [r for r in rows if r[0] == size]
        if not rs: continue
        pr = st.median(float(r[10]) / float(r[4]) for r in rs)
        tr = st.median(float(r[12]) / float(r[4]) for r in rs)
        print(f"{size:<6} {pr:17.2f}x {tr:10.2f}x           {med(r[11] for r in rs):6.2f} {med(r[13] for r in rs):6.2f}")
PY
