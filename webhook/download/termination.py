"""The one-line reason a downloader failed, where Kubernetes shows it: the
container's terminationMessagePath (/dev/termination-log by default) ends up
in the pod status, so `kubectl describe pod` and `kubectl get pod -o yaml`
name the cause instead of a bare exit code."""

from __future__ import annotations

import os

DEFAULT_PATH = "/dev/termination-log"
PATH_ENV = "MODEL_CACHE_TERMINATION_LOG"  # another path (tests; a custom terminationMessagePath)
LIMIT = 4096  # the kubelet keeps at most 4096 bytes of it


def record(message: str) -> None:
    """Writes MESSAGE to the termination log if that file exists and is
    writable; outside a pod it does not exist, and nothing is created."""
    path = os.environ.get(PATH_ENV) or DEFAULT_PATH
    try:
        fd = os.open(path, os.O_WRONLY | os.O_TRUNC)  # no O_CREAT: never a stray file on a host
    except OSError:
        return
    try:
        os.write(fd, message.encode()[:LIMIT])
    except OSError:
        pass
    finally:
        os.close(fd)
