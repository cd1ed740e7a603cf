"""Why the downloader may not write a directory, and the fix for the volume
at hand: the directory, its owner and mode, the downloader's uid and groups,
whether the volume took the pod's fsGroup, and what to change where.

fsGroup is applied by the kubelet only to volumes that support ownership
management (emptyDir, most block-backed claims); hostPath, NFS and most
network file systems keep the owner they have, so for those the fix is on the
node or on the server (an export writable by the uid or gid, an EFS access
point with that uid and gid)."""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from pathlib import Path

# File systems whose owner is the server's business: fsGroup never reaches them.
NETWORK_FS = ("nfs", "nfs4", "cifs", "smb3", "ceph", "glusterfs", "lustre", "9p", "fuse")


@dataclass(frozen=True)
class Mount:
    point: str
    fstype: str
    source: str
    root: str   # the directory of the mounted file system that appears at `point`


def mount_of(path: Path, mountinfo: str | None = None) -> Mount | None:
    """The mount PATH is on, from /proc/self/mountinfo."""
    if mountinfo is None:
        try:
            mountinfo = Path("/proc/self/mountinfo").read_text()
        except OSError:
            return None
    best: Mount | None = None
    target = str(path)
    for line in mountinfo.splitlines():
        head, _, tail = line.partition(" - ")
        fields, rest = head.split(), tail.split()
        if len(fields) < 5 or len(rest) < 2:
            continue
        point = _unescape(fields[4])
        inside = target == point or target.startswith(point.rstrip("/") + "/")
        if inside and (best is None or len(point) >= len(best.point)):
            best = Mount(point, rest[0], _unescape(rest[1]), _unescape(fields[3]))
    return best


def _unescape(field: str) -> str:
    return field.replace("\\040", " ").replace("\\011", "\t").replace("\\012", "\n").replace("\\134", "\\")


def _existing(path: Path) -> Path:
    """PATH, or its nearest existing ancestor: the directory that refused."""
    while not os.path.lexists(path) and path != path.parent:
        path = path.parent
    return path


def is_network(fstype: str) -> bool:
    return fstype.split(".", 1)[0] in NETWORK_FS


def explain(failed: Path, uid: int | None = None, groups: tuple[int, ...] | None = None,
            mountinfo: str | None = None) -> str:
    """The one-line reason and fix for a permission failure on FAILED."""
    uid = os.geteuid() if uid is None else uid
    if groups is None:
        groups = tuple(dict.fromkeys((os.getegid(), *os.getgroups())))
    gid = groups[0]
    where = _existing(failed)
    try:
        st = where.stat()
    except OSError:
        return (f"cannot write {failed}: permission denied, and {where} cannot be read; the downloader runs as uid {uid}, "
                f"groups {','.join(map(str, groups))}")
    mode = stat.S_IMODE(st.st_mode)
    kind = "directory" if stat.S_ISDIR(st.st_mode) else "file"
    head = (f"cannot write {failed}: permission denied: the {kind} {where} is owned by uid {st.st_uid} gid {st.st_gid}, "
            f"mode {mode:04o}; the downloader runs as uid {uid}, groups {','.join(map(str, groups))}")
    mount = mount_of(where, mountinfo)
    if st.st_gid in groups and st.st_gid != gid and mode & stat.S_ISGID:
        took = f"the volume took the pod's fsGroup {st.st_gid}"
        if not mode & stat.S_IWGRP:
            return f"{head}; {took}, but its mode gives that group no write: chmod g+w {where} (on the volume's server or node)"
        return f"{head}; {took}; check a read-only mount or a security module (SELinux, AppArmor) on the node"
    if mount is not None and is_network(mount.fstype):
        return (f"{head}; the volume ({mount.fstype} {mount.source}) did not take the pod's fsGroup: network file "
                f"systems ignore it; make the export writable by uid {uid} or gid {gid} on the server "
                f"(chown {uid}:{gid} and chmod 0755 the exported directory, or chgrp {gid} and chmod 2775), or for EFS "
                f"mount an access point whose PosixUser is Uid {uid} Gid {gid} and whose root directory is created "
                f"with OwnerUid {uid} OwnerGid {gid} Permissions 0755")
    node_dir = where
    if mount is not None and mount.root not in ("", "/"):
        node_dir = Path(mount.root) / where.relative_to(mount.point) if where.is_relative_to(mount.point) else where
    return (f"{head}; the volume did not take a pod fsGroup (hostPath volumes, and claims whose storage does not support it, keep their owner): on the "
            f"node, chown {uid}:{gid} {node_dir} (or give gid {gid} write: chgrp {gid} and chmod 2775 it), or remove it so "
            f"that it is created for the downloader; for a claim, set the pod's fsGroup to {gid} where its storage "
            f"supports it")
