#!/usr/bin/env python3
"""HTTPS against plain HTTP, one server, one run: swiftlet listening on both
(2 workers), wrk driving each in alternating rounds.

- Keep-alive: wrk -c 100 on /plaintext over HTTP and over HTTPS: requests/s,
  p99 and server CPU per request. The handshakes are a negligible part here;
  this is the cost of the record layer.
- New connections: the same with `Connection: close`, so every request is a
  new TCP connection and, over HTTPS, a new TLS handshake: connections/s and
  server CPU per connection. wrk resumes TLS sessions, so these handshakes are
  mostly resumed ones.
- Full handshakes: two `openssl s_time -new` clients (one per core; each
  connection a full handshake, then GET /plaintext): handshakes/s and server
  CPU per full handshake. The client's side of a full handshake costs as
  much as the server's, so handshakes/s here is bounded by the clients.
Whether handshakes were full or resumed is read from swiftlet's own counters
(/metrics) before and after each run, not assumed.

Run it through perf/run-tls.sh, which builds the server first.
"""

import os
import re
import statistics
import subprocess
import sys
import tempfile
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench  # noqa: E402  (CPU from /proc, wait for /health, wrk parsing)

PORT = bench.PORT
TLS_PORT = PORT + 363  # 18443
ROUNDS = int(os.environ.get("PERF_ROUNDS", "5"))
DURATION = int(os.environ.get("PERF_DURATION", "4"))
SCHEMES = {"HTTP": f"http://127.0.0.1:{PORT}", "HTTPS": f"https://127.0.0.1:{TLS_PORT}"}


def log(*args):
    print(*args, file=sys.stderr, flush=True)


def handshakes():
    """(full, resumed, failed) TLS handshakes so far, summed over the workers."""
    text = urllib.request.urlopen(f"http://127.0.0.1:{PORT}/metrics", timeout=5).read().decode()
    total = {}
    for kind in ("full", "resumed", "failed"):
        total[kind] = sum(int(v) for v in re.findall(rf"^swiftlet_tls_handshakes_{kind}_total\S* (\d+)$", text, re.M))
    return total["full"], total["resumed"], total["failed"]


def run_wrk(pid, url, conns, close):
    cmd = ["wrk", "-t", "2", "-c", str(conns), "-d", f"{DURATION}s", "--latency"]
    if close:
        cmd += ["-H", "Connection: close"]
    cmd.append(url + "/plaintext")
    before = bench.cpu_seconds(pid)
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=DURATION + 60).stdout
    cpu = bench.cpu_seconds(pid) - before
    res = bench.parse_wrk(out)
    if res["non_2xx"]:
        raise RuntimeError(f"wrk saw errors:\n{out}")
    res["cpu_us"] = cpu / res["requests"] * 1e6
    return res


def full_handshakes(pid):
    """Two `openssl s_time -new` clients for DURATION seconds: (full
    handshakes/s, server CPU µs per handshake, (full, resumed, failed))."""
    before, cpu0 = handshakes(), bench.cpu_seconds(pid)
    cmd = ["openssl", "s_time", "-connect", f"127.0.0.1:{TLS_PORT}", "-new", "-time", str(DURATION),
           "-www", "/plaintext"]
    clients = [subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) for _ in range(2)]
    for c in clients:
        c.wait(timeout=DURATION + 60)
    cpu = bench.cpu_seconds(pid) - cpu0
    after = handshakes()
    kinds = tuple(a - b for a, b in zip(after, before))
    return kinds[0] / DURATION, cpu / max(kinds[0], 1) * 1e6, kinds


