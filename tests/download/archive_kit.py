"""What the archive tests share: archives built member by member (the
crafted ones included), a reader that cannot seek, and a volume with
canaries at every level above the model's directory and a second
published model beside it. Standard library only: the archive tests run
under Debian's python3 (3.11.2) as well."""

from __future__ import annotations

import hashlib
import io
import os
import stat
import tarfile
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

OTHER_WEIGHTS = b"the other model's weights\n" * 100


def member(name: str, kind: bytes = tarfile.REGTYPE, linkname: str = "", mode: int = 0o644) -> tarfile.TarInfo:
    m = tarfile.TarInfo(name)
    m.type, m.linkname, m.mode = kind, linkname, mode
    return m


def tar_of(members: list[tuple[tarfile.TarInfo, bytes]], mode: str = "w") -> bytes:
    """A tar of MEMBERS in order (duplicates kept), PAX so that any name fits."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode=mode, format=tarfile.PAX_FORMAT) as tf:
        for info, data in members:
            if info.isreg() and not info.pax_headers.get("GNU.sparse.major"):
                info.size = len(data)
            elif not info.isreg():
                info.size = 0
            tf.addfile(info, io.BytesIO(data) if info.isreg() else None)
    return buf.getvalue()


def sparse_tar(name: str, apparent: int, mode: str = "w") -> bytes:
    """One GNU sparse (1.0) member of APPARENT bytes holding 512 real ones:
    what `tar --sparse` makes of a huge file that is mostly holes."""
    info = tarfile.TarInfo(f"GNUSparseFile.0/{name}")
    info.pax_headers = {"GNU.sparse.major": "1", "GNU.sparse.minor": "0", "GNU.sparse.name": name,
                        "GNU.sparse.realsize": str(apparent)}
    data = b"1\n0\n512\n".ljust(512, b"\0") + b"x" * 512
    info.size = len(data)
    return tar_of([(info, data)], mode)


def zip_of(entries: list[tuple[str, bytes]], compression: int = zipfile.ZIP_STORED) -> bytes:
    """A zip of ENTRIES (name, bytes) in order, names exactly as given."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=compression) as z:
        for name, data in entries:
            info = zipfile.ZipInfo(name)
            info.compress_type = compression
            info.external_attr = (0o40755 if name.endswith("/") else 0o100644) << 16
            z.writestr(info, data)
    return buf.getvalue()


def path_max_tar() -> bytes:
    """CVE-2025-4517's pattern: 16 levels of 247-character directories
    reached through one-letter links, so that the link's real path is
    longer than PATH_MAX and os.path.realpath stops resolving it; then a
    link out of it, and a file written through that link into the
    model beside (../../other/main from the model's directory)."""
    comp = "d" * 247
    steps = "abcdefghijklmnop"
    members: list[tuple[tarfile.TarInfo, bytes]] = []
    path = ""
    for step in steps:
        members.append((member(os.path.join(path, comp), tarfile.DIRTYPE, mode=0o755), b""))
        members.append((member(os.path.join(path, step), tarfile.SYMTYPE, comp), b""))
        path = os.path.join(path, comp)
    linkpath = os.path.join(*steps, "l" * 254)
    members.append((member(linkpath, tarfile.SYMTYPE, "../" * len(steps)), b""))
    members.append((member("escape", tarfile.SYMTYPE, linkpath + "/../.."), b""))
    members.append((member("escape/other/main/weights.bin"), b"POISONED"))
    return tar_of(members)


class OneWayStream:
    """A socket-like reader: no seek, short reads, as the network gives them."""

    def __init__(self, data: bytes, piece: int = 3000) -> None:
        self.data, self.pos, self.piece = data, 0, piece

    def read(self, n: int = -1) -> bytes:
        n = self.piece if n < 0 else min(n, self.piece)
        out = self.data[self.pos:self.pos + n]
        self.pos += len(out)
        return out


@dataclass
class Volume:
    """ROOT/vol is a cache volume: `other/main` a published model, `m/main.partial`
    the directory being unpacked into; a canary at every level above it."""

    root: Path
    before: dict[str, tuple] = field(default_factory=dict)

    @property
    def vol(self) -> Path:
        return self.root / "vol"

    @property
    def target(self) -> Path:
        return self.vol / "m" / "main.partial"

    @property
    def other(self) -> Path:
        return self.vol / "other" / "main"

    @classmethod
    def make(cls, root: Path) -> "Volume":
        v = cls(root)
        (v.target / ".model-cache-tmp" / "download").mkdir(parents=True)
        (v.target / ".model-cache-tmp" / "plan-key").write_text("http|x|")
        v.other.mkdir(parents=True)
        (v.other / "weights.bin").write_bytes(OTHER_WEIGHTS)
        os.chmod(v.other / "weights.bin", 0o644)
        (v.other / ".model-cache.json").write_text('{"files": []}\n')
        for level in (root, v.vol, v.vol / "m", v.vol / "other"):
            (level / "canary").write_text(f"canary of {level.name}\n")
        v.before = v.outside()
        return v

    def outside(self) -> dict[str, tuple]:
        """Everything under ROOT but the model's own partial directory: kind,
        mode, links, size and a digest of the bytes."""
        seen: dict[str, tuple] = {}
        for dirpath, dirs, names in os.walk(self.root):
            here = Path(dirpath)
            if here == self.target.parent:
                dirs[:] = [d for d in dirs if here / d != self.target]
            for name in dirs + names:
                p = here / name
                st = p.lstat()
                digest = hashlib.sha256(p.read_bytes()).hexdigest() if stat.S_ISREG(st.st_mode) else \
                    (os.readlink(p) if stat.S_ISLNK(st.st_mode) else "")
                links = 0 if stat.S_ISDIR(st.st_mode) else st.st_nlink  # a file's second name shows here
                size = 0 if stat.S_ISDIR(st.st_mode) else st.st_size
                seen[str(p.relative_to(self.root))] = (stat.S_IFMT(st.st_mode), stat.S_IMODE(st.st_mode), links, size,
                                                       digest)
        return seen

    def unchanged(self) -> bool:
        return self.outside() == self.before

    def changes(self) -> list[str]:
        now = self.outside()
        return sorted(k for k in set(now) | set(self.before) if now.get(k) != self.before.get(k))

    def left_in_target(self) -> list[str]:
        """What an unpack left in the partial directory, besides our scratch folder."""
        return sorted(p.name for p in self.target.iterdir() if p.name != ".model-cache-tmp")
