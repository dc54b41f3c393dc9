"""petmatte remove FOLDER -o OUTDIR --watch: images that appear are cut out once
complete (closed after writing, or moved in), until SIGINT or SIGTERM.

Images are 32x32 halves (red 255 | red 0) for red32.pt, so a cut-out's alpha is exactly
255 on the left and 0 on the right: a file read half-way would fail to decode instead.
"""
import os
import queue
import signal
import subprocess
import threading
import time

import numpy as np
from PIL import Image

from test_cli import exe, halves, model, png

WAIT = 120  # seconds: a hang fails the test instead of blocking the suite


class Watcher:
    def __init__(self, src, out, *extra):
        env = dict(os.environ)
        env.pop("PETMATTE_MODEL", None)
        self.proc = subprocess.Popen(
            [exe(), "remove", str(src), "-o", str(out), "--watch", "--model", model(), "--device", "cpu",
             "--threads", "1", *extra],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
        self.lines = queue.Queue()
        self.seen = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for raw in self.proc.stderr:
            self.lines.put(raw.decode().rstrip("\n"))
        self.lines.put(None)

    def wait_for(self, text):
        """Reads stderr until a line containing text; returns that line."""
        for line in self.seen:
            if text in line:
                return line
        while True:
            line = self.lines.get(timeout=WAIT)
            assert line is not None, f"petmatte ended before printing {text!r}: {self.seen}"
            self.seen.append(line)
            if text in line:
                return line

    def stop(self, sig):
        self.proc.send_signal(sig)
        status = self.proc.wait(timeout=WAIT)
        while True:
            line = self.lines.get(timeout=WAIT)
            if line is None:
                return status, self.seen
            self.seen.append(line)


def alpha_is_halves(path):
    im = png(str(path))
    assert im.mode == "RGBA" and im.size == (32, 32)
    a = np.asarray(im)[..., 3]
    return bool(np.all(a[:, :16] == 255) and np.all(a[:, 16:] == 0))


def test_watch_cuts_out_images_written_slowly_or_moved_in_until_sigint(tmp_path):
    src, out, staging = tmp_path / "in", tmp_path / "out", tmp_path / "staging"
    src.mkdir()
    staging.mkdir()
    halves(str(src / "before.png"))
    halves(str(staging / "moved.png"))
    halves(str(staging / "whole.png"))
    whole = (staging / "whole.png").read_bytes()

    w = Watcher(src, out)
    w.wait_for("watching")
    assert alpha_is_halves(out / "before.png")  # the images already there come first

    # Written in two pieces with a pause between: must not be read half-way.
    with open(src / "slow.png", "wb") as f:
        f.write(whole[: len(whole) // 2])
        f.flush()
        time.sleep(0.5)
        f.write(whole[len(whole) // 2:])
    w.wait_for("slow.png ->")
    os.rename(staging / "moved.png", src / "moved.png")
    w.wait_for("moved.png ->")
    (src / "notes.txt").write_text("not an image")
    (src / ".hidden.png").write_bytes(whole)

    status, lines = w.stop(signal.SIGINT)
    assert status == 0, lines
    assert alpha_is_halves(out / "slow.png") and alpha_is_halves(out / "moved.png")
    assert sorted(os.listdir(out)) == ["before.png", "moved.png", "slow.png"]
    assert not any("failed" in ln and ", 0 failed" not in ln for ln in lines), lines
    summary = lines[-1]
    assert "stopped watching" in summary and "(SIGINT)" in summary, lines
    assert "2 images written" in summary and "0 failed" in summary, summary


def test_watch_reports_a_bad_image_and_exits_1_on_sigterm(tmp_path):
    src, out = tmp_path / "in", tmp_path / "out"
    src.mkdir()
    w = Watcher(src, out)
    w.wait_for("watching")
    (src / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n but then nothing valid")
    error = w.wait_for("broken.png")
    assert error.startswith("petmatte: ") and "broken.png" in error
    halves(str(src / "fine.png"))
    w.wait_for("fine.png ->")
    status, lines = w.stop(signal.SIGTERM)
    assert status == 1, lines
    assert "(SIGTERM)" in lines[-1] and "1 image written" in lines[-1] and "1 failed" in lines[-1], lines
    assert os.listdir(out) == ["fine.png"]


def test_watch_needs_one_folder_and_an_output_folder(tmp_path):
    from test_cli import one_error_line, run_many, rm_args
    img = tmp_path / "a.png"
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(img)
    no_out, a_file = run_many([rm_args(str(tmp_path), "--watch"), rm_args(str(img), "-o", str(tmp_path / "o"), "--watch")])
    for p in (no_out, a_file):
        assert p.returncode == 2
        assert "--watch takes one folder and -o OUTDIR" in one_error_line(p)
