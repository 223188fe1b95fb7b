"""Store-test helpers: top-level (picklable) work for jobs run in a child process (InProcess)."""
from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path


def child_pid() -> int:
    return os.getpid()


async def async_child_pid() -> tuple[int, int]:
    """This process's pid and its running loop's id (the child's loop is kept across runs)."""
    await asyncio.sleep(0)
    return os.getpid(), id(asyncio.get_running_loop())


def fail(message: str) -> None:
    raise ValueError(message)


def hang_if(flag: str, marker: str) -> int:
    """Hang (an hour) while `flag` exists, then write `marker`; else return this process's pid."""
    if Path(flag).exists():
        time.sleep(3600)
        Path(marker).write_text("the run went on")
    return os.getpid()


def proc_alive(pid: int) -> bool:
    """Whether `pid` is a live process (a zombie waiting for a reaper counts as gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] not in ("Z", "X")


def niceness() -> int:
    return os.nice(0)


async def backend_niceness(dsn: str) -> tuple[int, int]:
    """In a job child: (this process's niceness, the niceness of its pool connection's backend),
    the pool configured as the evaluate job's is (job_process.nice_backend)."""
    from collector_api.store.core.db import create_pool
    from collector_api.store.core.job_process import nice_backend

    async with create_pool(dsn, max_size=1, configure=nice_backend) as pool, pool.connection() as conn:
        pid = (await (await conn.execute("SELECT pg_backend_pid() AS pid")).fetchone())["pid"]
        return os.nice(0), os.getpriority(os.PRIO_PROCESS, pid)
