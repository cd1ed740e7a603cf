"""Origin bytes after a `kill -9` of `model-cache download` on a tar
archive, at several points of the download, then a rerun (issue 26,
item 4; docs/benchmarks.md#killed-tar-downloads):

    sudo .venv/bin/python bench/bench_tar_resume.py --size-mib 256 --points 0.1,0.3,0.5,0.7,0.9

Cases, each on a tmpfs volume of its own (root: it mounts them):
  plain tar, no room   .tar on a volume of the model's size: streams, resumes at its checkpoint
  tar.gz, room         .tar.gz on a volume with room for the archive beside its contents: kept, fetched in parts
  tar.gz, no room      .tar.gz on a volume of the model's size: streams, a kill starts it over (the rule's exception)
The origin is tests/download/origin.py on loopback, throttled so that a run
lasts a few seconds; it counts every body byte it sends (also bytes parked
in the killed process's socket buffers: the figures are an upper bound).
The kill comes when the origin has sent the given fraction of the archive.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import os
import socket
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run as a script: bench/ is a package of the checkout

from tests.download.origin import Origin  # noqa: E402

MC = str(Path(sys.executable).with_name("model-cache"))
MiB = 1 << 20


def build(total: int, mode: str) -> tuple[bytes, int]:
    """A model of TOTAL bytes (one large file, config and shards) as a tar; its contents' size."""
    sizes = {"model-00001.safetensors": total // 2, "model-00002.safetensors": total // 4,
             **{f"shard-{i}.bin": total // 32 for i in range(8)}, "config.json": 4096}
    buf = io.BytesIO()
    kw = {"compresslevel": 1} if mode == "w:gz" else {}  # random bytes do not compress: be quick about it
    with tarfile.open(fileobj=buf, mode=mode, **kw) as tf:
        for name, n in sizes.items():
            info = tarfile.TarInfo(name)
            info.size = n
            tf.addfile(info, io.BytesIO(os.urandom(n)))
    return buf.getvalue(), sum(sizes.values())


def mount(where: Path, size: int) -> None:
    where.mkdir(parents=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(where)], check=True)


def one(origin: Origin, path: str, archive: bytes, volume: Path, size: int, point: float, env: dict) -> tuple[int, int, float]:
    origin.files[path] = archive
    origin.reset_counts()
    origin.throttle = 0.002
    dest = volume / "m" / "main"
    cmd = [MC, "download", "--source", origin.url + path, "--dest", str(dest),
           "--sha256", hashlib.sha256(archive).hexdigest(), "--size", str(size + (64 << 10))]
    p = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    while origin.total_served() < point * len(archive):
        if p.poll() is not None:
            raise SystemExit(f"the download ended before {point:.0%}: exit {p.returncode}: {p.stderr.read()}")
        time.sleep(0.005)
    p.kill()
    p.wait()
    before = origin.total_served()
    origin.throttle = 0
    r = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if r.returncode != 0:
        raise SystemExit(f"the rerun failed: {r.stderr}")
    return before, origin.total_served(), origin.total_served() / len(archive)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--size-mib", type=int, default=256)
    ap.add_argument("--points", default="0.1,0.3,0.5,0.7,0.9")
    ap.add_argument("--cases", default="plain,room,noroom", help="plain (.tar, no room), room (.tar.gz kept), noroom (.tar.gz streamed)")
    args = ap.parse_args()
    points = [float(x) for x in args.points.split(",")]
    total = args.size_mib * MiB
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MODEL_CACHE_", "AWS_", "HF_"))}
    env.update(MODEL_CACHE_STALE_SECONDS="3", MODEL_CACHE_HEARTBEAT_SECONDS="0.3", MODEL_CACHE_RETRY_BACKOFF="0.05")
    plain, contents = build(total, "w")
    packed, _ = build(total, "w:gz")
    cases = [c[1:] for c in [("plain", "plain tar, no room", "/m.tar", plain, contents + (1 << 20)),
                             ("room", "tar.gz, room", "/m.tar.gz", packed, contents + len(packed) + (8 << 20)),
                             ("noroom", "tar.gz, no room", "/m.tar.gz", packed, contents + (1 << 20))]
             if c[0] in args.cases.split(",")]
    origin = Origin()
    # Accepted connections inherit it: the bytes counted as served are about
    # the bytes that left, not megabytes parked in loopback send buffers.
    origin.server.socket.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 256 << 10)
    origin.start()
    print(f"archive: {len(plain) / MiB:.0f} MiB plain, {len(packed) / MiB:.0f} MiB gzip (random contents)")
    print("| case | killed at | origin bytes before the kill | in all | / archive |")
    print("|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        n = 0
        try:
            for name, path, archive, volume_size in cases:
                for point in points:
                    n += 1
                    volume = Path(tmp) / f"v{n}"
                    mount(volume, volume_size)
                    try:
                        before, after, ratio = one(origin, path, archive, volume, contents, point, env)
                    finally:
                        subprocess.run(["umount", "-l", str(volume)], check=False)
                    print(f"| {name} | {point:.0%} | {before / MiB:.1f} MiB | {after / MiB:.1f} MiB | {ratio:.3f} |",
                          flush=True)
        finally:
            origin.stop()


if __name__ == "__main__":
    main()
