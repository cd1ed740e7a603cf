"""The downloader against a remote-like origin (see docs/benchmarks.md#throttled-origin):
a throttling proxy (bench/throttle_proxy.py: per-connection cap, link cap,
latency) in front of the loopback http/S3 origin (bench/download_origin.py),
comparing `model-cache download` with aria2c (Debian's aria2) and boto3's
TransferManager, interleaved, several runs, medians.

    .venv/bin/python bench/download_throttled.py --size-gib 2 --runs 3 --workdir /tmp/mc-tbench

Scenarios (all written to disk and fsynced by every tool):
  http1   one SIZE file over http            model-cache (--sha256) vs aria2c -x J -s J (--checksum)
  s3multi 4 x SIZE/4 objects + 40 small ones  model-cache s3:// vs boto3 TransferManager
  s3one   one SIZE object over s3             model-cache s3:// vs boto3 TransferManager
Also: origin bytes after a kill -9 at ~50% and a resume (http1), origin
bytes for 8 racing replicas (s3multi), and the downloader's peak RSS.
Needs aria2c (`apt-get install -y aria2`); --install-aria2 does that.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run as a script: bench/ is a package of the checkout

from bench.ports import free_port  # noqa: E402
PY = sys.executable
MC = [str(Path(PY).with_name("model-cache"))]
MiB = 1 << 20


def write_file(path: Path, size: int, seed: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    block = bytearray(os.urandom(16 * MiB))
    with open(path, "wb") as f:
        left, i = size, 0
        while left > 0:
            block[:8] = (seed * 1_000_003 + i).to_bytes(8, "little")  # no two blocks alike
            f.write(block[: min(left, len(block))])
            left -= len(block)
            i += 1


def make_data(d: Path, size: int) -> None:
    stamp = d / ".done"
    if stamp.exists() and stamp.read_text() == str(size):
        return
    shutil.rmtree(d, ignore_errors=True)
    write_file(d / "big.bin", size, 1)
    for i in range(4):
        write_file(d / "multi" / f"w-{i}.bin", size // 4, 10 + i)
    for i in range(40):
        (d / "multi" / "small").mkdir(parents=True, exist_ok=True)
        (d / "multi" / "small" / f"f-{i:02d}.json").write_bytes(os.urandom(256 * 1024))
    stamp.write_text(str(size))


def sha256_file(p: Path) -> str:
    h = hashlib.sha256()
    with open(p, "rb") as f:
        while buf := f.read(4 * MiB):
            h.update(buf)
    return h.hexdigest()


def tree_bytes(p: Path) -> int:
    return sum(f.stat().st_size for f in p.rglob("*") if f.is_file() and f.name != ".done")


def timed(cmd: list[str], env: dict[str, str]) -> tuple[float, int]:
    """(seconds, peak RSS in KiB of the process itself) of one command; the
    page cache is written back first so no run pays for the previous one."""
    os.sync()
    t0 = time.perf_counter()
    p = subprocess.Popen(cmd, env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _pid, status, usage = os.wait4(p.pid, 0)
    dt = time.perf_counter() - t0
    err = p.stderr.read().decode()
    p.stderr.close()
    rc = os.waitstatus_to_exitcode(status)
    if rc != 0:
        raise SystemExit(f"FAILED ({rc}): {' '.join(cmd)}\n{err[-3000:]}")
    return dt, usage.ru_maxrss


def served(origin: str) -> int:
    return json.loads(urllib.request.urlopen(origin + "/_stats").read())["served"]


def reset(origin: str) -> None:
    urllib.request.urlopen(origin + "/_reset").read()


def start(cmd: list[str]) -> subprocess.Popen:
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
    assert p.stdout.readline().strip() == "ready"
    return p


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--size-gib", type=float, default=2.0)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--jobs", type=int, default=16, help="connections for every tool")
    ap.add_argument("--conn-mbps", type=float, default=40.0)
    ap.add_argument("--link-mbps", type=float, default=400.0)
    ap.add_argument("--latency-ms", type=float, default=20.0)
    ap.add_argument("--workdir", default="/tmp/mc-tbench")
    ap.add_argument("--scenarios", default="http1,s3multi,s3one")
    ap.add_argument("--no-extras", action="store_true", help="skip the kill -9 and racing-replica measures")
    ap.add_argument("--install-aria2", action="store_true", help="apt-get install -y aria2 if aria2c is missing")
    a = ap.parse_args()

    if shutil.which("aria2c") is None:
        if not a.install_aria2:
            raise SystemExit("aria2c is missing: apt-get install -y aria2 (or pass --install-aria2)")
        subprocess.run(["apt-get", "install", "-y", "-q", "aria2"], check=True)
    work = Path(a.workdir)
    data = work / "data"
    size = int(a.size_gib * (1 << 30))
    make_data(data, size)
    big_sha = sha256_file(data / "big.bin")
    out = work / "out"
    oport, pport = free_port(), free_port()
    origin = f"http://127.0.0.1:{oport}"
    proxy = f"http://127.0.0.1:{pport}"
    procs = [start([PY, str(ROOT / "bench" / "download_origin.py"), str(data), str(oport), "256"]),
             start([PY, str(ROOT / "bench" / "throttle_proxy.py"), str(pport), str(oport), "--conn-mbps",
                    str(a.conn_mbps), "--link-mbps", str(a.link_mbps), "--latency-ms", str(a.latency_ms)])]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "MODEL_CACHE_", "HF_"))}
    env.update(AWS_ENDPOINT_URL=proxy, AWS_ACCESS_KEY_ID="bench", AWS_SECRET_ACCESS_KEY="bench",
               AWS_REGION="us-east-1", AWS_EC2_METADATA_DISABLED="true", MODEL_CACHE_S3_ADDRESSING_STYLE="path",
               MODEL_CACHE_PROGRESS_SECONDS="3600", NO_PROXY="*")
    J = str(a.jobs)
    scen = {
        "http1": {
            "bytes": size,
            "mc": lambda d: MC + ["download", "--source", f"{proxy}/big.bin", "--dest", str(d / "m"),
                                  "--sha256", big_sha, "--jobs", J],
            # aria2c without --checksum (it hashes after the download, which
            # only slows it): the stricter comparison for model-cache, which
            # verifies the sha256.
            "peer_name": f"aria2c -x{J} -s{J} -k16M --file-allocation=falloc, then sync",
            "peer": lambda d: ["sh", "-c", f"aria2c -q -x{J} -s{J} -k16M --file-allocation=falloc "
                                           f"--allow-overwrite=true "
                                           f"-d {d} -o big.bin {proxy}/big.bin && sync {d}/big.bin"],
        },
        "s3multi": {
            "bytes": tree_bytes(data / "multi"),
            "mc": lambda d: MC + ["download", "--source", "s3://s3bucket/multi", "--dest", str(d / "m"), "--jobs", J],
            "peer_name": f"boto3 TransferManager, {J} threads, 16 MiB chunks (fsynced)",
            "peer": lambda d: [PY, str(ROOT / "bench" / "download_boto3_peer.py"), proxy, "s3bucket", "multi",
                               str(d / "b"), "--jobs", J],
        },
        "s3one": {
            "bytes": size,
            "mc": lambda d: MC + ["download", "--source", "s3://s3bucket/big.bin", "--dest", str(d / "m"), "--jobs", J],
            "peer_name": f"boto3 TransferManager, {J} threads, 16 MiB chunks (fsynced)",
            "peer": lambda d: [PY, str(ROOT / "bench" / "download_boto3_peer.py"), proxy, "s3bucket", "big.bin",
                               str(d / "b"), "--jobs", J],
        },
    }
    names = [s for s in a.scenarios.split(",") if s]
    times: dict[str, dict[str, list[float]]] = {n: {"mc": [], "peer": []} for n in names}
    rss: list[int] = []

    def fresh() -> Path:
        shutil.rmtree(out, ignore_errors=True)
        out.mkdir(parents=True)
        return out

    try:
        # One untimed round first: the first download after the servers start
        # (cold page cache of the origin's files, the first big allocation on
        # the volume) was 2-3x slower for every tool.
        for n in names:
            for who in ("mc", "peer"):
                timed(scen[n][who](fresh()), env)
        for run in range(a.runs):
            for n in names:
                order = ["mc", "peer"] if run % 2 == 0 else ["peer", "mc"]  # interleaved
                for who in order:
                    d = fresh()
                    dt, r = timed(scen[n][who](d), env)
                    times[n][who].append(dt)
                    if who == "mc":
                        rss.append(r)
                    print(f"run {run + 1} {n} {who}: {dt:.2f}s ({scen[n]['bytes'] / dt / 1e6:.0f} MB/s)",
                          file=sys.stderr, flush=True)
        results: dict[str, object] = {
            "setup": {"size_bytes": size, "runs": a.runs, "jobs": a.jobs, "conn_MBps": a.conn_mbps,
                      "link_MBps": a.link_mbps, "latency_ms": a.latency_ms, "cores": os.cpu_count()}}
        for n in names:
            b = scen[n]["bytes"]
            mc, peer = statistics.median(times[n]["mc"]), statistics.median(times[n]["peer"])
            results[n] = {"bytes": b, "peer": scen[n]["peer_name"], "model_cache_runs_s": times[n]["mc"],
                          "peer_runs_s": times[n]["peer"], "model_cache_MBps": b / mc / 1e6,
                          "peer_MBps": b / peer / 1e6, "ratio_vs_peer": peer / mc,
                          "ratio_vs_link": b / mc / 1e6 / a.link_mbps}
        results["model_cache_peak_rss_MiB"] = max(rss) / 1024 if rss else None

        if not a.no_extras:
            # kill -9 at about half-way, then resume: origin bytes over the file.
            d = fresh()
            reset(origin)
            cmd = scen["http1"]["mc"](d)
            p = subprocess.Popen(cmd, env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            while served(origin) < size // 2 and p.poll() is None:
                time.sleep(0.02)
            at = served(origin)
            os.kill(p.pid, signal.SIGKILL)
            p.wait()
            killed_at = served(origin)
            dt, _ = timed(cmd, env)
            total = served(origin)
            results["kill9_resume"] = {"killed_at_fraction": at / size, "served_before_kill": killed_at,
                                       "origin_bytes_over_file": total / size,
                                       "refetched_fraction": (total - size) / size, "resume_s": dt}
            # 8 racing replicas on one directory.
            d = fresh()
            reset(origin)
            cmd = scen["s3multi"]["mc"](d)
            t0 = time.perf_counter()
            ps = [subprocess.Popen(cmd, env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                  for _ in range(8)]
            codes = [p.wait() for p in ps]
            results["race_8_replicas"] = {"exit_codes": codes, "wall_s": time.perf_counter() - t0,
                                          "origin_bytes_over_model": served(origin) / scen["s3multi"]["bytes"]}
    finally:
        for p in procs:
            p.terminate()
            p.wait()
        shutil.rmtree(out, ignore_errors=True)
    results["loadavg_at_end"] = os.getloadavg()
    print(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
