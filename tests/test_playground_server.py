"""The Playground's server: API validation, isolation of sessions, streaming, shutdown."""

import asyncio
import json
import pickle
import threading
import urllib.error
import urllib.request

import numpy as np
import pytest

pytest.importorskip("aiohttp", reason="the playground server needs aiohttp "
                    "(pip install 'rosenblatt[playground]')")

from rosenblatt.playground import main
from rosenblatt.playground.server import ServerThread, check_loopback


def call(url, body=None, method=None, headers=None):
    data = None if body is None else (body if isinstance(body, bytes)
                                      else json.dumps(body).encode())
    req = urllib.request.Request(url, data=data, headers=headers or {},
                                 method=method or ("POST" if data is not None else "GET"))
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            raw = r.read()
            status = r.status
    except urllib.error.HTTPError as e:
        raw, status = e.read(), e.code
    try:
        return status, json.loads(raw)
    except ValueError:
        return status, raw


@pytest.fixture(scope="module")
def server():
    before = set(threading.enumerate())
    srv = ServerThread().start()
    yield srv
    srv.stop()
    # stopping leaves no thread behind: the loop's and the training pool's are joined
    assert set(threading.enumerate()) <= before


def new_session(server, config=None):
    status, j = call(server.url + "api/session", {"config": config or {}})
    assert status == 200, j
    return j["id"], j


def test_page_and_assets(server):
    status, html = call(server.url)
    assert status == 200 and b"play-pause-button" in html
    for asset in ("app.js", "style.css"):
        status, body = call(server.url + "static/" + asset)
        assert status == 200 and len(body) > 1000
    # the page loads nothing from the internet
    for name in ("index.html", "app.js", "style.css"):
        status, body = call(server.url + ("" if name == "index.html" else "static/" + name))
        text = body.decode() if isinstance(body, bytes) else json.dumps(body)
        assert "http://" not in text.replace("http://www.w3.org/2000/svg", "")
        assert "https://" not in text and "//cdn" not in text


def test_session_create_and_step(server):
    sid, j = new_session(server, {"dataset": "xor", "layers": [3]})
    assert j["config"]["dataset"] == "xor" and j["frame"]["sizes"] == [2, 3, 1]
    assert len(j["data"]["train"]) == 250 and len(j["data"]["test"]) == 250
    status, j = call(server.url + f"api/session/{sid}/step", {"epochs": 3})
    assert status == 200 and j["frame"]["epoch"] == 3 and len(j["frame"]["train"]) == 4


@pytest.mark.parametrize("path,body,msg", [
    ("step", b"{nope", "malformed JSON"),
    ("step", b"[1, 2]", "JSON object"),
    ("step", {"epochs": 0}, "epochs"),
    ("step", {"epochs": 10**9}, "epochs"),
    ("config", {"noise": 1000}, "noise"),
    ("config", b'{"learning_rate": NaN}', "learning_rate"),
    ("config", {"layers": [4] * 50}, "at most"),
    ("config", {"layers": "4,2"}, "layers"),
    ("config", {"whatever": 1}, "unknown settings"),
    ("weight", {"layer": 0, "source": 0, "target": 0}, "missing"),
    ("weight", {"layer": 7, "source": 0, "target": 0, "value": 1}, "layer"),
    ("weight", {"layer": 0, "source": 0, "target": 0, "value": 1e9}, "value"),
    ("reset", {"new_init": "yes"}, "new_init"),
    ("play", {"until_epoch": -1}, "until_epoch"),
    ("upload", b"1,2\n", "3 columns"),
    ("upload", b"\xff\xfe", "UTF-8"),
])
def test_bad_requests_get_400_and_the_server_lives_on(server, path, body, msg):
    sid, _ = new_session(server)
    status, j = call(server.url + f"api/session/{sid}/{path}", body)
    assert status == 400 and msg in j["error"], j
    status, j = call(server.url + f"api/session/{sid}/step", {"epochs": 1})
    assert status == 200 and j["frame"]["epoch"] == 1


def test_unknown_session_and_route(server):
    status, j = call(server.url + "api/session/nope/step", {})
    assert status == 404 and "no session" in j["error"]
    status, j = call(server.url + "api/nothing")
    assert status == 404


def test_foreign_host_header_is_refused(server):
    status, _j = call(server.url, headers={"Host": "evil.example:80"})
    assert status == 403


