"""Windows, table and verdict of tools/soak.py, from plain records (no I/O here).

A request record: {"t": start seconds since the load began, "kind": good|odd|hostile,
"case": name, "ms": latency, "ok": bool, "status": HTTP status or None, "why": text}.
A sample record: {"t", "rss": bytes, "threads", "fds", "device_bytes": the server's
/status device_memory_bytes, "smi_bytes": nvidia-smi's figure for the process or None,
"quiet": True when none of the soak's requests was in flight}.

The verdict compares the windows after the settling period with that period:
  - RSS: each later window's quiet floor (its smallest sample taken while none of the
    soak's requests was in flight: what the server keeps between requests; its peaks
    follow how many large images happen to be in flight) at most (1 + growth) times the
    quiet floor of the last settling window that had one (soak.py ends each window
    with a quiet point). Windows without a quiet sample (the table marks their smallest
    sample with *) are left out; a soak with none after settling fails;
  - device memory (/status's device_memory_bytes, the CUDA caching allocator's reserve,
    and nvidia-smi's figure for the process): the largest value after settling at most
    (1 + growth) times the largest while settling;
  - latency: each later window's p99 of good requests at most p99_factor times the
    settling period's p99 (skipped with latency_gate=False);
  - errors: no request anywhere got an answer other than its expected one;
  - hygiene: once idle after the run, the server holds no more threads and descriptors
    than it did idle before it.
"""
import math


def percentile(values, q):
    """Nearest-rank percentile (q in 0..100) of a list; None when empty."""
    if not values:
        return None
    s = sorted(values)
    return s[max(0, math.ceil(q / 100.0 * len(s)) - 1)]


def _max(values):
    values = [v for v in values if v is not None]
    return max(values) if values else None


def _min(values):
    values = [v for v in values if v is not None]
    return min(values) if values else None


def windows(requests, samples, window_s, duration_s, late=()):
    """One dict per window of window_s seconds: counts, latency, memory.

    late: the times of ticks that found every client slot busy and sent nothing.
    """
    n = max(1, math.ceil(duration_s / window_s - 1e-9))
    out = []
    for w in range(n):
        lo, hi = w * window_s, min((w + 1) * window_s, duration_s)
        reqs = [r for r in requests if lo <= r["t"] < hi or (w == n - 1 and r["t"] >= hi)]
        samp = [s for s in samples if lo <= s["t"] < hi or (w == n - 1 and s["t"] >= hi)]
        good_ms = [r["ms"] for r in reqs if r["kind"] == "good" and r["ok"]]
        out.append({
            "window": w, "start_s": lo, "end_s": hi,
            "requests": len(reqs),
            "good": sum(r["kind"] == "good" for r in reqs),
            "odd": sum(r["kind"] == "odd" for r in reqs),
            "hostile": sum(r["kind"] == "hostile" for r in reqs),
            "unexpected": sum(not r["ok"] for r in reqs),
            "p50_ms": percentile(good_ms, 50), "p99_ms": percentile(good_ms, 99),
            "rss_min": _min(s["rss"] for s in samp if s.get("quiet")) or _min(s["rss"] for s in samp),
            "rss_min_quiet": any(s.get("quiet") and s["rss"] is not None for s in samp),
            "rss_max": _max(s["rss"] for s in samp),
            "threads_max": _max(s["threads"] for s in samp),
            "fds_max": _max(s["fds"] for s in samp),
            "load1_max": _max(s.get("load1") for s in samp),
            "device_max": _max(s["device_bytes"] for s in samp),
            "smi_max": _max(s["smi_bytes"] for s in samp),
            "late_ticks": sum(lo <= t < hi or (w == n - 1 and t >= hi) for t in late),
        })
    return out


def _growth(ref, later):
    if ref is None or later is None or ref <= 0:
        return None
    return later / ref - 1.0


