#!/usr/bin/env python3
"""Hostile clients beside normal ones: does swiftlet keep memory bounded and
normal clients' p99 within 2x of the unloaded figure?

One server (2 workers, no stores). The normal client is perf/loadgen at a
fixed PERF_RATE (default 2,000/s) over 20 keep-alive connections on /json for
PERF_DURATION seconds, latency from each request's scheduled time. First
unloaded (median of 3 runs), then once beside each attack; each attack runs
a second before and during the measurement and is bounded in time and count:

- slowloris: 1,000 connections that send a head one byte every half second;
- giant heads: connections sending 1 MiB of header lines (431 at 16 KiB);
- giant and endless bodies: Content-Length of 1 TB (413 before any byte is
  read), and chunked bodies sent without end (413 at the route's limit);
- chunked bombs: overflowing chunk sizes, and one-byte chunks with long
  extensions;
- chunk-extension flood: the attack of issue 15 (one connection took a
  worker from 9 MB to 3.5 GB in 8 s): one-byte chunks behind 200-byte
  extensions, written in a loop on 4 connections, up to 64 MiB each;
- trickled bodies: 200 connections sending an ingest body a byte every
  half second (held by the body deadline, not only the per-read timeout);
- pipelined flood: connections writing requests without ever reading;
- random bytes: every file of the fuzz corpora (head, chunked, multipart,
  range, resp) sent as a connection's bytes.

Peak RSS is sampled every 10 ms during each attack. Run it through
perf/run-abuse.sh, which builds the server and the load generator.
"""

import json
import os
import random
import socket
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench  # noqa: E402

PORT = bench.PORT
RATE = int(os.environ.get("PERF_RATE", "2000"))
DURATION = int(os.environ.get("PERF_DURATION", "5"))
ROOT = Path(__file__).resolve().parent.parent


def log(*args):
    print(*args, file=sys.stderr, flush=True)


def connect():
    s = socket.create_connection(("127.0.0.1", PORT), timeout=5)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return s


def until(deadline):
    return time.monotonic() < deadline


def trickle(deadline, head, conns, byte):
    """`conns` connections that each send `head`, then `byte` every half second."""
    socks = []
    for _ in range(conns):
        try:
            s = connect()
            s.setblocking(False)
            s.send(head)
            socks.append(s)
        except OSError:
            pass
    sent = 0
    while until(deadline):
        for s in socks:
            try:
                s.send(byte)
                sent += 1
            except OSError:
                pass
        time.sleep(0.5)
    for s in socks:
        s.close()
    return len(socks), sent


def slowloris(deadline):
    conns, sent = trickle(deadline, b"GET /json HTTP/1.1\r\nHost: x\r\n", 1000, b"X")
    return f"{conns} connections, {sent:,} trickled bytes"


def drain(s, limit=65536):
    try:
        s.settimeout(1)
        return s.recv(limit)
    except OSError:
        return b""


def giant_heads(deadline):
    line = b"X-Filler: " + b"a" * 1000 + b"\r\n"
    answers = {}
    n = 0
    while until(deadline) and n < 2000:
        s = connect()
        try:
            s.sendall(b"GET /json HTTP/1.1\r\nHost: x\r\n")
            for _ in range(1024):  # 1 MiB of header lines
                s.sendall(line)
        except OSError:
            pass
        status = drain(s)[9:12]
        answers[status] = answers.get(status, 0) + 1
        s.close()
        n += 1
    return f"{n:,} heads of up to 1 MiB; answers {dict((k.decode() or 'none', v) for k, v in answers.items())}"


