"""The Playground's local web server (aiohttp): static page, JSON API, frame stream.

Binds only to loopback addresses. Every tab gets its own :class:`~.engine.Session`
(``POST /api/session``); the training of a playing session runs in a worker thread, one
chunk of epochs at a time, and frames go to that session's WebSocket
(``GET /api/session/{id}/stream``). Bad requests get ``400`` with ``{"error": message}``;
nothing a request carries can stop the server or another session.

API (JSON bodies; every answer is JSON unless it is a download)::

    POST   /api/session                 {config?}            -> {id, config, data, frame}
    POST   /api/session/{id}/config     {settings...}        -> {config, data, frame}
    POST   /api/session/{id}/step       {epochs?: 1..1000}   -> {frame}
    POST   /api/session/{id}/reset      {new_init?: bool}    -> {config, frame}
    POST   /api/session/{id}/weight     {layer, source, target, value} -> {frame}
    POST   /api/session/{id}/play       {until_epoch?, until_test_loss?} -> {playing}
    POST   /api/session/{id}/pause      {}                   -> {playing}
    POST   /api/session/{id}/upload     text/csv body        -> {config, data, frame, upload}
    GET    /api/session/{id}/frame?since=N                   -> {frame}
    GET    /api/session/{id}/export.pkl | export.py          -> download
    GET    /api/session/{id}/stream     WebSocket of {frame} messages while playing
    DELETE /api/session/{id}
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import json
import math
import pickle
import secrets
import threading
import time
import weakref
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from aiohttp import WSMsgType, web

from . import engine as en

STATIC = Path(__file__).with_name("static")
MAX_SESSIONS = 64
MAX_BODY = 2 * 1024 * 1024
CHUNK_SECONDS = 0.05      # training time per streamed frame
IDLE_SECONDS = 3600

_EXECUTOR = web.AppKey("executor", ThreadPoolExecutor)
_SESSIONS = web.AppKey("sessions", dict)
_SOCKETS = web.AppKey("websockets", weakref.WeakSet)


class BadRequest(web.HTTPBadRequest):
    def __init__(self, message: str):
        super().__init__(text=json.dumps({"error": message}), content_type="application/json")


def check_loopback(host: str) -> str:
    """Return ``host`` if it names a loopback address, else raise ``ValueError``."""
    if host == "localhost":
        return host
    try:
        ok = ipaddress.ip_address(host).is_loopback
    except ValueError:
        ok = False
    if not ok:
        raise ValueError(f"--host must be a loopback address (127.0.0.1, ::1, localhost), "
                         f"got {host!r}: the playground never listens on other interfaces")
    return host


class _Entry:
    """A session with its play state and its WebSocket clients."""

    def __init__(self, session: en.Session):
        self.session = session
        self.task: asyncio.Task | None = None
        self.sockets: weakref.WeakSet = weakref.WeakSet()
        self.last_used = time.monotonic()
        self.until_epoch: int | None = None
        self.until_test_loss: float | None = None
        self.busy = None    # the chunk of epochs running in the pool, if any
        self.sent_epoch = 0  # the epoch of the last streamed frame

    @property
    def playing(self) -> bool:
        return self.task is not None and not self.task.done()


def _json_safe(obj):
    return json.dumps(obj, allow_nan=False, separators=(",", ":"))


def _reply(obj, status=200):
    return web.Response(text=_json_safe(obj), status=status, content_type="application/json")


async def _body(request) -> dict:
    if request.content_length is not None and request.content_length > MAX_BODY:
        raise BadRequest(f"request body larger than {MAX_BODY} bytes")
    raw = await request.read()
    if not raw:
        return {}
    try:
        data = json.loads(raw, parse_constant=lambda c: float("nan"))
    except (ValueError, UnicodeDecodeError) as e:
        raise BadRequest(f"malformed JSON: {e}") from None
    if not isinstance(data, dict):
        raise BadRequest("the request body must be a JSON object")
    return data


def _entry(request) -> _Entry:
    sid = request.match_info["sid"]
    entry = request.app[_SESSIONS].get(sid)
    if entry is None:
        raise web.HTTPNotFound(text=_json_safe({"error": f"no session {sid!r}"}),
                               content_type="application/json")
    entry.last_used = time.monotonic()
    return entry


async def _run(request, fn, *args):
    """Run a blocking session call on the app's executor; ValueErrors become 400."""
    loop = asyncio.get_running_loop()
    try:
        return await loop.run_in_executor(request.app[_EXECUTOR], fn, *args)
    except ValueError as e:
        raise BadRequest(str(e)) from None


