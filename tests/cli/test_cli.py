"""The petmatte command driven as a user would: files, folders, stdin/stdout, bad input.

PETMATTE_CLI: the executable (ctest sets it; default build/examples/petmatte)
PETMATTE_TEST_MODELS: the tiny models from tests/models/make_test_models.py

red32.pt's matte is the red channel (mean 0, std 1, 32x32 input), so on a 32x32 image
the alpha of the cut-out is the red channel itself, and every option is checkable
pixel by pixel. Each run of the binary costs ~0.7 s (libtorch loading): checks are
grouped, and independent runs go in parallel.
"""
import io
import json
import os
import shutil
import subprocess
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from PIL import Image

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def exe():
    path = os.environ.get("PETMATTE_CLI") or os.path.join(ROOT, "build", "examples", "petmatte")
    if not os.path.exists(path):
        pytest.skip("petmatte not built (set PETMATTE_CLI)")
    return path


def model(name="red32.pt"):
    folder = os.environ.get("PETMATTE_TEST_MODELS") or os.path.join(ROOT, "build", "tests", "models")
    path = os.path.join(folder, name)
    if not os.path.exists(path):
        pytest.skip(f"test model {path} missing (run tests/models/make_test_models.py)")
    return path


def run(*args, stdin=None, env=None, cwd=None, binary=None):
    full_env = dict(os.environ)
    full_env.pop("PETMATTE_MODEL", None)
    full_env.update(env or {})
    return subprocess.run([binary or exe(), *args], input=stdin, capture_output=True, env=full_env,
                          cwd=cwd, timeout=120)


def run_on_tty(*args):
    """Runs with stderr on a pseudo-terminal; returns (exit status, what stderr showed)."""
    import pty
    master, slave = pty.openpty()
    env = dict(os.environ)
    env.pop("PETMATTE_MODEL", None)
    proc = subprocess.Popen([exe(), *args], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=slave, env=env)
    os.close(slave)
    chunks = []
    while True:
        try:
            chunk = os.read(master, 4096)
        except OSError:  # EIO: the other side closed
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(master)
    return proc.wait(timeout=120), b"".join(chunks).decode(errors="replace")


def run_many(argvs, **kw):
    with ThreadPoolExecutor(max_workers=4) as pool:
        return list(pool.map(lambda a: run(*a, **kw), argvs))


def rm_args(*args, model_name="red32.pt"):
    return ("remove", *args, "--model", model(model_name), "--device", "cpu", "--threads", "1")


def rm(*args, model_name="red32.pt", **kw):
    """petmatte remove with a test model on the CPU."""
    return run(*rm_args(*args, model_name=model_name), **kw)


def one_error_line(proc):
    lines = proc.stderr.decode().splitlines()
    assert len(lines) == 1, proc.stderr.decode()
    assert lines[0].startswith("petmatte: "), lines[0]
    return lines[0]


def gradient(path=None, size=32):
    """32x32 RGB: red rises 0..255 left to right (8 per column), green 40, blue 200."""
    a = np.zeros((size, size, 3), np.uint8)
    a[:, :, 0] = np.clip(np.arange(size) * 8 + 4, 0, 255).astype(np.uint8)[None, :]
    a[:, :, 1] = 40
    a[:, :, 2] = 200
    if path:
        Image.fromarray(a).save(path)
    return a


def halves(path):
    """Left half red 255 (subject), right half red 0 (background)."""
    a = np.zeros((32, 32, 3), np.uint8)
    a[:, :16] = (255, 40, 60)
    a[:, 16:] = (0, 40, 60)
    Image.fromarray(a).save(path)
    return a


def png(path_or_bytes):
    src = io.BytesIO(path_or_bytes) if isinstance(path_or_bytes, bytes) else path_or_bytes
    with Image.open(src) as im:
        assert im.format == "PNG"
        im.load()
        return im.copy()


def test_help_and_version():
    procs = run_many([("--help",), ("remove", "--help"), ("warmup", "--help"), ("info", "--help"),
                      ("--version",)])
    for p in procs:
        assert p.returncode == 0, p.stderr
        assert p.stderr == b""
    top = procs[0].stdout.decode()
    for word in ("remove", "warmup", "info", "Exit status", "setup_default_model.py"):
        assert word in top
    assert "--threshold" in procs[1].stdout.decode() and "--bg" in procs[1].stdout.decode()
    assert "--json" in procs[2].stdout.decode() and "--json" in procs[3].stdout.decode()
    assert procs[4].stdout.decode().startswith("petmatte 0.")


