"""petmatte-server under overload: work slots, a bounded queue, 503 + Retry-After, queue
timeouts, the /status "requests" counters and the drain on SIGTERM.

busy_red32: alpha = red exactly, after enough arithmetic that a cut-out keeps its slot
busy while the test fills the queue behind it. Every wait below polls /status for a
state (a request in a slot, one in the queue) instead of sleeping for a time.
"""
import http.client
import json
import signal
import socket
import subprocess
import threading
import time

import numpy as np
import pytest

from conftest import server_exe
from test_server import decode, pattern, png_bytes


def busy_server(start_server, *args):
    s = start_server("busy_red32.pt", "--tune", "warmup_max_runs=1", "--warmup", "--log-requests", *args)
    assert s.wait_for({"ready", "failed"})["state"] == "ready"
    return s


class Background:
    """A POST /remove-bg on its own thread; .result() is (status, headers, body)."""

    def __init__(self, server, rgb, request_id):
        self.rgb, self.answer, self.error = rgb, None, None
        self.thread = threading.Thread(target=self._run, args=(server, request_id))
        self.thread.start()

    def _run(self, server, request_id):
        try:
            self.answer = server.post("/remove-bg", png_bytes(self.rgb), headers={"X-Request-Id": request_id})
        except Exception as e:  # reported by result()
            self.error = e

    def result(self):
        self.thread.join(timeout=300)
        assert not self.thread.is_alive(), "request never answered"
        if self.error:
            raise self.error
        return self.answer

    def assert_cut_out(self):
        r = self.result()
        assert r.status == 200, r.body
        out = decode(r.body)
        assert np.array_equal(out[..., 3], self.rgb[..., 0]) and np.array_equal(out[..., :3], self.rgb)


def wait_requests(server, **want):
    """Polls /status until its "requests" object has the wanted values."""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        got = server.status()["requests"]
        if all(got[k] == v for k, v in want.items()):
            return got
        time.sleep(0.005)
    raise AssertionError(f"requests never reached {want}: {server.status()['requests']}")


def assert_unavailable(r, code, request_id):
    assert r.status == 503, (r.status, r.body)
    assert r.headers["retry-after"] == "1"
    assert r.headers["x-request-id"] == request_id
    body = r.json()
    assert body["code"] == code and body["error"], body


def test_status_reports_the_limits_and_counters(start_server):
    s = start_server("red32.pt", "--max-batch", "12")
    req = s.status()["requests"]
    assert req == {"inflight": 0, "queued": 0, "max_inflight": 12, "max_queue": 32, "request_timeout_s": 30,
                   "served": 0, "failed": 0, "shed": 0, "timed_out": 0, "draining": False}
    assert s.post("/remove-bg", png_bytes(pattern())).status == 200
    assert s.post("/remove-bg", b"not an image").status == 400
    req = s.status()["requests"]
    assert (req["served"], req["failed"], req["inflight"]) == (1, 1, 0)
    s2 = start_server("red32.pt", "--max-inflight", "3", "--max-queue", "0", "--request-timeout", "2.5")
    req = s2.status()["requests"]
    assert (req["max_inflight"], req["max_queue"], req["request_timeout_s"]) == (3, 0, 2.5)