def _full(session: en.Session, since=0):
    return {"config": session.config.to_dict(), "data": session.data_frame(),
            "frame": session.frame(since=since)}


# --- handlers ------------------------------------------------------------------------------
async def index(request):
    return web.FileResponse(STATIC / "index.html")


async def create(request):
    body = await _body(request)
    sessions = request.app[_SESSIONS]
    now = time.monotonic()
    for sid in [s for s, e in sessions.items()
                if now - e.last_used > IDLE_SECONDS and not e.playing]:
        del sessions[sid]
    if len(sessions) >= MAX_SESSIONS:
        oldest = min((e.last_used, s) for s, e in sessions.items() if not e.playing)[1] \
            if any(not e.playing for e in sessions.values()) else None
        if oldest is None:
            raise BadRequest(f"too many sessions playing (at most {MAX_SESSIONS})")
        del sessions[oldest]
    config = body.get("config", {})
    session = await _run(request, en.Session, config)
    sid = secrets.token_urlsafe(12)
    sessions[sid] = _Entry(session)
    return _reply({"id": sid, **await _run(request, _full, session)})


async def delete(request):
    entry = _entry(request)
    await _stop(entry)
    request.app[_SESSIONS].pop(request.match_info["sid"], None)
    return _reply({"deleted": True})


async def config(request):
    entry = _entry(request)
    body = await _body(request)
    was_playing = entry.playing
    before = entry.session.config
    await _stop(entry)
    after = await _run(request, entry.session.apply, body)
    out = await _run(request, _full, entry.session)
    # rate and batch-size changes keep the network, and keep it playing
    if was_playing and en.Session.is_soft_change(before, after) and \
            entry.session.status != "diverged":
        entry.task = asyncio.create_task(_play(request.app, entry))
    return _reply({**out, "playing": entry.playing})


async def step(request):
    entry = _entry(request)
    body = await _body(request)
    n = body.get("epochs", 1)
    if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= 1000:
        raise BadRequest(f"epochs must be an integer in [1, 1000], got {n!r}")
    await _stop(entry)
    since = entry.session.epoch
    await _run(request, entry.session.step, n)
    return _reply({"frame": await _run(request, entry.session.frame, since)})


async def reset(request):
    entry = _entry(request)
    body = await _body(request)
    new_init = body.get("new_init", False)
    if not isinstance(new_init, bool):
        raise BadRequest("new_init must be true or false")
    await _stop(entry)
    await _run(request, entry.session.reset, new_init)
    return _reply({"config": entry.session.config.to_dict(),
                   "frame": await _run(request, entry.session.frame, 0)})


async def weight(request):
    entry = _entry(request)
    body = await _body(request)
    missing = [k for k in ("layer", "source", "target", "value") if k not in body]
    if missing:
        raise BadRequest(f"missing fields {missing}")
    extra = sorted(set(body) - {"layer", "source", "target", "value"})
    if extra:
        raise BadRequest(f"unknown fields {extra}")
    s = entry.session
    await _run(request, s.set_weight, body["layer"], body["source"], body["target"],
               body["value"])
    return _reply({"frame": await _run(request, s.frame, s.epoch)})


async def frame(request):
    entry = _entry(request)
    try:
        since = int(request.query.get("since", "0"))
    except ValueError:
        raise BadRequest("since must be an integer") from None
    since = max(0, since)
    return _reply({"frame": await _run(request, entry.session.frame, since)})


async def play(request):
    entry = _entry(request)
    body = await _body(request)
    ue, ul = body.get("until_epoch"), body.get("until_test_loss")
    if ue is not None and (isinstance(ue, bool) or not isinstance(ue, int) or ue < 1):
        raise BadRequest("until_epoch must be a positive integer")
    if ul is not None and (isinstance(ul, bool) or not isinstance(ul, (int, float))
                           or not math.isfinite(ul) or ul <= 0):
        raise BadRequest("until_test_loss must be a positive number")
    entry.until_epoch, entry.until_test_loss = ue, ul
    if entry.session.status == "diverged":
        raise BadRequest("training diverged; lower the learning rate and reset")
    if not entry.playing:
        entry.task = asyncio.create_task(_play(request.app, entry))
    return _reply({"playing": True})


async def pause(request):
    entry = _entry(request)
    await _stop(entry)
    # from the last streamed epoch on: the chunk that pausing cut off was never streamed
    since = min(entry.sent_epoch, entry.session.epoch)
    return _reply({"playing": False, "frame": await _run(request, entry.session.frame,
                                                         since)})