def test_file_default_output_and_options(tmp_path):
    src = tmp_path / "cat.photo.png"
    img = gradient(src)
    before = src.read_bytes()
    out = tmp_path / "custom.png"
    procs = run_many([
        rm_args(str(src)),                                          # default: cat.photo.cutout.png
        rm_args(str(src), "-o", str(out), "--invert"),
        rm_args(str(src), "--mask"),                                # default: cat.photo.mask.png
    ])
    for p in procs:
        assert p.returncode == 0, p.stderr
        assert p.stdout == b""
    assert src.read_bytes() == before
    red = img[:, :, 0].astype(int)

    cut = png(str(tmp_path / "cat.photo.cutout.png"))
    assert cut.mode == "RGBA" and cut.size == (32, 32)
    c = np.asarray(cut).astype(int)
    assert np.abs(c[:, :, 3] - red).max() <= 1
    assert (c[:, :, :3] == img).all()

    inv = np.asarray(png(str(out))).astype(int)
    assert np.abs(inv[:, :, 3] - (255 - red)).max() <= 1

    mask = png(str(tmp_path / "cat.photo.mask.png"))
    assert mask.mode == "L"
    assert np.abs(np.asarray(mask).astype(int) - red).max() <= 1


def test_webp_outputs_by_name_or_flag_and_png_level(tmp_path):
    src = tmp_path / "cat.png"
    img = gradient(src)
    red = img[:, :, 0]
    folder = tmp_path / "out"
    folder.mkdir()
    procs = run_many([
        rm_args(str(src), "-o", str(tmp_path / "lossless.webp")),   # the name picks lossless WebP
        rm_args(str(src), "-o", str(tmp_path / "q.webp"), "--webp-quality", "80"),
        rm_args(str(src), "--webp", "--mask"),                      # default name: cat.mask.webp
        rm_args(str(src), "-o", str(folder), "--webp-quality", "30"),  # a folder: out/cat.webp
        rm_args(str(src), "-o", str(tmp_path / "l0.png"), "--png-level", "0"),
        rm_args(str(src), "-o", str(tmp_path / "l12.png"), "--png-level", "12"),
    ])
    for p in procs:
        assert p.returncode == 0, p.stderr
    with Image.open(tmp_path / "lossless.webp") as im:
        assert im.format == "WEBP"
        c = np.asarray(im.convert("RGBA"))
    assert (c[:, :, 3] == red).all()
    assert (c[:, :, :3] == img).all()  # every pixel has alpha > 0 here
    with Image.open(tmp_path / "q.webp") as im:
        assert im.format == "WEBP"
        q = np.asarray(im.convert("RGBA")).astype(int)
    assert (q[:, :, 3] == red).all()  # lossy keeps the alpha exactly
    assert np.abs(q[:, :, :3] - img).mean() <= 8
    with Image.open(tmp_path / "cat.mask.webp") as im:
        m = np.asarray(im.convert("RGB"))
    assert all((m[:, :, k] == red).all() for k in range(3))
    with Image.open(folder / "cat.webp") as im:
        assert im.format == "WEBP" and im.size == (32, 32)
    l0, l12 = png(str(tmp_path / "l0.png")), png(str(tmp_path / "l12.png"))
    assert (np.asarray(l0) == np.asarray(l12)).all()
    assert (tmp_path / "l12.png").stat().st_size < (tmp_path / "l0.png").stat().st_size

    bad = [
        (str(src), "--png-level", "13"),
        (str(src), "--webp-quality", "101"),
        (str(src), "--webp", "-o", str(tmp_path / "x.png")),
        (str(src), "-o", str(tmp_path / "x.gif")),
    ]
    for case, p in zip(bad, run_many([rm_args(*c) for c in bad])):
        assert p.returncode == 2, (case, p.stderr)
        one_error_line(p)
    assert not (tmp_path / "x.png").exists()


