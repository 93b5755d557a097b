#!/usr/bin/env python3
"""Memory while streaming a large video through swiftlet, to a local
directory and to S3 (moto's server, signatures checked), in one run.

For each storage: start swiftlet (2 workers, default 8 MiB parts), register a
user, upload a small video to warm up, read the RSS, then upload a
PERF_UPLOAD_MIB file with curl (`-T`, streamed with a Content-Length) while
sampling the server's RSS every 10 ms, and download it back the same way. The
baseline is the same server's idle RSS and the file's own size: a server that
buffered the file would grow by about its size.

Run it through perf/run-upload.sh, which builds the server, the database and
moto first.
"""

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench  # noqa: E402

PORT = bench.PORT
BASE = f"http://127.0.0.1:{PORT}"
SIZE_MIB = int(os.environ.get("PERF_UPLOAD_MIB", "1024"))
MOTO = os.environ["MOTO_SERVER"]
MOTO_PORT = PORT + 1000
MP4_HEAD = b"\x00\x00\x00\x18ftypisom\x00\x00\x02\x00isomiso2"


def log(*args):
    print(*args, file=sys.stderr, flush=True)


def api(method, path, body=None, token=None, data=None, headers=None):
    headers = dict(headers or {})
    if body is not None:
        data = json.dumps(body).encode()
        headers["Content-Type"] = "application/json"
    if token:
        headers["Authorization"] = f"Token {token}"
    req = urllib.request.Request(BASE + path, data=data, method=method, headers=headers)
    with urllib.request.urlopen(req, timeout=60) as res:
        return json.loads(res.read() or b"null")


