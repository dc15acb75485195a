"""The WebSocket service: the client's static files, ``/healthz``, and completions streamed point
by point over ``/ws`` (protocol v1, ``docs/protocol.md``), on websockets' asyncio API."""

import asyncio
import http
import json
import logging
import math
import os
import signal
import time
from dataclasses import asdict, dataclass
from importlib import resources
from urllib.parse import parse_qs, urlsplit

import numpy as np
from websockets.asyncio.server import ServerConnection, serve
from websockets.datastructures import Headers
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request as HTTPRequest
from websockets.http11 import Response

from sketchrnn.checkpoints import LoadedModel
from sketchrnn.sampler import Request, Settings, guess_model, prepare_for, typical_extent
from sketchrnn.strokes import StrokeFormatError

from .worker import Event, ModelWorker, Stream

PROTOCOL = 1
CLIENT_DIR = resources.files("sketchrnn.client")  # the repository's client/, mapped into the package
# The only files served over HTTP: request paths are looked up here, never joined onto a path.
STATIC_FILES = {
    "/": ("index.html", "text/html; charset=utf-8"),
    "/index.html": ("index.html", "text/html; charset=utf-8"),
    "/app.js": ("app.js", "text/javascript; charset=utf-8"),
    "/style.css": ("style.css", "text/css; charset=utf-8"),
}
FRAME = 1 / 60  # seconds: the finest pace at which a client can show new points
AUTH_SECONDS = 10.0  # a connection that must authenticate and has not by then is closed
MAX_COORDINATE = 1e6  # larger than any screen by far: anything beyond is not a drawing


@dataclass
class Limits:
    max_message_bytes: int = 256 * 1024  # a long drawing is a few tens of KB of JSON
    max_input_points: int = 2000  # points in one request's strokes
    max_points: int = 250  # points per alternative (Magenta's max_seq_len)
    max_n: int = 9  # alternatives per request
    requests_per_second: float = 10.0  # per connection, sustained; bursts of twice that
    # Points of drawing a connection may send per second (bursts of twice that). Reading them
    # costs the server ~15 us a point (simplifying on the event loop, then priming the model); a
    # person lifting the pen twice a second on a 2,000-point drawing sends 4,000; a client that
    # resends 2,000 points ten times a second would make everyone else's completions 4-5x slower.
    points_per_second: float = 4000.0
    max_connections: int = 1000  # beyond: HTTP 503 at the handshake
    max_batch: int = 1024  # alternatives stepped at once per model; beyond: "overloaded"


class RequestError(Exception):
    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code, self.message = code, message


def _response(status: http.HTTPStatus, body: bytes, content_type: str, method: str = "GET") -> Response:
    headers = Headers([("Content-Type", content_type), ("Content-Length", str(len(body))),
                       ("Cache-Control", "no-cache")])
    return Response(status.value, status.phrase, headers, body if method != "HEAD" else b"")


class TokenBucket:
    """``rate`` requests a second sustained, bursts of twice that."""

    def __init__(self, rate: float):
        self.rate, self.allowance, self.last = rate, 2 * rate, time.monotonic()

    def take(self, cost: float = 1.0) -> bool:
        now = time.monotonic()
        self.allowance = min(2 * self.rate, self.allowance + (now - self.last) * self.rate)
        self.last = now
        if self.allowance < cost:
            return False
        self.allowance -= cost
        return True


def _finite(value) -> bool:
    """A JSON number that is finite as a float (an integer of 400 digits is not)."""
    try:
        return not isinstance(value, bool) and isinstance(value, (int, float)) and math.isfinite(value)
    except OverflowError:
        return False


def _number(value, field: str, low: float, high: float) -> float:
    if not _finite(value):
        raise RequestError("bad_request", f"{field} must be a finite number")
    if not low <= value <= high:
        raise RequestError("bad_request", f"{field} must be between {low:g} and {high:g}, got {value:g}")
    return float(value)


def _integer(value, field: str, low: int, high: int, code: str = "bad_request") -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise RequestError("bad_request", f"{field} must be an integer")
    if not low <= value <= high:
        # Over the limit is "too_large"; below the least sensible value is just a bad request.
        raise RequestError(code if value > high else "bad_request", f"{field} must be between {low} and {high}, "
                                                                    f"got {value}")
    return value


