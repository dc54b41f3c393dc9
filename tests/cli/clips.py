"""Tiny test clips made in code with FFmpeg's libraries (Debian's python3-av), and
readers for what petmatte writes.

The clip: a 16x16 square with red 255 moving right 2 pixels a frame over a blue
background (red 0), with a 440 Hz tone. With the red32.pt test model (matte = red
channel) the expected alpha of every frame is known: about 255 on the square, about 0
elsewhere.
"""
import fractions
import math

import av
import numpy as np

WIDTH, HEIGHT, FPS, FRAMES = 64, 48, 12, 12
SQUARE = 16
AUDIO_RATE = 48000


def square_x(i):
    return 4 + 2 * i


def square_y():
    return 16


def frame_rgb(i):
    a = np.zeros((HEIGHT, WIDTH, 3), np.uint8)
    a[:, :] = (0, 30, 200)
    x, y = square_x(i), square_y()
    a[y:y + SQUARE, x:x + SQUARE] = (255, 60, 40)
    return a


def encode_video(out, vs, rgb_frames, fps, start_pts=0):
    """Encodes RGB arrays as frames start_pts, start_pts + 1, ... (time base 1/fps) into
    the video stream vs of out, then flushes the encoder."""
    for i, a in enumerate(rgb_frames):
        f = av.VideoFrame.from_ndarray(a, format="rgb24")
        f.pts = start_pts + i
        f.time_base = fractions.Fraction(1, fps)
        for p in vs.encode(f):
            out.mux(p)
    for p in vs.encode():
        out.mux(p)


def make_clip(path, frames=FRAMES, audio=True, fps=FPS, faststart=True, start_pts=0):
    """H.264 + AAC in MP4 (moov first with faststart, so a cut file still opens)."""
    options = {"movflags": "+faststart"} if faststart and path.endswith(".mp4") else {}
    out = av.open(path, "w", options=options)
    vs = out.add_stream("libx264", rate=fps)
    vs.width, vs.height, vs.pix_fmt = WIDTH, HEIGHT, "yuv420p"
    vs.options = {"crf": "1", "preset": "ultrafast", "bf": "0"}
    vs.codec_context.time_base = fractions.Fraction(1, fps)
    aus = None
    if audio:
        aus = out.add_stream("aac", rate=AUDIO_RATE)
        aus.layout = "mono"
    encode_video(out, vs, (frame_rgb(i) for i in range(frames)), fps, start_pts)
    if aus is not None:
        n = AUDIO_RATE * frames // fps
        t = np.arange(n) / AUDIO_RATE
        tone = (0.3 * np.sin(2 * math.pi * 440 * t)).astype(np.float32)
        step = 1024
        for s in range(0, n, step):
            chunk = tone[s:s + step]
            af = av.AudioFrame.from_ndarray(chunk[None, :], format="flt", layout="mono")
            af.sample_rate = AUDIO_RATE
            af.pts = s
            af.time_base = fractions.Fraction(1, AUDIO_RATE)
            for p in aus.encode(af):
                out.mux(p)
        for p in aus.encode():
            out.mux(p)
    out.close()


def read_video(path, with_alpha=True):
    """(frames as RGBA/RGB arrays, their times in seconds, the container) of path's
    video. VP9 alpha lives beside the picture (Matroska BlockAdditional): only
    libvpx's decoder reads it, so WebM goes through it."""
    c = av.open(path)
    vs = c.streams.video[0]
    fmt = "rgba" if with_alpha else "rgb24"
    dec = av.CodecContext.create("libvpx-vp9", "r") if vs.codec_context.name == "vp9" else None
    frames, times = [], []

    def keep(f, tb):
        frames.append(f.to_ndarray(format=fmt))
        times.append(float(f.pts * tb))

    for pkt in c.demux(vs):
        if dec is None:
            for f in pkt.decode():
                keep(f, vs.time_base)
        elif pkt.size:
            for f in dec.decode(pkt):
                keep(f, vs.time_base)
    if dec is not None:
        for f in dec.decode(None):
            keep(f, vs.time_base)
    info = {
        "codec": vs.codec_context.name,
        "pix_fmt": vs.codec_context.pix_fmt,
        "width": vs.codec_context.width,
        "height": vs.codec_context.height,
        "rate": vs.average_rate,
        "audio": [(s.codec_context.name, s.codec_context.sample_rate) for s in c.streams.audio],
    }
    c.close()
    return frames, times, info


def audio_seconds(path):
    """Decoded audio length of the first audio stream, in seconds."""
    with av.open(path) as c:
        s = c.streams.audio[0]
        n = 0
        rate = s.codec_context.sample_rate
        for f in c.decode(s):
            n += f.samples
        return n / rate


def input_times(path):
    with av.open(path) as c:
        vs = c.streams.video[0]
        return [float(f.pts * vs.time_base) for f in c.decode(vs)]


def make_lossless_clip(path, frames, black_from):
    """FFV1 in Matroska (exact pixels): the clip's frames, all black from black_from."""
    out = av.open(path, "w")
    vs = out.add_stream("ffv1", rate=FPS)
    vs.width, vs.height, vs.pix_fmt = WIDTH, HEIGHT, "yuv444p"
    black = np.zeros((HEIGHT, WIDTH, 3), np.uint8)
    encode_video(out, vs, (frame_rgb(i) if i < black_from else black for i in range(frames)), FPS)
    out.close()
