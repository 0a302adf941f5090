"""`serve --workers N`: N server processes on one port, supervised.

One Python process answers on one core (the GIL). Each worker is a whole
`screening serve` with its own index and change-feed listener; they share
the listen port through SO_REUSEPORT, which the kernel balances by
connection. The parent starts the embedded PostgreSQL once and hands its URL
to the workers, restarts a worker that dies, passes SIGHUP on, and on SIGTERM
or SIGINT passes the signal on, waits for every worker to drain, and exits 0.
A restarted worker binds the port only once its data is loaded: until then
the kernel gives new connections to the workers that can answer them.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import logging
import os
import signal
import sys
from collections.abc import Sequence

from screening.app.config import Config

log = logging.getLogger(__name__)

# A worker that dies this soon after its start is restarted only after a
# pause, so a worker that cannot start does not spin the CPU.
QUICK_DEATH = 5.0
RESTART_PAUSE = 1.0
# Set by the supervisor in its workers' environment: its pid.
SUPERVISOR_ENV = "SCREENING_SUPERVISOR_PID"
# Set for a worker restarted while the others serve: it binds the port only
# once its data is loaded, so that no connection lands on it before then.
RESTARTED_ENV = "SCREENING_WORKER_RESTARTED"
_PR_SET_PDEATHSIG = 1


def die_with_supervisor() -> None:
    """In a worker: be sent SIGTERM when the supervisor dies, even by SIGKILL (Linux).

    Without this a supervisor killed outright would leave its workers serving
    on the port, unsupervised.
    """
    supervisor = os.environ.pop(SUPERVISOR_ENV, None)
    if supervisor is None:
        return
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM) != 0:
        log.warning("cannot ask to be stopped with the supervisor: errno %d", ctypes.get_errno())
    if os.getppid() != int(supervisor):  # it died before the request took effect
        os.kill(os.getpid(), signal.SIGTERM)


def restarted_worker() -> bool:
    """In a worker: whether the supervisor restarted it (then it listens once loaded)."""
    return os.environ.pop(RESTARTED_ENV, None) is not None


class Supervisor:
    def __init__(self, config: Config, dsn: str | None, argv: Sequence[str]) -> None:
        self._config = config
        # The worker's command line: the parent's own flags, then overrides
        # (argparse keeps the last value of a repeated flag).
        self._command = [
            sys.executable,
            "-m",
            "screening",
            "serve",
            *argv,
            "--workers",
            "1",
            *(() if dsn is None else ("--database-url", dsn)),
        ]
        self._stopping = asyncio.Event()
        self.pids: dict[int, int] = {}  # worker slot -> pid of its current process

    async def run(self) -> int:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self._stopping.set)
        # Each worker re-reads --auth-file and the TLS files.
        loop.add_signal_handler(signal.SIGHUP, self._forward, signal.SIGHUP)
        slots = [asyncio.create_task(self._keep(slot), name=f"worker-{slot}") for slot in range(self._config.workers)]
        await self._stopping.wait()
        log.info("stopping: draining %d workers for up to %.1fs", len(slots), self._config.shutdown_grace)
        results = await asyncio.gather(*slots)
        return 0 if all(code == 0 for code in results) else 1

    def _metrics_flag(self, slot: int) -> list[str]:
        """Worker `slot` serves its metrics on the metrics port + slot: one port cannot be bound twice."""
        metrics = self._config.metrics_listen
        if metrics is None:
            return []
        host, _, port = metrics.rpartition(":")
        return ["--metrics-listen", f"{host}:{int(port) + slot}"]

    def _forward(self, sig: int) -> None:
        for pid in self.pids.values():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)

    async def _keep(self, slot: int) -> int:
        """Run worker `slot` until the supervisor stops; return its last exit code."""
        restarts = 0
        while True:
            started = loop_time()
            env = os.environ | {SUPERVISOR_ENV: str(os.getpid())}
            if restarts:
                # The other workers serve meanwhile; a first start binds at once, so
                # that health checks see NOT_SERVING while every worker loads.
                env[RESTARTED_ENV] = "1"
            proc = await asyncio.create_subprocess_exec(*self._command, *self._metrics_flag(slot), env=env)
            self.pids[slot] = proc.pid
            log.info("worker %d started (pid %d)", slot, proc.pid)
            waiting = asyncio.create_task(proc.wait())
            stopping = asyncio.create_task(self._stopping.wait())
            await asyncio.wait((waiting, stopping), return_when=asyncio.FIRST_COMPLETED)
            if self._stopping.is_set():
                stopping.cancel()
                return await self._stop(proc, waiting)
            stopping.cancel()
            log.warning("worker %d (pid %d) exited with %s; restarting", slot, proc.pid, proc.returncode)
            restarts += 1
            if loop_time() - started < QUICK_DEATH:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stopping.wait(), RESTART_PAUSE)
                if self._stopping.is_set():
                    return 0

    async def _stop(self, proc: asyncio.subprocess.Process, waiting: asyncio.Task[int]) -> int:
        if proc.returncode is None:
            proc.send_signal(signal.SIGTERM)
        try:
            return await asyncio.wait_for(asyncio.shield(waiting), self._config.shutdown_grace + 10)
        except TimeoutError:
            log.error("worker pid %d did not stop in time; killing it", proc.pid)
            proc.kill()
            await waiting
            return 1


def loop_time() -> float:
    return asyncio.get_running_loop().time()
