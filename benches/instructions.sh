#!/usr/bin/env bash
# Instructions and first-level cache misses per request, counted by valgrind (callgrind with its
# cache and branch simulation), for the same four proxies as benches/cpu_per_request.sh, plus the
# engine's instructions per byte of `dlpgate mask`. Counts do not move with the machine's load, so
# they show what a change did where CPU time is too noisy to tell.
#
#   benches/instructions.sh              # needs: valgrind nginx libnginx-mod-http-lua python3 curl
#   SIZES=1k benches/instructions.sh     # one size only
#
# Each proxy runs alone under valgrind with one worker; a Python client sends its requests one
# after another on one keep-alive connection. A request's figures are the difference between a run
# of N2 and a run of N1 requests, divided by N2 - N1: startup and the first request drop out.
# Kernel time is not counted (the syscalls per request are the same for all four: a read and a
# write on each side); callgrind counts each byte `rep movsb` copies as an instruction.
set -euo pipefail
cd "$(dirname "$0")/.."
for t in valgrind callgrind_annotate nginx python3 curl; do command -v $t >/dev/null || { echo "missing $t" >&2; exit 1; }; done
[ -e /usr/lib/nginx/modules/ngx_http_lua_module.so ] || { echo "missing libnginx-mod-http-lua" >&2; exit 1; }
cargo build --release --quiet
BIN=$PWD/target/release/dlpgate
W=$(mktemp -d /tmp/dlpgate-instr.XXXXXX); chmod 755 "$W"
trap 'pkill -f "$W/" 2>/dev/null || true; nginx -s stop -c $W/up.conf 2>/dev/null || true' EXIT
python3 benches/gen_pii_dense.py "$W/www" >/dev/null 2>&1

# the engine: `dlpgate mask` on 4 MiB of PII-dense JSON, counting only its scan-and-mask loop
valgrind --tool=callgrind --collect-atstart=no --toggle-collect='dlpgate::cli::stream' \
  --callgrind-out-file="$W/mask.cg" "$BIN" mask "$W/www/4m.json" >/dev/null 2>"$W/mask.log"
mask=$(awk '/^summary:/ {print $2}' "$W/mask.cg")
python3 -c "print(f'engine: dlpgate mask, 4 MiB PII-dense JSON: {$mask / 1e6:.1f} M instructions, {$mask / 4194304:.1f} a byte')"

UP=19381; NGX=19382; GW=19383; ADM=19384; GW0=19385; ADM0=19386; LUA=19387
. benches/dlpgate_configs.sh
payload_upstream "$W" $UP
dlpgate_configs "$W" 1 $GW $ADM $GW0 $ADM0 $UP
nginx_proxy_conf "$W" $NGX $UP "daemon off; master_process off;"
# the Lua peer's own configuration, run in the foreground as one process
mkdir -p "$W/stub" && printf '#!/bin/sh\n' > "$W/stub/nginx" && chmod +x "$W/stub/nginx"
PATH="$W/stub:$PATH" bash benches/nginx_lua_dlp.sh 127.0.0.1:$LUA 127.0.0.1:$UP "$W/lua"
sed -i 's/^daemon off;/daemon off;\nmaster_process off;/' "$W/lua/nginx.conf"

cat > "$W/client.py" <<'PY'
import http.client, sys
n, port, path = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
c = http.client.HTTPConnection("127.0.0.1", port)
for _ in range(n):
    c.request("GET", path)
    r = c.getresponse()
    body = r.read()
    assert r.status == 200 and body, (r.status, len(body))
PY

# run TARGET N SIZE: start the target under callgrind, send N requests, stop it; prints its totals
# (Ir I1mr D1mr D1mw Bcm)
run() {
  local t=$1 n=$2 size=$3 port cmd
  case $t in
    ngx) port=$NGX; cmd=(nginx -c "$W/ngx.conf");;
    off) port=$GW0; cmd=("$BIN" run -c "$W/off.yaml");;
    gw) port=$GW; cmd=("$BIN" run -c "$W/dlpgate.yaml");;
    lua) port=$LUA; cmd=(nginx -c "$W/lua/nginx.conf");;
  esac
  valgrind --tool=callgrind --cache-sim=yes --branch-sim=yes --callgrind-out-file="$W/$t.$n.cg" "${cmd[@]}" \
    >/dev/null 2>"$W/$t.$n.log" &
  local pid=$!
  for _ in $(seq 200); do curl -s -o /dev/null "http://127.0.0.1:$port/1k.json" && break; sleep 0.2; done
  python3 "$W/client.py" "$n" $port "/$size.json"
  if [ "$t" = gw ] || [ "$t" = off ]; then kill -INT $pid; else kill -QUIT $pid; fi
  wait $pid || true
  python3 - "$W/$t.$n.cg" <<'PY'
import sys
ev, tot = None, None
for line in open(sys.argv[1]):
    if line.startswith("events:"):
        ev = line.split()[1:]
    elif line.startswith("summary:") or line.startswith("totals:"):
        tot = [int(x) for x in line.split()[1:]]
d = dict(zip(ev, tot))
print(d["Ir"], d["I1mr"], d["D1mr"], d["D1mw"], d["Bcm"])
PY
}

declare -A N1=([1k]=100 [16k]=20 [256k]=3) N2=([1k]=600 [16k]=120 [256k]=13)
printf '%-6s %-12s %14s %12s %12s %12s\n' size proxy "instructions" "L1i misses" "L1d misses" "mispredicts"
for size in ${SIZES:-1k 16k 256k}; do
  for t in ngx off gw lua; do
    a=$(run $t ${N1[$size]} $size); b=$(run $t ${N2[$size]} $size)
    python3 - "$size" "$t" "${N2[$size]}" "${N1[$size]}" "$a" "$b" <<'PY'
import sys
size, t, n2, n1 = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
a, b = [list(map(int, s.split())) for s in sys.argv[5:7]]
per = [(y - x) / (n2 - n1) for x, y in zip(a, b)]
name = {"ngx": "plain nginx", "off": "dlpgate off", "gw": "dlpgate", "lua": "nginx+Lua"}[t]
print(f"{size:<6} {name:<12} {per[0]:14,.0f} {per[1]:12,.0f} {per[2] + per[3]:12,.0f} {per[4]:12,.0f}")
PY
  done
done
