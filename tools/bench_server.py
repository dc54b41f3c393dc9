#!/usr/bin/env python3
"""petmatte-server end to end: JPEG photos posted to /remove-bg by 1..N clients at once,
encoded cut-outs back (PNG, WebP).

Starts the server on a free loopback port with the given model and device, waits for
/ready, then for every photo size x format x client count sends a few untimed requests
and then REQUESTS timed ones per client. Prints per row: median and p90 latency of a
request, requests a second over the row's wall time, the mean response size, and the
server's CPU time over the row's wall time (1.0 = one core busy).

  python3 tools/bench_server.py --server build/examples/petmatte-server \\
      --model models/isnet-general.pt --device cuda:0 --precision fp16 \\
      --sizes 1000x1000,1280x852,4000x3000 --formats png,webp --clients 1,8
"""
import argparse
import http.client
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench import write_photo_jpeg  # noqa: E402

SIGNATURES = {"png": b"\x89PNG\r\n\x1a\n", "webp": b"RIFF", "webp-lossless": b"RIFF"}


def parse_size(text):
    w, _, h = text.partition("x")
    return int(w), int(h)


def cpu_seconds(pid):
    """utime + stime of a process, in seconds (Linux /proc)."""
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class Server:
    def __init__(self, args):
        cmd = [args.server, "--host", "127.0.0.1", "--port", "0", "--model", args.model, "--device", args.device,
               "--precision", args.precision, "--warmup", "--max-connections", str(max(64, 4 * args.max_clients))]
        for t in args.tune:
            cmd += ["--tune", t]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        line = self.proc.stdout.readline()
        if "listening on http://" not in line:
            raise SystemExit("server did not start: %r" % line)
        self.port = int(line.strip().rsplit(":", 1)[1])
        deadline = time.time() + args.ready_timeout
        while True:
            status, _ = self.request("GET", "/ready")
            if status == 200:
                break
            if time.time() > deadline or self.proc.poll() is not None:
                raise SystemExit("server not ready after %d s" % args.ready_timeout)
            time.sleep(0.2)

    def request(self, method, path, body=None, timeout=300):
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            conn.request(method, path, body=body, headers={"Content-Type": "image/jpeg"} if body else {})
            resp = conn.getresponse()
            return resp.status, resp.read()
        except OSError:
            return 0, b""
        finally:
            conn.close()

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def run_row(server, photo, fmt, clients, requests, warm):
    path = "/remove-bg?format=%s" % fmt
    for _ in range(warm):
        status, body = server.request("POST", path, photo)
        if status != 200:
            raise SystemExit("POST %s: HTTP %d %s" % (path, status, body[:200]))
    latencies, sizes, errors = [], [], []
    lock = threading.Lock()

    def client():
        for _ in range(requests):
            t0 = time.perf_counter()
            status, body = server.request("POST", path, photo)
            dt = time.perf_counter() - t0
            with lock:
                if status == 200 and body.startswith(SIGNATURES[fmt]):
                    latencies.append(dt * 1e3)
                    sizes.append(len(body))
                else:
                    errors.append(status)

    threads = [threading.Thread(target=client) for _ in range(clients)]
    cpu0, t0 = cpu_seconds(server.proc.pid), time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    cpu = cpu_seconds(server.proc.pid) - cpu0
    if errors:
        raise SystemExit("%d failed requests (HTTP %s)" % (len(errors), sorted(set(errors))))
    q = statistics.quantiles(latencies, n=10) if len(latencies) >= 2 else latencies * 9
    return {"format": fmt, "clients": clients, "requests": len(latencies),
            "p50_ms": statistics.median(latencies), "p90_ms": q[8], "requests_per_s": len(latencies) / wall,
            "mean_bytes": statistics.mean(sizes), "server_cores": cpu / wall}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--server", required=True, help="petmatte-server binary")
    ap.add_argument("--model", required=True)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--precision", default="auto")
    ap.add_argument("--tune", action="append", default=[], help="KEY=VALUE passed to the server (repeatable)")
    ap.add_argument("--sizes", default="1000x1000,1280x852,4000x3000", help="photo sizes WxH, comma-separated")
    ap.add_argument("--formats", default="png,webp", help="png, webp, webp-lossless (comma-separated)")
    ap.add_argument("--clients", default="1,8", help="client counts (comma-separated)")
    ap.add_argument("--requests", type=int, default=20, help="timed requests per client and row (default 20)")
    ap.add_argument("--warm", type=int, default=3, help="untimed requests before each row (default 3)")
    ap.add_argument("--ready-timeout", type=int, default=300)
    ap.add_argument("--json", help="also write the rows here")
    args = ap.parse_args(argv)
    sizes = [parse_size(s) for s in args.sizes.split(",")]
    formats = args.formats.split(",")
    clients = [int(c) for c in args.clients.split(",")]
    for f in formats:
        if f not in SIGNATURES:
            ap.error("unknown format %r" % f)
    args.max_clients = max(clients)

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        photos = {}
        for w, h in sizes:
            p = os.path.join(tmp, "%dx%d.jpg" % (w, h))
            why = write_photo_jpeg(p, w, h)
            if why:
                raise SystemExit(why)
            with open(p, "rb") as f:
                photos[(w, h)] = f.read()
        server = Server(args)
        try:
            _, status = server.request("GET", "/status")
            device = json.loads(status).get("device", "?")
            print("server: %s, %s, %s; %d CPUs here" % (args.model, device, args.precision, os.cpu_count()))
            print("%-11s %-14s %7s %9s %9s %8s %11s %12s" % ("photo", "format", "clients", "p50 ms", "p90 ms",
                                                           "req/s", "mean bytes", "server cores"))
            for (w, h), photo in photos.items():
                for fmt in formats:
                    for c in clients:
                        row = run_row(server, photo, fmt, c, args.requests, args.warm)
                        row["photo"] = "%dx%d" % (w, h)
                        rows.append(row)
                        print("%-11s %-14s %7d %9.1f %9.1f %8.1f %11.0f %12.2f" % (
                            row["photo"], fmt, c, row["p50_ms"], row["p90_ms"], row["requests_per_s"],
                            row["mean_bytes"], row["server_cores"]), flush=True)
        finally:
            server.stop()
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"model": args.model, "device": args.device, "precision": args.precision, "rows": rows}, f,
                      indent=1)


if __name__ == "__main__":
    main()
