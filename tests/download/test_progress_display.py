"""Downloads in sight (issue 29): progress lines at their own interval, below
the lock's heartbeat too, in one unit family; on a terminal (a real pty) a
live tqdm bar on stderr; without one (a pod's log) the lines, unchanged.
Through the real downloader against the loopback origin, throttled so that
the download lasts a few seconds."""

from __future__ import annotations

import fcntl
import os
import pty
import re
import select
import struct
import subprocess
import termios
import time
from pathlib import Path

from tests.download.origin import Origin
from tests.download.support import download_cmd, run_download
from tests.helpers import REPO

SIZE = 2 * 1024 * 1024
LINE = re.compile(r"^model-cache: \w+/main: [\d.]+(?:Ki|Mi)? / 2Mi \([\d.]+%\), [\d.]+(?:Ki|Mi)?/s(?:, ETA \w+)?$")


def slow_file(origin: Origin) -> str:
    origin.files["/w.bin"] = os.urandom(SIZE)
    origin.throttle = 0.1  # 32 pieces of 64 KiB: a bit over 3 s on one connection
    return f"{origin.url}/w.bin"


def test_progress_lines_come_faster_than_the_heartbeat_in_one_unit_family(
        origin: Origin, dl_env: dict[str, str], tmp_path: Path) -> None:
    env = {**dl_env, "MODEL_CACHE_HEARTBEAT_SECONDS": "5", "MODEL_CACHE_PROGRESS_SECONDS": "0.25"}
    result = run_download(env, slow_file(origin), tmp_path / "m" / "main", "--jobs", "1")
    assert result.returncode == 0, result.stdout + result.stderr
    progress = [line for line in result.stdout.splitlines() if "/ 2Mi (" in line]
    # The old ticker woke only with the heartbeat (5 s): no line in a 3 s download.
    assert len(progress) >= 5, result.stdout
    assert all(LINE.match(line) for line in progress), progress
    assert "MB/s" not in result.stdout
    assert "\r" not in result.stdout + result.stderr and "%|" not in result.stderr  # no bar without a terminal


def test_a_terminal_gets_a_live_bar(origin: Origin, dl_env: dict[str, str], tmp_path: Path) -> None:
    env = {**dl_env, "MODEL_CACHE_PROGRESS_SECONDS": "0.25"}
    primary, secondary = pty.openpty()
    # A terminal has a size (a bare pty has 0 columns, where tqdm draws nothing).
    fcntl.ioctl(secondary, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 120, 0, 0))
    proc = subprocess.Popen(download_cmd(slow_file(origin), tmp_path / "m" / "main", "--jobs", "1"), env=env,
                            cwd=REPO, stdout=subprocess.PIPE, stderr=secondary, text=True)
    os.close(secondary)
    screen = b""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        ready, _, _ = select.select([primary], [], [], 0.5)
        if ready:
            try:
                chunk = os.read(primary, 65536)
            except OSError:  # the pty's other end closed: the downloader is gone
                break
            if not chunk:
                break
            screen += chunk
        elif proc.poll() is not None:
            break
    os.close(primary)
    stdout = proc.stdout.read() if proc.stdout else ""
    assert proc.wait(timeout=30) == 0, stdout + screen.decode(errors="replace")
    text = screen.decode(errors="replace")
    redraws = text.count("\r")
    # tqdm's bar, redrawn in place while the bytes come, ending full.
    assert redraws >= 5, text
    assert re.search(r"m/main: +\d+%\|", text) and "100%|" in text and "2.00M/2.00M" in text, text
    assert re.search(r"\d+(?:\.\d+)?[kM]B/s", text), text  # tqdm's own rate, binary (unit_divisor 1024)
    # The bar replaces the periodic lines; the other lines still go to stdout, whole.
    assert not [line for line in stdout.splitlines() if "/ 2Mi (" in line], stdout
    assert "model-cache: downloading " in stdout and stdout.splitlines()[-1].endswith("/s)"), stdout