def test_threshold_and_background(tmp_path):
    g = tmp_path / "g.png"
    img = gradient(g)
    h = tmp_path / "h.png"
    halves(h)
    hard, bg, named = run_many([
        rm_args(str(g), "-o", str(tmp_path / "hard.png"), "--threshold", "0.5"),
        rm_args(str(h), "-o", str(tmp_path / "bg.png"), "--bg", "00ff00"),
        rm_args(str(h), "-o", str(tmp_path / "black.png"), "--bg=black", "--invert"),
    ])
    for p in (hard, bg, named):
        assert p.returncode == 0, p.stderr

    a = np.asarray(png(str(tmp_path / "hard.png")))[:, :, 3]
    assert set(np.unique(a)) <= {0, 255}
    assert ((a == 255) == (img[:, :, 0] >= 128)).all()

    comp = png(str(tmp_path / "bg.png"))
    assert comp.mode == "RGB"
    c = np.asarray(comp).astype(int)
    assert np.abs(c[:, :15] - (255, 40, 60)).max() <= 1   # subject kept
    assert np.abs(c[:, 17:] - (0, 255, 0)).max() <= 1     # background is the colour

    k = np.asarray(png(str(tmp_path / "black.png"))).astype(int)
    assert np.abs(k[:, :15] - (0, 0, 0)).max() <= 1       # inverted: the subject goes
    assert np.abs(k[:, 17:] - (0, 40, 60)).max() <= 1


def test_stdin_to_stdout(tmp_path):
    src = tmp_path / "in.png"
    img = gradient(src)
    with ThreadPoolExecutor(max_workers=3) as pool:
        jobs = [pool.submit(rm, "-", stdin=src.read_bytes()),
                pool.submit(rm, str(src), "-o", "-", "--mask"),          # a file to stdout
                pool.submit(rm, "-", "-o", str(tmp_path / "from_stdin.png"), stdin=src.read_bytes())]
        p, q, r = (j.result() for j in jobs)
    assert p.returncode == 0, p.stderr
    out = png(p.stdout)
    assert out.mode == "RGBA"
    assert np.abs(np.asarray(out)[:, :, 3].astype(int) - img[:, :, 0]).max() <= 1
    assert q.returncode == 0 and r.returncode == 0, (q.stderr, r.stderr)
    assert png(q.stdout).mode == "L"
    assert png(str(tmp_path / "from_stdin.png")).mode == "RGBA"


def test_folder_with_a_corrupt_file(tmp_path):
    src = tmp_path / "photos"
    src.mkdir()
    gradient(src / "a.png")
    Image.fromarray(gradient()).save(src / "b.JPG", quality=95)
    (src / "c.png").write_bytes(b"\x89PNG\r\n\x1a\n this is not a png at all")
    (src / "notes.txt").write_text("not an image: ignored")
    (src / ".hidden.png").write_bytes(b"ignored")
    (src / "sub").mkdir()
    gradient(src / "sub" / "deep.png")                  # not recursive
    dst = tmp_path / "out" / "cutouts"                   # created, parents too
    p = rm(str(src), "-o", str(dst))
    assert p.returncode == 1, p.stderr
    assert p.stdout == b""
    err = p.stderr.decode().splitlines()
    assert len(err) == 2, err                            # the bad file, then the summary
    assert "c.png" in err[0] and err[0].startswith("petmatte: ")
    assert "1 of 3 images failed" in err[1]
    assert sorted(os.listdir(dst)) == ["a.png", "b.png"]  # no temporary files left either
    a = np.asarray(png(str(dst / "a.png")))
    assert np.abs(a[:, :, 3].astype(int) - gradient()[:, :, 0]).max() <= 1

    # All good, piped: quiet (no progress bar, no summary); on a terminal: a progress bar.
    (src / "c.png").unlink()
    with ThreadPoolExecutor(max_workers=2) as pool:
        piped = pool.submit(rm, str(src), "-o", str(dst), "--mask")
        tty = pool.submit(run_on_tty, *rm_args(str(src), "-o", str(tmp_path / "tty")))
        q, (tty_rc, tty_err) = piped.result(), tty.result()
    assert q.returncode == 0 and q.stderr == b"", q.stderr
    assert png(str(dst / "a.png")).mode == "L"
    assert tty_rc == 0, tty_err
    assert "2/2" in tty_err and "\r" in tty_err and "2 images written" in tty_err


