#!/usr/bin/env bash
# Memory of the gateway under many concurrent masked streams: STREAMS clients (1,000) each fetch a
# 4 MiB PII-dense JSON response (benches/gen_pii_dense.py) through dlpgate at the same time, reading
# once: every stream is open before any is read. Two runs: clients reading as fast as they can,
# then slow clients (64 KiB per SLOW seconds). The gateway's resident memory is sampled every 50 ms;
# its peak is printed, with what each stream costs above what the gateway held before. Every
# response is checked: every record there, masked (`****`), no sampled ID number in clear.
#
#   benches/streaming_memory.sh          # needs: nginx python3 (apt-get install -y nginx)
#   STREAMS=200 THREADS=2 benches/streaming_memory.sh
set -euo pipefail
cd "$(dirname "$0")/.."
STREAMS=${STREAMS:-1000}
THREADS=${THREADS:-2}
for t in nginx python3 taskset; do command -v $t >/dev/null || { echo "missing $t" >&2; exit 1; }; done
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"
cargo build --release --quiet
W=$(mktemp -d /tmp/dlpgate-mem.XXXXXX); chmod 755 "$W"
trap 'kill $(cat $W/gw.pid 2>/dev/null) 2>/dev/null || true; nginx -s stop -c $W/up.conf 2>/dev/null || true' EXIT
python3 benches/gen_pii_dense.py "$W/www" >/dev/null
UP=19281; GW=19283; ADM=19284
. benches/dlpgate_configs.sh
payload_upstream "$W" $UP
dlpgate_configs "$W" "$THREADS" $GW $ADM 19285 19286 $UP
for delay in 0 ${SLOW:-0.02}; do
# a fresh gateway for each run: memory its allocator kept from the last run is not counted
kill "$(cat "$W/gw.pid" 2>/dev/null)" 2>/dev/null && sleep 1.5 || true
./target/release/dlpgate run -c "$W/dlpgate.yaml" 2>"$W/gw.log" & echo $! > "$W/gw.pid"
for _ in $(seq 100); do curl -s -o /dev/null http://127.0.0.1:$GW/1k.json && break; sleep 0.1; done
python3 - "$(cat "$W/gw.pid")" "$GW" "$STREAMS" "$W/www/4m.json" "$delay" <<'PY'
import asyncio, re, sys, time
pid, port, streams, payload, delay = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), sys.argv[4], float(sys.argv[5])
raw = open(payload, "rb").read()
records = raw.count(b'"xh":')
# a sample of the payload's ID numbers: none may come back in clear
ids = re.findall(rb'"sfzh":"([0-9Xx]{18})"', raw)[::97]

def rss_kib(field="VmRSS:"):
    for line in open(f"/proc/{pid}/status"):
        if line.startswith(field):
            return int(line.split()[1])
    return 0

peak, opened, done, bad = 0, 0, 0, []

def dechunk(b):
    out, i = bytearray(), 0
    while True:
        j = b.index(b"\r\n", i)
        n = int(b[i:j].split(b";")[0], 16)
        if n == 0:
            return bytes(out)
        out += b[j + 2:j + 2 + n]
        i = j + 2 + n + 2

async def fetch(i, all_open):
    global opened, done
    try:
        r, w = await asyncio.open_connection("127.0.0.1", port)
        w.write(f"GET /4m.json?s={i} HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n".encode())
        await w.drain()
        head = await r.readuntil(b"\r\n\r\n")
        opened += 1
        await all_open.wait()
        body = bytearray()
        while True:
            chunk = await r.read(65536)
            if not chunk:
                break
            body += chunk
            if delay:
                await asyncio.sleep(delay)  # a slow reader: the gateway must not buffer what it cannot send
        w.close()
    except Exception as e:
        bad.append((i, repr(e)))
        return
    text = dechunk(bytes(body)) if b"chunked" in head.lower() else bytes(body)
    leaked = sum(1 for v in ids if v in text)
    if not head.startswith(b"HTTP/1.1 200") or text.count(b'"xh":') != records or b"****" not in text or leaked:
        bad.append((i, head.split(b"\r\n")[0], len(text), leaked))
    done += 1

async def sample(stop):
    global peak
    while not stop.is_set():
        peak = max(peak, rss_kib())
        await asyncio.sleep(0.05)

async def main():
    idle = rss_kib()
    all_open, stop = asyncio.Event(), asyncio.Event()
    sampler = asyncio.create_task(sample(stop))
    t0 = time.monotonic()
    tasks = [asyncio.create_task(fetch(i, all_open)) for i in range(streams)]
    while opened + len(bad) < streams and time.monotonic() - t0 < 60:
        await asyncio.sleep(0.05)
    at_open = opened
    all_open.set()
    await asyncio.gather(*tasks)
    stop.set()
    await sampler
    how = f"clients reading 64 KiB per {delay * 1000:.0f} ms" if delay else "clients reading at full speed"
    print(f"{how}: {streams} concurrent 4 MiB dense responses ({at_open} open at once), {done} complete "
          f"and masked in {time.monotonic() - t0:.1f} s, {len(bad)} bad")
    print(f"  gateway RSS: before {idle / 1024:.1f} MB, peak {peak / 1024:.1f} MB, "
          f"{(peak - idle) / max(streams, 1):.0f} KiB per stream above what it held before")
    for b in bad[:5]:
        print("  bad response:", b)
    sys.exit(1 if bad or done < streams else 0)

asyncio.run(main())
PY
done
