"""A Python client for ``sketchrnn serve`` (docs/protocol.md, "From Python"):

    async with remote.connect("ws://127.0.0.1:8765/ws", token=None) as client:
        print(client.hello["models"])
        completion = client.complete(strokes, n=3, seed=7)
        async for point in completion:          # Point(k, x, y, lift), as they are sampled
            ...
        completion.done                         # {k: Done(reason, points, ms)}, once iterated
        (await client.guess(strokes))["top"]    # [{"model": ..., "p": ...}, ...] best first

An ``error`` answer to a request is raised from its iteration as ``RemoteError(code, message)``
(``retry_after`` set for ``busy``). One reader task per connection routes each message to its
request by ``id``, so several requests (a newer one superseding an older) can be read apart.
"""

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from urllib.parse import quote

from websockets.asyncio.client import ClientConnection
from websockets.asyncio.client import connect as ws_connect

__all__ = ["Client", "Completion", "Done", "Point", "RemoteError", "connect"]


class RemoteError(Exception):
    """An ``error`` message from the server: its ``code`` (docs/protocol.md's table) and words."""

    def __init__(self, code: str, message: str, request_id: str | None = None, retry_after: float | None = None):
        super().__init__(f"{code}: {message}")
        self.code, self.message, self.id, self.retry_after = code, message, request_id, retry_after


class Point(tuple):
    """One sampled point of alternative ``k``: absolute ``x``, ``y`` in the client's units, and
    ``lift`` (1 where the pen lifts after it)."""

    __slots__ = ()

    def __new__(cls, k: int, x: float, y: float, lift: int):
        return super().__new__(cls, (k, x, y, lift))

    k = property(lambda self: self[0])
    x = property(lambda self: self[1])
    y = property(lambda self: self[2])
    lift = property(lambda self: self[3])


@dataclass(frozen=True)
class Done:
    reason: str  # "end", "max_points", "cancelled" or "shed"
    points: int  # points sent for the alternative
    ms: float  # since the server received the request


def points_of(message: dict) -> list[tuple[int, list]]:
    """(k, points) pairs of a ``points`` message: one alternative (``k``, ``points``) or several
    (``alternatives``)."""
    if "alternatives" in message:
        return [(a["k"], a["points"]) for a in message["alternatives"]]
    return [(message["k"], message["points"])]


@dataclass
class Completion:
    """One ``complete`` request: iterate it for its points; ``done``, ``guess`` and ``messages``
    fill in as it goes. Iteration ends once every alternative is done."""

    id: str
    n: int
    inbox: asyncio.Queue = field(repr=False)
    request: dict | None = field(default=None, repr=False)  # not yet sent
    client: "Client | None" = field(default=None, repr=False)
    done: dict[int, Done] = field(default_factory=dict)
    guess: dict | None = None
    messages: list[dict] = field(default_factory=list, repr=False)  # every message of this request, in order

    def __aiter__(self) -> AsyncIterator[Point]:
        return self._points()

    async def start(self) -> None:
        """Send the request (iteration does it too, if it has not been sent)."""
        if self.request is not None:
            request, self.request = self.request, None
            await self.client.send(request)

    async def _points(self) -> AsyncIterator[Point]:
        await self.start()
        while len(self.done) < max(self.n, 1):  # n < 1 is refused: its error ends it
            message = await self.inbox.get()
            if isinstance(message, BaseException):
                raise message
            self.messages.append(message)
            kind = message["type"]
            if kind == "points":
                for k, drawn in points_of(message):
                    for x, y, lift in drawn:
                        yield Point(k, x, y, lift)
            elif kind == "done":
                self.done[message["k"]] = Done(message["reason"], message["points"], message["ms"])
            elif kind == "guess":
                self.guess = message
            elif kind == "error":
                raise RemoteError(message["code"], message["message"], message.get("id"), message.get("retry_after"))

    async def collect(self, timeout: float | None = None) -> dict[int, list[list]]:
        """Every alternative's points, ``{k: [[x, y, lift], ...]}``, once all are done."""
        drawn: dict[int, list[list]] = {k: [] for k in range(self.n)}

        async def read():
            async for point in self:
                drawn[point.k].append([point.x, point.y, point.lift])

        await asyncio.wait_for(read(), timeout)
        return drawn