def test_sessions_are_isolated(server):
    a, _ = new_session(server, {"seed": 5})
    b, jb = new_session(server, {"seed": 5})
    w0 = jb["frame"]["weights"]
    call(server.url + f"api/session/{a}/weight",
         {"layer": 0, "source": 0, "target": 0, "value": 3.0})
    call(server.url + f"api/session/{a}/step", {"epochs": 5})
    _, j = call(server.url + f"api/session/{b}/frame")
    assert j["frame"]["weights"] == w0 and j["frame"]["epoch"] == 0

    # the same steps in parallel give what they give serially
    ids = [new_session(server, {"seed": 9})[0] for _ in range(3)]
    ref, _ = new_session(server, {"seed": 9})
    for _ in range(4):
        call(server.url + f"api/session/{ref}/step", {"epochs": 1})
    threads = [threading.Thread(target=lambda s=s: [
        call(server.url + f"api/session/{s}/step", {"epochs": 1}) for _ in range(4)])
        for s in ids]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    want = call(server.url + f"api/session/{ref}/frame")[1]["frame"]["weights"]
    for s in ids:
        assert call(server.url + f"api/session/{s}/frame")[1]["frame"]["weights"] == want


def test_weight_edit_and_export(server):
    sid, _ = new_session(server, {"layers": [3]})
    status, j = call(server.url + f"api/session/{sid}/weight",
                     {"layer": 1, "source": 2, "target": 0, "value": -1.25})
    assert status == 200 and j["frame"]["weights"][1]["W"][2][0] == -1.25
    call(server.url + f"api/session/{sid}/step", {"epochs": 2})
    status, raw = call(server.url + f"api/session/{sid}/export.pkl")
    assert status == 200
    model = pickle.loads(raw)
    X = np.array([[0.0, 0.0], [5.0, 5.0]])
    assert set(model.predict(X)) <= {-1, 1}
    status, snippet = call(server.url + f"api/session/{sid}/export.py")
    assert status == 200 and b"from_weights" in snippet
    compile(snippet.decode(), "snippet", "exec")


def test_upload_csv(server):
    sid, _ = new_session(server)
    rng = np.random.default_rng(0)
    X = rng.uniform(-4, 4, (40, 2))
    csv = "x1,x2,label\n" + "\n".join(f"{a},{b},{int(a > b)}" for a, b in X)
    status, j = call(server.url + f"api/session/{sid}/upload", csv.encode())
    assert status == 200 and j["upload"] == {"n": 40, "regression": False}
    assert j["config"]["dataset"] == "upload" and len(j["data"]["train"]) == 20


def test_play_streams_frames_and_pause_stops(server):
    import aiohttp

    sid, _ = new_session(server, {"layers": [4]})

    async def run():
        async with aiohttp.ClientSession() as http, \
                http.ws_connect(server.url + f"api/session/{sid}/stream") as ws:
            r = await http.post(server.url + f"api/session/{sid}/play", json={})
            assert r.status == 200
            epochs = []
            while len(epochs) < 3:
                msg = await asyncio.wait_for(ws.receive(), 20)
                epochs.append(json.loads(msg.data)["frame"]["epoch"])
            assert epochs == sorted(epochs) and epochs[-1] > epochs[0]
            r = await http.post(server.url + f"api/session/{sid}/pause", json={})
            stopped = (await r.json())["frame"]["epoch"]
            await asyncio.sleep(0.3)
            r = await http.get(server.url + f"api/session/{sid}/frame")
            assert (await r.json())["frame"]["epoch"] == stopped
            # a stopping condition ends play by itself
            r = await http.post(server.url + f"api/session/{sid}/play",
                                json={"until_epoch": stopped + 5})
            while True:
                f = json.loads((await asyncio.wait_for(ws.receive(), 20)).data)["frame"]
                if not f.get("playing", True):
                    break
            assert f["epoch"] == stopped + 5

    asyncio.run(run())


def test_server_stops_while_playing_without_leftover_threads():
    before = set(threading.enumerate())
    srv = ServerThread().start()
    sid = call(srv.url + "api/session", {})[1]["id"]
    call(srv.url + f"api/session/{sid}/play", {})
    srv.stop()
    assert set(threading.enumerate()) <= before


def test_loopback_only():
    for ok in ("127.0.0.1", "::1", "localhost", "127.0.0.2"):
        assert check_loopback(ok) == ok
    for bad in ("0.0.0.0", "192.168.1.10", "::", "example.com"):
        with pytest.raises(ValueError, match="loopback"):
            check_loopback(bad)
    assert main(["--host", "0.0.0.0"]) == 2


def test_command_line_serves_and_stops_on_sigint():
    import os
    import signal
    import subprocess
    import sys
    from pathlib import Path

    import rosenblatt

    env = dict(os.environ)
    pkg_root = str(Path(rosenblatt.__path__[0]).parent)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [pkg_root, env.get("PYTHONPATH")]))
    proc = subprocess.Popen([sys.executable, "-m", "rosenblatt.playground.cli", "--port", "0"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        line = proc.stdout.readline()
        assert line.startswith("rosenblatt playground: http://127.0.0.1:"), line
        url = line.split()[2]
        status, j = call(url + "api/session", {})
        assert status == 200 and "id" in j
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=30)
        assert proc.returncode == 0, err
        assert "stopped" in out
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
