"""Three petmatte-server processes behind HAProxy, with examples/haproxy/petmatte.cfg
as shipped (only its addresses come from the environment), on loopback.

Four clients send 1200 tagged cut-outs of varied images through HAProxy. Mid-run one
server is killed with SIGKILL and another is stopped with SIGTERM and started again
cold. Every request must get exactly one correct answer (pixel by pixel), the servers'
logs (--log-requests) must account for every request once, and the restarted server
must get traffic only after its /ready says 200.

The run is split into phases by a gate on how many requests may be sent, so that each
event happens while requests flow; every wait polls for a state (HAProxy's view of a
server, a server's status), none sleeps for a fixed time.
"""
import collections
import csv
import http.client
import io
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time

import numpy as np
import pytest
from PIL import Image

from server_harness import harness

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CONFIG = os.path.join(ROOT, "examples", "haproxy", "petmatte.cfg")
CLIENTS, PER_CLIENT = 4, 300
TOTAL = CLIENTS * PER_CLIENT
LOG_LINE = re.compile(r"request id=(\S+) status=(\d+) arrived=(\S+)")



def haproxy_exe():
    exe = shutil.which("haproxy") or shutil.which("haproxy", path="/usr/sbin:/usr/local/sbin")
    if not exe:
        pytest.skip("haproxy not installed (Debian: haproxy)")
    return exe


def free_port(_rng=random.Random()):
    """A free port below the kernel's ephemeral range: a restarted server gets its port
    back even while the run's many outgoing connections take ephemeral ones."""
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            low = int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        low = 32768
    for _ in range(200):
        port = _rng.randrange(10000, max(low, 10001))
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise AssertionError("no free port below the ephemeral range")


def get(port, path, timeout=30):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("GET", path)
        r = conn.getresponse()
        return r.status, r.read()
    finally:
        conn.close()


class Proxy:
    def __init__(self, backend_ports):
        self.port, self.stats_port = free_port(), free_port()
        env = dict(os.environ, PETMATTE_LISTEN=f"127.0.0.1:{self.port}",
                   PETMATTE_STATS=f"127.0.0.1:{self.stats_port}",
                   **{f"PETMATTE_SERVER_{i}": f"127.0.0.1:{p}" for i, p in enumerate(backend_ports)})
        self.log = tempfile.TemporaryFile()
        self.proc = subprocess.Popen([haproxy_exe(), "-db", "-f", CONFIG], env=env, stdout=self.log,
                                     stderr=subprocess.STDOUT)

    def servers(self):
        """HAProxy's view of each backend server: {name: row of its CSV stats}."""
        status, body = get(self.stats_port, "/stats;csv")
        assert status == 200, body
        text = body.decode().lstrip("# ")
        return {row["svname"]: row for row in csv.DictReader(io.StringIO(text))
                if row["pxname"] == "petmatte_servers" and row["svname"] != "BACKEND"}

    def wait(self, name, predicate, what):
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                row = self.servers().get(name)
            except OSError:  # not listening yet
                row = None
            if row and predicate(row):
                return row
            time.sleep(0.05)
        raise AssertionError(f"{name} never {what}: {self.servers().get(name)}\n{self.output()[-4000:]}")

    def wait_status(self, name, status):
        return self.wait(name, lambda row: row["status"] == status, f"became {status}")

    def output(self):
        self.log.seek(0)
        return self.log.read().decode(errors="replace")

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGUSR1)  # soft stop: finish, then exit
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()


