"""The WebSocket service: the client's static files, ``/healthz``, and completions streamed point
by point over ``/ws``. The handler reads like the protocol (``protocol.py``, pure): hello, the
auth step, then per message the rate step and a dispatch; admission and streaming are coroutines
and helpers of their own."""

import asyncio
import http
import json
import logging
import os
import signal
import time
from collections.abc import Callable
from importlib import resources
from urllib.parse import parse_qs, urlsplit

import numpy as np
import websockets.server
from websockets.asyncio.server import ServerConnection, serve
from websockets.datastructures import Headers
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request as HTTPRequest
from websockets.http11 import Response

from sketchrnn.checkpoints import LoadedModel
from sketchrnn.drawing_input import FRAME as DRAWING_FRAME
from sketchrnn.drawing_input import prepare_for, typical_extent
from sketchrnn.sampler import Request, Settings
from sketchrnn.scoring import likelihood_guess
from sketchrnn.strokes import StrokeFormatError

from . import protocol
from .admission import Rates, admit
from .protocol import Limits, ProtocolError
from .worker import Event, Stream, by_shape

CLIENT_DIR = resources.files("sketchrnn.client")  # the repository's client/, mapped into the package
# The only files served over HTTP: request paths are looked up here, never joined onto a path.
STATIC_FILES = {
    "/": ("index.html", "text/html; charset=utf-8"),
    "/index.html": ("index.html", "text/html; charset=utf-8"),
    "/app.js": ("app.js", "text/javascript; charset=utf-8"),
    "/style.css": ("style.css", "text/css; charset=utf-8"),
}
FRAME = 1 / 60  # seconds: the finest pace at which a client can show new points
AUTH_SECONDS = 5.0  # a connection that must authenticate and has not by then is closed
MAX_DROPPED_BODY = 64 * 1024  # bytes of a request body read (and dropped) to answer it 413
IDLE_CLOSE = 4000  # the close code for a connection silent for idle_timeout (docs/protocol.md)
LOG = logging.getLogger("sketchrnn.server")

__all__ = ["CompletionServer", "Limits", "run", "default_origins"]


class _RequestWithBody(HTTPRequest):
    """websockets closes a connection whose request has a body without a word. Parsed again
    without its body headers and marked ``refused_body``, it reaches ``process_request``, which
    answers it 413 with a short body (the body itself is never read)."""

    @classmethod
    def parse(cls, read_line):
        lines: list[bytes] = []

        def recording(*limits):
            line = yield from read_line(*limits)
            lines.append(line)
            return line

        try:
            return (yield from super().parse(recording))
        except (ValueError, NotImplementedError):
            kept = [x for x in lines if not x.lower().startswith((b"content-length:", b"transfer-encoding:"))]
            if len(kept) == len(lines):
                raise

        def replay(*limits):
            return kept.pop(0)
            yield  # a generator, as read_line is

        request = yield from super().parse(replay)
        request.refused_body = True
        # The body must not be read as WebSocket frames: a short one is read and dropped, what
        # has come of a longer one is dropped (the connection closes after the answer anyway).
        reader = read_line.__self__
        length = next((x.split(b":", 1)[1].strip() for x in lines if x.lower().startswith(b"content-length:")), b"")
        if length.isdigit() and int(length) <= MAX_DROPPED_BODY:
            yield from reader.read_exact(int(length))
        reader.buffer.clear()
        return request


websockets.server.Request = _RequestWithBody  # the class the server's handshake parses with


def _response(status: http.HTTPStatus, body: bytes, content_type: str, method: str = "GET") -> Response:
    headers = Headers([("Content-Type", content_type), ("Content-Length", str(len(body))),
                       ("Cache-Control", "no-cache")])
    return Response(status.value, status.phrase, headers, body if method != "HEAD" else b"")


class Connection:
    """One client's side of the server: its outbox (drained by ``send_frames``), its rates and
    the request running on it."""

    def __init__(self, ws: ServerConnection, limits: Limits):
        self.outbox: asyncio.Queue[list[dict]] = asyncio.Queue()
        self.rates = Rates(limits)
        self.current: Stream | None = None
        self.sender = asyncio.create_task(send_frames(ws, self.outbox))

    def send(self, *messages: dict) -> None:
        self.outbox.put_nowait(list(messages))

    def cancel(self, request_id=None) -> None:
        """Cancel the running request (only if it is ``request_id``, when given); the worker ends
        its alternatives "cancelled" at its next step."""
        if self.current is not None and (request_id is None or self.current.id == request_id):
            self.current.cancelled = True

    async def close(self) -> None:
        self.cancel()
        self.sender.cancel()
        # Wait for it: a sender still running after the handler returns races the test (and the
        # server's shutdown) that counts what is left.
        await asyncio.gather(self.sender, return_exceptions=True)