def giant_bodies(deadline):
    big, endless = 0, 0
    statuses = {}
    while until(deadline) and big + endless < 4000:
        s = connect()
        if (big + endless) % 2 == 0:
            s.sendall(b"POST /ingest HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                      b"Content-Length: 1000000000000\r\n\r\n{")
            big += 1
        else:
            s.sendall(b"POST /ingest HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n")
            chunk = b"10000\r\n" + b"a" * 0x10000 + b"\r\n"
            try:
                for _ in range(64):  # up to 4 MiB, far past the 1 MiB limit
                    s.sendall(chunk)
            except OSError:
                pass
            endless += 1
        status = drain(s)[9:12].decode() or "none"
        statuses[status] = statuses.get(status, 0) + 1
        s.close()
    return f"{big:,} bodies of 1 TB declared, {endless:,} endless chunked; answers {statuses}"


def chunked_bombs(deadline):
    statuses = {}
    n = 0
    bombs = [
        b"ffffffffffffffffffff\r\n",
        b"1;" + b"e" * 20000 + b"\r\na\r\n",
        b"".join(b"1;x=y\r\na\r\n" for _ in range(20000)),
    ]
    while until(deadline) and n < 3000:
        s = connect()
        try:
            s.sendall(b"POST /ingest HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n" + bombs[n % 3])
        except OSError:
            pass
        status = drain(s)[9:12].decode() or "none"
        statuses[status] = statuses.get(status, 0) + 1
        s.close()
        n += 1
    return f"{n:,} bombs; answers {statuses}"


def extension_flood(deadline):
    chunk = (b"1;" + b"x" * 200 + b"\r\na\r\n") * 64
    statuses = {}
    written = 0
    conns = 0
    while until(deadline) and conns < 200:
        s = connect()
        conns += 1
        sent = 0
        try:
            s.sendall(b"POST /ingest HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                      b"Transfer-Encoding: chunked\r\n\r\n")
            while until(deadline) and sent < 64 << 20:
                s.sendall(chunk)
                sent += len(chunk)
        except OSError:
            pass
        written += sent
        status = drain(s)[9:12].decode() or "none"
        statuses[status] = statuses.get(status, 0) + 1
        s.close()
    return f"{conns:,} connections, {written / 2**20:,.0f} MiB of framing; answers {statuses}"


def trickled_bodies(deadline):
    head = b"POST /ingest HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 1000000\r\n\r\n{"
    conns, sent = trickle(deadline, head, 200, b" ")
    return f"{conns} bodies, {sent:,} trickled bytes"


def pipelined_flood(deadline):
    request = b"GET /plaintext HTTP/1.1\r\nHost: x\r\n\r\n"
    batch = request * 1000
    socks = [connect() for _ in range(8)]
    written = 0
    for s in socks:
        s.setblocking(False)
    while until(deadline):
        progress = False
        for s in socks:
            try:
                written += s.send(batch)
                progress = True
            except (BlockingIOError, OSError):
                pass
        if not progress:
            time.sleep(0.01)  # every socket is full: the server is not reading ahead of its writes
    for s in socks:
        s.close()
    return f"8 connections wrote {written // len(request):,} requests without reading one answer"


def random_bytes(deadline):
    files = []
    for target in ("head", "chunked", "multipart", "range", "resp"):
        files += sorted((ROOT / "fuzz/corpus" / target).iterdir())
    random.Random(7).shuffle(files)
    sent = 0
    while until(deadline) and sent < len(files):
        s = connect()
        try:
            s.sendall(files[sent].read_bytes())
            s.shutdown(socket.SHUT_WR)
        except OSError:
            pass
        drain(s)
        s.close()
        sent += 1
    return f"{sent:,} corpus files of {len(files):,}"


ATTACKS = [("slowloris", slowloris), ("giant heads", giant_heads), ("giant and endless bodies", giant_bodies),
           ("chunked bombs", chunked_bombs), ("chunk-extension flood", extension_flood),
           ("trickled bodies", trickled_bodies), ("pipelined flood", pipelined_flood), ("random bytes", random_bytes)]


def normal_p99():
    out = subprocess.run(["taskset", "-c", "1", str(bench.LOADGEN), f"http://127.0.0.1:{PORT}/json", str(RATE), "20",
                          str(DURATION)], capture_output=True, text=True, timeout=DURATION + 60).stdout
    res = json.loads(out)
    return res["p99_ms"], res["non_2xx"] + res["errors"], res["requests"]


def main():
    proc = subprocess.Popen([str(bench.SWIFTLET), "--listen", f"127.0.0.1:{PORT}", "--log", "error"],
                            env=bench.SERVER_ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    rows = []
    try:
        bench.wait_ready(proc)
        normal_p99()  # warm-up
        base = [normal_p99() for _ in range(3)]
        base_p99 = statistics.median(b[0] for b in base)
        idle_rss = bench.rss_kib(proc.pid)
        log(f"unloaded p99 {base_p99:.2f} ms")
        for name, attack in ATTACKS:
            log(f"attack: {name}")
            sampler = bench.RssSampler(proc.pid)
            result = {}
            deadline = time.monotonic() + DURATION + 2
            attacker = threading.Thread(target=lambda: result.update(what=attack(deadline)))
            attacker.start()
            time.sleep(1)
            p99, bad, n = normal_p99()
            attacker.join()
            peak = sampler.stop()
            alive = proc.poll() is None
            with connect() as s:
                s.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                healthy = drain(s).startswith(b"HTTP/1.1 200")
            rows.append((name, result.get("what", "?"), p99, bad, n, peak, alive and healthy))
            time.sleep(1)
        hwm = bench.peak_rss_kib(proc.pid)
    finally:
        bench.stop(proc)

    print(f"swiftlet, 2 workers, no stores. Normal client: perf/loadgen at {RATE:,} requests/s, 20 connections, "
          f"`GET /json`, {DURATION} s, pinned to core 1, latency from scheduled send. Unloaded p99: "
          f"{base_p99:.2f} ms (median of 3; runs {', '.join(f'{b[0]:.2f}' for b in base)} ms); idle RSS "
          f"{idle_rss / 1024:.1f} MiB.\n")
    print("| attack | what it sent | normal p99 | ×unloaded | normal errors | peak RSS | server fine after |")
    print("|---|---|---:|---:|---:|---:|---|")
    for name, what, p99, bad, n, peak, fine in rows:
        print(f"| {name} | {what} | {p99:.2f} ms | {p99 / base_p99:.2f} | {bad} of {n:,} | {peak / 1024:.1f} MiB | "
              f"{'yes' if fine else '**no**'} |")
    print(f"\nPeak RSS over the whole run (VmHWM): {hwm / 1024:.1f} MiB.")


if __name__ == "__main__":
    main()
