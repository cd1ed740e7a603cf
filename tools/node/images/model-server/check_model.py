"""The model server of tests/node, as small as it can be: it does what vLLM or
TGI would do with the mounted model (read every file) and reports what it
found, so that a test can compare it with the origin.

Reads MODEL_CACHE_PATH (set by the webhook), hashes every file under it,
tries to write there (a read-only mount must refuse), and prints one JSON
line; then sleeps, so that the pod stays Running for the test to look at.
"""

import errno
import hashlib
import json
import os
import signal
import sys
import time


def main() -> None:
    root = os.environ.get("MODEL_CACHE_PATH", "/model-cache")
    files = {}
    def unreadable(err: OSError) -> None:
        raise err  # a directory the server cannot list is a failure, not an empty model

    for dirpath, _, names in os.walk(root, onerror=unreadable):
        for name in names:
            path = os.path.join(dirpath, name)
            digest = hashlib.sha256()
            with open(path, "rb") as f:
                for chunk in iter(lambda: f.read(1 << 20), b""):
                    digest.update(chunk)
            files[os.path.relpath(path, root)] = digest.hexdigest()
    try:
        with open(os.path.join(root, ".write-probe"), "w") as f:
            f.write("x")
        write = "allowed"
    except OSError as err:
        write = errno.errorcode.get(err.errno, str(err.errno))
    shm = os.statvfs("/dev/shm") if os.path.isdir("/dev/shm") else None
    report = {
        "files": files,
        "write": write,
        "uid": os.getuid(),
        "shm_bytes": shm.f_blocks * shm.f_frsize if shm else None,
        "memory_limit": _read("/sys/fs/cgroup/memory/memory.limit_in_bytes"),
    }
    print("MODEL-REPORT " + json.dumps(report, sort_keys=True), flush=True)
    if "--once" in sys.argv:
        return
    # PID 1 ignores SIGTERM unless it handles it: without this every pod
    # deletion would wait out its whole grace period.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    while True:
        time.sleep(3600)


def _read(path: str) -> str | None:
    try:
        with open(path) as f:
            return f.read().strip()
    except OSError:
        return None


if __name__ == "__main__":
    main()