class CompletionServer:
    def __init__(self, models: dict[str, LoadedModel], limits: Limits, origins: list[str | None] | None,
                 token: str | None = None, worker: tuple[int, int] = (0, 1), recognizer=None):
        if not models:
            raise ValueError("no model to serve")
        self.models, self.limits, self.origins, self.token = models, limits, origins, token
        # What a drawing looks like, as [(model, p), ...] best first: the recognizer's answer where
        # one was built for these models, else the models' own likelihoods (slower, less often right).
        self.rank: Callable[[list], list[tuple[str, float]]] = (
            recognizer.guess if recognizer is not None else lambda strokes: likelihood_guess(self.models, strokes))
        self.worker = worker  # (index, count) of the processes serving this port (serve --workers)
        self.workers = by_shape(models, limits.max_batch)  # by model name; models of one shape share one
        self.batches = list(dict.fromkeys(self.workers.values()))
        for loaded in models.values():  # computed once, here, rather than on a request's time
            typical_extent(loaded.model)
        self.default_model = next(iter(models))
        self.static = {path: (CLIENT_DIR / name).read_bytes() for path, (name, _) in STATIC_FILES.items()
                       if (CLIENT_DIR / name).is_file()}
        self.connections = 0  # authenticated (or needing no token)
        self.waiting: dict[ServerConnection, None] = {}  # those yet to send their auth message, oldest first

    @property
    def unauthenticated(self) -> int:
        return len(self.waiting)

    def url_token(self, path: str) -> str | None:
        given = parse_qs(urlsplit(path).query, keep_blank_values=True).get("token")
        return None if given is None else given[0]

    def hello(self) -> dict:
        models = [{"name": name, "mode": m.model.config.mode, "max_points": self.limits.max_points,
                   "classes": m.classes, "scale_factor": m.scale_factor} for name, m in self.models.items()]
        return protocol.hello(models, self.limits, self.worker[0])

    def process_request(self, connection: ServerConnection, request: HTTPRequest) -> Response | None:
        url = urlsplit(request.path)
        if request.method not in ("GET", "HEAD"):
            response = _response(http.HTTPStatus.METHOD_NOT_ALLOWED, b"only GET and HEAD\n", "text/plain")
            response.headers["Allow"] = "GET, HEAD"
            return response
        if getattr(request, "refused_body", False):
            return _response(http.HTTPStatus.REQUEST_ENTITY_TOO_LARGE, b"requests with a body are not served here\n",
                             "text/plain")
        given = self.url_token(request.path)
        if url.path == "/healthz":
            return self.health(request.method, self.token is None or given == self.token)
        if url.path in self.static:
            return _response(http.HTTPStatus.OK, self.static[url.path], STATIC_FILES[url.path][1], request.method)
        if url.path != "/ws":
            return _response(http.HTTPStatus.NOT_FOUND, b"not found\n", "text/plain")
        if self.token is not None and given is not None and given != self.token:  # "?token=" too
            return _response(http.HTTPStatus.UNAUTHORIZED, b"bad token\n", "text/plain")
        # Strangers who have not shown the token wait in a pool of their own (authenticate):
        # they never take the places of people who have.
        if (self.token is None or given is not None) and self.connections >= self.limits.max_connections:
            return _response(http.HTTPStatus.SERVICE_UNAVAILABLE,
                             f"server full: {self.limits.max_connections} connections\n".encode(), "text/plain")
        return None

    def health(self, method: str, trusted: bool) -> Response:
        """``ok``; this process's numbers too (under --workers each answers for itself) where no
        token is needed or it was given."""
        body = {"status": "ok"}
        if trusted:
            body |= {"models": list(self.models), "connections": self.connections,
                     "unauthenticated": self.unauthenticated, "streams": sum(w.rows for w in self.batches),
                     "worker": self.worker[0], "workers": self.worker[1], "pid": os.getpid()}
        return _response(http.HTTPStatus.OK, json.dumps(body).encode(), "application/json", method)

    async def authenticate(self, ws: ServerConnection) -> bool:
        """With a token and none in the URL, the first message must be ``auth`` with it, within
        AUTH_SECONDS; anything else is answered ``unauthorized`` and the connection closed (1008).
        A full pool of waiting connections makes room by closing its oldest."""
        if self.token is None or self.url_token(ws.request.path) == self.token:
            return True
        if len(self.waiting) >= self.limits.max_unauthenticated:
            oldest = next(iter(self.waiting))
            del self.waiting[oldest]
            asyncio.create_task(refuse(oldest, "too many connections waiting to authenticate; send auth at once"))
        self.waiting[ws] = None
        try:
            message = protocol.decode(await asyncio.wait_for(ws.recv(), AUTH_SECONDS))
            if message.get("type") != "auth":
                reason = 'send {"type": "auth", "token": ...} first, or connect with ?token='
            elif message.get("token") != self.token:
                reason = "wrong token"
            elif self.connections >= self.limits.max_connections:
                await ws.close(1013, f"server full: {self.limits.max_connections} connections")
                return False
            else:
                return True
        except TimeoutError:
            reason = f"no auth message within {AUTH_SECONDS:g} s"
        except ProtocolError as e:
            reason = f"{e.message}; the first message must be auth"
        finally:
            self.waiting.pop(ws, None)
        await refuse(ws, reason)
        return False

    async def handler(self, ws: ServerConnection) -> None:
        try:
            await ws.send(protocol.encode(self.hello()))
            if not await self.authenticate(ws):
                return
        except ConnectionClosed:
            return
        self.connections += 1
        connection = Connection(ws, self.limits)
        try:
            while True:
                try:
                    raw = await asyncio.wait_for(ws.recv(), self.limits.idle_timeout)
                except TimeoutError:
                    await ws.close(IDLE_CLOSE, f"idle: no message in {self.limits.idle_timeout:g} s")
                    break
                await self.receive(connection, raw)
        except ConnectionClosed:
            pass
        finally:
            self.connections -= 1
            await connection.close()

    async def receive(self, connection: Connection, raw) -> None:
        """One message: decode, the rate step, parse, dispatch. Every failure is an ``error``
        reply to this message alone: the connection and its other requests go on."""
        message = None
        try:
            message = protocol.decode(raw)
            connection.rates.take_message()
            request = protocol.parse(message, self.limits, self.models, self.default_model)
            if isinstance(request, protocol.Complete):
                previous = connection.current
                connection.cancel()  # someone drawing again wants the new ending
                connection.current = None
                connection.current = await self.start(connection, request, previous)
            elif isinstance(request, protocol.Guess):
                await self.guess(connection, request)
            elif isinstance(request, protocol.Cancel):
                connection.cancel(request.id)
            elif self.token is not None and request.token != self.token:  # already in: by URL or auth
                raise ProtocolError("unauthorized", "wrong token (this connection stays authenticated)")
        except ProtocolError as e:
            connection.send(protocol.error(e.code, e.message, protocol.id_of(message), e.retry_after))
        except Exception:  # a bug must cost one request, not the connection
            LOG.exception("request failed")
            connection.send(protocol.error("internal", "the server failed on this request; see its log",
                                           protocol.id_of(message)))

    async def ranked(self, strokes: list) -> list[tuple[str, float]]:
        """What the drawing looks like, off the event loop."""
        try:
            return await asyncio.to_thread(self.rank, strokes)
        except StrokeFormatError as e:  # strokes no screen could hold
            raise ProtocolError("bad_request", str(e)) from None

    async def guess(self, connection: Connection, request: protocol.Guess) -> None:
        connection.rates.take_points(sum(len(s) for s in request.strokes))
        connection.send(protocol.guess(request.id, await self.ranked(request.strokes)))

    async def start(self, connection: Connection, request: protocol.Complete, previous: Stream | None) -> Stream:
        """Read the drawing for its model (guessing which, for "auto") and queue it on the model's
        worker; the worker's events come back through ``connection``'s outbox. Without strokes
        the model draws from scratch, from (0, 0): the client places the drawing."""
        connection.rates.take_points(sum(len(s) for s in request.strokes))
        name, origin = request.model, (0.0, 0.0)
        if name == "auto":
            ranked = await self.ranked(request.strokes)
            connection.send(protocol.guess(request.id, ranked))
            name = ranked[0][0]
        loaded = self.models[name]
        if request.strokes:
            try:
                prefix, scale = prepare_for(loaded, request.strokes, request.scale)
            except StrokeFormatError as e:  # strokes no screen could hold
                raise ProtocolError("bad_request", str(e)) from None
            origin = tuple(request.strokes[-1][-1])
        else:
            # A whole drawing as large as Quick, Draw!'s (its longer side ~255 client units).
            prefix = np.zeros((0, 3), dtype=np.float32)
            scale = request.scale or DRAWING_FRAME / typical_extent(loaded.model)
        settings = Settings(request.temperature, request.pen_temperature, request.greedy, request.seed,
                            request.max_points)
        sampled = Request(prefix, scale, request.n, settings, origin=origin)
        stream = Stream(request.id, name, sampled, asyncio.get_running_loop(), stream_messages,
                        connection.outbox.put_nowait)
        admit(self.workers[name], stream, name, self.limits, previous)
        return stream

    async def drain(self, timeout: float = 3.0) -> None:
        """Cancel every running alternative and wait (up to ``timeout``) until each has sent its
        ``done``: a shutdown still answers every request."""
        for worker in self.batches:
            worker.cancel_all()
        deadline = time.monotonic() + timeout
        while any(w.rows for w in self.batches) and time.monotonic() < deadline:
            await asyncio.sleep(FRAME)
        await asyncio.sleep(2 * FRAME)  # the senders' last frame

    def stop(self) -> None:
        for worker in self.batches:
            worker.stop()