def test_failed_inference_does_not_stop_a_batch(tmp_path):
    """throws_on_flat.pt raises on a single-colour image: that file fails, the next runs."""
    flat = tmp_path / "flat.png"
    Image.new("RGB", (32, 32), (90, 90, 90)).save(flat)
    good = tmp_path / "good.png"
    gradient(good)
    p = rm(str(flat), str(good), "-o", str(tmp_path / "out"), model_name="throws_on_flat.pt")
    assert p.returncode == 1, p.stderr
    assert "flat.png" in p.stderr.decode().splitlines()[0]
    assert os.listdir(tmp_path / "out") == ["good.png"]


def test_never_overwrites_an_input(tmp_path):
    a = tmp_path / "a.png"
    gradient(a)
    before = a.read_bytes()
    os.symlink(a, tmp_path / "link.png")
    os.link(a, tmp_path / "hard.png")
    # A batch where x.jpg -> x.png would replace the input x.png: both refused, y written.
    d = tmp_path / "batch"
    d.mkdir()
    Image.fromarray(gradient()).save(d / "x.jpg")
    gradient(d / "x.png")
    gradient(d / "y.bmp")
    x_before = (d / "x.png").read_bytes()

    def stdin_from_output():
        with open(a, "rb") as f:
            return subprocess.run([exe(), "remove", "-", "-o", str(a), "--model", model()], stdin=f,
                                  capture_output=True, timeout=120)

    env = {"PETMATTE_MODEL": model()}
    with ThreadPoolExecutor(max_workers=4) as pool:
        refused = [pool.submit(run, *args, env=env) for args in [
            ("remove", str(a), "-o", str(a)),
            ("remove", str(a), "-o", str(tmp_path / "link.png")),
            ("remove", str(a), "-o", str(tmp_path / "hard.png")),
            ("remove", str(d), "-o", str(d)),              # output folder = input folder
        ]]
        refused.append(pool.submit(stdin_from_output))
        batch = pool.submit(rm, str(d / "x.jpg"), str(d / "x.png"), str(d / "y.bmp"), "-o", str(d))
        refused = [f.result() for f in refused]
        batch = batch.result()
    for p in refused:
        assert p.returncode == 2, p.stderr
        assert "input" in one_error_line(p)
    assert a.read_bytes() == before

    assert batch.returncode == 1, batch.stderr
    assert (d / "x.png").read_bytes() == x_before
    assert (d / "y.png").exists()
    assert "never overwritten" in batch.stderr.decode()


def test_bad_arguments(tmp_path):
    img = tmp_path / "i.png"
    gradient(img)
    folder = tmp_path / "f"
    folder.mkdir()
    m = model()
    cases = [
        ("remove", str(img), "--bogus"),
        ("remove", str(img), "--threshold", "1.5"),
        ("remove", str(img), "--bg", "no-such-colour"),
        ("remove", str(img), "--mask", "--bg", "white"),
        ("remove", str(img), "--precision", "fp8"),
        ("remove", str(img), "-o", str(tmp_path / "out.jpg")),
        ("remove", str(tmp_path / "nope.png")),
        ("remove", str(folder)),                               # a folder needs -o
        ("remove", str(img), "--device", "tpu"),              # the library's message
        ("remove", str(img), "--model"),
        ("frobnicate",),
        (),
    ]
    procs = run_many([c + ("--model", m) if c and c != ("remove", str(img), "--model") else c
                      for c in cases], env={"PETMATTE_MODEL": m})
    for case, p in zip(cases, procs):
        assert p.returncode == 2, (case, p.returncode, p.stderr)
        assert p.stdout == b"", case
        one_error_line(p)
    assert "tpu" in procs[8].stderr.decode()
    assert not (tmp_path / "out.jpg").exists()


