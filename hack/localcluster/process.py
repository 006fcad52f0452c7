"""Detached processes with a pid file and a log file, so `down` can stop what `up` started."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path


def start(name: str, argv: list[str], state: Path, env: dict[str, str] | None = None) -> subprocess.Popen:
    """Start `argv` in its own session, output appended to logs/<name>.log, pid in pids/<name>.pid."""
    (state / "logs").mkdir(parents=True, exist_ok=True)
    (state / "pids").mkdir(parents=True, exist_ok=True)
    with open(state / "logs" / f"{name}.log", "ab") as log:
        proc = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True, env=env, cwd=state,
        )
    (state / "pids" / f"{name}.pid").write_text(f"{proc.pid}\n{argv[0]}\n")
    return proc


def pid_of(name: str, state: Path) -> int | None:
    """The pid recorded for `name`, if it still runs the recorded program (pids get recycled)."""
    try:
        pid_line, program = (state / "pids" / f"{name}.pid").read_text().splitlines()[:2]
        pid = int(pid_line)
        argv0 = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[0].decode()
    except (OSError, ValueError):
        return None
    return pid if argv0 == program and _alive(pid, None) else None


def _alive(pid: int, proc: subprocess.Popen | None) -> bool:
    if proc is not None:
        return proc.poll() is None
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def stop(name: str, state: Path, proc: subprocess.Popen | None = None, grace: float = 10.0) -> None:
    """SIGTERM the process's group, SIGKILL after `grace` seconds; forget its pid file."""
    pid = proc.pid if proc is not None and proc.poll() is None else pid_of(name, state)
    if pid is not None:
        for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 5.0)):
            try:
                os.killpg(pid, sig)
            except ProcessLookupError:
                break
            deadline = time.monotonic() + wait
            while _alive(pid, proc) and time.monotonic() < deadline:
                time.sleep(0.1)
            if not _alive(pid, proc):
                break
    (state / "pids" / f"{name}.pid").unlink(missing_ok=True)


def log_tail(name: str, state: Path, lines: int = 40) -> str:
    try:
        text = (state / "logs" / f"{name}.log").read_text(errors="replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])