def test_full_server_answers_503_with_retry_after_at_once(start_server):
    s = busy_server(start_server, "--max-inflight", "1", "--max-queue", "1")
    images = [pattern() ^ np.uint8(17 * i) for i in range(2)]
    first = Background(s, images[0], "first")
    wait_requests(s, inflight=1)
    second = Background(s, images[1], "second")
    wait_requests(s, inflight=1, queued=1)

    # Full: refused while the first cut-out still holds its slot (that is "at once").
    r = s.post("/remove-bg", png_bytes(pattern()), headers={"X-Request-Id": "third"})
    assert_unavailable(r, "overloaded", "third")
    # Refused on the headers alone: the body is never asked for.
    conn = s.connection(timeout=60)
    conn.putrequest("POST", "/remove-bg")
    conn.putheader("Content-Length", str(1 << 20))
    conn.putheader("Expect", "100-continue")
    conn.putheader("X-Request-Id", "fourth")
    conn.endheaders()
    resp = conn.getresponse()
    assert resp.status == 503 and resp.getheader("Retry-After") == "1"
    assert json.loads(resp.read())["code"] == "overloaded"
    conn.close()
    mid = s.status()
    assert mid["requests"]["served"] == 0 and mid["requests"]["inflight"] == 1 and mid["requests"]["shed"] == 2
    # The rest of the API does not queue behind the cut-outs.
    assert s.get("/health").status == 200 and s.get("/ready").status == 200

    first.assert_cut_out()
    second.assert_cut_out()
    end = s.status()
    assert end["requests"] == dict(mid["requests"], inflight=0, queued=0, served=2)
    assert end["images_processed"] == mid["images_processed"] + 2
    log = s.stderr()
    assert "request id=third status=503" in log and "request id=fourth status=503" in log
    assert "request id=first status=200 arrived=ready" in log


def test_request_waiting_past_the_timeout_is_503_and_never_started(start_server):
    s = busy_server(start_server, "--max-inflight", "1", "--max-queue", "4", "--request-timeout", "0.2")
    rgb = pattern()
    first = Background(s, rgb, "first")
    wait_requests(s, inflight=1)
    before = s.status()
    r = s.post("/remove-bg", png_bytes(pattern() ^ np.uint8(3)), headers={"X-Request-Id": "late"})
    assert_unavailable(r, "queue_timeout", "late")
    assert "waited" in r.json()["error"]
    first.assert_cut_out()
    after = s.status()
    assert after["requests"]["timed_out"] == 1 and after["requests"]["served"] == 1
    assert after["requests"]["shed"] == 0 and after["requests"]["queued"] == 0
    # Only the first image went through the model.
    assert after["images_processed"] == before["images_processed"] + 1


def test_sigterm_drains_requests_in_progress_and_refuses_new_ones(start_server):
    s = busy_server(start_server, "--max-inflight", "2", "--max-queue", "2")
    # A connection kept alive by a cut-out (GET answers close theirs), to look inside
    # the process after it stopped listening.
    kept = s.connection(timeout=120)
    kept.request("POST", "/remove-bg", body=png_bytes(pattern()))
    first = kept.getresponse()
    first.read()
    assert first.status == 200 and not first.will_close
    images = [pattern() ^ np.uint8(29 * i) for i in range(3)]
    running = [Background(s, rgb, f"slow{i}") for i, rgb in enumerate(images)]
    wait_requests(s, inflight=2, queued=1)

    s.proc.send_signal(signal.SIGTERM)
    # New connections are refused once the drain starts (the signal is seen within a tick).
    deadline = time.monotonic() + 60
    while True:
        try:
            with socket.create_connection((s.host, s.port), timeout=5):
                pass
        except ConnectionRefusedError:
            break
        assert time.monotonic() < deadline, "still accepting connections after SIGTERM"
        time.sleep(0.01)
    # A balancer's check on a kept connection now sees 503: no new traffic here.
    kept.request("GET", "/ready")
    r = kept.getresponse()
    body = json.loads(r.read())
    kept.close()
    assert r.status == 503 and body["requests"]["draining"] is True
    assert body["requests"]["inflight"] + body["requests"]["queued"] >= 1, body["requests"]

    for req in running:  # all three complete with their own cut-out
        req.assert_cut_out()
        assert req.result().headers["connection"].lower() == "close"
    assert s.proc.wait(timeout=120) == 0
    log = s.stderr()
    assert "SIGTERM, draining" in log and "no request in progress" in log


@pytest.mark.parametrize("args,message", [(["--max-inflight", "0"], "--max-inflight"),
                                          (["--max-queue", "-1"], "--max-queue"),
                                          (["--request-timeout", "soon"], "--request-timeout"),
                                          (["--drain-timeout", "-2"], "--drain-timeout")])
def test_bad_admission_options(args, message):
    p = subprocess.run([server_exe(), *args], capture_output=True, text=True, timeout=60)
    assert p.returncode == 2
    assert message in p.stderr