def test_model_and_device_errors(tmp_path):
    img = tmp_path / "i.png"
    gradient(img)
    with ThreadPoolExecutor(max_workers=4) as pool:
        env_missing = pool.submit(run, "remove", str(img), env={"PETMATTE_MODEL": str(tmp_path / "gone.pt")})
        procs = run_many([
            ("remove", str(img), "--model", str(tmp_path / "missing.pt")),
            ("remove", str(img), "--model", model("not_torchscript.pt")),
            ("info", "--model", model("wrong_shape.pt")),
            ("warmup", "--model", model("truncated.pt"), "--json"),
            ("remove", str(img), "--model", model(), "--device", "cuda:999"),  # not on any host
        ])
        env_missing = env_missing.result()
    for p in procs:
        assert p.returncode == 3, p.stderr
        one_error_line(p)
    assert "missing.pt" in procs[0].stderr.decode()
    assert "cuda:999" in procs[4].stderr.decode()
    failed = json.loads(procs[3].stdout)
    assert failed["state"] == "failed" and failed["error"]["message"]
    assert not (tmp_path / "i.cutout.png").exists()
    assert env_missing.returncode == 3
    assert "gone.pt" in one_error_line(env_missing)


def test_default_model_next_to_the_build_tree(tmp_path):
    """<exe dir>/../../models/isnet-general.pt, as in an in-tree build."""
    binary = tmp_path / "build" / "examples" / "petmatte"
    binary.parent.mkdir(parents=True)
    shutil.copy(exe(), binary)
    img = tmp_path / "i.png"
    gradient(img)
    missing = run("remove", str(img), binary=str(binary))
    if os.path.exists("/usr/local/share/petmatte/models/isnet-general.pt"):
        pytest.skip("an installed default model exists")
    assert missing.returncode == 3
    line = one_error_line(missing)
    assert str(tmp_path / "models" / "isnet-general.pt") in line
    assert "setup_default_model.py" in line

    (tmp_path / "models").mkdir()
    os.symlink(os.path.abspath(model()), tmp_path / "models" / "isnet-general.pt")
    found = run("info", "--json", "--device", "cpu", binary=str(binary))
    assert found.returncode == 0, found.stderr
    assert json.loads(found.stdout)["model"]["name"] == "red32"


def test_warmup_and_info_json():
    warm, info, text, random_info = run_many([
        ("warmup", "--json", "--model", model("slow96.pt"), "--device", "cpu", "--tune", "warmup_min_runs=3"),
        ("info", "--json", "--model", model(), "--device", "cpu"),
        ("warmup", "--model", model(), "--device", "cpu"),
        ("info", "--model", model("red32_random.pt"), "--device", "cpu", "--json"),
    ])
    for p in (warm, info, text, random_info):
        assert p.returncode == 0, p.stderr
    w = json.loads(warm.stdout)
    assert w["state"] == "ready" and w["device"] == "cpu" and w["precision"] == "fp32"
    assert w["model_name"] == "slow96"
    assert w["warmup_runs"] >= 3
    for phase in ("open_ms", "load_ms", "warmup_ms"):
        assert w["phases"][phase] >= 0
    assert w["phases"]["load_ms"] > 0 and w["phases"]["warmup_ms"] > 0
    assert w["total_ms"] >= w["phases"]["load_ms"]
    assert len(w["warmup_run_ms"]) == w["warmup_runs"]
    assert all(ms is None or ms > 0 for ms in w["warmup_run_ms"])
    assert w["warmup_run_ms"][-1] == pytest.approx(w["last_warmup_run_ms"], abs=1e-3)

    i = json.loads(info.stdout)
    assert i["model"]["name"] == "red32"
    assert (i["model"]["input_width"], i["model"]["input_height"]) == (32, 32)
    assert i["model"]["random_weights"] is False
    assert i["device"] == "cpu" and i["library_version"] == i["petmatte_version"]
    assert json.loads(random_info.stdout)["model"]["random_weights"] is True

    lines = text.stdout.decode().splitlines()
    assert [l.split()[0] for l in lines[:6]] == ["model", "open", "load", "warm-up", "runs", "ready"]
    # red32 on the CPU warms with one run, which is all of the warm-up's time
    warm_up_ms = float(lines[3].split()[1])
    assert lines[3].split()[3:5] == ["1", "run,"]
    run_ms = lines[4].split()
    assert len(run_ms) == 3 and run_ms[2] == "ms"
    assert 0 < float(run_ms[1]) <= warm_up_ms + 0.05
    assert "cpu" in text.stdout.decode()