class Client:
    """One WebSocket connection to the server; use ``connect`` to make one."""

    def __init__(self, ws: ClientConnection, hello: dict):
        self.ws, self.hello = ws, hello
        self.requests: dict[str, asyncio.Queue] = {}
        self.errors: asyncio.Queue[RemoteError] = asyncio.Queue()  # errors that name no request
        self.counter = 0
        self.reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        failure: BaseException = ConnectionError("connection closed")
        try:
            async for raw in self.ws:
                message = json.loads(raw)
                inbox = self.requests.get(message.get("id"))
                if inbox is not None:
                    inbox.put_nowait(message)
                elif message.get("type") == "error":  # about no request: every open one hears it
                    self.errors.put_nowait(RemoteError(message["code"], message["message"]))
                    for inbox in self.requests.values():
                        inbox.put_nowait(message)
        except Exception as e:  # ConnectionClosedError and its kin: every waiting request hears why
            failure = e
        for inbox in self.requests.values():
            inbox.put_nowait(failure)

    async def send(self, message: dict) -> None:
        await self.ws.send(json.dumps(message))

    def complete(self, strokes: Sequence, *, id: str | None = None, n: int = 1, **fields) -> Completion:
        """Ask for ``n`` endings of ``strokes`` (absolute polylines); ``fields``: the request's
        other fields (model, temperature, pen_temperature, max_points, seed, greedy, scale). The
        request is sent when iteration (or ``collect``) starts; ``send_complete`` sends it at once."""
        self.counter += 1
        request_id = id or str(self.counter)
        inbox: asyncio.Queue = asyncio.Queue()
        self.requests[request_id] = inbox
        message = {"type": "complete", "id": request_id, "strokes": _plain(strokes), "n": n, **fields}
        return Completion(request_id, n, inbox, message, self)

    async def send_complete(self, strokes: Sequence, **kwargs) -> Completion:
        """``complete``, with the request on its way when this returns."""
        completion = self.complete(strokes, **kwargs)
        await completion.start()
        return completion

    async def cancel(self, request_id: str) -> None:
        await self.send({"type": "cancel", "id": request_id})

    async def guess(self, strokes: Sequence, *, id: str | None = None, timeout: float | None = 20) -> dict:
        """What the drawing looks like: the server's ``guess`` answer (``model``, ``top``, ``sure``)."""
        self.counter += 1
        request_id = id or f"g{self.counter}"
        inbox: asyncio.Queue = self.requests.setdefault(request_id, asyncio.Queue())
        try:
            await self.send({"type": "guess", "id": request_id, "strokes": _plain(strokes)})
            message = await asyncio.wait_for(inbox.get(), timeout)
        finally:
            del self.requests[request_id]
        if isinstance(message, BaseException):
            raise message
        if message["type"] == "error":
            raise RemoteError(message["code"], message["message"], request_id, message.get("retry_after"))
        return message


def _plain(strokes: Sequence) -> list:
    """Strokes as JSON lists (numpy arrays included)."""
    return [s.tolist() if hasattr(s, "tolist") else [list(p) for p in s] for s in strokes]


@contextlib.asynccontextmanager
async def connect(url: str, token: str | None = None, *, auth: str = "url", **options) -> AsyncIterator[Client]:
    """A connected ``Client`` with the server's ``hello`` read. ``token``: in the URL
    (``auth="url"``) or as a first ``auth`` message (``auth="message"``). ``options`` go to
    websockets' ``connect`` (``origin``, ``open_timeout``...)."""
    if token is not None and auth == "url":
        url += ("&" if "?" in url else "?") + "token=" + quote(token, safe="")
    options.setdefault("max_size", None)
    async with ws_connect(url, **options) as ws:
        hello = json.loads(await ws.recv())
        if token is not None and auth == "message":
            await ws.send(json.dumps({"type": "auth", "token": token}))
        client = Client(ws, hello)
        try:
            yield client
        finally:
            client.reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await client.reader