def stream_messages(stream: Stream, events: list[Event]) -> list[dict]:
    """The protocol messages for a stream's worker events (run on the worker's thread)."""
    drawn: dict[int, list] = {}
    for event in events:
        if event.point is not None:
            drawn.setdefault(event.k, []).append(event.point)
    messages = [protocol.points(stream.id, drawn)] if drawn else []
    for event in events:
        if event.point is not None:
            continue
        elif event.finished == "failed":
            messages.append(protocol.error("internal", "the model failed on this request; see the server log",
                                           stream.id))
        else:
            ms = (time.monotonic() - stream.started) * 1000
            messages.append(protocol.done(stream.id, event.k, event.finished, event.count, ms))
    return messages


async def send_frames(ws: ServerConnection, outbox: asyncio.Queue) -> None:
    """Drain the outbox, joining each alternative's queued points into one message.

    More points of a request already being drawn wait until a frame (1/60 s) has passed since the
    last send: no screen shows them sooner, and one send per point per stream saturates the event
    loop long before the model does. A request's first points and every ``done`` go at once."""
    last_send, last_id = 0.0, None
    while True:
        batches = [await outbox.get()]
        only_more_points = all(m["type"] == "points" and m["id"] == last_id for m in batches[0])
        wait = last_send + FRAME - time.monotonic()
        if only_more_points and wait > 0:
            await asyncio.sleep(wait)
        while not outbox.empty():
            batches.append(outbox.get_nowait())
        merged = protocol.merge_points([m for batch in batches for m in batch])
        last_send, last_id = time.monotonic(), merged[-1].get("id")
        try:
            for message in merged:
                await ws.send(protocol.encode(message))
        except ConnectionClosed:
            pass
        except Exception:  # a bug here must not leave the client waiting in silence
            LOG.exception("sending failed; closing the connection")
            await ws.close(1011, "internal error")
        finally:
            for _ in batches:
                outbox.task_done()


