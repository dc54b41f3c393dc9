"""petmatte on videos and raw frame pipes, with clips made in code (clips.py).

red32.pt's matte is the red channel: the clip's square (red 255) is the subject and
its blue background (red 0) goes, so every output's alpha is known frame by frame.
Checks decode what petmatte wrote: frame count, size, timestamps, alpha, audio.
"""
import os
import subprocess
import threading

import numpy as np
import pytest

av = pytest.importorskip("av")

import clips  # noqa: E402
from test_cli import exe, model, one_error_line, rm_args, run, run_many, run_on_tty  # noqa: E402

SUBJECT_MIN = 235  # alpha well inside the square (video codecs are lossy)
BACKGROUND_MAX = 20  # alpha far from it


@pytest.fixture(scope="module")
def clip_dir(tmp_path_factory):
    proc = run("--version")
    if b"video: libavformat" not in proc.stdout:
        pytest.skip("petmatte built without video (FFmpeg's libraries)")
    d = tmp_path_factory.mktemp("clips")
    clips.make_clip(str(d / "clip.mp4"))
    clips.make_clip(str(d / "silent.mp4"), audio=False)
    return d


def check_alpha(frames, channel=3):
    """The square is opaque and the background transparent in every frame, and the
    square moves as in the input (so frames are in order)."""
    y = clips.square_y() + clips.SQUARE // 2
    for i, f in enumerate(frames):
        a = f[..., channel] if f.ndim == 3 else f
        x = clips.square_x(i)
        assert a[y, x + clips.SQUARE // 2] >= SUBJECT_MIN, (i, a[y])
        assert a[2, 2] <= BACKGROUND_MAX and a[y, clips.WIDTH - 3] <= BACKGROUND_MAX, (i, a[y])
        left_edge = int(np.argmax(a[y] > 128))
        assert abs(left_edge - x) <= 1, (i, left_edge, x)


def test_video_outputs_keep_alpha_frames_timestamps_and_audio(clip_dir):
    clip = str(clip_dir / "clip.mp4")
    d = clip_dir
    procs = run_many([
        rm_args(clip),  # clip.cutout.webm next to it
        rm_args(clip, "-o", str(d / "alpha.mov")),
        rm_args(clip, "-o", str(d / "green.mp4"), "--bg", "green"),
        rm_args(clip, "--mask"),  # clip.mask.mp4
        rm_args(clip, "--video-format", "png", "-o", str(d / "frames")),
        rm_args(clip, "-o", str(d / "batched.mov"), "--max-batch", "3"),
        rm_args(str(d / "silent.mp4"), "-o", str(d / "silent.webm")),
    ])
    for p in procs:
        assert p.returncode == 0, p.stderr.decode()
    in_times = clips.input_times(clip)
    assert len(in_times) == clips.FRAMES
    in_audio = clips.audio_seconds(clip)

    # WebM VP9 with alpha; AAC cannot go in WebM, so the audio is re-encoded to Opus.
    assert b"audio re-encoded from aac to libopus" in procs[0].stderr
    frames, times, info = clips.read_video(str(d / "clip.cutout.webm"))
    assert (info["codec"], info["width"], info["height"]) == ("vp9", clips.WIDTH, clips.HEIGHT)
    assert info["rate"] == clips.FPS
    assert len(frames) == clips.FRAMES
    check_alpha(frames)
    # Opus's encoder delay may shift the whole file by a few milliseconds.
    assert np.allclose(times, in_times, atol=0.01), (times, in_times)
    assert [c for c, _ in info["audio"]] == ["opus"]
    assert abs(clips.audio_seconds(str(d / "clip.cutout.webm")) - in_audio) < 0.03

    # MOV ProRes 4444 with alpha; AAC copied as it was.
    frames, times, info = clips.read_video(str(d / "alpha.mov"))
    assert info["codec"] == "prores" and info["pix_fmt"].startswith("yuva444p")
    assert len(frames) == clips.FRAMES
    check_alpha(frames)
    assert np.allclose(times, in_times, atol=1e-6)
    assert info["audio"] == [("aac", clips.AUDIO_RATE)]
    assert clips.audio_seconds(str(d / "alpha.mov")) == in_audio

    # H.264 composite over green: the square stays, the background is green.
    frames, times, info = clips.read_video(str(d / "green.mp4"), with_alpha=False)
    assert info["codec"] == "h264" and len(frames) == clips.FRAMES
    assert np.allclose(times, in_times, atol=1e-6)
    y = clips.square_y() + 8
    for i, f in enumerate(frames):
        assert np.all(np.abs(f[2, 2].astype(int) - (0, 255, 0)) <= 12), f[2, 2]
        assert np.all(np.abs(f[y, clips.square_x(i) + 8].astype(int) - (255, 60, 40)) <= 12)
    assert info["audio"] == [("aac", clips.AUDIO_RATE)]
    assert clips.audio_seconds(str(d / "green.mp4")) == in_audio

    # The mask as H.264: gray, white on the square.
    frames, times, info = clips.read_video(str(d / "clip.mask.mp4"), with_alpha=False)
    assert len(frames) == clips.FRAMES
    check_alpha(frames, channel=0)
    assert np.all(frames[3][..., 0] == frames[3][..., 1])

    # Numbered PNG frames, RGBA.
    names = sorted(os.listdir(d / "frames"))
    assert names == [f"{i:06d}.png" for i in range(1, clips.FRAMES + 1)]
    from PIL import Image
    pngs = []
    for name in names:
        with Image.open(d / "frames" / name) as im:
            assert im.mode == "RGBA" and im.size == (clips.WIDTH, clips.HEIGHT)
            pngs.append(np.asarray(im))
    check_alpha(pngs)

    # Several frames in flight: same frames, same order.
    frames, times, _ = clips.read_video(str(d / "batched.mov"))
    assert len(frames) == clips.FRAMES
    check_alpha(frames)
    assert np.allclose(times, in_times, atol=1e-6)

    # Without audio, WebM keeps the timestamps to its millisecond clock.
    frames, times, info = clips.read_video(str(d / "silent.webm"))
    assert info["audio"] == [] and len(frames) == clips.FRAMES
    assert np.allclose(times, in_times, atol=0.001)


def test_video_output_mistakes_are_usage_errors(clip_dir, tmp_path):
    clip = str(clip_dir / "clip.mp4")
    image = str(tmp_path / "photo.png")
    from PIL import Image
    Image.fromarray(clips.frame_rgb(0)).save(image)
    procs = run_many([
        rm_args(clip, "-o", str(tmp_path / "a.mp4")),  # H.264 has no alpha
        rm_args(clip, "-o", str(tmp_path / "a.avi")),
        rm_args(clip, "-o", "-"),
        rm_args(clip, "-o", str(tmp_path / "a.webm"), "--video-format", "mov"),
        rm_args(clip, "--video-format", "gif"),
        rm_args(image, "--video-format", "webm"),
        rm_args(clip, "-o", str(tmp_path / "missing" / "a.webm")),
        rm_args(clip, image, "-o", str(tmp_path / "several")),
    ])
    for p in procs:
        assert p.returncode == 2, p.stderr.decode()
        one_error_line(p)
    assert b"no alpha" in procs[0].stderr
    assert b".webm, .mov or .mp4" in procs[1].stderr
    assert b"stdout" in procs[2].stderr
    assert b"disagree" in procs[3].stderr
    assert b"one per command" in procs[7].stderr
    assert os.listdir(tmp_path) == ["photo.png"]


def test_truncated_video_names_the_frame_and_keeps_the_frames_before_it(clip_dir, tmp_path):
    data = (clip_dir / "clip.mp4").read_bytes()
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(data[: len(data) * 6 // 10])
    garbage = tmp_path / "garbage.mp4"
    garbage.write_bytes(b"not a video at all" * 10)
    out = tmp_path / "cut.mov"
    p, g = run_many([rm_args(str(cut), "-o", str(out)), rm_args(str(garbage), "-o", str(tmp_path / "g.webm"))])
    assert p.returncode == 1
    line = one_error_line(p)
    assert "frame " in line and "truncated" in line, line
    broke_at = int(line.split("frame ")[1].split(":")[0])
    assert 1 < broke_at < clips.FRAMES
    # The output is complete (its trailer written) and holds every frame before the break.
    frames, times, info = clips.read_video(str(out))
    assert len(frames) == broke_at - 1
    check_alpha(frames)
    assert info["audio"] == [("aac", clips.AUDIO_RATE)]

    assert g.returncode == 1
    assert "cannot open as a video" in one_error_line(g)
    assert not (tmp_path / "g.webm").exists()
    assert sorted(os.listdir(tmp_path)) == ["cut.mov", "cut.mp4", "garbage.mp4"]  # no temporary left


def test_video_progress_shows_frames_and_fps_on_a_terminal(clip_dir, tmp_path):
    status, shown = run_on_tty(*rm_args(str(clip_dir / "clip.mp4"), "-o", str(tmp_path / "p.webm")))
    assert status == 0, shown
    assert f"{clips.FRAMES}/{clips.FRAMES} frames" in shown
    assert " fps" in shown
    assert f"{clips.FRAMES} frames written to" in shown


# ------------------------------------------------------------------ frames pipe

def frames_args(*args):
    return ("frames", "--model", model(), "--device", "cpu", "--threads", "1", *args)


def raw_clip(n):
    return b"".join(clips.frame_rgb(i).tobytes() for i in range(n))


def test_frames_pipe_turns_rgb_frames_into_rgba_mask_and_composite():
    size = f"{clips.WIDTH}x{clips.HEIGHT}"
    raw = raw_clip(5)
    rgba, gray, comp, batched = run_many([
        frames_args("--size", size),
        frames_args("--size", size, "--mask"),
        frames_args("--size", size, "--bg", "white"),
        frames_args("--size", size, "--max-batch", "2"),
    ], stdin=raw)
    for p in (rgba, gray, comp, batched):
        assert p.returncode == 0, p.stderr.decode()
    px = clips.WIDTH * clips.HEIGHT
    assert len(rgba.stdout) == 5 * px * 4 and len(gray.stdout) == 5 * px and len(comp.stdout) == 5 * px * 3
    out = np.frombuffer(rgba.stdout, np.uint8).reshape(5, clips.HEIGHT, clips.WIDTH, 4)
    check_alpha(list(out))
    # Raw frames are exact: the colour channels are the input's own pixels.
    src = np.frombuffer(raw, np.uint8).reshape(5, clips.HEIGHT, clips.WIDTH, 3)
    assert np.array_equal(out[..., :3], src)
    masks = np.frombuffer(gray.stdout, np.uint8).reshape(5, clips.HEIGHT, clips.WIDTH)
    assert np.array_equal(masks, out[..., 3])
    comps = np.frombuffer(comp.stdout, np.uint8).reshape(5, clips.HEIGHT, clips.WIDTH, 3)
    assert tuple(comps[0, 2, 2]) == (255, 255, 255)
    assert batched.stdout == rgba.stdout


def test_frames_pipe_reads_short_pieces_and_reports_a_cut_frame():
    size = f"{clips.WIDTH}x{clips.HEIGHT}"
    frame = clips.WIDTH * clips.HEIGHT * 3
    raw = raw_clip(3) + b"\x00" * (frame // 2)
    proc = subprocess.Popen([exe(), *frames_args("--size", size)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)

    got = {}
    readers = [threading.Thread(target=lambda k=k, f=f: got.__setitem__(k, f.read()))
               for k, f in (("out", proc.stdout), ("err", proc.stderr))]
    for r in readers:
        r.start()
    # Pieces that straddle frame boundaries, as a pipe delivers them.
    for at in range(0, len(raw), 1000):
        proc.stdin.write(raw[at:at + 1000])
        proc.stdin.flush()
    proc.stdin.close()
    proc.wait(timeout=120)
    for r in readers:
        r.join()
    out, err = got["out"], got["err"]
    assert proc.returncode == 1
    lines = err.decode().splitlines()
    assert len(lines) == 1 and "frame 4: stdin ended inside it" in lines[0], lines
    assert "3 frames written" in lines[0]
    assert len(out) == 3 * clips.WIDTH * clips.HEIGHT * 4  # the whole frames before it


def test_frames_pipe_usage_errors_and_empty_input():
    missing, bad, empty = run_many([frames_args(), frames_args("--size", "64by48"),
                                    frames_args("--size", "64x48", "-q")], stdin=b"")
    assert missing.returncode == 2 and "--size WxH is required" in one_error_line(missing)
    assert bad.returncode == 2 and "is not WxH" in one_error_line(bad)
    assert empty.returncode == 0 and empty.stdout == b"" and empty.stderr == b""


def test_video_keeps_the_rotation_of_a_portrait_clip(clip_dir, tmp_path):
    """Phones store portrait clips sideways with a rotation in the track header (tkhd)."""
    import struct
    identity = struct.pack(">9i", 0x10000, 0, 0, 0, 0x10000, 0, 0, 0, 0x40000000)
    rotated = struct.pack(">9i", 0, 0x10000, 0, -0x10000, 0, 0, 0, 0, 0x40000000)
    data = (clip_dir / "silent.mp4").read_bytes()
    at = data.find(identity, data.find(b"tkhd"))
    assert at > 0
    (tmp_path / "portrait.mp4").write_bytes(data[:at] + rotated + data[at + len(identity):])
    p = run(*rm_args(str(tmp_path / "portrait.mp4"), "-o", str(tmp_path / "portrait.mov")))
    assert p.returncode == 0, p.stderr.decode()
    out = (tmp_path / "portrait.mov").read_bytes()
    assert rotated in out[out.find(b"tkhd"):]


def test_a_frame_the_model_fails_on_stops_the_video_there(tmp_path):
    """throws_on_black.pt refuses black frames: frames 7.. are black, so the run stops
    at frame 7, also with several frames in flight, and frames 1..6 are written."""
    clip = str(tmp_path / "goes_black.mkv")
    clips.make_lossless_clip(clip, frames=10, black_from=6)
    procs = run_many([
        rm_args(clip, "-o", str(tmp_path / "one.webm"), model_name="throws_on_black.pt"),
        rm_args(clip, "-o", str(tmp_path / "three.webm"), "--max-batch", "3", model_name="throws_on_black.pt"),
    ])
    for p, name in zip(procs, ("one.webm", "three.webm")):
        assert p.returncode == 1
        line = one_error_line(p)
        assert "frame 7: " in line and "black image" in line and "6 frames before it" in line, line
        frames, _, _ = clips.read_video(str(tmp_path / name))
        assert len(frames) == 6
        check_alpha(frames)


def test_sigint_finishes_the_frames_so_far_into_a_complete_file(tmp_path):
    """Interrupted once frames are coming out (seen on the progress line), the run
    stops, finishes the file with every frame written so far, and exits 1."""
    import pty
    import signal
    clip = str(tmp_path / "long.mp4")
    clips.make_clip(clip, frames=1500, audio=False)
    out = tmp_path / "long.mov"
    master, slave = pty.openpty()
    env = dict(os.environ)
    env.pop("PETMATTE_MODEL", None)
    proc = subprocess.Popen([exe(), *rm_args(clip, "-o", str(out), model_name="slow96.pt")],
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=slave, env=env)
    os.close(slave)
    shown, signalled = b"", False
    while True:
        try:
            chunk = os.read(master, 4096)
        except OSError:  # EIO: the other side closed
            break
        if not chunk:
            break
        shown += chunk
        if not signalled and b" frames" in shown:
            proc.send_signal(signal.SIGINT)
            signalled = True
    os.close(master)
    assert proc.wait(timeout=120) == 1, shown
    text = shown.decode(errors="replace")
    assert "stopped by signal 2 after " in text, text
    done = int(text.split("stopped by signal 2 after ")[1].split(" ")[0])
    assert 0 < done < 1500
    frames, _, info = clips.read_video(str(out))
    assert len(frames) == done and info["codec"] == "prores"
    assert [n for n in os.listdir(tmp_path) if n.startswith(".")] == []  # no temporary left


def test_frames_an_edit_list_hides_are_not_taken_for_a_cut(tmp_path):
    """An MP4 whose first 3 frames sit before 0 (an edit list hides them, as in a
    trimmed clip) lists 12 samples and shows 9: complete, not truncated."""
    clip = str(tmp_path / "trimmed.mp4")
    clips.make_clip(clip, audio=False, start_pts=-3)
    shown = clips.input_times(clip)
    assert len(shown) == clips.FRAMES - 3
    p = run(*rm_args(clip, "-o", str(tmp_path / "trimmed.mov")))
    assert p.returncode == 0, p.stderr.decode()
    frames, times, _ = clips.read_video(str(tmp_path / "trimmed.mov"))
    assert len(frames) == len(shown)
    assert np.allclose(times, shown, atol=1e-6)


def test_video_composites_take_every_background_kind(clip_dir, tmp_path):
    """--bg blur, --bg-image and --overlay make H.264 composites as --bg COLOR does: the
    subject keeps its colour, the background is the asked-for one."""
    clip = str(clip_dir / "clip.mp4")
    picture = tmp_path / "yellow.ppm"
    picture.write_bytes(b"P6 8 6 255\n" + bytes([255, 255, 0]) * 48)
    outs = {"blur": tmp_path / "blur.mp4", "image": tmp_path / "image.mp4", "overlay": tmp_path / "overlay.mp4"}
    procs = run_many([
        rm_args(clip, "-o", str(outs["blur"]), "--bg", "blur:2"),
        rm_args(clip, "-o", str(outs["image"]), "--bg-image", str(picture)),
        rm_args(clip, "-o", str(outs["overlay"]), "--overlay=#00ff00", "--overlay-opacity", "0.5"),
    ])
    for p in procs:
        assert p.returncode == 0, p.stderr.decode()
    y = clips.square_y() + clips.SQUARE // 2
    backgrounds = {}
    for kind, path in outs.items():
        frames, _, info = clips.read_video(str(path), with_alpha=False)
        assert info["codec"] == "h264" and len(frames) == clips.FRAMES
        f = frames[0].astype(int)
        x = clips.square_x(0) + clips.SQUARE // 2
        assert f[y, x, 0] > 200 and f[y, x, 1] < 100, (kind, f[y, x])  # the red square
        backgrounds[kind] = f[2, 2]
    assert backgrounds["image"][0] > 200 and backgrounds["image"][1] > 200, backgrounds  # yellow
    assert backgrounds["overlay"][1] > 90, backgrounds  # tinted towards green
    assert backgrounds["blur"][1] < 60, backgrounds  # the clip's own background, blurred