def test_random_weights_note(tmp_path):
    img = tmp_path / "i.png"
    gradient(img)
    p, q = run_many([rm_args(str(img), model_name="red32_random.pt"),
                     rm_args(str(img), "-q", "-o", str(tmp_path / "q.png"), model_name="red32_random.pt")])
    assert p.returncode == 0
    assert "random weights" in one_error_line(p)
    assert q.returncode == 0 and q.stderr == b""


def test_blurred_picture_and_overlay_backgrounds(tmp_path):
    """--bg blur[:R], --bg-image and --overlay[=COLOR]: the subject (left half, red 255)
    is kept exactly; behind it the photo blurred, the picture covering the frame, or
    the photo tinted."""
    src = tmp_path / "h.png"
    a = halves(src)
    picture = tmp_path / "pic.png"
    Image.fromarray(np.full((60, 20, 3), (10, 200, 30), np.uint8)).save(picture)  # tall: cropped
    outs = {k: tmp_path / f"{k}.png" for k in ("blur", "blur5", "image", "overlay", "tint")}
    procs = run_many([
        rm_args(str(src), "-o", str(outs["blur"]), "--bg", "blur"),
        rm_args(str(src), "-o", str(outs["blur5"]), "--bg", "blur:5"),
        rm_args(str(src), "-o", str(outs["image"]), "--bg-image", str(picture)),
        rm_args(str(src), "-o", str(outs["overlay"]), "--overlay"),
        rm_args(str(src), "-o", str(outs["tint"]), "--overlay=#0000FF", "--overlay-opacity", "0.25"),
    ])
    for p in procs:
        assert p.returncode == 0, p.stderr
    got = {k: np.asarray(png(v)).astype(int) for k, v in outs.items()}
    for k, g in got.items():
        assert g.shape == (32, 32, 3), k
        assert (g[:, :16] == a[:, :16]).all(), k  # the subject (matte 255), exactly
    # Blur: green and blue are flat in the photo and stay so; the subject's red bleeds
    # into the background, fading with distance, further with a wider blur.
    for k in ("blur", "blur5"):
        assert (got[k][:, 16:, 1] == 40).all() and (got[k][:, 16:, 2] == 60).all(), k
        red = got[k][16, 16:, 0]
        assert red[0] > 0 and (np.diff(red) <= 0).all(), (k, red)
    assert got["blur5"][16, 22, 0] > got["blur"][16, 22, 0]
    assert (got["image"][:, 20:] == (10, 200, 30)).all()
    overlay = np.floor(a[:, 20:] * 0.5 + np.array([0x78, 0xFF, 0x9B]) * 0.5 + 0.5)
    assert (np.abs(got["overlay"][:, 20:] - overlay) <= 1).all()
    tint = np.floor(a[:, 20:] * 0.75 + np.array([0, 0, 255]) * 0.25 + 0.5)
    assert (np.abs(got["tint"][:, 20:] - tint) <= 1).all()


def test_background_option_mistakes_are_usage_errors(tmp_path):
    src = tmp_path / "h.png"
    halves(src)
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"not a picture")
    procs = run_many([
        rm_args(str(src), "--bg", "blur:x"),
        rm_args(str(src), "--bg", "blur:300"),
        rm_args(str(src), "--bg", "red", "--overlay"),
        rm_args(str(src), "--bg-image", str(src), "--mask"),
        rm_args(str(src), "--bg-image", str(tmp_path / "missing.png")),
        rm_args(str(src), "--overlay=nocolour"),
        rm_args(str(src), "--overlay-opacity", "2"),
        rm_args(str(src), "-o", str(tmp_path / "x.png"), "--bg-image", str(bad)),
    ])
    for p in procs[:-1]:
        assert p.returncode == 2, p.stderr
        assert "see 'petmatte remove --help'" in one_error_line(p)
    assert "blur[:RADIUS]" in one_error_line(procs[0])
    assert "exclude each other" in one_error_line(procs[2])
    assert "--mask excludes" in one_error_line(procs[3])
    assert "missing.png" in one_error_line(procs[4])
    # A picture that does not decode fails the image (exit 1), with the reason.
    assert procs[-1].returncode == 1
    assert "background image" in one_error_line(procs[-1])
    assert not (tmp_path / "x.png").exists()
