"""tools/soak.py's parts without a server: the verdict on made-up windows, the uploads and
their expected answers, and the refusal of targets off this machine."""
import io
import os
import struct
import subprocess
import sys
import zlib

import pytest
from PIL import Image, ImageOps

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "tools"))
import soak  # noqa: E402
import soak_inputs as inputs  # noqa: E402
import soak_report as report  # noqa: E402

MiB = 2**20


def run(rss_floors, p99s=None, bad=(), quiet=True, device=None):
    """Windows of 10 s whose quiet RSS floors and good latencies are given, 2 settling."""
    requests, samples = [], []
    for w, floor in enumerate(rss_floors):
        for k in range(10):
            t = w * 10 + k
            ms = (p99s[w] if p99s else 100.0) if k == 9 else 50.0
            requests.append({"t": t + 0.1, "kind": "good", "case": "jpeg", "ms": ms, "ok": (w, k) not in bad,
                             "status": 200, "why": "" if (w, k) not in bad else "HTTP 500"})
            samples.append({"t": t + 0.5, "rss": floor + (k % 3) * 40 * MiB, "threads": 8, "fds": 7,
                            "device_bytes": device[w] if device else 0, "smi_bytes": None,
                            "quiet": quiet if k % 3 == 0 else False})
    rows = report.windows(requests, samples, 10, len(rss_floors) * 10)
    return rows, requests


def checks(result):
    return {c["name"]: c["pass"] for c in result["checks"]}


def test_flat_memory_and_latency_pass():
    rows, requests = run([200 * MiB] * 6)
    v = report.verdict(rows, requests, settle_s=20)
    assert v["pass"], v
    assert rows[3]["rss_min"] == 200 * MiB and rows[3]["rss_max"] == 280 * MiB


def test_rss_floor_growing_past_five_percent_after_settling_fails():
    rows, requests = run([200 * MiB, 210 * MiB, 212 * MiB, 215 * MiB, 219 * MiB, 222 * MiB])
    v = report.verdict(rows, requests, settle_s=20)
    assert not checks(v)["RSS quiet floor growth"]  # 222 / 210 = +5.7 %
    rows, requests = run([200 * MiB, 210 * MiB, 212 * MiB, 215 * MiB, 219 * MiB, 220 * MiB])
    assert checks(report.verdict(rows, requests, settle_s=20))["RSS quiet floor growth"]  # +4.8 %


def test_growth_during_settling_does_not_count():
    rows, requests = run([100 * MiB, 200 * MiB, 200 * MiB, 201 * MiB])
    assert report.verdict(rows, requests, settle_s=20)["pass"]


def test_without_quiet_samples_the_rss_check_fails_and_says_why():
    rows, requests = run([200 * MiB] * 4, quiet=False)
    v = report.verdict(rows, requests, settle_s=20)
    c = next(c for c in v["checks"] if c["name"] == "RSS quiet floor growth")
    assert not c["pass"] and "no quiet moment" in c["detail"]


def test_device_memory_growth_is_checked_when_reported():
    rows, requests = run([200 * MiB] * 4, device=[900 * MiB, 1000 * MiB, 1000 * MiB, 1100 * MiB])
    assert not checks(report.verdict(rows, requests, settle_s=20))["device memory (/status) growth"]
    rows, requests = run([200 * MiB] * 4, device=[900 * MiB, 1000 * MiB, 1000 * MiB, 1040 * MiB])
    assert checks(report.verdict(rows, requests, settle_s=20))["device memory (/status) growth"]


def test_p99_over_one_and_a_half_times_settling_fails_unless_not_gated():
    rows, requests = run([200 * MiB] * 4, p99s=[100, 100, 140, 160])
    v = report.verdict(rows, requests, settle_s=20)
    assert not checks(v)["p99 latency"]
    assert "1.60x" in next(c["detail"] for c in v["checks"] if c["name"] == "p99 latency")
    assert checks(report.verdict(rows, requests, settle_s=20, latency_gate=False))["p99 latency"]


