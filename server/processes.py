"""``sketchrnn serve --workers N``: N server processes on one port, each with its own event loop
and model threads, under a supervisor that restarts one that dies and stops all of them on
SIGTERM or Ctrl-C.

    client ─┐                    ┌─ worker 0: event loop + model thread (its own batch)
    client ─┼─ :8765 (SO_REUSEPORT: the kernel spreads new connections) ─┤
    client ─┘                    └─ worker 1: event loop + model thread (its own batch)

A connection lives in one process from its handshake to its close, so nothing is shared between
workers; a worker that dies takes only its own connections with it.
"""

import ctypes
import logging
import multiprocessing
import multiprocessing.connection
import os
import signal
import socket
import sys
import time
from typing import Callable

log = logging.getLogger("sketchrnn.server")

START_SECONDS = 120  # a worker not listening by then is broken (models load in a few seconds)
RESTARTS = 5  # more deaths than this within RESTART_WINDOW: something is wrong, stop them all
RESTART_WINDOW = 60.0
STOP_SECONDS = 10  # after SIGTERM a worker drains (done, then 1001) within close_timeout; then kill


def check_workers(count: int) -> None:
    """--workers' range is argparse's (cli/serve.py); what is left is whether this OS can share a port."""
    if count > 1 and not hasattr(socket, "SO_REUSEPORT"):
        raise ValueError(f"--workers {count} needs SO_REUSEPORT (Linux, BSD, macOS); use --workers 1 here")


def default_workers() -> int:
    """The cores this process may run on (its CPU affinity, as a container or taskset limits it)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def _worker(target: Callable, supervisor: int, *args) -> None:
    """A worker process: asks Linux to SIGTERM it when the supervisor dies, even by kill -9, so no
    orphan keeps the port and its streams end with ``done`` and 1001 (elsewhere the supervisor's
    own shutdown is the only stop)."""
    if sys.platform == "linux":
        try:
            ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
        except (OSError, AttributeError):
            pass
    if os.getppid() != supervisor:  # it died before prctl took effect
        return
    target(*args)


def _stop_all(workers: dict[int, multiprocessing.Process]) -> None:
    """SIGTERM to every worker (each drains: its streams get done, its connections 1001), then
    SIGKILL to any still running after STOP_SECONDS."""
    for process in workers.values():
        if process.is_alive():
            process.terminate()
    deadline = time.monotonic() + STOP_SECONDS
    for process in workers.values():
        process.join(max(0.0, deadline - time.monotonic()))
        if process.is_alive():
            process.kill()
            process.join()


def supervise(count: int, target: Callable, args: tuple) -> int:
    """Run ``target(*args, index, count, ready)`` in ``count`` processes until SIGINT or SIGTERM;
    each sets ``ready`` once it listens. Returns the exit status: 0 after a clean stop, 1 when a
    worker cannot start or keeps dying."""
    context = multiprocessing.get_context("spawn")  # a fresh interpreter: no torch threads forked
    stopping = {"now": False}

    def request_stop(signum, frame):
        stopping["now"] = True

    previous = {sig: signal.signal(sig, request_stop) for sig in (signal.SIGINT, signal.SIGTERM)}

    def launch(index: int):
        ready = context.Event()
        process = context.Process(target=_worker, args=(target, os.getpid(), *args, index, count, ready),
                                  name=f"sketchrnn-serve-{index}", daemon=True)
        process.start()
        return process, ready

    def listening(process, ready) -> bool:
        """Wait until the worker listens; False (and the process gone) if it dies or hangs first."""
        deadline = time.monotonic() + START_SECONDS
        while not ready.wait(0.1):
            if not process.is_alive() or time.monotonic() > deadline or stopping["now"]:
                process.kill()
                process.join()
                return False
        return True

    workers: dict[int, multiprocessing.Process] = {}
    deaths: list[float] = []
    status = 0
    try:
        launched = [launch(index) for index in range(count)]  # loading models in parallel
        workers = {index: process for index, (process, _) in enumerate(launched)}
        for index, (process, ready) in enumerate(launched):
            if not listening(process, ready):
                if not stopping["now"]:
                    log.error("worker %d of %d did not start (see its error above); stopping", index, count)
                    status = 1
                return status
        log.info("%d workers listening (pids %s)", count, ", ".join(str(p.pid) for p in workers.values()))
        while not stopping["now"]:
            multiprocessing.connection.wait([p.sentinel for p in workers.values()], timeout=0.5)
            for index, process in list(workers.items()):
                if process.is_alive() or stopping["now"]:
                    continue
                code = process.exitcode
                why = f"signal {signal.Signals(-code).name}" if code < 0 else f"exit code {code}"
                log.error("worker %d (pid %d) died with %s; its connections are lost, restarting it",
                          index, process.pid, why)
                now = time.monotonic()
                deaths = [t for t in deaths if now - t < RESTART_WINDOW] + [now]
                restarted = launch(index) if len(deaths) <= RESTARTS else None
                if restarted is None or not listening(*restarted):
                    if not stopping["now"]:
                        log.error("worker %d cannot be kept running (%d deaths in %.0f s); stopping",
                                  index, len(deaths), RESTART_WINDOW)
                        status = 1
                    return status
                workers[index] = restarted[0]
        return status
    finally:
        _stop_all(workers)
        for sig, handler in previous.items():
            signal.signal(sig, handler)