async def refuse(ws: ServerConnection, reason: str) -> None:
    """An ``unauthorized`` error, then close (1008)."""
    try:
        await ws.send(protocol.encode(protocol.error("unauthorized", reason)))
        await ws.close(1008, "unauthorized")
    except ConnectionClosed:
        pass


def default_origins(host: str, port: int) -> list[str | None]:
    """The server's own origin and localhost; None admits clients that send no Origin."""
    hosts = {host, "localhost", "127.0.0.1", "[::1]"}
    return [None, *(f"http://{h}:{port}" for h in sorted(hosts))]


async def run(models: dict[str, LoadedModel], host: str = "127.0.0.1", port: int = 8765,
              limits: Limits | None = None, origins: list[str] | None = None, token: str | None = None,
              ready: asyncio.Future | None = None, worker: tuple[int, int] = (0, 1), recognizer=None) -> None:
    """Serve until SIGINT/SIGTERM (or ``ready``'s caller cancels): stop accepting, close every
    connection with 1001, stop the workers. ``worker`` = (index, count) of the processes sharing
    the port (``server/processes.py``); with more than one it is bound with SO_REUSEPORT.
    ``recognizer`` (built for ``models``) answers guesses; without one the models' likelihoods do."""
    limits = limits or Limits()
    app = CompletionServer(models, limits, origins, token, worker, recognizer)
    allowed = origins if origins is not None else default_origins(host, port)
    loop = asyncio.get_running_loop()
    stop = loop.create_future()
    handled = []
    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(sig, lambda: stop.done() or stop.set_result(None))
            handled.append(sig)
        except (NotImplementedError, RuntimeError, ValueError):
            pass  # not the main thread: the caller cancels instead
    try:
        async with serve(app.handler, host, port, process_request=app.process_request,
                         max_size=limits.max_message_bytes, origins=allowed, ping_interval=20,
                         close_timeout=3,  # a client that never answers the close holds up shutdown no longer
                         # Messages are a few dozen bytes of JSON: deflate saves nothing and cost
                         # the event loop (the bottleneck at 100 clients) 15% of its time.
                         compression=None, reuse_port=worker[1] > 1) as server:
            if ready is not None:
                ready.set_result((app, server))
            try:
                await stop
            finally:  # also when the caller cancels
                await app.drain()
    finally:
        for sig in handled:
            loop.remove_signal_handler(sig)
        app.stop()