def make_request(rng, i):
    """(query, image, check): 32x32 noise (cut-out or mask, exact), or a flat colour of
    another size (the resize to the model's 32x32 and back may move alpha by 1)."""
    kind = i % 4
    if kind < 3:
        rgb = rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)
    else:
        h, w = (int(v) for v in rng.integers(8, 81, 2))
        rgb = np.empty((h, w, 3), np.uint8)
        rgb[...] = rng.integers(0, 256, 3, dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format="PNG")

    def check(out):
        if kind == 2:
            return out.shape == rgb.shape[:2] and np.array_equal(out, rgb[..., 0])
        if out.shape != rgb.shape[:2] + (4,) or not np.array_equal(out[..., :3], rgb):
            return False
        diff = np.abs(out[..., 3].astype(int) - rgb[..., 0].astype(int))
        return diff.max() == 0 if kind < 2 else diff.max() <= 1

    return ("/remove-bg?mask=1" if kind == 2 else "/remove-bg"), buf.getvalue(), check


class Load:
    """CLIENTS threads, PER_CLIENT requests each, sent once each (no client retries);
    allow(n) lets the first n requests of the whole run go."""

    def __init__(self, port):
        self.port = port
        self.cv = threading.Condition()
        self.allowed = self.issued = self.done = 0
        self.answers = collections.defaultdict(list)  # request id -> [(status, correct)]
        self.failures = []
        self.threads = [threading.Thread(target=self.client, args=(c,)) for c in range(CLIENTS)]

    def start(self):
        for t in self.threads:
            t.start()

    def allow(self, n):
        with self.cv:
            self.allowed = n
            self.cv.notify_all()

    def wait_done(self, n):
        with self.cv:
            assert self.cv.wait_for(lambda: self.done >= n, timeout=300), (self.done, n, self.failures[:5])

    def client(self, c):
        rng = np.random.default_rng(c)
        for i in range(PER_CLIENT):
            with self.cv:
                self.cv.wait_for(lambda: self.issued < self.allowed)
                self.issued += 1
            rid = f"c{c}-{i}"
            path, body, check = make_request(rng, i)
            try:
                conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=120)
                conn.request("POST", path, body=body, headers={"X-Request-Id": rid, "Content-Type": "image/png"})
                r = conn.getresponse()
                data = r.read()
                conn.close()
                ok = r.status == 200 and r.getheader("X-Request-Id") == rid and \
                    check(np.asarray(Image.open(io.BytesIO(data))))
                with self.cv:
                    self.answers[rid].append((r.status, ok))
                    if not ok:
                        self.failures.append((rid, r.status, data[:200]))
            except Exception as e:  # a lost request: counted, reported below
                with self.cv:
                    self.failures.append((rid, "exception", repr(e)))
            with self.cv:
                self.done += 1
                self.cv.notify_all()

    def join(self):
        for t in self.threads:
            t.join(timeout=300)
            assert not t.is_alive()


def served_ids(server):
    """(id, status, arrival state) of every /remove-bg the server logged."""
    return LOG_LINE.findall(server.stderr())


def start_server(port):
    return harness.Server(harness.model("red32.pt"), "--port", str(port), "--warmup", "--log-requests",
                          "--max-inflight", "4", "--max-queue", "8")