def verdict(rows, requests, settle_s, growth=0.05, p99_factor=1.5, latency_gate=True,
            idle_before=None, idle_after=None, server_exit=None):
    """{"pass": bool, "checks": [{"name", "pass", "detail"}...]} for the windows given."""
    settle = [w for w in rows if w["start_s"] < settle_s]
    later = [w for w in rows if w["start_s"] >= settle_s]
    checks = []

    def check(name, ok, detail):
        checks.append({"name": name, "pass": bool(ok), "detail": detail})

    if not settle or not later:
        check("windows after settling", False,
              f"{len(settle)} settling and {len(later)} later windows: make --duration longer than --settle")
        return {"pass": False, "checks": checks}

    for key, label in (("rss_min", "RSS quiet floor"), ("device_max", "device memory (/status)"),
                       ("smi_max", "device memory (nvidia-smi)")):
        if key == "rss_min":
            quiet_settle = [w for w in settle if w.get("rss_min_quiet", True)]
            quiet_later = [w for w in later if w.get("rss_min_quiet", True)]
            if not quiet_settle or not quiet_later:
                check(f"{label} growth", False, "no quiet moment (no request in flight) while settling or after")
                continue
            ref = quiet_settle[-1][key]
            top = _max(w[key] for w in quiet_later)
        else:
            ref = _max(w[key] for w in settle)
            top = _max(w[key] for w in later)
        g = _growth(ref, top)
        if not ref:
            check(f"{label} growth", True, "not reported (0 on the CPU)" if key == "device_max" else "not measured")
            continue
        check(f"{label} growth", g is not None and g <= growth,
              f"{ref / 2**20:.1f} MiB settling -> {top / 2**20:.1f} MiB after "
              f"({g * 100:+.1f} %, limit +{growth * 100:.0f} %)" if g is not None else "no samples after settling")

    settle_ms = [r["ms"] for r in requests if r["kind"] == "good" and r["ok"] and 0 <= r["t"] < settle_s]
    ref99 = percentile(settle_ms, 99)
    worst = None
    for w in later:
        if w["p99_ms"] is not None and ref99:
            ratio = w["p99_ms"] / ref99
            if worst is None or ratio > worst[0]:
                worst = (ratio, w["window"], w["p99_ms"])
    if ref99 is None or worst is None:
        check("p99 latency", False, "no good requests answered while settling or after")
    else:
        detail = (f"settling p99 {ref99:.0f} ms; worst later window {worst[1]}: {worst[2]:.0f} ms "
                  f"({worst[0]:.2f}x, limit {p99_factor:.2f}x)")
        if latency_gate:
            check("p99 latency", worst[0] <= p99_factor, detail)
        else:
            checks.append({"name": "p99 latency", "pass": True, "detail": detail + " [reported, not gated]"})

    bad = [r for r in requests if not r["ok"]]
    first = "; ".join(f"{r['case']}: {r['why']}" for r in bad[:3])
    check("unexpected answers", not bad, f"{len(bad)} of {len(requests)}" + (f" ({first})" if bad else ""))

    if idle_before and idle_after:
        for key in ("threads", "fds"):
            b, a = idle_before.get(key), idle_after.get(key)
            if b is not None and a is not None:
                check(f"idle {key} after the run", a <= b, f"{b} before, {a} after")
    if server_exit is not None:
        check("server exit on SIGTERM", server_exit == 0, f"exit status {server_exit}")
    return {"pass": all(c["pass"] for c in checks), "checks": checks}


def _fmt(v, scale=1.0, digits=0):
    return "-" if v is None else f"{v / scale:.{digits}f}"


def table(rows):
    """The windows as a fixed-width text table."""
    head = (f"{'win':>3} {'t (s)':>11} {'req':>5} {'good':>5} {'odd':>4} {'host':>4} {'unexp':>5} "
            f"{'p50 ms':>7} {'p99 ms':>7} {'RSS quiet':>9} {'RSS max':>8} {'thr':>4} {'fds':>4} "
            f"{'dev MiB':>8} {'smi MiB':>8} {'late':>4} {'load':>5}")
    lines = [head]
    for w in rows:
        lines.append(
            f"{w['window']:>3} {w['start_s']:>5.0f}-{w['end_s']:<5.0f} {w['requests']:>5} {w['good']:>5} "
            f"{w['odd']:>4} {w['hostile']:>4} {w['unexpected']:>5} {_fmt(w['p50_ms']):>7} {_fmt(w['p99_ms']):>7} "
            f"{_fmt(w['rss_min'], 2**20, 1) + ('' if w.get('rss_min_quiet', True) else '*'):>9} "
            f"{_fmt(w['rss_max'], 2**20, 1):>8} {_fmt(w['threads_max']):>4} {_fmt(w['fds_max']):>4} "
            f"{_fmt(w['device_max'], 2**20, 1):>8} {_fmt(w['smi_max'], 2**20, 1):>8} {w['late_ticks']:>4} "
            f"{_fmt(w.get('load1_max'), 1, 1):>5}")
    return "\n".join(lines)
