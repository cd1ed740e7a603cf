"""Benchmark of `model-cache download` on loopback (see docs/benchmarks.md#downloader-benchmarks).

    .venv/bin/python bench/download_bench.py --size-gb 2 --workdir /tmp/mc-bench

Builds a model (one large file and many small ones), serves it with
bench/download_origin.py, and measures:
  * one large file over http: model-cache vs curl;
  * the whole repo over hf://: model-cache vs `hf download` vs curl (8 parallel);
  * the fast path on a completed cache of 10,000 files;
  * 8 racing replicas: origin bytes / model size, and wall time vs one downloader;
  * peak RSS of the downloader.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
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
MC = [str(Path(PY).with_name("model-cache"))]  # the installed command, wherever its module lives
HF = str(Path(PY).with_name("hf"))


def make_model(d: Path, size: int, small_files: int, small_size: int) -> int:
    if (d / ".done").exists():
        return sum(p.stat().st_size for p in d.rglob("*") if p.is_file() and p.name != ".done")
    shutil.rmtree(d, ignore_errors=True)
    (d / "shards").mkdir(parents=True)
    for i in range(small_files):
        (d / "shards" / f"part-{i:04d}.bin").write_bytes(os.urandom(small_size))
    (d / "config.json").write_text('{"model_type": "bench"}')
    big = size - small_files * small_size
    with open(d / "model.safetensors", "wb") as f:
        block = os.urandom(16 << 20)
        left = big
        while left > 0:
            f.write(block[: min(left, len(block))])
            left -= len(block)
    (d / ".done").write_text("")
    return sum(p.stat().st_size for p in d.rglob("*") if p.is_file() and p.name != ".done")


def timed(cmd: list[str], env: dict[str, str] | None = None) -> tuple[float, int, int]:
    """(seconds, exit code, peak RSS in KiB) of one command. The page cache
    is written back first, so that no run pays for the previous one's writes."""
    os.sync()
    t0 = time.perf_counter()
    p = subprocess.Popen(cmd, env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _pid, status, usage = os.wait4(p.pid, 0)
    dt = time.perf_counter() - t0
    rc = os.waitstatus_to_exitcode(status)
    if rc != 0:
        print(f"FAILED ({rc}): {' '.join(cmd)}\n{p.stderr.read().decode()[-2000:]}", file=sys.stderr)
    p.stderr.close()
    return dt, rc, usage.ru_maxrss


def stats(origin: str) -> int:
    return json.loads(urllib.request.urlopen(origin + "/_stats").read())["served"]


def reset(origin: str) -> None:
    urllib.request.urlopen(origin + "/_reset").read()


def best(xs: list[float]) -> float:
    return min(xs)


def med(xs: list[float]) -> float:
    return statistics.median(xs)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--size-gb", type=float, default=2.0)
    ap.add_argument("--small-files", type=int, default=400)
    ap.add_argument("--small-kib", type=int, default=256)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--workdir", default="/tmp/mc-bench")
    ap.add_argument("--replicas", type=int, default=8)
    args = ap.parse_args()

    work = Path(args.workdir)
    model = work / "model"
    size = make_model(model, int(args.size_gb * 1e9), args.small_files, args.small_kib * 1024)
    big = (model / "model.safetensors").stat().st_size
    out = work / "out"
    port = free_port()
    origin = f"http://127.0.0.1:{port}"
    srv = subprocess.Popen([PY, str(ROOT / "bench" / "download_origin.py"), str(model), str(port)],
                           stdout=subprocess.PIPE, text=True)
    assert srv.stdout.readline().strip() == "ready"
    env = dict(os.environ, HF_ENDPOINT=origin, HF_HOME=str(work / "hf-home"), HF_HUB_DISABLE_TELEMETRY="1",
               HF_HUB_DISABLE_PROGRESS_BARS="1", MODEL_CACHE_PROGRESS_SECONDS="3600")
    results: dict[str, object] = {"model_bytes": size, "large_file_bytes": big, "files": args.small_files + 2}
    try:
        def fresh() -> None:
            shutil.rmtree(out, ignore_errors=True)
            out.mkdir(parents=True)

        # 1. One large file over http.
        t_curl, t_curl_sync, t_mc, rss = [], [], [], []
        for _ in range(args.runs):
            fresh()
            t_curl.append(timed(["curl", "-sf", "-o", str(out / "big"), f"{origin}/model.safetensors"])[0])
            fresh()
            # curl made as durable as the downloader (which fsyncs before its marker).
            t_curl_sync.append(timed(["sh", "-c", f"curl -sf -o {out}/big {origin}/model.safetensors && sync {out}/big"])[0])
            fresh()
            dt, rc, r = timed(MC + ["download", "--source", f"{origin}/model.safetensors", "--dest", str(out / "m" / "main")], env)
            assert rc == 0
            t_mc.append(dt)
            rss.append(r)
        results["large_file"] = {"curl_runs_s": t_curl, "curl_sync_runs_s": t_curl_sync, "model_cache_runs_s": t_mc,
                                 "curl_sync_s": best(t_curl_sync), "ratio_vs_curl_sync": best(t_curl_sync) / best(t_mc),
                                 "curl_s": best(t_curl), "model_cache_s": best(t_mc),
                                 "median_ratio": med(t_curl) / med(t_mc),
                                 "curl_MBps": big / best(t_curl) / 1e6, "model_cache_MBps": big / best(t_mc) / 1e6,
                                 "ratio": best(t_curl) / best(t_mc), "model_cache_peak_rss_MiB": max(rss) / 1024}

        # 2. The whole repo: hf:// vs `hf download` vs curl with 8 transfers at once.
        files = sorted(p.relative_to(model).as_posix() for p in model.rglob("*") if p.is_file() and p.name != ".done")
        t_curl, t_curl_sync, t_mc, t_hf, rss = [], [], [], [], []
        cfg = work / "curl.cfg"
        cfg.write_text("".join(f'url = "{origin}/{f}"\noutput = "{out}/c/{f}"\n' for f in files))
        for _ in range(args.runs):
            fresh()
            t_curl.append(timed(["curl", "-sf", "--create-dirs", "--parallel", "--parallel-max", "8", "-K", str(cfg)])[0])
            fresh()
            t_curl_sync.append(timed(["sh", "-c", f"curl -sf --create-dirs --parallel --parallel-max 8 -K {cfg} && sync"])[0])
            fresh()
            dt, rc, r = timed(MC + ["download", "--source", "hf://bench/model", "--dest", str(out / "m" / "main")], env)
            assert rc == 0
            t_mc.append(dt)
            rss.append(r)
            fresh()
            dt, rc, _ = timed([HF, "download", "bench/model", "--local-dir", str(out / "hf")], env)
            assert rc == 0
            t_hf.append(dt)
        results["repo"] = {"curl_runs_s": t_curl, "curl_sync_runs_s": t_curl_sync, "model_cache_runs_s": t_mc,
                           "hf_download_runs_s": t_hf, "curl_sync_s": best(t_curl_sync),
                           "ratio_vs_curl_sync": best(t_curl_sync) / best(t_mc),
                           "median_ratio_vs_curl": med(t_curl) / med(t_mc),
                           "curl_parallel8_s": best(t_curl), "model_cache_s": best(t_mc), "hf_download_s": best(t_hf),
                           "curl_MBps": size / best(t_curl) / 1e6, "model_cache_MBps": size / best(t_mc) / 1e6,
                           "hf_download_MBps": size / best(t_hf) / 1e6, "ratio_vs_curl": best(t_curl) / best(t_mc),
                           "model_cache_peak_rss_MiB": max(rss) / 1024}
        single = best(t_mc)

        # 3. Racing replicas on one directory.
        fresh()
        reset(origin)
        dest = out / "race" / "main"
        os.sync()
        t0 = time.perf_counter()
        procs = [subprocess.Popen(MC + ["download", "--source", "hf://bench/model", "--dest", str(dest)], env=env, cwd=ROOT,
                                  stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
                 for _ in range(args.replicas)]
        ends: dict[int, float] = {}
        while len(ends) < len(procs):
            for i, p in enumerate(procs):
                if i not in ends and p.poll() is not None:
                    ends[i] = time.perf_counter() - t0
            time.sleep(0.01)
        codes = [p.returncode for p in procs]
        outs = [p.stdout.read() for p in procs]
        holder = next(i for i, o in enumerate(outs) if "downloading hf://" in o)
        wall = max(ends.values())
        served = stats(origin)
        results["race"] = {"replicas": args.replicas, "exit_codes": codes, "wall_s": wall, "holder_s": ends[holder],
                           "last_waiter_after_holder_s": wall - ends[holder], "single_s": single,
                           "single_median_s": med(t_mc), "origin_bytes_over_model": served / size}

        # 4. The fast path on a completed cache of 10,000 files.
        many = work / "many"
        if not (many / ".done").exists():
            shutil.rmtree(many, ignore_errors=True)
            for i in range(10_000):
                d = many / f"d{i // 500:02d}"
                d.mkdir(parents=True, exist_ok=True)
                (d / f"f{i:05d}.json").write_text("{}")
            (many / ".done").write_text("")
        fp_dest = out / "fast" / "main"
        dt, rc, _ = timed(MC + ["download", "--source", f"file://{many}", "--dest", str(fp_dest)], env)
        assert rc == 0
        times = [timed(MC + ["download", "--source", f"file://{many}", "--dest", str(fp_dest)], env)[0] for _ in range(10)]
        py_start = [timed([PY, "-c", "pass"])[0] for _ in range(5)]
        results["fast_path"] = {"files": 10_001, "median_s": statistics.median(times), "max_s": max(times),
                                "python_startup_s": statistics.median(py_start), "first_copy_s": dt}
    finally:
        srv.terminate()
        srv.wait()
        shutil.rmtree(out, ignore_errors=True)
    results["loadavg_at_end"] = os.getloadavg()
    print(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
