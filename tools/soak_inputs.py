"""The uploads tools/soak.py sends, each with the answer petmatte-server must give.

Three kinds:
  good     photos-like JPEGs and PNGs of several sizes -> 200 with their own size
  odd      legal but unusual: grayscale, 1x1, EXIF-rotated, alpha PNG -> 200; and an image
           whose header declares more pixels than the library accepts -> 413
  hostile  truncated, garbage, a body over the upload limit, wrong content types, a
           slow partial upload -> the 4xx given here, or (the partial upload, which the
           client abandons) no answer at all

Images are drawn with Pillow (Debian python3-pil) from a fixed seed: no photo files,
the same bytes every run.
"""
import io
import random
import struct
import zlib

from PIL import Image, ImageDraw, ImageFilter

# How a case is sent (soak.py's send functions).
RAW = "raw"              # the bytes as the request body, Content-Length
MULTIPART = "multipart"  # one file field "image"
OVERSIZE = "oversize"    # Content-Length over the limit with Expect: 100-continue, no body
CHUNKED_OVER = "chunked-over"  # a chunked body that runs past the limit
SLOW_ABANDON = "slow-abandon"  # part of a body, a byte at a time, then the client hangs up
SLOW_COMPLETE = "slow-complete"  # the whole body in small pieces with pauses


class Case:
    """One upload: what to send, how, and what must come back."""

    def __init__(self, name, kind, body, expect_status, how=RAW, content_type="image/octet-stream",
                 expect_code=None, expect_size=None):
        self.name = name
        self.kind = kind                  # "good", "odd" or "hostile"
        self.body = body
        self.how = how
        self.content_type = content_type
        self.expect_status = expect_status  # None: the client hangs up before any answer
        self.expect_code = expect_code      # the JSON "code" of an error answer, when fixed
        self.expect_size = expect_size      # (width, height) of a 200's cut-out