async def upload(request):
    entry = _entry(request)
    if request.content_length is not None and request.content_length > MAX_BODY:
        raise BadRequest(f"upload larger than {MAX_BODY} bytes")
    raw = await request.read()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise BadRequest("the CSV must be UTF-8 text") from None
    await _stop(entry)
    info = await _run(request, entry.session.upload, text)
    return _reply({"upload": info, **await _run(request, _full, entry.session)})


async def export_pickle(request):
    entry = _entry(request)
    try:
        model = await _run(request, en.to_estimator, entry.session)
    except ImportError as e:
        raise web.HTTPNotImplemented(text=_json_safe({"error": str(e)}),
                                     content_type="application/json") from None
    return web.Response(body=pickle.dumps(model), content_type="application/octet-stream",
                        headers={"Content-Disposition":
                                 'attachment; filename="playground_model.pkl"'})


async def export_snippet(request):
    entry = _entry(request)
    text = await _run(request, en.to_snippet, entry.session)
    return web.Response(text=text, content_type="text/x-python",
                        headers={"Content-Disposition":
                                 'attachment; filename="playground_model.py"'})


async def stream(request):
    entry = _entry(request)
    ws = web.WebSocketResponse(heartbeat=30)
    await ws.prepare(request)
    entry.sockets.add(ws)
    request.app[_SOCKETS].add(ws)
    try:
        async for msg in ws:
            if msg.type == WSMsgType.ERROR:
                break
    finally:
        entry.sockets.discard(ws)
        request.app[_SOCKETS].discard(ws)
    return ws


# --- playing -------------------------------------------------------------------------------
async def _stop(entry: _Entry):
    """Stop playing; returns once no epoch of this session runs any more."""
    if entry.playing:
        entry.task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await entry.task
    entry.task = None
    busy, entry.busy = entry.busy, None
    if busy is not None and not busy.done():
        # a cancelled await does not stop the worker thread: wait for its chunk
        with contextlib.suppress(Exception, asyncio.CancelledError):
            await asyncio.wrap_future(busy)


async def _broadcast(entry: _Entry, message: dict):
    text = _json_safe(message)
    for ws in list(entry.sockets):
        if not ws.closed:
            with contextlib.suppress(ConnectionError, RuntimeError):
                await ws.send_str(text)


def _chunk(session: en.Session, n: int, since: int):
    t0 = time.perf_counter()
    session.step(n)
    dt = time.perf_counter() - t0
    return session.frame(since=since), dt


async def _play(app, entry: _Entry):
    loop = asyncio.get_running_loop()
    entry.busy = None
    s = entry.session
    n = 1
    while True:
        since = s.epoch
        todo = n
        if entry.until_epoch is not None:
            todo = min(n, entry.until_epoch - s.epoch)
            if todo <= 0:
                break
        entry.busy = app[_EXECUTOR].submit(_chunk, s, todo, since)
        f, dt = await asyncio.wrap_future(entry.busy)
        f["playing"] = True
        entry.sent_epoch = f["epoch"]
        await _broadcast(entry, {"frame": f})
        if f["status"] == "diverged":
            break
        if entry.until_test_loss is not None and f["test_loss"] is not None and \
                f["test_loss"] <= entry.until_test_loss:
            break
        # aim at CHUNK_SECONDS of training per frame
        per = dt / max(todo, 1)
        n = max(1, min(200, int(CHUNK_SECONDS / per) if per > 0 else 200))
        await asyncio.sleep(0.005)
    f = await loop.run_in_executor(app[_EXECUTOR], s.frame, s.epoch)
    f["playing"] = False
    await _broadcast(entry, {"frame": f})


# --- app -----------------------------------------------------------------------------------
ALLOWED_HOSTS = ("127.", "localhost", "[::1]")


@web.middleware
async def guard(request, handler):
    """Reject foreign Host and Origin headers (DNS rebinding, cross-site requests); turn
    any failure into JSON."""
    host = request.host or ""
    if not host.startswith(ALLOWED_HOSTS):
        return _reply({"error": f"forbidden host {host!r}"}, status=403)
    origin = request.headers.get("Origin")
    if origin is not None and origin.split("://", 1)[-1] != host:
        # another site's page must not drive this server from the user's browser
        return _reply({"error": f"forbidden origin {origin!r}"}, status=403)
    try:
        response = await handler(request)
    except web.HTTPException as e:
        if e.content_type != "application/json" and e.status >= 400:
            return _reply({"error": e.reason}, status=e.status)
        raise
    except asyncio.CancelledError:
        raise
    except Exception as e:  # noqa: BLE001  (a bug must not take the server down)
        return _reply({"error": f"internal error: {type(e).__name__}: {e}"}, status=500)
    if request.path.startswith("/static/") or request.path == "/":
        response.headers["Cache-Control"] = "no-store"
    return response


