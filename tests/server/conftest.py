"""Starts petmatte-server on a free loopback port and talks to it over real HTTP.

PETMATTE_SERVER: the executable (ctest sets it; default build/examples/petmatte-server)
PETMATTE_TEST_MODELS: the tiny models from tests/models/make_test_models.py
"""
import http.client
import json
import os
import select
import subprocess
import tempfile
import time

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def server_exe():
    exe = os.environ.get("PETMATTE_SERVER") or os.path.join(ROOT, "build", "examples", "petmatte-server")
    if not os.path.exists(exe):
        pytest.skip("petmatte-server not built (set PETMATTE_SERVER)")
    return exe


def model(name):
    folder = os.environ.get("PETMATTE_TEST_MODELS") or os.path.join(ROOT, "build", "tests", "models")
    path = os.path.join(folder, name)
    if not os.path.exists(path):
        pytest.skip(f"test model {path} missing (run tests/models/make_test_models.py)")
    return path


class Response:
    def __init__(self, status, headers, body):
        self.status, self.headers, self.body = status, headers, body

    def json(self):
        return json.loads(self.body)


class Server:
    """One petmatte-server process; .url is read from its "listening on" line."""

    def __init__(self, model_path, *args):
        self.log = tempfile.TemporaryFile()
        cmd = [server_exe(), "--host", "127.0.0.1", "--port", "0", "--model", model_path,
               "--device", "cpu", "--threads", "1", *args]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=self.log)
        line = self._read_line(timeout=60)
        prefix = "listening on http://"
        if not line.startswith(prefix):
            self.stop()
            raise AssertionError(f"server did not start: {line!r}\n{self.stderr()}")
        self.url = line.strip()[len("listening on "):]
        self.host, port = line.strip()[len(prefix):].rsplit(":", 1)
        self.port = int(port)

    def _read_line(self, timeout):
        deadline = time.monotonic() + timeout
        data = b""
        fd = self.proc.stdout.fileno()
        while not data.endswith(b"\n"):
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([fd], [], [], left)[0]:
                break
            chunk = os.read(fd, 1)
            if not chunk:
                break
            data += chunk
        return data.decode(errors="replace")

    def stderr(self):
        self.log.seek(0)
        return self.log.read().decode(errors="replace")

    def connection(self, timeout=120):
        return http.client.HTTPConnection(self.host, self.port, timeout=timeout)

    def request(self, method, path, body=None, headers=None, timeout=120):
        conn = self.connection(timeout)
        try:
            conn.request(method, path, body=body, headers=headers or {})
            r = conn.getresponse()
            return Response(r.status, {k.lower(): v for k, v in r.getheaders()}, r.read())
        finally:
            conn.close()

    def get(self, path, **kw):
        return self.request("GET", path, **kw)

    def post(self, path, body=b"", headers=None, **kw):
        return self.request("POST", path, body=body, headers=headers, **kw)

    def status(self):
        r = self.get("/status")
        assert r.status == 200, r.body
        return r.json()

    def wait_for(self, states, timeout=120):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            s = self.status()
            if s["state"] in states:
                return s
            time.sleep(0.02)
        raise AssertionError(f"state not in {states} after {timeout}s: {self.status()}")

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc.stdout.close()
        return self.proc.returncode


@pytest.fixture
def start_server():
    """start_server(model_name, *args) -> Server; every server is stopped afterwards."""
    servers = []

    def start(model_name, *args):
        s = Server(model(model_name), *args)
        servers.append(s)
        return s

    yield start
    for s in servers:
        rc = s.stop()
        assert rc == 0, f"server exited with {rc}\n{s.stderr()}"
        s.log.close()


@pytest.fixture(scope="module")
def red_server():
    """A warm red32 server shared by the read-only tests of a module."""
    s = Server(model("red32.pt"), "--max-upload-mb", "1")
    r = s.post("/warmup")
    assert r.status in (200, 202), r.body
    s.wait_for({"ready", "failed"})
    yield s
    assert s.stop() == 0, s.stderr()
    s.log.close()