def test_one_unexpected_answer_fails_the_soak():
    rows, requests = run([200 * MiB] * 4, bad=[(0, 3)])
    v = report.verdict(rows, requests, settle_s=20)
    assert not v["pass"] and not checks(v)["unexpected answers"]
    assert rows[0]["unexpected"] == 1


def test_threads_or_descriptors_left_behind_fail():
    rows, requests = run([200 * MiB] * 4)
    v = report.verdict(rows, requests, 20, idle_before={"threads": 4, "fds": 5}, idle_after={"threads": 5, "fds": 5})
    assert checks(v) == {**checks(v), "idle threads after the run": False, "idle fds after the run": True}


def test_a_soak_no_longer_than_its_settling_fails():
    rows, requests = run([200 * MiB] * 2)
    assert not report.verdict(rows, requests, settle_s=20)["pass"]


def test_percentile_is_nearest_rank():
    assert report.percentile(list(range(1, 101)), 99) == 99
    assert report.percentile([5.0], 99) == 5.0
    assert report.percentile([], 50) is None


@pytest.fixture(scope="module")
def cases():
    return inputs.mix(16 * MiB)


def test_good_and_odd_images_decode_to_the_size_the_server_must_answer(cases):
    for c in cases[0]:
        if c.expect_status == 200 and c.how == inputs.RAW:
            img = ImageOps.exif_transpose(Image.open(io.BytesIO(c.body)))
            assert img.size == c.expect_size, c.name


def test_exif_case_is_stored_landscape_and_shown_portrait(cases):
    c = next(c for c in cases[0] if c.name.startswith("exif-rotated"))
    img = Image.open(io.BytesIO(c.body))
    assert img.size == (600, 400) and img.getexif()[0x0112] == 6
    assert c.expect_size == (400, 600)


def test_huge_header_png_declares_its_size_with_a_valid_crc():
    data = inputs.huge_header_png(60000, 50000)
    length, kind = struct.unpack(">I4s", data[8:16])
    assert kind == b"IHDR" and struct.unpack(">II", data[16:24]) == (60000, 50000)
    assert struct.unpack(">I", data[16 + length:20 + length])[0] == zlib.crc32(data[12:16 + length])


def test_every_round_of_the_schedule_holds_every_good_case(cases):
    all_cases, schedule = cases
    good = {i for i, c in enumerate(all_cases) if c.kind == "good"}
    assert set(schedule) == set(range(len(all_cases)))
    rounds, current = [], []
    for i in schedule:
        if i == min(good) and current:
            rounds.append(current)
            current = []
        current.append(i)
    rounds.append(current)
    for r in rounds:
        assert good <= set(r)
    share = sum(i in good for i in schedule) / len(schedule)
    assert 0.5 <= share <= 0.7


def test_every_error_case_names_its_status_and_most_their_code(cases):
    for c in cases[0]:
        if c.kind == "hostile" and c.expect_status is not None and c.expect_status != 200:
            assert 400 <= c.expect_status < 500 and c.expect_code, c.name


@pytest.mark.parametrize("host", ["127.0.0.1", "::1", "localhost", "127.3.2.1"])
def test_loopback_targets_are_accepted(host):
    soak.require_loopback(host)


@pytest.mark.parametrize("url", ["http://192.0.2.7:8080", "http://10.1.2.3", "http://[2001:db8::1]:80"])
def test_targets_off_this_machine_are_refused(url):
    r = subprocess.run([sys.executable, os.path.join(ROOT, "tools", "soak.py"), "--url", url, "--duration", "60"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 2
    assert "only drives a server on this machine's loopback" in r.stderr


def test_bounds_on_time_and_rate_are_enforced():
    for extra, says in ((["--duration", "0"], "--duration must be"), (["--duration", str(7 * 3600)], "--duration must"),
                        (["--rate", "0"], "--rate must be"), (["--rate", "1000"], "--rate must be")):
        r = subprocess.run([sys.executable, os.path.join(ROOT, "tools", "soak.py"), "--url", "http://127.0.0.1:9",
                            *extra], capture_output=True, text=True, timeout=60)
        assert r.returncode == 2 and says in r.stderr, (extra, r.stderr)
