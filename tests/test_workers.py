"""``sketchrnn serve --workers 2``: two processes on one port, a dead one restarted without taking
the other's streams, SIGTERM answering every stream before the connections close."""

import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import sys
import time

import pytest
from websockets.exceptions import ConnectionClosed

from sketchrnn import remote

pytestmark = pytest.mark.skipif(not hasattr(socket, "SO_REUSEPORT"), reason="--workers needs SO_REUSEPORT")

SQUARE = [[[100, 100], [200, 100], [200, 200], [100, 200], [100, 100]]]


def worker_pids(port: int, health, seconds: float = 60) -> dict[int, int]:
    """worker index -> pid, from /healthz answers (the kernel spreads connections over both)."""
    seen, deadline = {}, time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            h = health(port)
        except OSError:
            time.sleep(0.05)
            continue
        assert h["workers"] == 2
        seen[h["worker"]] = h["pid"]
        if len(seen) == 2:
            break
    return seen


async def connection_on(url: str, worker: int, stack: contextlib.AsyncExitStack) -> remote.Client:
    """A connection that the kernel gave to ``worker`` (others are closed)."""
    for _ in range(100):
        client = await stack.enter_async_context(remote.connect(url))
        if client.hello["worker"] == worker:
            return client
        await client.ws.close()
    raise AssertionError(f"no connection reached worker {worker} in 100 tries")


async def stream(client: remote.Client, request_id: str, n: int = 4) -> list[dict]:
    """Send a completion request and read until every alternative is done."""
    completion = client.complete(SQUARE, id=request_id, n=n, seed=1, temperature=1.0, max_points=250)
    await completion.collect()
    return completion.messages


def test_bad_workers_value_is_refused():
    result = subprocess.run([sys.executable, "-m", "sketchrnn", "serve", "--workers", "0", "--port", "1"],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 2
    assert "argument --workers: must be in [1, 1024], got 0" in result.stderr


def test_two_workers_share_a_port_survive_a_death_and_stop_gracefully(free_port, health):
    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "sketchrnn", "serve", "--workers", "2", "--port", str(port)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        pids = worker_pids(port, health)
        assert len(pids) == 2 and len(set(pids.values())) == 2

        async def scenario():
            async with contextlib.AsyncExitStack() as stack:
                await in_two_processes(stack)

        async def in_two_processes(stack):
            url = f"ws://127.0.0.1:{port}/ws"
            doomed, survivor = await connection_on(url, 0, stack), await connection_on(url, 1, stack)
            lost = await doomed.send_complete(SQUARE, id="a", n=8, temperature=1.0)
            survivor_task = asyncio.create_task(stream(survivor, "b"))
            os.kill(pids[0], signal.SIGKILL)
            with pytest.raises((ConnectionClosed, ConnectionError)):  # its process is gone: its connection with it
                await lost.collect()
            messages = await survivor_task  # the other process's stream finishes untouched
            assert [m["type"] for m in messages].count("done") == 4
            assert all(m["type"] in ("points", "done") for m in messages)
            # Restarted: worker 0 answers again, from a new process.
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                again = worker_pids(port, health, 5)
                if again.get(0) not in (None, pids[0]):
                    break
                await asyncio.sleep(0.2)
            assert again[0] != pids[0] and again[1] == pids[1]
            # SIGTERM to the supervisor mid-stream: the stream still ends with done, then 1001.
            last = survivor.complete(SQUARE, id="c", n=8, temperature=1.0, max_points=250)
            async for _ in last:
                break  # the stream has started
            server.send_signal(signal.SIGTERM)
            await last.collect(30)
            await asyncio.wait_for(survivor.reader, 30)
            assert len(last.done) == 8
            assert survivor.ws.close_code == 1001

        asyncio.run(scenario())
        assert server.wait(30) == 0
        stderr = server.stderr.read()
        assert "worker 0" in stderr and "died with signal SIGKILL" in stderr and "restarting" in stderr
    finally:
        server.kill()
        server.wait()


@pytest.mark.skipif(sys.platform != "linux", reason="workers follow a killed supervisor through PR_SET_PDEATHSIG")
def test_kill_9_of_the_supervisor_leaves_no_worker_behind(free_port, health):
    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "sketchrnn", "serve", "--workers", "2", "--port", str(port)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        pids = worker_pids(port, health)
        assert len(pids) == 2
    finally:
        server.kill()
        server.wait()
    deadline = time.monotonic() + 30
    while any(os.path.exists(f"/proc/{pid}") for pid in pids.values()) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not any(os.path.exists(f"/proc/{pid}") for pid in pids.values())
    with pytest.raises(OSError):  # nobody listens on the port any more
        health(port)