def test_servers_behind_haproxy_survive_kill_and_restart():
    haproxy_exe()
    ports = [free_port() for _ in range(3)]
    servers = [start_server(p) for p in ports]
    proxy, restarted = None, None
    try:
        for s in servers:
            assert s.wait_for({"ready", "failed"})["state"] == "ready"
        proxy = Proxy(ports)
        for name in ("gpu0", "gpu1", "gpu2"):
            proxy.wait_status(name, "UP")

        load = Load(proxy.port)
        load.allow(TOTAL * 40 // 100)
        load.start()

        # Phase 1: all three serve; SIGKILL gpu0 while requests flow. Its requests in
        # progress are replayed elsewhere (empty-response), its refused connections too.
        load.wait_done(TOTAL * 15 // 100)
        servers[0].proc.kill()
        servers[0].proc.wait()
        proxy.wait_status("gpu0", "DOWN")

        # Phase 2: SIGTERM gpu1 while requests flow: it drains (what it has finishes) and
        # exits 0; HAProxy sees it DOWN; it starts again cold and answers /ready 503.
        load.wait_done(TOTAL * 40 // 100)
        load.allow(TOTAL * 65 // 100)
        servers[1].proc.send_signal(signal.SIGTERM)
        assert servers[1].proc.wait(timeout=120) == 0, servers[1].stderr()
        assert "no request in progress, shutting down" in servers[1].stderr()  # drained, not cut off
        proxy.wait_status("gpu1", "DOWN")
        restarted = harness.Server(harness.model("red32.pt"), "--port", str(ports[1]), "--log-requests",
                                   "--max-inflight", "4", "--max-queue", "8")
        assert restarted.get("/ready").status == 503
        # HAProxy has checked the new process and was told 503 (not a refused connection).
        proxy.wait("gpu1", lambda row: row["check_status"] == "L7STS" and row["check_code"] == "503",
                   "checked with 503")
        load.wait_done(TOTAL * 65 // 100)
        # More traffic while the restarted process is up but not READY: none may reach it.
        load.allow(TOTAL * 80 // 100)
        load.wait_done(TOTAL * 80 // 100)
        assert proxy.servers()["gpu1"]["status"] == "DOWN"
        assert served_ids(restarted) == [] and restarted.status()["requests"]["served"] == 0

        # Phase 3: the restarted process warms, HAProxy puts it back, the rest goes through.
        assert restarted.post("/warmup").status in (200, 202)
        assert restarted.wait_for({"ready", "failed"})["state"] == "ready"
        proxy.wait_status("gpu1", "UP")
        load.allow(TOTAL)
        load.wait_done(TOTAL)
        load.join()

        # Every request: exactly one answer, 200, the right pixels, its own id.
        assert not load.failures, (load.failures[:10], [line for line in proxy.output().splitlines()
                                                       if any(f[0] in line for f in load.failures)])
        assert len(load.answers) == TOTAL
        assert all(a == [(200, True)] for a in load.answers.values())

        # The servers account for each request once. gpu0 was killed: a request it had
        # logged may not have reached HAProxy whole and was replayed elsewhere, so its
        # ids may repeat once elsewhere; among the others none repeats.
        killed = collections.Counter(i for i, _, _ in served_ids(servers[0]))
        logs = {"gpu1": served_ids(servers[1]), "gpu1-restarted": served_ids(restarted),
                "gpu2": served_ids(servers[2])}
        others = collections.Counter(i for lines in logs.values() for i, _, _ in lines)
        assert set(killed) | set(others) == set(load.answers)
        twice = {i: [name for name, lines in logs.items() for j, _, _ in lines if j == i]
                 for i, n in others.items() if n > 1}
        assert not twice and max(killed.values(), default=1) == 1, (
            twice, [line for line in proxy.output().splitlines() if any(i in line for i in twice)])
        for name, lines in logs.items():
            assert all(status == "200" for _, status, _ in lines), name
        # The restarted process got traffic, and only once READY.
        assert logs["gpu1-restarted"], "the restarted server never got traffic"
        assert {arrived for _, _, arrived in logs["gpu1-restarted"]} == {"ready"}
        for name, s in (("gpu1-restarted", restarted), ("gpu2", servers[2])):
            req = s.status()["requests"]
            assert req["served"] == len(logs[name]) and req["shed"] == 0 and req["timed_out"] == 0, (name, req)
        print(f"\nserved: gpu0 (killed) {len(killed)}, " + ", ".join(f"{k} {len(v)}" for k, v in logs.items()) +
              ", replayed after the kill: " + str(len(set(killed) & set(others))))
        retried = {name: (row["wretr"], row["wredis"]) for name, row in proxy.servers().items()}
        print(f"HAProxy retries and redispatches a server: {retried}")
        for s in (restarted, servers[2]):
            assert s.stop() == 0, s.stderr()
    finally:
        if proxy:
            proxy.stop()
        for s in servers + ([restarted] if restarted else []):
            if s.proc.poll() is None:
                s.proc.kill()
                s.proc.wait()
            s.proc.stdout.close()
