#!/usr/bin/env bash
# Memory of the gateway under many concurrent masked streams: STREAMS clients (1,000) each fetch a
# 4 MiB PII-dense JSON response (benches/gen_pii_dense.py) through dlpgate at the same time, reading
# once: every stream is open before any is read. Two runs: clients reading as fast as they can,
# then slow clients (64 KiB per SLOW seconds). The gateway's resident memory is sampled every 50 ms;
# its peak is printed, with what each stream costs above what the gateway held before. Every
# response is checked as it arrives: every record there, masked (`****`), and on every twentieth
# stream no ID number of the payload in clear.
#
#   benches/streaming_memory.sh          # needs: nginx python3 (apt-get install -y nginx)
#   STREAMS=200 THREADS=2 benches/streaming_memory.sh
#   RECEIVE_BUFFER=16384 benches/streaming_memory.sh   # the route's upstream receive_buffer
set -euo pipefail
cd "$(dirname "$0")/.."
STREAMS=${STREAMS:-1000}
THREADS=${THREADS:-2}
for t in nginx python3 curl; do command -v $t >/dev/null || { echo "missing $t" >&2; exit 1; }; done
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
# the payload's ID numbers: none may come back in clear
ids = set(re.findall(rb'"sfzh":"([0-9Xx]{18})"', raw))

def rss_kib(field="VmRSS:"):
    for line in open(f"/proc/{pid}/status"):
        if line.startswith(field):
            return int(line.split()[1])
    return 0

peak, opened, done, bad = 0, 0, 0, []
ID = re.compile(rb"[0-9]{17}[0-9Xx]")
TOKEN = b'"xh":'

class Dechunk:
    """A chunked body decoded as it arrives."""
    def __init__(self):
        self.buf, self.left, self.crlf, self.done = b"", 0, False, False

    def feed(self, data):
        out, self.buf = bytearray(), self.buf + data
        while not self.done:
            if self.left:
                take = self.buf[:self.left]
                out += take
                self.left -= len(take)
                self.buf = self.buf[len(take):]
                if self.left:
                    break
                self.crlf = True
            if self.crlf:
                if len(self.buf) < 2:
                    break
                self.buf, self.crlf = self.buf[2:], False
            j = self.buf.find(b"\r\n")
            if j < 0:
                break
            n = int(self.buf[:j].split(b";")[0], 16)
            self.buf = self.buf[j + 2:]
            self.done, self.left = n == 0, n
        return bytes(out)

async def fetch(i, all_open):
    global opened, done
    # checked as it arrives, nothing kept: every record there, something masked, and (on every
    # twentieth stream, a regular expression being slow here) no ID number of the payload in clear
    records_seen, masked, leaked, tail = 0, False, 0, b""
    try:
        r, w = await asyncio.open_connection("127.0.0.1", port)
        w.write(f"GET /4m.json?s={i} HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n".encode())
        await w.drain()
        head = await r.readuntil(b"\r\n\r\n")
        opened += 1
        chunked = b"chunked" in head.lower()
        dec = Dechunk()
        await all_open.wait()
        while True:
            chunk = await r.read(65536)
            if not chunk:
                break
            data = dec.feed(chunk) if chunked else chunk
            window = tail + data
            records_seen += window.count(TOKEN) - tail.count(TOKEN)
            masked = masked or b"****" in window
            if i % 20 == 0:
                leaked += sum(1 for v in ID.findall(window) if v in ids)
            tail = window[-24:]
            if delay:
                await asyncio.sleep(delay)  # a slow reader: the gateway must not buffer what it cannot send
        w.close()
        ok = head.startswith(b"HTTP/1.1 200") and (dec.done or not chunked)
    except Exception as e:
        bad.append((i, repr(e)))
        return
    if not ok or records_seen != records or not masked or leaked:
        bad.append((i, head.split(b"\r\n")[0], records_seen, leaked))
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
    print(f"{how}: {streams} concurrent 4 MiB dense responses ({at_open} open at once), {done} read to the end "
          f"in {time.monotonic() - t0:.1f} s, {len(bad)} bad (not whole, not masked or a value in clear)")
    print(f"  gateway RSS: before {idle / 1024:.1f} MB, peak {peak / 1024:.1f} MB, "
          f"{(peak - idle) / max(streams, 1):.0f} KiB per stream above what it held before")
    for b in bad[:5]:
        print("  bad response:", b)
    sys.exit(1 if bad or done < streams else 0)

asyncio.run(main())
PY
done