def _scene(width, height, seed):
    """A subject-on-background picture: gradients, a blurred blob, some noise."""
    rng = random.Random(seed)
    bg = Image.linear_gradient("L").resize((width, height)).convert("RGB")
    tint = Image.new("RGB", (width, height), (rng.randrange(40, 200), rng.randrange(40, 200), rng.randrange(40, 200)))
    img = Image.blend(bg, tint, 0.6)
    draw = ImageDraw.Draw(img)
    cx, cy = width * rng.uniform(0.35, 0.65), height * rng.uniform(0.35, 0.65)
    rx, ry = width * rng.uniform(0.15, 0.3), height * rng.uniform(0.2, 0.35)
    draw.ellipse([cx - rx, cy - ry, cx + rx, cy + ry], fill=(rng.randrange(256), rng.randrange(256), 60))
    draw.ellipse([cx - rx / 2, cy - ry * 1.4, cx + rx / 2, cy - ry * 0.6], fill=(200, 150, rng.randrange(256)))
    if min(width, height) >= 8:
        img = img.filter(ImageFilter.GaussianBlur(radius=max(1, min(width, height) // 200)))
        noise = Image.effect_noise((width, height), 24).convert("RGB")
        img = Image.blend(img, noise, 0.08)
    return img


def _encode(img, fmt, **kw):
    buf = io.BytesIO()
    img.save(buf, format=fmt, **kw)
    return buf.getvalue()


def _exif_orientation(value):
    """A minimal little-endian EXIF block holding only Orientation (tag 0x0112)."""
    tiff = b"II*\x00" + struct.pack("<I", 8)
    ifd = struct.pack("<H", 1) + struct.pack("<HHIHH", 0x0112, 3, 1, value, 0) + struct.pack("<I", 0)
    return b"Exif\x00\x00" + tiff + ifd


def _png_chunk(kind, data):
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def huge_header_png(width=60000, height=60000):
    """A valid PNG signature and IHDR declaring width x height, with one tiny IDAT."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", ihdr) +
            _png_chunk(b"IDAT", zlib.compress(b"\x00" * 64)) + _png_chunk(b"IEND", b""))


def huge_header_jpeg(small_jpeg, width=60000, height=60000):
    """small_jpeg with its SOF0 frame header rewritten to declare width x height."""
    at = small_jpeg.find(b"\xff\xc0")
    if at < 0:
        raise ValueError("no baseline SOF0 marker in the JPEG")
    out = bytearray(small_jpeg)
    struct.pack_into(">HH", out, at + 5, height, width)
    return bytes(out)


def multipart_body(data, field="image", filename="upload.bin", ctype="application/octet-stream",
                   boundary="soakBoundary5f3a"):
    disposition = f'form-data; name="{field}"' + (f'; filename="{filename}"' if filename else "")
    head = f"--{boundary}\r\nContent-Disposition: {disposition}\r\nContent-Type: {ctype}\r\n\r\n".encode()
    return head + data + f"\r\n--{boundary}--\r\n".encode(), f"multipart/form-data; boundary={boundary}"


def good_cases():
    """JPEGs and PNGs from a thumbnail to a 12 MP photo, raw and multipart."""
    cases = []
    sizes = [(160, 120), (451, 300), (800, 600), (1280, 720), (1920, 1080), (2400, 1600), (4000, 3000)]
    for i, (w, h) in enumerate(sizes):
        img = _scene(w, h, seed=i)
        if i % 2 == 0:
            cases.append(Case(f"jpeg {w}x{h}", "good", _encode(img, "JPEG", quality=88), 200, expect_size=(w, h),
                              content_type="image/jpeg"))
        else:
            cases.append(Case(f"png {w}x{h}", "good", _encode(img, "PNG", compress_level=1), 200,
                              expect_size=(w, h), content_type="image/png"))
    w, h = 1024, 768
    body, ctype = multipart_body(_encode(_scene(w, h, seed=99), "JPEG", quality=90), filename="photo.jpg",
                                 ctype="image/jpeg")
    cases.append(Case(f"multipart jpeg {w}x{h}", "good", body, 200, how=MULTIPART, content_type=ctype,
                      expect_size=(w, h)))
    return cases


def odd_cases():
    """Legal inputs at the edges of what the decoders see every day."""
    cases = []
    gray = _scene(640, 480, seed=7).convert("L")
    cases.append(Case("grayscale jpeg 640x480", "odd", _encode(gray, "JPEG", quality=85), 200, expect_size=(640, 480)))
    cases.append(Case("grayscale png 300x200", "odd", _encode(gray.resize((300, 200)), "PNG"), 200,
                      expect_size=(300, 200)))
    cases.append(Case("png 1x1", "odd", _encode(Image.new("RGB", (1, 1), (200, 30, 30)), "PNG"), 200,
                      expect_size=(1, 1)))
    # Orientation 6: stored 600x400, shown rotated a quarter turn, so 400x600 comes back.
    rotated = _encode(_scene(600, 400, seed=8), "JPEG", quality=85, exif=_exif_orientation(6))
    cases.append(Case("exif-rotated jpeg 600x400 (orientation 6)", "odd", rotated, 200, expect_size=(400, 600)))
    rgba = _scene(500, 500, seed=9).convert("RGBA")
    rgba.putalpha(Image.linear_gradient("L").resize((500, 500)))
    cases.append(Case("alpha png 500x500", "odd", _encode(rgba, "PNG"), 200, expect_size=(500, 500)))
    # Over the library's pixel limit (100 MP by default): refused before any pixel is
    # allocated (PM_ERR_LIMIT -> 413).
    cases.append(Case("png header 60000x60000", "odd", huge_header_png(), 413, expect_code="PM_ERR_LIMIT"))
    small = _encode(_scene(64, 64, seed=10), "JPEG", quality=80)
    cases.append(Case("jpeg header 60000x60000", "odd", huge_header_jpeg(small), 413, expect_code="PM_ERR_LIMIT"))
    return cases


def hostile_cases(max_upload_bytes):
    """Broken or abusive uploads; each must get its 4xx (or, abandoned, nothing)."""
    cases = []
    jpeg = _encode(_scene(800, 600, seed=11), "JPEG", quality=85)
    png = _encode(_scene(400, 300, seed=12), "PNG")
    rng = random.Random(13)
    cases.append(Case("jpeg truncated to half", "hostile", jpeg[: len(jpeg) // 2], 400, expect_code="PM_ERR_DECODE"))
    cases.append(Case("png truncated to half", "hostile", png[: len(png) // 2], 400, expect_code="PM_ERR_DECODE"))
    cases.append(Case("random bytes 64 KiB", "hostile", bytes(rng.randrange(256) for _ in range(65536)), 400,
                      expect_code="PM_ERR_DECODE"))
    cases.append(Case("jpeg signature then zeros", "hostile", b"\xff\xd8\xff\xe0" + b"\x00" * 4096, 400,
                      expect_code="PM_ERR_DECODE"))
    cases.append(Case("empty body", "hostile", b"", 400, expect_code="empty_body"))
    cases.append(Case("json body", "hostile", b'{"image": "cat.jpg"}', 400, content_type="application/json",
                      expect_code="PM_ERR_DECODE"))
    cases.append(Case("multipart without boundary", "hostile", png, 400, content_type="multipart/form-data",
                      expect_code="bad_form"))
    body, ctype = multipart_body(b"just text", field="comment", filename=None, ctype="text/plain")
    cases.append(Case("multipart without a file field", "hostile", body, 400, how=MULTIPART, content_type=ctype,
                      expect_code="bad_form"))
    cases.append(Case("declared body over the limit", "hostile", b"", 413, how=OVERSIZE,
                      expect_code="payload_too_large"))
    cases.append(Case("chunked body over the limit", "hostile", b"", 413, how=CHUNKED_OVER,
                      expect_code="payload_too_large"))
    cases.append(Case("partial upload abandoned", "hostile", jpeg, None, how=SLOW_ABANDON))
    cases.append(Case("slow complete upload", "hostile", png, 200, how=SLOW_COMPLETE, expect_size=(400, 300)))
    return cases


def mix(max_upload_bytes, good_share=0.6):
    """Every case, and a schedule of indexes into them that the soak walks round and round.

    Each round of the schedule holds every good case once, with the odd and hostile ones
    spread among them, taking turns from one round to the next (about good_share of all
    requests are good). Rounds are short, so every window of a soak sees every good size.
    """
    cases = good_cases() + odd_cases() + hostile_cases(max_upload_bytes)
    good = [i for i, c in enumerate(cases) if c.kind == "good"]
    other = [i for i, c in enumerate(cases) if c.kind != "good"]
    per_round = max(1, round(len(good) * (1.0 - good_share) / good_share))
    rounds = -(-len(other) // per_round)
    schedule, o = [], 0
    for r in range(rounds):
        for k, g in enumerate(good):
            schedule.append(g)
            # this round's per_round others, spread evenly over its len(good) slots
            while o < (r + 1) * per_round and (k + 1) * per_round >= (o - r * per_round + 1) * len(good):
                schedule.append(other[o % len(other)])
                o += 1
    return cases, schedule
