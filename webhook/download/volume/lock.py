"""A lock file beside the destination, safe on NFS: no flock.

* Acquire: the owner record is written to a private temporary file which is
  then hard-linked to the lock name. link() is atomic on local file systems
  and on NFS, and the lock appears with its whole content (never empty).
  Where hard links are not supported we fall back to O_CREAT|O_EXCL.
* Heartbeat: the holder sets the lock file's mtime every few seconds.
  Waiters never compare that time with their own clock (nodes' clocks
  differ): they note when they last saw it change, on their own monotonic
  clock, and call the lock stale when it stayed unchanged longer than a
  threshold.
* Immediate takeover: a holder in our own pid namespace whose pid is gone, or
  a holder that was an earlier run of this same pod's downloader (Kubernetes
  runs one instance of an init container at a time, so it has exited).
* Takeover renames the stale lock away first and checks that what it renamed
  was the stale one; a live lock caught by mistake is linked back.
"""

from __future__ import annotations

import json
import os
import socket
import time
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

from webhook.download.errors import LockLost


def _read_first_line(path: str) -> str:
    try:
        with open(path) as f:
            return f.readline().strip()
    except OSError:
        return ""


def _pid_namespace() -> str:
    try:
        return os.readlink("/proc/self/ns/pid")
    except OSError:
        return ""


@dataclass(frozen=True)
class Owner:
    """Who holds a lock; written once into the lock file as JSON."""

    token: str
    pid: int = 0
    host: str = ""
    pod: str = ""
    node: str = ""
    boot_id: str = ""
    pidns: str = ""
    created: float = field(default=0.0)

    def describe(self) -> str:
        if self.pod:
            where = f"pod {self.pod}" + (f" on node {self.node}" if self.node else "")
        else:
            where = f"host {self.host or '?'}"
        return f"{where} (pid {self.pid})"

    def to_json(self) -> bytes:
        return json.dumps(asdict(self), sort_keys=True).encode() + b"\n"

    @staticmethod
    def from_json(data: bytes) -> "Owner | None":
        try:
            raw = json.loads(data)
            known = {k: raw[k] for k in Owner.__dataclass_fields__ if k in raw}
            return Owner(**known) if known.get("token") else None
        except (ValueError, TypeError):
            return None


def current_owner() -> Owner:
    """This process, identified by the pod (downward API) or the host."""
    return Owner(
        token=uuid.uuid4().hex,
        pid=os.getpid(),
        host=socket.gethostname(),
        pod=os.environ.get("POD_NAME", ""),
        node=os.environ.get("NODE_NAME", ""),
        boot_id=_read_first_line("/proc/sys/kernel/random/boot_id"),
        pidns=_pid_namespace(),
        created=time.time(),
    )


def pid_alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # it exists, it is just not ours
    return True


def holder_is_dead(holder: Owner, me: Owner, alive: Callable[[int], bool] = pid_alive) -> bool:
    """True when we can tell for sure, without waiting, that `holder` is gone."""
    if holder.token == me.token:
        return False
    same_ns = bool(holder.pidns) and holder.pidns == me.pidns and holder.boot_id == me.boot_id
    if same_ns and holder.host == me.host:
        # Two live processes never share a pid within one namespace.
        return holder.pid == me.pid or not alive(holder.pid)
    if holder.pod and holder.pod == me.pod and holder.host == me.host and not same_ns:
        # An earlier instance of this pod's init container (a restart gets a
        # new pid namespace); the kubelet never runs two at once.
        return True
    return False


class StaleWatch:
    """Decides staleness from what a waiter observes, on the waiter's clock only."""

    def __init__(self, stale_after: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.stale_after = stale_after
        self._clock = clock
        self._seen: tuple | None = None
        self._since = 0.0

    def observe(self, state: tuple) -> bool:
        """`state` is anything that changes with each heartbeat (token, mtime).
        Returns True once it stayed the same for `stale_after` seconds."""
        now = self._clock()
        if state != self._seen:
            self._seen = state
            self._since = now
            return False
        return now - self._since >= self.stale_after

    def unchanged_for(self) -> float:
        return self._clock() - self._since if self._seen is not None else 0.0


@dataclass
class LockState:
    """What a waiter sees of the lock: its owner (None if unreadable) and mtime."""

    owner: Owner | None
    mtime_ns: int
    ino: int


def read_lock(path: Path) -> LockState | None:
    """None when there is no lock."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return None
    try:
        st = os.fstat(fd)
        data = os.read(fd, 65536)
    finally:
        os.close(fd)
    return LockState(Owner.from_json(data), st.st_mtime_ns, st.st_ino)


class Lock:
    def __init__(self, path: Path, owner: Owner) -> None:
        self.path = path
        self.owner = owner
        self.held = False

    def try_acquire(self) -> bool:
        """One attempt; True if we now hold the lock."""
        tmp = self.path.with_name(f".{self.path.name}.{self.owner.token}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        try:
            try:
                os.write(fd, self.owner.to_json())
                # No fsync: other nodes see the content after close() (NFS
                # close-to-open), and after a crash a lost record just reads
                # as "unknown holder", judged stale by its missing heartbeat.
                # An fsync here would also wait on the holder's dirty data
                # (ext4 data=ordered) every time a waiter polls.
            finally:
                os.close(fd)
            try:
                os.link(tmp, self.path)
                self.held = True
            except FileExistsError:
                self.held = False
            except OSError as err:
                if os.path.exists(tmp) and os.stat(tmp).st_nlink == 2:
                    # NFS: the link succeeded but its reply was lost.
                    self.held = True
                elif err.errno in (1, 95, 38):  # EPERM, ENOTSUP, ENOSYS: no hard links here
                    self.held = self._acquire_excl()
                else:
                    raise
        finally:
            try:
                os.unlink(tmp)
            except FileNotFoundError:
                pass
        return self.held

    def _acquire_excl(self) -> bool:
        try:
            fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except FileExistsError:
            return False
        try:
            os.write(fd, self.owner.to_json())
            os.fsync(fd)
        finally:
            os.close(fd)
        return True

    def still_ours(self) -> bool:
        state = read_lock(self.path)
        return state is not None and state.owner is not None and state.owner.token == self.owner.token

    def heartbeat(self) -> None:
        """Refreshes the lock's mtime; raises LockLost if it is no longer ours."""
        if not self.still_ours():
            self.held = False
            raise LockLost(f"lock {self.path} was taken over by another downloader; exiting so that it can finish")
        now = time.time_ns()
        os.utime(self.path, ns=(now, now))

    def release(self) -> None:
        if self.held and self.still_ours():
            try:
                os.unlink(self.path)
            except FileNotFoundError:
                pass
        self.held = False


def break_lock(path: Path, stale: LockState) -> bool:
    """Removes the lock judged stale (same inode and owner as observed).
    Returns True if we removed it (or it was already gone)."""
    aside = path.with_name(f".{path.name}.stale.{uuid.uuid4().hex[:8]}")
    try:
        os.rename(path, aside)
    except FileNotFoundError:
        return True
    try:
        st = os.stat(aside)
        with open(aside, "rb") as f:
            owner = Owner.from_json(f.read(65536))
        same = st.st_ino == stale.ino and (
            (owner is None and stale.owner is None) or (owner is not None and stale.owner is not None and owner.token == stale.owner.token)
        )
        if not same:
            # We caught a live lock that replaced the stale one in between:
            # put it back (link fails if yet another one appeared meanwhile).
            try:
                os.link(aside, path)
            except FileExistsError:
                pass
            return False
        return True
    finally:
        try:
            os.unlink(aside)
        except FileNotFoundError:
            pass