def make_app() -> web.Application:
    app = web.Application(middlewares=[guard], client_max_size=MAX_BODY)
    app[_EXECUTOR] = ThreadPoolExecutor(max_workers=2, thread_name_prefix="playground")
    app[_SESSIONS] = {}
    app[_SOCKETS] = weakref.WeakSet()
    r = app.router
    r.add_get("/", index)
    r.add_static("/static/", STATIC)
    r.add_post("/api/session", create)
    base = "/api/session/{sid}"
    r.add_delete(base, delete)
    r.add_post(base + "/config", config)
    r.add_post(base + "/step", step)
    r.add_post(base + "/reset", reset)
    r.add_post(base + "/weight", weight)
    r.add_post(base + "/play", play)
    r.add_post(base + "/pause", pause)
    r.add_post(base + "/upload", upload)
    r.add_get(base + "/frame", frame)
    r.add_get(base + "/export.pkl", export_pickle)
    r.add_get(base + "/export.py", export_snippet)
    r.add_get(base + "/stream", stream)
    app.on_shutdown.append(_on_shutdown)
    app.on_cleanup.append(_on_cleanup)
    return app


async def _on_shutdown(app):
    for entry in list(app[_SESSIONS].values()):
        await _stop(entry)
    for ws in list(app[_SOCKETS]):
        await ws.close(code=1001, message=b"server shutdown")


async def _on_cleanup(app):
    app[_EXECUTOR].shutdown(wait=True, cancel_futures=True)
    app[_SESSIONS].clear()


class ServerThread:
    """The server on its own event loop in a background thread (tests, notebooks).

    ``url`` is set once it listens; :meth:`stop` shuts it down and joins every thread it
    started (the loop's and the training executor's).
    """

    def __init__(self, host: str = "127.0.0.1", port: int = 0):
        self.host = check_loopback(host)
        self.port = port
        self.url: str | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._main, name="playground-server",
                                        daemon=True)

    def start(self) -> ServerThread:
        self._thread.start()
        self._ready.wait(30)
        if self._error is not None:
            raise self._error
        return self

    def _main(self):
        asyncio.set_event_loop(self._loop)
        try:
            self._loop.run_until_complete(self._serve())
        except BaseException as e:  # noqa: BLE001  (surfaced by start())
            self._error = e
            self._ready.set()
        finally:
            self._loop.run_until_complete(self._loop.shutdown_asyncgens())
            self._loop.run_until_complete(self._loop.shutdown_default_executor())
            self._loop.close()

    async def _serve(self):
        self._stop_event = asyncio.Event()
        runner = web.AppRunner(make_app(), handle_signals=False)
        await runner.setup()
        site = web.TCPSite(runner, self.host, self.port)
        await site.start()
        sock = site._server.sockets[0]
        self.port = sock.getsockname()[1]
        host = f"[{self.host}]" if ":" in self.host else self.host
        self.url = f"http://{host}:{self.port}/"
        self._ready.set()
        try:
            await self._stop_event.wait()
        finally:
            await runner.cleanup()

    def stop(self, timeout: float = 30):
        if self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._stop_event.set)
            self._thread.join(timeout)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()


def serve(host: str = "127.0.0.1", port: int = 8765, open_browser: bool = False) -> int:
    """Serve until Ctrl-C or SIGTERM; prints the URL. Returns the exit status."""
    check_loopback(host)

    async def main():
        import signal

        runner = web.AppRunner(make_app(), handle_signals=False)
        await runner.setup()
        try:
            site = web.TCPSite(runner, host, port)
            await site.start()
            bound = site._server.sockets[0].getsockname()[1]
            shown = f"[{host}]" if ":" in host else host
            url = f"http://{shown}:{bound}/"
            print(f"rosenblatt playground: {url}  (Ctrl-C to stop)", flush=True)
            if open_browser:
                import webbrowser

                webbrowser.open(url)
            stop = asyncio.Event()
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGINT, signal.SIGTERM):
                with contextlib.suppress(NotImplementedError, RuntimeError):
                    loop.add_signal_handler(sig, stop.set)
            await stop.wait()
        finally:
            await runner.cleanup()

    asyncio.run(main())
    print("rosenblatt playground: stopped", flush=True)
    return 0