def main():
    with tempfile.TemporaryDirectory() as d:
        cert, key = Path(d) / "cert.pem", Path(d) / "key.pem"
        subprocess.run([str(bench.SWIFTLET), "dev-cert", "--cert", str(cert), "--key", str(key)], check=True,
                       capture_output=True)
        proc = subprocess.Popen(
            [str(bench.SWIFTLET), "--listen", f"127.0.0.1:{PORT}", "--tls-listen", f"127.0.0.1:{TLS_PORT}",
             "--tls-cert", str(cert), "--tls-key", str(key), "--log", "warn"],
            env=bench.SERVER_ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            bench.wait_ready(proc)
            for scheme, url in SCHEMES.items():  # warm-up, both
                subprocess.run(["wrk", "-t", "2", "-c", "100", "-d", "2s", url + "/plaintext"], capture_output=True,
                               timeout=60)
            keep = {s: [] for s in SCHEMES}
            fresh = {s: [] for s in SCHEMES}
            kinds = [0, 0, 0]
            full = []
            full_kinds = [0, 0, 0]
            for r in range(ROUNDS):
                order = list(SCHEMES) if r % 2 == 0 else list(reversed(SCHEMES))
                for scheme in order:
                    log(f"round {r + 1}/{ROUNDS}: {scheme} keep-alive, then new connections")
                    keep[scheme].append(run_wrk(proc.pid, SCHEMES[scheme], 100, close=False))
                    before = handshakes()
                    fresh[scheme].append(run_wrk(proc.pid, SCHEMES[scheme], 50, close=True))
                    after = handshakes()
                    if scheme == "HTTPS":
                        for i in range(3):
                            kinds[i] += after[i] - before[i]
                log(f"round {r + 1}/{ROUNDS}: full handshakes (openssl s_time -new)")
                rate, cpu_us, k = full_handshakes(proc.pid)
                full.append((rate, cpu_us))
                for i in range(3):
                    full_kinds[i] += k[i]
        finally:
            bench.stop(proc)

    def med(runs, key):
        return statistics.median(x[key] for x in runs)

    print(f"`/plaintext`, one swiftlet (2 workers) listening on HTTP and HTTPS (`swiftlet dev-cert` pair, "
          f"ECDSA P-256; rustls on aws-lc-rs). wrk -t 2, {DURATION} s per run after a 2 s warm-up of each, "
          f"median of {ROUNDS} alternating rounds. wrk's and openssl's OpenSSL negotiate TLS 1.3 "
          f"(TLS_AES_256_GCM_SHA384, checked with `openssl s_client`).\n")
    print("| figure | HTTP | HTTPS | HTTPS/HTTP |")
    print("|---|---:|---:|---:|")
    rows = [
        ("keep-alive requests/s (-c 100)", keep, "rps", "{:,.0f}"),
        ("keep-alive p99", keep, "p99_ms", "{:.2f} ms"),
        ("keep-alive server CPU per request", keep, "cpu_us", "{:.2f} µs"),
        ("new connections/s (-c 50, `Connection: close`)", fresh, "rps", "{:,.0f}"),
        ("new connection p99", fresh, "p99_ms", "{:.2f} ms"),
        ("server CPU per new connection", fresh, "cpu_us", "{:.1f} µs"),
    ]
    for label, runs, key, form in rows:
        plain, tls = med(runs["HTTP"], key), med(runs["HTTPS"], key)
        print(f"| {label} | {form.format(plain)} | {form.format(tls)} | {tls / plain:.3f} |")
    plain_conn = med(fresh["HTTP"], "cpu_us")
    rate = statistics.median(f[0] for f in full)
    cpu_full = statistics.median(f[1] for f in full)
    print(f"| full TLS handshakes/s (2 × `openssl s_time -new`) | — | {rate:,.0f} | — |")
    print(f"| server CPU per full handshake (+ one request) | {plain_conn:.1f} µs (a plain connection) | "
          f"{cpu_full:.1f} µs | {cpu_full / plain_conn:.3f} |")
    print(f"\nHandshakes by swiftlet's counters: in the wrk new-connection runs {kinds[0]:,} full, {kinds[1]:,} "
          f"resumed, {kinds[2]:,} failed (wrk resumes sessions; the failures are its connections cut off when a "
          f"run ends); in the s_time runs {full_kinds[0]:,} full, {full_kinds[1]:,} resumed, "
          f"{full_kinds[2]:,} failed.")
    for name, runs in (("keep-alive", keep), ("new connections", fresh)):
        spread = {s: (min(x["rps"] for x in runs[s]), max(x["rps"] for x in runs[s])) for s in SCHEMES}
        print(f"{name} requests/s, range over the rounds: HTTP {spread['HTTP'][0]:,.0f}–{spread['HTTP'][1]:,.0f}, "
              f"HTTPS {spread['HTTPS'][0]:,.0f}–{spread['HTTPS'][1]:,.0f}.")


if __name__ == "__main__":
    main()
