#!/usr/bin/env bash
# CPU time per request of each proxy on PII-dense payloads, in one run: plain nginx (the limit),
# dlpgate with inspection off (Pingora's own cost), dlpgate, and the nginx + Lua masking peer (what
# an admin would otherwise build). CPU time is steadier than requests per second on these machines.
#
#   benches/cpu_per_request.sh      # needs: nginx libnginx-mod-http-lua wrk python3 (apt-get install -y …)
#   DURATION=10 CONNS=16 benches/cpu_per_request.sh
#   SIZES=1k benches/cpu_per_request.sh     # one size only
#
# Each proxy runs on CPU 0 alone (one worker / one thread); wrk and the upstream (nginx serving the
# payloads of benches/gen_pii_dense.py) run on CPU 1. A proxy's CPU time is read from /proc (user +
# system of its processes) around each run and divided by the requests wrk completed.
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${DURATION:-6}
CONNS=${CONNS:-16}
for t in nginx wrk python3 taskset; do command -v $t >/dev/null || { echo "missing $t" >&2; exit 1; }; done
[ -e /usr/lib/nginx/modules/ngx_http_lua_module.so ] || { echo "missing libnginx-mod-http-lua" >&2; exit 1; }
cargo build --release --quiet
W=$(mktemp -d /tmp/dlpgate-cpu.XXXXXX); chmod 755 "$W"
trap 'for p in $W/*.pid; do kill $(cat $p) 2>/dev/null || true; done; nginx -s stop -c $W/up.conf 2>/dev/null || true; nginx -s stop -c $W/ngx.conf 2>/dev/null || true; pkill -f "$W/" 2>/dev/null || true' EXIT
python3 benches/gen_pii_dense.py "$W/www" >/dev/null 2>&1

UP=19181; NGX=19182; GW=19183; ADM=19184; GW0=19185; ADM0=19186; LUA=19187
. benches/dlpgate_configs.sh
payload_upstream "$W" $UP
nginx_proxy_conf "$W" $NGX $UP
taskset -c 0 nginx -c $W/ngx.conf
dlpgate_configs "$W" 1 $GW $ADM $GW0 $ADM0 $UP
taskset -c 0 ./target/release/dlpgate run -c $W/dlpgate.yaml 2>$W/gw.log & echo $! > $W/gw.pid
taskset -c 0 ./target/release/dlpgate run -c $W/off.yaml 2>$W/off.log & echo $! > $W/off.pid
taskset -c 0 bash benches/nginx_lua_dlp.sh 127.0.0.1:$LUA 127.0.0.1:$UP $W/lua >/dev/null 2>&1 & echo $! > $W/lua-sh.pid
for p in $NGX $GW $GW0 $LUA; do
  for _ in $(seq 100); do curl -s -o /dev/null http://127.0.0.1:$p/1k.json && break; sleep 0.1; done
done
curl -s http://127.0.0.1:$GW/1k.json | grep -q '\*\*\*\*' || { echo "dlpgate is not masking" >&2; exit 1; }
curl -s http://127.0.0.1:$LUA/1k.json | grep -q '\*\*\*\*' || { echo "the Lua peer is not masking" >&2; exit 1; }

# pids of a proxy: nginx master and workers by pid file, dlpgate by its own pid
pids() {
  case $1 in
    ngx) local m; m=$(cat $W/ngx.pidfile); echo "$m $(pgrep -P "$m" | tr '\n' ' ')";;
    lua) local m; m=$(cat $W/lua/nginx.pid); echo "$m $(pgrep -P "$m" | tr '\n' ' ')";;
    gw) cat $W/gw.pid;;
    off) cat $W/off.pid;;
  esac
}
ticks() { local s=0; for p in $(pids "$1"); do s=$((s + $(awk '{print $14 + $15}' /proc/$p/stat))); done; echo $s; }
HZ=$(getconf CLK_TCK)
declare -A PORT=([ngx]=$NGX [off]=$GW0 [gw]=$GW [lua]=$LUA)
printf '%-6s %14s %14s %14s %14s   (µs of proxy CPU per request)\n' size "plain nginx" "dlpgate off" dlpgate "nginx+Lua"
for size in ${SIZES:-1k 16k 256k}; do
  row="$size"
  for t in ngx off gw lua; do
    taskset -c 1 wrk -t1 -c$CONNS -d1s http://127.0.0.1:${PORT[$t]}/$size.json >/dev/null 2>&1 || true
    a=$(ticks $t)
    out=$(taskset -c 1 wrk -t1 -c$CONNS -d${DURATION}s http://127.0.0.1:${PORT[$t]}/$size.json)
    b=$(ticks $t)
    n=$(echo "$out" | awk '/requests in/ {print $1}')
    us=$(python3 -c "print(f'{($b - $a) / $HZ * 1e6 / max($n, 1):.1f}')")
    row="$row $(printf '%14s' "$us")"
  done
  echo "$row"
done
