"""A volume the downloader may not write: exit 12, and a message that names
the directory, its owner and mode, the downloader's uid and groups, whether
the volume took the pod's fsGroup, and the fix for that kind of volume. The
downloader really runs as uid 10001 (setpriv) against directories really
owned by others."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Iterator

import pytest

from tests.download.origin import Origin
from tests.download.support import download_cmd
from webhook.download.volume.access import explain

UID = 10001
NFS_MOUNTINFO = ("22 1 0:21 / / rw - ext4 /dev/sda1 rw\n"
                 "310 300 0:52 /exports/models /model-cache rw,relatime - nfs4 fs-1234.efs.aws:/ rw,vers=4.1\n")


@pytest.fixture
def shared() -> Iterator[Path]:
    """A directory every user may enter (pytest's own are root's, 0700)."""
    if os.geteuid() != 0 or shutil.which("setpriv") is None:
        pytest.skip("needs root and setpriv to run the downloader as another uid")
    d = Path(tempfile.mkdtemp(prefix="mc-access-"))
    d.chmod(0o755)
    yield d
    shutil.rmtree(d)


def test_a_root_owned_by_another_uid_fails_with_owner_mode_and_fix(shared: Path, origin: Origin, dl_env) -> None:
    origin.files["/w.bin"] = b"x" * 1000
    root = shared / "cache"
    root.mkdir()
    os.chown(root, 2000, 2000)
    log = shared / "termination-log"
    log.touch()
    os.chown(log, UID, UID)
    env = dict(dl_env, MODEL_CACHE_TERMINATION_LOG=str(log), HF_HOME=str(shared / "hf"))
    r = subprocess.run(["setpriv", f"--reuid={UID}", f"--regid={UID}", "--clear-groups",
                        *download_cmd(origin.url + "/w.bin", root / "m" / "main")],
                       env=env, capture_output=True, text=True, timeout=60)
    assert r.returncode == 12, r.stderr
    message = log.read_text()
    assert message.startswith(f"model-cache: cannot write {root / 'm'}: permission denied"), message
    assert f"the directory {root} is owned by uid 2000 gid 2000, mode 0755" in message
    assert f"the downloader runs as uid {UID}, groups {UID}" in message
    assert "did not take a pod fsGroup" in message and f"chown {UID}:{UID} " in message
    assert origin.served["/w.bin"] == 0


def test_a_network_volume_gets_the_export_and_efs_fix(shared: Path) -> None:
    root = shared / "model-cache"
    root.mkdir()
    message = explain(root / "m", uid=UID, groups=(UID,),
                      mountinfo=NFS_MOUNTINFO.replace("/model-cache", str(root)))
    assert f"the directory {root} is owned by uid 0 gid 0, mode 0755" in message
    assert "(nfs4 fs-1234.efs.aws:/) did not take the pod's fsGroup" in message
    assert f"make the export writable by uid {UID} or gid {UID}" in message
    assert f"access point whose PosixUser is Uid {UID} Gid {UID}" in message


def test_a_volume_that_took_the_fsgroup_without_group_write(shared: Path) -> None:
    root = shared / "model-cache"
    root.mkdir()
    os.chown(root, 0, 3000)
    root.chmod(0o2755)
    message = explain(root / "m", uid=UID, groups=(UID, 3000), mountinfo="")
    assert "the volume took the pod's fsGroup 3000, but its mode gives that group no write" in message
    assert f"chmod g+w {root}" in message
