#!/usr/bin/python3
"""Soak petmatte-server: a fixed request rate of good, odd and hostile uploads for a bounded
time, watching the server's memory, threads, descriptors and latency window by window.

    # start a server and soak it (the long form, CPU)
    /usr/bin/python3 tools/soak.py --server build/examples/petmatte-server \\
        --model models/isnet-general.pt --device cpu --duration 600 --rate 0.5 --json soak.json
    # drive one already running on this machine (its PID is found from the port)
    /usr/bin/python3 tools/soak.py --url http://127.0.0.1:8080 --duration 600 --rate 2

Loopback only: a --url whose host is not a loopback address is refused. Python's standard
library plus Pillow (Debian python3-pil) for the images. Exit status: 0 the verdict
passed, 1 it failed, 2 bad arguments or the server could not be started or found.

Before the clock starts every case is sent once (priming: lazily started pools exist
afterwards), then the idle thread and descriptor counts are taken. Windows of --window
seconds follow; those starting within --settle seconds are the settling period the later
ones are compared with (tools/soak_report.py states the checks). At the end of each
window the soak waits until none of its requests is in flight and samples the server
(a quiet point; ticks due meanwhile are skipped and counted), so the RSS the server keeps
between requests is measured even when requests overlap all the time.
"""
import argparse
import datetime
import http.client
import ipaddress
import json
import os
import platform
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from urllib.parse import urlsplit

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import soak_inputs as inputs  # noqa: E402
import soak_report as report  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
MAX_DURATION_S = 6 * 3600
MAX_RATE = 100.0


def fail_usage(msg):
    print(f"soak: {msg}", file=sys.stderr)
    sys.exit(2)


# ------------------------------------------------------------------ the server


def require_loopback(host):
    """Exits unless every address host resolves to is a loopback address."""
    try:
        infos = socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)
    except socket.gaierror as e:
        fail_usage(f"cannot resolve {host}: {e}")
    for info in infos:
        addr = ipaddress.ip_address(info[4][0].split("%")[0])
        if not addr.is_loopback:
            fail_usage(f"refusing {host} ({addr}): the soak only drives a server on this machine's loopback")


