"""The benchmark tools run end to end on the tiny red32 model: petmatte-bench (every
figure, its JSON), tools/bench_python_anchor.py and the tools/bench.py driver.

No timing is asserted: only that each figure is there, with the requested number of
samples, finite and non-negative. petmatte-bench is looked up next to the CLI
(PETMATTE_CLI, both build into <build>/examples/) or named by PETMATTE_BENCH; the test
models come from PETMATTE_TEST_MODELS. Skipped, with the reason, when either is missing.
"""
import json
import math
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DRIVER = os.path.join(ROOT, "tools", "bench.py")
ANCHOR = os.path.join(ROOT, "tools", "bench_python_anchor.py")


def bench_binary():
    if os.environ.get("PETMATTE_BENCH"):
        return os.environ["PETMATTE_BENCH"]
    cli = os.environ.get("PETMATTE_CLI")
    if cli:
        return os.path.join(os.path.dirname(cli), "petmatte-bench")
    return None


def red32():
    models = os.environ.get("PETMATTE_TEST_MODELS")
    path = os.path.join(models, "red32.pt") if models else None
    if not path or not os.path.exists(path):
        pytest.skip("no test models (PETMATTE_TEST_MODELS/red32.pt)")
    return path


def need_bench():
    b = bench_binary()
    if not b or not os.access(b, os.X_OK):
        pytest.skip("petmatte-bench not built (PETMATTE_BENCH or next to PETMATTE_CLI)")
    return b