def moto_start():
    """moto with signature checks after its first four actions, which set up
    a user, its key, an S3 policy and the bucket; returns (process, env)."""
    proc = subprocess.Popen([MOTO, "-H", "127.0.0.1", "-p", str(MOTO_PORT)],
                            env=dict(os.environ, INITIAL_NO_AUTH_ACTION_COUNT="4"),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{MOTO_PORT}"
    deadline = time.monotonic() + 30
    while True:
        try:
            import socket
            socket.create_connection(("127.0.0.1", MOTO_PORT), timeout=0.2).close()
            break
        except OSError:
            if time.monotonic() > deadline:
                raise RuntimeError("moto did not start")
            time.sleep(0.1)
    fake = "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20260101/us-east-1/{}/aws4_request, " \
           "SignedHeaders=host, Signature=0"

    def unsigned(method, path, service, body=b""):
        req = urllib.request.Request(url + path, data=body, method=method,
                                     headers={"Authorization": fake.format(service),
                                              "Content-Type": "application/x-www-form-urlencoded"})
        with urllib.request.urlopen(req, timeout=10) as res:
            return res.read().decode()

    iam = lambda action: unsigned("POST", "/", "iam", (action + "&Version=2010-05-08").encode())  # noqa: E731
    iam("Action=CreateUser&UserName=perf")
    key = iam("Action=CreateAccessKey&UserName=perf")
    policy = urllib.parse.quote('{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:*","Resource":"*"}]}')
    iam(f"Action=PutUserPolicy&UserName=perf&PolicyName=s3&PolicyDocument={policy}")
    unsigned("PUT", "/videos", "s3")
    env = {
        "SWIFTLET_S3_BUCKET": "videos",
        "SWIFTLET_S3_ENDPOINT": url,
        "SWIFTLET_S3_ACCESS_KEY_ID": re.search(r"<AccessKeyId>(.*?)<", key).group(1),
        "SWIFTLET_S3_SECRET_ACCESS_KEY": re.search(r"<SecretAccessKey>(.*?)<", key).group(1),
    }
    return proc, env


def measure(name, env, big):
    video_dir = tempfile.mkdtemp(prefix="swiftlet-perf-videos-")
    server_env = dict(bench.SERVER_ENV, DATABASE_URL=os.environ["DATABASE_URL"], REDIS_URL=os.environ["REDIS_URL"],
                      SWIFTLET_VIDEO_DIR=video_dir, **env)
    proc = subprocess.Popen([str(bench.SWIFTLET), "--listen", f"127.0.0.1:{PORT}", "--log", "warn"],
                            env=server_env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        bench.wait_ready(proc)
        # New rows need an ID, and the node leases its node id from Redis at start.
        deadline = time.monotonic() + 30
        while True:
            try:
                api("GET", "/api/ids")
                break
            except urllib.error.HTTPError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        fresh = bench.rss_kib(proc.pid)
        user = f"perf{int(time.time() * 1000)}"
        token = api("POST", "/api/users", {"user": {"username": user, "email": f"{user}@example.com",
                                                     "password": "perf-password"}})["user"]["token"]
        small = MP4_HEAD + bytes(1 << 20)
        api("POST", "/api/videos?title=warm-up", token=token, data=small, headers={"Content-Type": "video/mp4"})
        time.sleep(1)
        before = bench.rss_kib(proc.pid)

        sampler = bench.RssSampler(proc.pid)
        start = time.monotonic()
        out = subprocess.run(["curl", "-sS", "-X", "POST", "-T", str(big), "-H", "Content-Type: video/mp4",
                              "-H", f"Authorization: Token {token}", f"{BASE}/api/videos?title=big"],
                             capture_output=True, text=True, timeout=1800)
        up_s = time.monotonic() - start
        up_peak = sampler.stop()
        created = json.loads(out.stdout)["video"]
        if created["size"] != big.stat().st_size:
            raise RuntimeError(f"stored {created['size']} bytes of {big.stat().st_size}")

        sampler = bench.RssSampler(proc.pid)
        start = time.monotonic()
        got = subprocess.run(["curl", "-sS", "-o", "/dev/null", "-w", "%{size_download}",
                              f"{BASE}{created['contentUrl']}"], capture_output=True, text=True, timeout=1800)
        down_s = time.monotonic() - start
        down_peak = sampler.stop()
        if int(got.stdout) != created["size"]:
            raise RuntimeError(f"downloaded {got.stdout} bytes of {created['size']}")
        hwm = bench.peak_rss_kib(proc.pid)
        return {"fresh": fresh, "before": before, "up_peak": up_peak, "down_peak": down_peak, "hwm": hwm,
                "up_mib_s": SIZE_MIB / up_s, "down_mib_s": SIZE_MIB / down_s}
    finally:
        bench.stop(proc)
        shutil.rmtree(video_dir, ignore_errors=True)


def main():
    with tempfile.TemporaryDirectory() as d:
        big = Path(d) / "big.mp4"
        with open(big, "wb") as f:
            f.write(MP4_HEAD)
            f.truncate(SIZE_MIB << 20)
        results = {}
        log(f"local directory: uploading {SIZE_MIB} MiB")
        results["local directory"] = measure("local", {}, big)
        moto, env = moto_start()
        try:
            log(f"S3 (moto): uploading {SIZE_MIB} MiB")
            results["S3 (moto)"] = measure("s3", env, big)
        finally:
            moto.terminate()
            moto.wait()
    mib = lambda kib: kib / 1024  # noqa: E731
    print(f"One {SIZE_MIB:,} MiB MP4 uploaded (`curl -T`, streamed) and downloaded back through swiftlet "
          f"(2 workers, 8 MiB parts, at most 2 in flight); RSS sampled every 10 ms.\n")
    print("| storage | RSS fresh | RSS before the upload | peak RSS, upload | peak RSS, download | growth | "
          "growth / file | upload | download |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for name, r in results.items():
        peak = max(r["up_peak"], r["down_peak"], r["hwm"])
        grow = peak - r["before"]
        print(f"| {name} | {mib(r['fresh']):.1f} MiB | {mib(r['before']):.1f} MiB | {mib(r['up_peak']):.1f} MiB | "
              f"{mib(r['down_peak']):.1f} MiB | {mib(grow):.1f} MiB | {grow / (SIZE_MIB * 1024):.4f} | "
              f"{r['up_mib_s']:,.0f} MiB/s | {r['down_mib_s']:,.0f} MiB/s |")
    print("\n\"Fresh\" is right after start; \"before the upload\" is after registering a user (argon2 hashes "
          "with 19 MiB, which jemalloc returns to the OS only after its decay time) and a 1 MiB warm-up upload. "
          "Growth is the highest of the samples and the kernel's VmHWM, minus the RSS before the upload.")


if __name__ == "__main__":
    main()
