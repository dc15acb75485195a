"""docs/deploy.md's nginx configuration, run for real on loopback in front of two `sketchrnn serve`
processes: the page, completions spread over both backends, and a backend killed mid-stream whose
clients see their connection end rather than hang."""

import asyncio
import contextlib
import os
import shutil
import signal
import subprocess
import urllib.request
from pathlib import Path

import pytest
from websockets.exceptions import ConnectionClosed

from sketchrnn import remote

NGINX = shutil.which("nginx") or "/usr/sbin/nginx"
if not Path(NGINX).exists():
    pytest.skip("Debian's nginx is not installed (.ci/run installs it with apt-get)", allow_module_level=True)

DRAWING = [[[100, 100], [160, 90], [230, 100], [260, 140]], [[150, 120], [152, 160]]]


@pytest.fixture
def deployment(tmp_path, free_port, start_server, wait_for_answer):
    """Two backends and nginx in front, as docs/deploy.md configures them (no TLS)."""
    public = free_port()
    origin = f"http://127.0.0.1:{public}"
    # One process per backend: each stands for a host, and the test kills one outright. A core
    # each (OMP_NUM_THREADS reaches torch's and numpy's BLAS threads), as two hosts would not
    # share theirs (two processes of two spinning threads each on 2 cores start 3-4x slower).
    one_core = {**os.environ, "OMP_NUM_THREADS": "1"}
    backends = {}
    for _ in range(2):
        port = free_port()
        backends[port] = start_server(port, "--workers", "1", "--origins", origin, env=one_core)
    config = tmp_path / "nginx.conf"
    upstreams = "".join(f"        server 127.0.0.1:{port};\n" for port in backends)
    config.write_text(f"""
pid {tmp_path}/nginx.pid;
error_log {tmp_path}/error.log;
events {{}}
http {{
    access_log off;
    client_body_temp_path {tmp_path}/body;
    proxy_temp_path {tmp_path}/proxy;
    fastcgi_temp_path {tmp_path}/fastcgi;
    uwsgi_temp_path {tmp_path}/uwsgi;
    scgi_temp_path {tmp_path}/scgi;
    upstream sketchrnn {{
        least_conn;
{upstreams}    }}
    server {{
        listen 127.0.0.1:{public};
        location / {{
            proxy_pass http://sketchrnn;
            proxy_http_version 1.1;
            proxy_set_header Upgrade $http_upgrade;
            proxy_set_header Connection "upgrade";
            proxy_set_header Host $host;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            proxy_set_header X-Forwarded-Proto $scheme;
            proxy_read_timeout 3600s;
            proxy_send_timeout 3600s;
        }}
    }}
}}
""")
    nginx = subprocess.Popen([NGINX, "-c", str(config), "-p", str(tmp_path), "-g", "daemon off;"],
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        wait_for_answer(f"{origin}/healthz", nginx, 30)
        yield origin, backends
    finally:
        nginx.send_signal(signal.SIGQUIT)  # its master stops the workers (killed, it would orphan them)
        try:
            nginx.wait(10)
        except subprocess.TimeoutExpired:
            pass
        for process in [nginx, *backends.values()]:
            if process.poll() is None:
                process.kill()
            process.wait(10)


async def draw(origin: str, seed: int, max_points: int = 40):
    """One client through the proxy, as the page connects: hello, a completion to its end."""
    async with remote.connect(origin.replace("http", "ws") + "/ws", origin=origin) as client:
        assert client.hello["type"] == "hello"
        completion = client.complete(DRAWING, n=2, seed=seed, max_points=max_points)
        await completion.collect(30)
        assert all(m["type"] in ("points", "done") for m in completion.messages), completion.messages


async def test_the_page_and_completions_through_nginx(deployment, health):
    origin, backends = deployment
    page = urllib.request.urlopen(f"{origin}/", timeout=5).read().decode()
    assert "<canvas" in page
    await asyncio.gather(*(draw(origin, seed) for seed in range(6)))
    # Held open together, connections spread over both backends.
    async with contextlib.AsyncExitStack() as stack:
        for _ in range(4):
            await stack.enter_async_context(remote.connect(origin.replace("http", "ws") + "/ws", origin=origin))
        await asyncio.sleep(0.2)
        assert all(health(port)["connections"] >= 1 for port in backends)
    with pytest.raises(Exception, match="403"):  # an origin nobody configured is still refused
        async with remote.connect(origin.replace("http", "ws") + "/ws", origin="http://elsewhere.example"):
            pass


async def test_a_backend_killed_mid_stream_ends_its_clients_streams(deployment):
    origin, backends = deployment
    url = origin.replace("http", "ws") + "/ws"
    async with contextlib.AsyncExitStack() as stack:
        streams = []
        for i in range(4):
            client = await stack.enter_async_context(remote.connect(url, origin=origin))
            # A cold pen: the endings rarely end, so they are still drawing when the backend dies.
            streams.append(client.complete(DRAWING, n=9, seed=i, pen_temperature=0.01, max_points=250))
            async for _ in streams[-1]:
                break  # it draws
        victim = next(iter(backends.values()))
        victim.kill()  # no chance to say goodbye

        async def outcome(completion) -> str:
            try:
                await completion.collect(30)
                return "done"
            except remote.RemoteError:
                return "error"
            except (ConnectionClosed, ConnectionError):
                return "closed"

        outcomes = await asyncio.gather(*(outcome(s) for s in streams))  # a hang would time out above
    assert "closed" in outcomes and set(outcomes) <= {"done", "closed", "error"}, outcomes
    await draw(origin, seed=99)  # the next drawer is served by the backend still up