def write_jpeg(path, w=64, h=48):
    np = pytest.importorskip("numpy")
    Image = pytest.importorskip("PIL.Image")
    y, x = np.mgrid[0:h, 0:w]
    rgb = np.stack([x * 255 // w, y * 255 // h, (x + y) % 256], -1).astype(np.uint8)
    Image.fromarray(rgb, "RGB").save(path, "JPEG", quality=90)


def check_figure(fig, n):
    assert fig["n"] == n == len(fig["samples"])
    for v in fig["samples"] + [fig["median"], fig["min"], fig["max"]]:
        assert math.isfinite(v) and v >= 0
    assert fig["min"] <= fig["median"] <= fig["max"]


def test_petmatte_bench_every_figure(tmp_path):
    bench, model = need_bench(), red32()
    jpeg = str(tmp_path / "in.jpg")
    write_jpeg(jpeg)
    out = tmp_path / "bench.json"
    p = subprocess.run([bench, "--model", model, "--device", "cpu", "--threads", "1", "--runs", "4",
                        "--cold-repeats", "2", "--cold-prime", "0", "--concurrency", "1,3", "--per-thread", "2",
                        "--tp-repeats", "2", "--jpeg", jpeg, "--jpeg-runs", "2", "--json", str(out)],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=300)
    assert p.returncode == 0, p.stderr
    assert "process start -> READY" in p.stdout and "pm_remove_bg latency" in p.stdout
    doc = json.loads(out.read_text())
    assert doc["context"]["model_name"] == "red32" and doc["context"]["input_width"] == 32
    figs = doc["figures"]
    for key in ("cold.start_to_ready_ms", "cold.start_to_first_matte_ms", "cold.load_ms", "cold.warmup_ms"):
        check_figure(figs[key], 2)
    assert figs["cold.start_to_first_matte_ms"]["median"] >= figs["cold.start_to_ready_ms"]["median"]
    check_figure(figs["warm.latency_ms"], 4)
    for t in (1, 3):
        check_figure(figs["throughput.t%d.images_per_s" % t], 2)
        check_figure(figs["throughput.t%d.call_latency_ms" % t], 2 * 2 * t)
    check_figure(figs["jpeg.rgba_ms"], 2)
    check_figure(figs["jpeg.rgba_clean_edges_ms"], 2)
    assert figs["memory.device_after_runs_mib"]["samples"] == [0.0]  # CPU
    d = doc["derived"]
    assert d["jpeg.width"]["value"] == 64 and d["jpeg.height"]["value"] == 48
    assert d["warm.first50_worst_ms"]["value"] >= figs["warm.latency_ms"]["median"]


def test_petmatte_bench_rejects_bad_arguments(tmp_path):
    bench, model = need_bench(), red32()
    for args in (["--runs", "0"], ["--concurrency", "1,x"], ["--figures", "nope"], ["--bogus", "1"], []):
        full = [bench] + (["--model", model] if args else []) + args
        p = subprocess.run(full, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=60)
        assert p.returncode != 0 and "petmatte-bench:" in p.stderr, args


def test_petmatte_bench_saves_encoded_outputs_into_a_folder_it_makes(tmp_path):
    bench, model = need_bench(), red32()
    jpeg = str(tmp_path / "in.jpg")
    write_jpeg(jpeg)
    saved = tmp_path / "saved"
    args = [bench, "--model", model, "--device", "cpu", "--threads", "1", "--runs", "2", "--figures", "encoded",
            "--encoded", jpeg, "--encoded-runs", "1", "--save-encoded", str(saved)]
    p = subprocess.run(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    names = sorted(os.listdir(saved))
    assert any(n.endswith(".png") for n in names) and any(n.endswith(".webp") for n in names), names
    with open(saved / next(n for n in names if n.endswith(".png")), "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"

    not_a_folder = tmp_path / "file"
    not_a_folder.write_bytes(b"x")
    for where, why in ((not_a_folder, "not a folder"), (tmp_path / "no" / "such", "cannot create the folder")):
        args[-1] = str(where)
        p = subprocess.run(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=60)
        assert p.returncode != 0 and why in p.stderr, p.stderr
        assert "pm_remove_bg latency" not in p.stdout


def test_petmatte_bench_reports_a_failing_cold_child(tmp_path):
    bench = need_bench()
    bad = tmp_path / "not_a_model.pt"
    bad.write_bytes(b"not a zip")
    p = subprocess.run([bench, "--model", str(bad), "--device", "cpu", "--figures", "cold", "--cold-prime", "0"],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=60)
    assert p.returncode != 0 and "cold child" in p.stderr


def test_python_anchor_cold_and_full(tmp_path):
    model = red32()
    jpeg = str(tmp_path / "in.jpg")
    write_jpeg(jpeg)
    for mode in ("cold", "full"):
        p = subprocess.run([sys.executable, ANCHOR, "--model", model, "--device", "cpu", "--threads", "1",
                            "--mode", mode, "--runs", "3", "--jpeg", jpeg, "--jpeg-runs", "2"],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=300)
        assert p.returncode == 0, p.stderr
        r = json.loads(p.stdout)
        assert r["model"]["width"] == 32 and r["device"] == "cpu" and r["precision"] == "fp32"
        assert r["torch_threads"] == 1
        for key in ("import_torch_ms", "load_ms", "first_inference_ms"):
            assert math.isfinite(r[key]) and r[key] >= 0
        assert r["t_main"] <= r["t_loaded"]
        assert r["output_nonfinite"] == 0 and r["output_values"] == 32 * 32
        if mode == "full":
            check_figure(r["warm_latency_ms"], 3)
            check_figure(r["jpeg_rgba_ms"], 2)
            assert (r["jpeg_width"], r["jpeg_height"]) == (64, 48)
        else:
            assert "warm_latency_ms" not in r


def test_python_anchor_counts_a_models_non_finite_output():
    model = os.path.join(os.path.dirname(red32()), "nan_output.pt")
    p = subprocess.run([sys.executable, ANCHOR, "--model", model, "--device", "cpu", "--threads", "1",
                        "--mode", "cold"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=300)
    assert p.returncode == 0, p.stderr
    r = json.loads(p.stdout)
    assert r["output_values"] > 0 and r["output_nonfinite"] == r["output_values"]


def test_driver_one_invocation(tmp_path):
    bench, model = need_bench(), red32()
    out = tmp_path / "results.json"
    p = subprocess.run([sys.executable, DRIVER, "--bench", bench, "--model", model, "--device", "cpu",
                        "--threads", "1", "--runs", "3", "--cold-repeats", "1", "--concurrency", "1",
                        "--per-thread", "2", "--tp-repeats", "1", "--jpeg-size", "64x48", "--jpeg-runs", "1",
                        "--clean-edges", "off", "--out", str(out)],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=600)
    assert p.returncode == 0, p.stderr
    assert "lib/py" in p.stdout and "cold: process start -> first matte" in p.stdout
    assert "lib: cpu fp32, cuda graph off, forward streams 1" in p.stdout
    doc = json.loads(out.read_text())
    (res,) = doc["results"]
    assert res["precision"] == "fp32" and not res["errors"]
    assert len(res["lib"]["cold_runs"]) == 1 and len(res["python"]["cold_runs"]) == 1
    rows = {r["figure"]: r for r in res["table"]}
    first = rows["cold: process start -> first matte (ms)"]
    assert first["lib"]["n"] == 1 and first["python"]["n"] == 1 and first["lib_over_python"] > 0
    assert rows["warm batch 1: latency (ms)"]["lib"]["n"] == 3
    assert rows["JPEG 64x48 -> RGBA (ms)"]["python"]["n"] == 1
