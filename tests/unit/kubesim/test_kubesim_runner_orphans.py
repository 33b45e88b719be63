"""A container process never outlives kubesim: killed with SIGKILL, kubesim leaves no process behind."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

from kubesim.testing import wait_for

SCRIPT = textwrap.dedent(
    """
    import asyncio, sys
    from pathlib import Path
    from kubesim.runner import Process

    async def main() -> None:
        process = Process([sys.executable, "-c", "import time; print('up', flush=True); time.sleep(120)"],
                          {}, Path("."), lambda line: print(line, flush=True))
        await process.run()

    asyncio.run(main())
    """
)


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split()[2]
    except OSError:
        return False
    return state != "Z"


def test_container_processes_die_with_kubesim(tmp_path: Path) -> None:
    parent = subprocess.Popen([sys.executable, "-c", SCRIPT], stdout=subprocess.PIPE, text=True, cwd=tmp_path)
    try:
        assert parent.stdout is not None
        assert parent.stdout.readline().strip() == "up"
        children = [
            int(p.name) for p in Path("/proc").iterdir() if p.name.isdigit() and _ppid(int(p.name)) == parent.pid
        ]
        assert len(children) == 1
        os.kill(parent.pid, signal.SIGKILL)
        parent.wait(10)
        wait_for(lambda: not _alive(children[0]), 10.0, 0.02, "the container process to end with kubesim")
    finally:
        if parent.poll() is None:
            parent.kill()


def _ppid(pid: int) -> int:
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
    except (OSError, IndexError, ValueError):
        return -1