def parse_strokes(strokes, limit: int) -> list[np.ndarray]:
    """Absolute polylines from the client -> arrays, or a RequestError naming the problem."""
    if not isinstance(strokes, list) or not strokes:
        raise RequestError("bad_request", "strokes must be a non-empty list of strokes [[x, y], ...]")
    total = sum(len(s) if isinstance(s, list) else 0 for s in strokes)
    if total > limit:
        raise RequestError("too_large", f"strokes hold {total} points; the limit is {limit}")
    parsed = []
    for i, stroke in enumerate(strokes):
        if not isinstance(stroke, list) or not stroke:
            raise RequestError("bad_request", f"strokes[{i}] must be a non-empty list of [x, y] points")
        for j, point in enumerate(stroke):
            if (not isinstance(point, list) or len(point) != 2
                    or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in point)):
                raise RequestError("bad_request", f"strokes[{i}][{j}] must be [x, y] with numbers")
            if not all(_finite(v) and abs(v) <= MAX_COORDINATE for v in point):
                raise RequestError("bad_request", f"strokes[{i}][{j}] must be finite, within ±{MAX_COORDINATE:g}")
        parsed.append(np.array(stroke, dtype=np.float64))
    return parsed


class CompletionServer:
    def __init__(self, models: dict[str, LoadedModel], limits: Limits, origins: list[str | None] | None,
                 token: str | None = None, worker: tuple[int, int] = (0, 1)):
        if not models:
            raise ValueError("no model to serve")
        self.models, self.limits, self.origins, self.token = models, limits, origins, token
        self.worker = worker  # (index, count) of the processes serving this port (serve --workers)
        self.workers = {name: ModelWorker(m, limits.max_batch) for name, m in models.items()}
        for loaded in models.values():  # computed once, here, rather than on a request's time
            typical_extent(loaded.model)
        self.default_model = next(iter(models))
        self.static = {path: (CLIENT_DIR / name).read_bytes() for path, (name, _) in STATIC_FILES.items()
                       if (CLIENT_DIR / name).is_file()}
        self.connections = 0  # authenticated (or needing no token)
        self.unauthenticated = 0  # waiting for their auth message, in a pool of their own

    def hello(self) -> dict:
        models = [{"name": name, "mode": m.model.config.mode, "max_points": self.limits.max_points,
                   "classes": m.classes, "scale_factor": m.scale_factor} for name, m in self.models.items()]
        return {"type": "hello", "protocol": PROTOCOL, "models": models, "limits": asdict(self.limits),
                "worker": self.worker[0]}

    def process_request(self, connection: ServerConnection, request: HTTPRequest) -> Response | None:
        url = urlsplit(request.path)
        if request.method not in ("GET", "HEAD"):
            response = _response(http.HTTPStatus.METHOD_NOT_ALLOWED, b"only GET and HEAD\n", "text/plain")
            response.headers["Allow"] = "GET, HEAD"
            return response
        if url.path == "/healthz":
            # This process's own numbers: under --workers each process answers for itself.
            body = {"status": "ok", "models": list(self.models), "connections": self.connections,
                    "unauthenticated": self.unauthenticated, "streams": sum(w.rows for w in self.workers.values()),
                    "worker": self.worker[0], "workers": self.worker[1], "pid": os.getpid()}
            return _response(http.HTTPStatus.OK, json.dumps(body).encode(), "application/json", request.method)
        if url.path in self.static:
            return _response(http.HTTPStatus.OK, self.static[url.path], STATIC_FILES[url.path][1], request.method)
        if url.path != "/ws":
            return _response(http.HTTPStatus.NOT_FOUND, b"not found\n", "text/plain")
        given = parse_qs(url.query).get("token")
        if self.token is not None and given is not None and given[0] != self.token:
            return _response(http.HTTPStatus.UNAUTHORIZED, b"bad token\n", "text/plain")
        # Strangers who have not shown the token wait in a pool of their own: they can never take
        # the places of people who have.
        waiting = self.token is not None and given is None
        if (self.unauthenticated if waiting else self.connections) >= self.limits.max_connections:
            return _response(http.HTTPStatus.SERVICE_UNAVAILABLE,
                             f"server full: {self.limits.max_connections} connections\n".encode(), "text/plain")
        return None

    async def authenticate(self, ws: ServerConnection) -> bool:
        """With a token and none in the URL, the first message must be ``auth`` with it, within
        AUTH_SECONDS; anything else is answered ``unauthorized`` and the connection closed (1008)."""
        if self.token is None or parse_qs(urlsplit(ws.request.path).query).get("token") == [self.token]:
            return True
        self.unauthenticated += 1
        try:
            raw = await asyncio.wait_for(ws.recv(), AUTH_SECONDS)
            message = self._decode(raw)
            if message.get("type") == "auth" and message.get("token") == self.token:
                return True
            reason = 'send {"type": "auth", "token": ...} first, or connect with ?token='
        except TimeoutError:
            reason = f"no auth message within {AUTH_SECONDS:g} s"
        except RequestError as e:
            reason = f"{e.message}; the first message must be auth"
        finally:
            self.unauthenticated -= 1
        await ws.send(json.dumps({"type": "error", "code": "unauthorized", "message": reason}))
        await ws.close(1008, "unauthorized")
        return False

    async def handler(self, ws: ServerConnection) -> None:
        try:
            await ws.send(json.dumps(self.hello()))
            if not await self.authenticate(ws):
                return
        except ConnectionClosed:
            return
        self.connections += 1
        loop = asyncio.get_running_loop()
        outbox: asyncio.Queue = asyncio.Queue()
        sender = asyncio.create_task(self._send(ws, outbox))
        current: Stream | None = None
        rate = TokenBucket(self.limits.requests_per_second)
        drawing = TokenBucket(self.limits.points_per_second)
        try:
            async for raw in ws:
                try:
                    message = self._decode(raw)
                    if not rate.take():
                        raise RequestError("rate_limited", f"more than {self.limits.requests_per_second:g} "
                                                           "requests per second on this connection")
                    kind = message.get("type")
                    if kind == "complete":
                        if current is not None:
                            current.cancelled = True  # someone drawing again wants the new ending
                        current = None
                        current = await self._start(message, loop, outbox, drawing)
                    elif kind == "cancel":
                        if current is not None and current.id == message.get("id"):
                            current.cancelled = True
                    else:
                        raise RequestError("bad_request", f"unknown message type {kind!r}; expected complete or cancel")
                except RequestError as e:
                    outbox.put_nowait([self._error(raw, e.code, e.message)])
                except Exception:  # a bug must cost one request, not the connection
                    logging.getLogger("sketchrnn.server").exception("request failed")
                    outbox.put_nowait([self._error(raw, "internal", "the server failed on this request; see its log")])
        except ConnectionClosed:
            pass
        finally:
            if current is not None:
                current.cancelled = True  # the worker frees its rows at the next step
            self.connections -= 1
            sender.cancel()
            # Wait for it: a sender still running after the handler returns races the test (and
            # the server's shutdown) that counts what is left.
            await asyncio.gather(sender, return_exceptions=True)

    @staticmethod
    def _error(raw, code: str, message: str) -> dict:
        error = {"type": "error", "code": code, "message": message}
        if isinstance(message_id := _id_of(raw), str):
            error["id"] = message_id
        return error

    def _decode(self, raw) -> dict:
        if isinstance(raw, bytes):
            raise RequestError("bad_request", "binary frames are not part of the protocol; send JSON text")
        try:
            message = json.loads(raw)
        except (ValueError, RecursionError) as e:  # ValueError: also integers of over 4,300 digits
            raise RequestError("bad_request", f"message is not valid JSON ({e})") from None
        if not isinstance(message, dict):
            raise RequestError("bad_request", "message must be a JSON object")
        return message

    async def _start(self, message: dict, loop, outbox: asyncio.Queue, drawing: TokenBucket) -> Stream:
        request_id = message.get("id")
        if not isinstance(request_id, str) or not 0 < len(request_id) <= 64:
            raise RequestError("bad_request", "id must be a string of 1 to 64 characters")
        name = message.get("model", self.default_model)
        if not isinstance(name, str):
            raise RequestError("bad_request", "model must be a string: a served model's name, or auto")
        if name != "auto" and name not in self.models:
            raise RequestError("unknown_model", f"model {name!r} is not served; served: auto, {', '.join(self.models)}")
        limits = self.limits
        strokes = parse_strokes(message.get("strokes"), limits.max_input_points)
        if not drawing.take(sum(len(s) for s in strokes)):
            raise RequestError("rate_limited", f"more than {limits.points_per_second:g} points of drawing per "
                                               "second on this connection")
        temperature = _number(message.get("temperature", 0.25), "temperature", 0.01, 2.0)
        pen_temperature = message.get("pen_temperature")
        if pen_temperature is not None:
            pen_temperature = _number(pen_temperature, "pen_temperature", 0.01, 2.0)
        n = _integer(message.get("n", 1), "n", 1, limits.max_n, "too_large")
        max_points = _integer(message.get("max_points", limits.max_points), "max_points", 1, limits.max_points,
                              "too_large")
        seed = message.get("seed")
        if seed is not None:
            seed = _integer(seed, "seed", 0, 2**63 - 1)
        greedy = message.get("greedy", False)
        if not isinstance(greedy, bool):
            raise RequestError("bad_request", "greedy must be true or false")
        scale = message.get("scale")
        if scale is not None:
            scale = _number(scale, "scale", 1e-6, 1e6)
        try:
            if name == "auto":  # every model scores the drawing, off the event loop
                name, scores = await asyncio.to_thread(guess_model, self.models, strokes)
                outbox.put_nowait([{"type": "guess", "id": request_id, "model": name,
                                    "scores": {k: round(v, 4) for k, v in scores.items()}}])
            loaded = self.models[name]
            prefix, scale = prepare_for(loaded, strokes, scale)
        except StrokeFormatError as e:  # strokes no screen could hold
            raise RequestError("bad_request", str(e)) from None
        settings = Settings(temperature, pen_temperature, greedy, seed, max_points)
        request = Request(prefix, scale, n, settings, origin=tuple(strokes[-1][-1]))

        stream = Stream(request_id, request, loop, self._messages, outbox.put_nowait)
        if not self.workers[name].submit(stream):
            raise RequestError("overloaded", f"model {name!r} is stepping its limit of {limits.max_batch} "
                                             "alternatives; try again shortly")
        return stream

    @staticmethod
    def _messages(stream: Stream, events: list[Event]) -> list[dict]:
        """The protocol messages for a stream's worker events (run on the worker's thread)."""
        messages = []
        for event in events:
            if event.point is not None:
                messages.append({"type": "points", "id": stream.id, "k": event.k, "points": [event.point]})
            elif event.finished == "failed":
                messages.append({"type": "error", "id": stream.id, "code": "internal",
                                 "message": "the model failed on this request; see the server log"})
            else:
                ms = round((time.monotonic() - stream.started) * 1000, 1)
                messages.append({"type": "done", "id": stream.id, "k": event.k, "reason": event.finished,
                                 "points": event.count, "ms": ms})
        return messages

    async def _send(self, ws: ServerConnection, outbox: asyncio.Queue) -> None:
        """Drain the outbox, joining each alternative's queued points into one message.

        More points of a request already being drawn wait until a frame (1/60 s) has passed
        since the last send: no screen shows them sooner, and one send per point per stream
        saturates the event loop long before the model does. A request's first points and
        every ``done`` go at once."""
        last_send, last_id = 0.0, None
        while True:
            batches = [await outbox.get()]
            only_more_points = all(m["type"] == "points" and m["id"] == last_id for m in batches[0])
            wait = last_send + FRAME - time.monotonic()
            if only_more_points and wait > 0:
                await asyncio.sleep(wait)
            while not outbox.empty():
                batches.append(outbox.get_nowait())
            merged: list[dict] = []
            for message in (m for batch in batches for m in batch):
                previous = merged[-1] if merged else None
                if (message["type"] == "points" and previous is not None and previous["type"] == "points"
                        and previous["id"] == message["id"] and previous["k"] == message["k"]):
                    previous["points"] += message["points"]
                else:
                    merged.append(message)
            last_send, last_id = time.monotonic(), merged[-1].get("id")
            try:
                for message in merged:
                    await ws.send(json.dumps(message, separators=(",", ":")))
            except ConnectionClosed:
                pass
            except Exception:  # a bug here must not leave the client waiting in silence
                logging.getLogger("sketchrnn.server").exception("sending failed; closing the connection")
                await ws.close(1011, "internal error")
            finally:
                for _ in batches:
                    outbox.task_done()

    async def drain(self, timeout: float = 3.0) -> None:
        """Cancel every running alternative and wait (up to ``timeout``) until each has sent its
        ``done``: a shutdown still answers every request."""
        for worker in self.workers.values():
            worker.cancel_all()
        deadline = time.monotonic() + timeout
        while any(w.rows for w in self.workers.values()) and time.monotonic() < deadline:
            await asyncio.sleep(FRAME)
        await asyncio.sleep(2 * FRAME)  # the senders' last frame

    def stop(self) -> None:
        for worker in self.workers.values():
            worker.stop()


def _id_of(raw) -> object:
    try:
        message = json.loads(raw)
        return message.get("id") if isinstance(message, dict) else None
    except (ValueError, TypeError, RecursionError):
        return None


def default_origins(host: str, port: int) -> list[str | None]:
    """The server's own origin and localhost; None admits clients that send no Origin."""
    hosts = {host, "localhost", "127.0.0.1", "[::1]"}
    return [None, *(f"http://{h}:{port}" for h in sorted(hosts))]


async def run(models: dict[str, LoadedModel], host: str = "127.0.0.1", port: int = 8765,
              limits: Limits | None = None, origins: list[str] | None = None, token: str | None = None,
              ready: asyncio.Future | None = None, worker: tuple[int, int] = (0, 1)) -> None:
    """Serve until SIGINT/SIGTERM (or ``ready``'s caller cancels): stop accepting, close every
    connection with 1001, stop the workers. ``worker`` = (index, count) of the processes sharing
    the port (``server/processes.py``); with more than one it is bound with SO_REUSEPORT."""
    limits = limits or Limits()
    app = CompletionServer(models, limits, origins, token, worker)
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