def pid_listening_on(port):
    """The PID of the process holding a listening TCP socket on port, or None."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(table) as f:
                next(f)
                for line in f:
                    parts = line.split()
                    if parts[3] == "0A" and int(parts[1].rsplit(":", 1)[1], 16) == port:
                        inodes.add(f"socket:[{parts[9]}]")
        except OSError:
            continue
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            for fd in os.listdir(f"/proc/{pid}/fd"):
                if os.readlink(f"/proc/{pid}/fd/{fd}") in inodes:
                    return int(pid)
        except OSError:
            continue
    return None


class Server:
    """Where the server is; and, when this tool started it, the process."""

    def __init__(self, host, port, pid, proc=None, log=None):
        self.host, self.port, self.pid, self.proc, self.log = host, port, pid, proc, log

    def request(self, method, path, timeout=10):
        conn = http.client.HTTPConnection(self.host, self.port, timeout=timeout)
        try:
            conn.request(method, path)
            r = conn.getresponse()
            return r.status, r.read()
        finally:
            conn.close()

    def status(self):
        code, body = self.request("GET", "/status")
        return json.loads(body) if code == 200 else None

    def stop(self, timeout=60):
        """SIGTERM (the server drains and exits); the exit status, or None if not ours."""
        if not self.proc:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                return "killed after %d s" % timeout
        return self.proc.returncode

    def stderr_tail(self, n=2000):
        if not self.log:
            return ""
        self.log.seek(0)
        return self.log.read().decode(errors="replace")[-n:]


def start_server(args):
    cmd = [args.server, "--host", "127.0.0.1", "--port", "0", "--model", args.model, "--device", args.device,
           "--warmup", "--max-upload-mb", str(args.max_upload_mb)] + args.server_arg
    log = tempfile.TemporaryFile()
    try:
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=log)
    except OSError as e:
        fail_usage(f"cannot start {args.server}: {e}")
    line, deadline, fd = b"", time.monotonic() + 120, proc.stdout.fileno()
    while not line.endswith(b"\n") and time.monotonic() < deadline:
        if not select.select([fd], [], [], 1.0)[0]:
            if proc.poll() is not None:
                break
            continue
        chunk = os.read(fd, 1)
        if not chunk:
            break
        line += chunk
    text = line.decode(errors="replace").strip()
    prefix = "listening on http://"
    if not text.startswith(prefix):
        s = Server(None, None, proc.pid, proc, log)
        s.stop()
        fail_usage(f"the server did not start ({' '.join(cmd)}): {text!r}\n{s.stderr_tail()}")
    host, port = text[len(prefix):].rsplit(":", 1)
    print(f"soak: started {' '.join(cmd)} (pid {proc.pid})", flush=True)
    return Server(host.strip("[]"), int(port), proc.pid, proc, log)


def attach_server(args):
    u = urlsplit(args.url)
    if u.scheme != "http" or not u.hostname:
        fail_usage(f"--url must be http://HOST:PORT, not {args.url!r}")
    require_loopback(u.hostname)
    port = u.port or 80
    pid = args.pid or pid_listening_on(port)
    if not pid:
        fail_usage(f"no process found listening on port {port}: pass --pid")
    return Server(u.hostname, port, pid)


def wait_ready(server, timeout):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            code, body = server.request("GET", "/ready")
            if code == 200:
                return json.loads(body)
            st = json.loads(body)
            if st.get("state") == "failed":
                raise SystemExit(f"soak: the model failed to load: {st.get('last_error')}")
            if st.get("state") == "cold":
                server.request("POST", "/warmup")
        except (OSError, http.client.HTTPException, ValueError):
            if server.proc and server.proc.poll() is not None:
                raise SystemExit(f"soak: the server exited ({server.proc.returncode})\n{server.stderr_tail()}")
        time.sleep(0.25)
    raise SystemExit(f"soak: the server was not ready after {timeout} s")


# ------------------------------------------------------------------ what the server holds


def proc_counts(pid):
    """{"rss": bytes, "threads", "fds"} of a process, from /proc."""
    out = {"rss": None, "threads": None, "fds": None}
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    out["rss"] = int(line.split()[1]) * 1024
                elif line.startswith("Threads:"):
                    out["threads"] = int(line.split()[1])
        out["fds"] = len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        pass
    return out


def smi_bytes(pid):
    """nvidia-smi's used memory of the process (bytes), or None (no nvidia-smi, or the
    process not listed, as in a container with its own PID namespace)."""
    try:
        out = subprocess.run(["nvidia-smi", "--query-compute-apps=pid,used_memory", "--format=csv,noheader,nounits"],
                             capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.TimeoutExpired):
        return None
    for line in out.splitlines():
        parts = [p.strip() for p in line.split(",")]
        if len(parts) == 2 and parts[0] == str(pid) and parts[1].isdigit():
            return int(parts[1]) << 20
    return None


class Sampler(threading.Thread):
    """Samples the server once a second until stopped (nvidia-smi every fifth time)."""

    def __init__(self, server, t0, use_smi, in_flight=lambda: 0):
        super().__init__(daemon=True)
        self.server, self.t0, self.use_smi, self.in_flight = server, t0, use_smi, in_flight
        self.samples, self.halt = [], threading.Event()
        self.last_smi = None

    def sample(self, n=0):
        busy = self.in_flight()
        s = proc_counts(self.server.pid)
        try:
            with open("/proc/loadavg") as f:
                s["load1"] = float(f.read().split()[0])  # the machine's, other work included
        except (OSError, ValueError):
            s["load1"] = None
        s["t"] = time.monotonic() - self.t0
        s["quiet"] = busy == 0 and self.in_flight() == 0  # no request of ours in flight
        try:
            st = self.server.status()
            s["device_bytes"] = st.get("device_memory_bytes") if st else None
        except (OSError, http.client.HTTPException, ValueError):
            s["device_bytes"] = None
        if self.use_smi and n % 5 == 0:
            self.last_smi = smi_bytes(self.server.pid)
        s["smi_bytes"] = self.last_smi if self.use_smi else None
        return s

    def run(self):
        n = 0
        while not self.halt.wait(1.0):
            self.samples.append(self.sample(n))
            n += 1


# ------------------------------------------------------------------ one request


def send(server, case, limit, timeout, slow_s):
    """Sends one case; returns (status or None, headers, body)."""
    conn = http.client.HTTPConnection(server.host, server.port, timeout=timeout)
    try:
        if case.how in (inputs.RAW, inputs.MULTIPART):
            conn.request("POST", "/remove-bg", body=case.body, headers={"Content-Type": case.content_type})
        else:
            conn.putrequest("POST", "/remove-bg")
            conn.putheader("Content-Type", case.content_type)
            if case.how == inputs.OVERSIZE:
                conn.putheader("Content-Length", str(limit + 1))
                conn.putheader("Expect", "100-continue")
                conn.endheaders()
            elif case.how == inputs.CHUNKED_OVER:
                conn.putheader("Transfer-Encoding", "chunked")
                conn.endheaders()
                chunk, sent = b"\0" * (256 << 10), 0
                while sent <= limit + (1 << 20):
                    conn.send(b"%x\r\n" % len(chunk) + chunk + b"\r\n")
                    sent += len(chunk)
                conn.send(b"0\r\n\r\n")
            else:
                conn.putheader("Content-Length", str(len(case.body)))
                conn.endheaders()
                if case.how == inputs.SLOW_ABANDON:
                    part = case.body[: len(case.body) // 2]
                    pieces = 20
                    for i in range(pieces):
                        conn.send(part[i * len(part) // pieces:(i + 1) * len(part) // pieces])
                        time.sleep(slow_s / pieces)
                    # Nothing may have come back for half a body: neither an answer nor a close.
                    if select.select([conn.sock], [], [], 0)[0]:
                        return "answered a partial upload", {}, conn.sock.recv(200)
                    return None, {}, b""
                pieces = 10
                for i in range(pieces):
                    conn.send(case.body[i * len(case.body) // pieces:(i + 1) * len(case.body) // pieces])
                    time.sleep(slow_s / pieces)
        r = conn.getresponse()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read()
    finally:
        conn.close()


def judge(case, status, headers, body):
    """(ok, why) for an answer."""
    if status != case.expect_status:
        return False, f"HTTP {status}, expected {case.expect_status}: {body[:160]!r}"
    if status == 200:
        if not body.startswith(PNG_SIGNATURE):
            return False, f"200 without a PNG body ({headers.get('content-type')})"
        if case.expect_size:
            got = (int(headers.get("x-petmatte-width", -1)), int(headers.get("x-petmatte-height", -1)))
            if got != case.expect_size:
                return False, f"cut-out {got[0]}x{got[1]}, expected {case.expect_size[0]}x{case.expect_size[1]}"
    elif status is not None and case.expect_code:
        try:
            code = json.loads(body).get("code")
        except ValueError:
            return False, f"HTTP {status} without a JSON error: {body[:160]!r}"
        if code != case.expect_code:
            return False, f"code {code}, expected {case.expect_code}"
    return True, ""


def run_case(server, case, t, limit, timeout, slow_s):
    start = time.monotonic()
    try:
        status, headers, body = send(server, case, limit, timeout, slow_s)
        ok, why = judge(case, status, headers, body)
    except (OSError, http.client.HTTPException) as e:
        status, ok, why = None, False, f"{type(e).__name__}: {e}"
    return {"t": t, "kind": case.kind, "case": case.name, "ms": (time.monotonic() - start) * 1e3,
            "ok": ok, "status": status, "why": why}


# ------------------------------------------------------------------ the soak


def machine():
    model = ""
    try:
        with open("/proc/cpuinfo") as f:
            model = next((l.split(":", 1)[1].strip() for l in f if l.startswith("model name")), "")
    except OSError:
        pass
    distro = ""
    try:
        with open("/etc/os-release") as f:
            distro = next((l.split("=", 1)[1].strip().strip('"') for l in f if l.startswith("PRETTY_NAME=")), "")
    except OSError:
        pass
    return {"cpus": os.cpu_count(), "cpu": model, "os": distro, "kernel": platform.release()}


def soak(server, args):
    st = wait_ready(server, args.ready_timeout)
    limit = int(st.get("max_upload_bytes") or args.max_upload_mb * 2**20)
    device = st.get("device") or ""
    print(f"soak: ready: {st.get('model')} on {device}, {st.get('precision')}, warm-up {st.get('warmup_ms')} ms; "
          f"pid {server.pid}", flush=True)
    cases, schedule = inputs.mix(limit)
    use_smi = device.startswith("cuda") and shutil.which("nvidia-smi") is not None

    # Priming: every case once, one at a time.
    priming = [run_case(server, c, -1.0, limit, args.request_timeout, args.slow_s) for c in cases]
    for r in priming:
        if not r["ok"]:
            print(f"soak: priming: {r['case']}: {r['why']}", flush=True)
    time.sleep(1.0)
    idle_before = proc_counts(server.pid)

    records, late, lock = [], [], threading.Lock()
    slots = threading.BoundedSemaphore(args.concurrency)
    in_flight = [0]

    def worker(case, t):
        try:
            rec = run_case(server, case, t, limit, args.request_timeout, args.slow_s)
            with lock:
                records.append(rec)
        finally:
            with lock:
                in_flight[0] -= 1
            slots.release()

    t0 = time.monotonic()
    sampler = Sampler(server, t0, use_smi, lambda: in_flight[0])
    sampler.samples.append(sampler.sample())
    sampler.start()

    def quiet_point(boundary):
        """Waits until none of our requests is in flight and samples the server, stamped
        at the end of the window: every window gets at least one quiet sample, even when
        the server is so slow that requests overlap all the time."""
        deadline = time.monotonic() + args.request_timeout + args.slow_s
        while in_flight[0] and time.monotonic() < deadline:
            time.sleep(0.05)
        s = sampler.sample()
        s["t"] = boundary - 1e-3
        sampler.samples.append(s)

    n_windows = -(-args.duration // args.window)
    printed, next_quiet, paused = 0, args.window, []
    print(report.table([]), flush=True)
    k, interval = 0, 1.0 / args.rate
    while k < args.max_requests:
        t = k * interval
        if t >= args.duration:
            break
        if t >= next_quiet:
            quiet_point(next_quiet)
            next_quiet += args.window
            # Ticks that fell due while waiting are skipped, not sent in a burst.
            while k * interval < min(time.monotonic() - t0, args.duration):
                paused.append(k * interval)
                k += 1
            continue
        delay = t0 + t - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        if slots.acquire(blocking=False):
            with lock:
                in_flight[0] += 1
            threading.Thread(target=worker, args=(cases[schedule[k % len(schedule)]], t), daemon=True).start()
        else:
            late.append(t)
        k += 1
        # A window's row once it has closed (requests still in flight count at the end).
        while printed < n_windows - 1 and time.monotonic() - t0 >= (printed + 1) * args.window:
            with lock:
                row = report.windows(list(records), list(sampler.samples), args.window, args.duration, late)[printed]
            print(report.table([row]).splitlines()[1], flush=True)
            printed += 1
    rest = t0 + args.duration - time.monotonic()
    if rest > 0:
        time.sleep(rest)
    # Wait for the requests in flight (each bounded by its timeout).
    for _ in range(args.concurrency):
        slots.acquire(timeout=args.request_timeout + args.slow_s + 5)
    sampler.halt.set()
    sampler.join()
    quiet_point(args.duration)

    # Idle again: connection threads end a moment after their connection.
    idle_after = proc_counts(server.pid)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and not (
            (idle_after["threads"] or 0) <= (idle_before["threads"] or 0)
            and (idle_after["fds"] or 0) <= (idle_before["fds"] or 0)):
        time.sleep(0.25)
        idle_after = proc_counts(server.pid)
    try:
        health = server.request("GET", "/health")[0]
    except (OSError, http.client.HTTPException):
        health = None
    final_status = server.status() if health == 200 else None
    return {
        "device": device, "status_at_ready": st, "status_at_end": final_status, "health_at_end": health,
        "cases": [{"name": c.name, "kind": c.kind, "bytes": len(c.body), "expect": c.expect_status} for c in cases],
        "priming": priming, "records": records, "samples": sampler.samples, "late": late, "paused": paused,
        "idle_before": idle_before, "idle_after": idle_after,
    }


def parse_args(argv):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    where = ap.add_argument_group("the server: start one (--server) or drive one (--url)")
    where.add_argument("--server", help="petmatte-server executable to start on 127.0.0.1 with a free port")
    where.add_argument("--model", default=os.path.join(ROOT, "models", "isnet-general.pt"),
                       help="model for a started server (default: %(default)s)")
    where.add_argument("--device", default="auto", help="--device of a started server: auto, cpu, cuda:N")
    where.add_argument("--server-arg", action="append", default=[], metavar="ARG",
                       help="one more argument for a started server, repeatable (e.g. --server-arg=--threads=2)")
    where.add_argument("--max-upload-mb", type=float, default=16.0, help="a started server's limit (default 16)")
    where.add_argument("--url", help="a running server on this machine, http://127.0.0.1:PORT")
    where.add_argument("--pid", type=int, help="its PID (default: the process listening on the port)")
    load = ap.add_argument_group("the load")
    load.add_argument("--duration", type=int, default=600, help="seconds of load, 1..%d (default 600)" % MAX_DURATION_S)
    load.add_argument("--rate", type=float, default=0.5, help="requests a second, fixed (default 0.5)")
    load.add_argument("--concurrency", type=int, default=4,
                      help="requests in flight at most; a tick finding all busy is counted late (default 4)")
    load.add_argument("--max-requests", type=int, default=100000, help="stop after this many (default 100000)")
    load.add_argument("--request-timeout", type=float, default=120.0, help="seconds a request may take (default 120)")
    load.add_argument("--slow-s", type=float, default=2.0, help="seconds a slow upload dribbles (default 2)")
    load.add_argument("--ready-timeout", type=float, default=600.0, help="seconds to wait for /ready (default 600)")
    judge_ = ap.add_argument_group("the verdict")
    judge_.add_argument("--window", type=int, help="seconds a window (default 60, or 10 under 300 s of load)")
    judge_.add_argument("--settle", type=int, help="seconds of settling the rest is compared with "
                        "(default 60, or two windows under 300 s of load)")
    judge_.add_argument("--growth", type=float, default=0.05, help="memory growth allowed after settling (0.05)")
    judge_.add_argument("--p99-factor", type=float, default=1.5, help="p99 allowed over settling's (1.5)")
    judge_.add_argument("--no-latency-gate", action="store_true",
                        help="report the p99 ratio without failing on it (for machines shared with other work)")
    ap.add_argument("--json", metavar="PATH", help="write every window, sample and request as JSON here")
    args = ap.parse_args(argv)

    if bool(args.server) == bool(args.url):
        fail_usage("give either --server (start one) or --url (drive a running one)")
    if not 1 <= args.duration <= MAX_DURATION_S:
        fail_usage(f"--duration must be 1..{MAX_DURATION_S} seconds")
    if not 0 < args.rate <= MAX_RATE:
        fail_usage(f"--rate must be above 0 and at most {MAX_RATE:g}")
    if not 1 <= args.concurrency <= 256 or args.max_requests < 1:
        fail_usage("--concurrency must be 1..256 and --max-requests at least 1")
    if not 0 < args.request_timeout <= 600 or not 0 <= args.slow_s <= 60:
        fail_usage("--request-timeout must be 0..600 s and --slow-s 0..60 s")
    if args.window is None:
        args.window = 60 if args.duration >= 300 else 10
    if args.settle is None:
        args.settle = 60 if args.duration >= 300 else 2 * args.window
    if args.window < 1 or args.settle < 1 or args.settle >= args.duration:
        fail_usage("--window and --settle must be at least 1 s and --settle under --duration")
    return args


def main(argv=None):
    args = parse_args(argv)
    server = start_server(args) if args.server else attach_server(args)
    started = datetime.datetime.now(datetime.timezone.utc)
    try:
        run = soak(server, args)
    except BaseException:
        server.stop()
        raise
    exit_status = server.stop()
    if server.proc and exit_status != 0:
        print(server.stderr_tail(), file=sys.stderr)

    requests = run["priming"] + run["records"]
    rows = report.windows(run["records"], run["samples"], args.window, args.duration, run["late"])
    result = report.verdict(rows, requests, args.settle, args.growth, args.p99_factor, not args.no_latency_gate,
                            run["idle_before"], run["idle_after"], exit_status)
    if run["health_at_end"] != 200:
        result["checks"].append({"name": "alive at the end", "pass": False, "detail": f"/health {run['health_at_end']}"})
        result["pass"] = False

    print()
    print(report.table(rows))
    print(f"\n{len(run['records'])} requests at {args.rate:g}/s for {args.duration} s "
          f"({sum(r['kind'] == 'good' for r in run['records'])} good), {len(run['late'])} late ticks, "
          f"{len(run['paused'])} skipped at the windows' quiet points, "
          f"on {run['device']}; settling: the first {args.settle} s")
    for c in result["checks"]:
        print(f"  {'PASS' if c['pass'] else 'FAIL'}  {c['name']}: {c['detail']}")
    print(f"verdict: {'PASS' if result['pass'] else 'FAIL'}", flush=True)

    if args.json:
        doc = {
            "command": " ".join([os.path.relpath(sys.argv[0], ROOT) if sys.argv[0].startswith(ROOT) else sys.argv[0]]
                                + (argv if argv is not None else sys.argv[1:])),
            "date": started.strftime("%Y-%m-%dT%H:%M:%SZ"), "machine": machine(),
            # the started server inherits these: they change what its memory does
            "environment": {k: v for k, v in os.environ.items()
                            if k.startswith(("GLIBC_TUNABLES", "MALLOC_", "OMP_", "PETMATTE_", "CUDA_"))},
            "settings": {k: v for k, v in vars(args).items()},
            "windows": rows, "verdict": result, **{k: run[k] for k in (
                "device", "status_at_ready", "status_at_end", "cases", "priming", "records", "samples", "late", "paused",
                "idle_before", "idle_after")}, "server_exit": exit_status,
        }
        with open(args.json, "w") as f:
            json.dump(doc, f, indent=1)
    return 0 if result["pass"] else 1


if __name__ == "__main__":
    sys.exit(main())
