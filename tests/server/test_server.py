"""petmatte-server over real HTTP: warm-up, status, remove-bg, limits and errors.

red32: alpha = the red channel, so every pixel of a 32x32 cut-out is known.
slow96: real convolutions, so a warm-up takes long enough to watch.
"""
import concurrent.futures
import io
import json
import socket
import subprocess
import threading
import time

import numpy as np
import pytest
from PIL import Image

from conftest import server_exe

STATE_ORDER = {"cold": 0, "loading": 1, "warming": 2, "ready": 3}


def pattern(w=32, h=32):
    """An RGB image whose red channel covers 0..255 and whose green/blue are fixed."""
    y, x = np.mgrid[0:h, 0:w]
    rgb = np.zeros((h, w, 3), np.uint8)
    rgb[..., 0] = (x * 8 + y * 3) % 256
    rgb[..., 1] = 90
    rgb[..., 2] = 40
    return rgb


def png_bytes(rgb):
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format="PNG")
    return buf.getvalue()


def decode(body):
    return np.asarray(Image.open(io.BytesIO(body)))


def multipart(fields, boundary="petmatteBoundary7x"):
    """fields: (name, filename or None, content type, bytes) -> (body, content type)."""
    out = b""
    for name, filename, ctype, data in fields:
        disp = f'form-data; name="{name}"' + (f'; filename="{filename}"' if filename else "")
        out += f"--{boundary}\r\nContent-Disposition: {disp}\r\nContent-Type: {ctype}\r\n\r\n".encode()
        out += data + b"\r\n"
    out += f"--{boundary}--\r\n".encode()
    return out, f"multipart/form-data; boundary={boundary}"


def assert_error(r, status, code=None):
    assert r.status == status, (r.status, r.body)
    assert r.headers["content-type"] == "application/json"
    body = r.json()
    assert isinstance(body["error"], str) and body["error"], body
    assert isinstance(body["code"], str) and body["code"], body
    if code:
        assert body["code"] == code, body
    return body


# ------------------------------------------------------------------ liveness, routing


def test_health_is_liveness_only(start_server):
    s = start_server("red32.pt")
    r = s.get("/health")
    assert r.status == 200
    assert r.json() == {"ok": True}
    st = s.status()
    assert st["state"] == "cold" and st["warmup_runs"] == 0 and st["load_ms"] == 0
    assert s.request("HEAD", "/health").status == 200


def test_unknown_paths_and_methods(red_server):
    assert_error(red_server.get("/nope"), 404, "not_found")
    assert_error(red_server.post("/nope", b"x"), 404, "not_found")
    r = red_server.get("/warmup")
    assert_error(r, 405, "method_not_allowed")
    assert r.headers["allow"] == "POST"
    assert_error(red_server.get("/remove-bg"), 405)
    assert_error(red_server.request("DELETE", "/status"), 405)


def test_static_page_and_no_path_traversal(red_server):
    r = red_server.get("/")
    assert r.status == 200 and r.headers["content-type"].startswith("text/html")
    assert b"app.js" in r.body
    r = red_server.get("/app.js")
    assert r.status == 200 and r.headers["content-type"].startswith("text/javascript")
    assert red_server.get("/style.css").headers["content-type"].startswith("text/css")
    for path in ["/../CMakeLists.txt", "/../server.h", "/%2e%2e/server.h", "/..%2fhttp.c", "/.%2e/main.c",
                 "/./index.html", "//etc/passwd", "/.hidden", "/index.html%00.png", "/..\\main.c"]:
        r = red_server.get(path)
        assert r.status == 404, (path, r.status, r.body[:80])
        assert b"#include" not in r.body
    # The same through a raw socket, in case a client library normalises the path.
    with socket.create_connection((red_server.host, red_server.port), timeout=30) as sock:
        sock.sendall(b"GET /../../../../etc/passwd HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    assert data.startswith(b"HTTP/1.1 404"), data[:80]
    assert b"root:" not in data


# ------------------------------------------------------------------ warm-up and status


def test_warmup_is_single_flight_and_reports_progress(start_server):
    s = start_server("slow96.pt", "--tune", "warmup_min_runs=25", "--tune", "warmup_max_runs=30")
    assert s.status()["state"] == "cold"
    snapshots, latencies, stop = [], [], threading.Event()

    def watch():
        while not stop.is_set():
            t0 = time.monotonic()
            snapshots.append(s.status())
            latencies.append(time.monotonic() - t0)
            time.sleep(0.01)

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            answers = list(pool.map(lambda _: s.post("/warmup"), range(8)))
        for r in answers:
            assert r.status in (200, 202), r.body
            assert r.json()["state"] in ("loading", "warming", "ready")
        assert any(r.status == 202 for r in answers)
        final = s.wait_for({"ready", "failed"})
    finally:
        stop.set()
        watcher.join()
    assert final["state"] == "ready", final

    states = [x["state"] for x in snapshots]
    assert "failed" not in states
    ranks = [STATE_ORDER[x] for x in states]
    assert ranks == sorted(ranks), f"state went backwards: {states}"
    # One load only: a second flight would reset warmup_runs and write a new load_ms.
    runs = [x["warmup_runs"] for x in snapshots]
    assert runs == sorted(runs), f"warm-up restarted: {runs}"
    loads = {x["load_ms"] for x in snapshots if x["load_ms"] > 0}
    assert len(loads) <= 1, loads
    assert 25 <= final["warmup_runs"] <= 30
    assert final["load_ms"] > 0 and final["warmup_ms"] > 0 and final["progress"] == 1
    assert final["model"] == "slow96" and final["device"] == "cpu" and final["precision"] == "fp32"
    assert final["input_width"] == 96 and final["last_error"] is None

    # While WARMING the progress is strictly between 0 and 1 and never goes back.
    warming = [x for x in snapshots if x["state"] == "warming"]
    assert warming, f"never saw WARMING: {states}"
    assert all(0 < x["progress"] < 1 for x in warming)
    progress = [x["progress"] for x in warming]
    assert progress == sorted(progress)
    # /status never waited for the warm-up.
    assert max(latencies) < 2.0, max(latencies)

    # Once READY, more /warmup calls answer 200 and change nothing.
    for _ in range(3):
        r = s.post("/warmup")
        assert r.status == 200
    again = s.status()
    for key in ("load_ms", "warmup_ms", "warmup_runs", "ready_unix"):
        assert again[key] == final[key], key
    r = s.get("/ready")
    assert r.status == 200 and r.json()["ready"] is True


def test_ready_is_503_until_warm(start_server):
    s = start_server("red32.pt")
    r = s.get("/ready")
    assert r.status == 503 and r.json()["state"] == "cold"


def test_failed_model_gives_503_with_status(start_server):
    s = start_server("not_torchscript.pt")
    assert s.post("/warmup").status == 202
    st = s.wait_for({"failed", "ready"})
    assert st["state"] == "failed" and st["progress"] == 0
    assert st["last_error"]["code"] == "PM_ERR_MODEL" and st["last_error"]["message"]
    body = assert_error(s.post("/remove-bg", png_bytes(pattern())), 503, "PM_ERR_MODEL")
    assert body["status"]["state"] == "failed"
    assert st["last_error"]["message"] in body["error"]
    assert s.get("/ready").status == 503
    assert s.get("/health").status == 200
    # The host decides on retries: /remove-bg did not reload; POST /warmup tries again.
    assert s.status()["state"] == "failed"
    assert s.post("/warmup").status == 202
    assert s.wait_for({"failed", "ready"})["state"] == "failed"


def test_missing_model_exits_with_message(tmp_path):
    p = subprocess.run([server_exe(), "--port", "0", "--model", str(tmp_path / "none.pt")],
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 1
    assert "none.pt" in p.stderr


# ------------------------------------------------------------------ remove-bg


def check_cutout(body, rgb):
    out = decode(body)
    assert out.shape == (32, 32, 4)
    assert np.array_equal(out[..., :3], rgb)
    assert np.array_equal(out[..., 3], rgb[..., 0])


def test_remove_bg_raw_body(red_server):
    rgb = pattern()
    r = red_server.post("/remove-bg", png_bytes(rgb), headers={"Content-Type": "image/png"})
    assert r.status == 200, r.body
    assert r.headers["content-type"] == "image/png"
    assert r.headers["x-petmatte-width"] == "32" and r.headers["x-petmatte-height"] == "32"
    check_cutout(r.body, rgb)
    # curl --data-binary sends a form content type; the body is still the image.
    r = red_server.post("/remove-bg", png_bytes(rgb),
                        headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert r.status == 200
    check_cutout(r.body, rgb)


def test_remove_bg_multipart(red_server):
    rgb = pattern()
    body, ctype = multipart([("note", None, "text/plain", b"first a text field"),
                             ("image", "cat.png", "image/png", png_bytes(rgb)),
                             ("after", None, "text/plain", b"and one after")])
    r = red_server.post("/remove-bg", body, headers={"Content-Type": ctype})
    assert r.status == 200, r.body
    check_cutout(r.body, rgb)
    # Any file field will do, whatever its name.
    body, ctype = multipart([("upload", "x.png", "application/octet-stream", png_bytes(rgb))])
    r = red_server.post("/remove-bg", body, headers={"Content-Type": ctype})
    assert r.status == 200
    check_cutout(r.body, rgb)


def test_remove_bg_options(red_server):
    rgb = pattern()
    data = png_bytes(rgb)
    red = rgb[..., 0].astype(int)

    mask = decode(red_server.post("/remove-bg?mask=1", data).body)
    assert mask.shape == (32, 32) and np.array_equal(mask, red)

    hard = np.where(red >= int(255 * 0.5 + 0.5), 255, 0)  # matte >= round(255 t)
    mask = decode(red_server.post("/remove-bg?mask=1&threshold=0.5&invert=1", data).body)
    assert np.array_equal(mask, 255 - hard)

    comp = decode(red_server.post("/remove-bg?bg=%2300ff00&threshold=0.5", data).body)
    assert comp.shape == (32, 32, 3)
    want = np.where(hard[..., None] == 255, rgb, np.array([0, 255, 0], np.uint8))
    assert np.array_equal(comp, want)

    r = red_server.post("/remove-bg?clean_edges=1", data)
    assert r.status == 200 and decode(r.body).shape == (32, 32, 4)

    for query in ["threshold=2", "threshold=x", "bg=12345", "bg=zzzzzz", "mask=maybe", "mask=1&bg=ffffff",
                  "colour=red"]:
        assert_error(red_server.post("/remove-bg?" + query, data), 400, "bad_option")


def test_remove_bg_blur_picture_and_overlay(red_server):
    rgb = np.zeros((32, 32, 3), np.uint8)
    rgb[:, :16] = (255, 10, 20)  # matte 255: the subject
    rgb[:, 16:] = (0, 200, 30)   # matte 0: the background shows
    rgb[::2, 16:, 1] = 100       # stripes for the blur to smooth
    data = png_bytes(rgb)

    r = red_server.post("/remove-bg?bg=blur&radius=3", data)
    assert r.status == 200, r.body
    blur = decode(r.body).astype(int)
    assert blur.shape == (32, 32, 3) and (blur[:, :16] == rgb[:, :16]).all()
    assert blur[4:28, 24:, 1].std() < rgb[4:28, 24:, 1].std() / 4

    picture = png_bytes(np.full((60, 20, 3), (10, 20, 30), np.uint8))
    for query, fields in (("?bg=image", [("image", "a.png", "image/png", data),
                                          ("background", "b.png", "image/png", picture)]),
                          ("", [("background", "b.png", "image/png", picture),
                                ("image", "a.png", "image/png", data)])):
        body, ctype = multipart(fields)
        r = red_server.post("/remove-bg" + query, body, headers={"Content-Type": ctype})
        assert r.status == 200, r.body
        out = decode(r.body)
        assert (out[:, :16] == rgb[:, :16]).all() and (out[:, 16:] == (10, 20, 30)).all()

    r = red_server.post("/remove-bg?overlay=0000ff&opacity=0.25", data)
    assert r.status == 200, r.body
    over = decode(r.body).astype(int)
    want = np.floor(rgb[:, 16:] * 0.75 + np.array([0, 0, 255]) * 0.25 + 0.5)
    assert (over[:, :16] == rgb[:, :16]).all() and (np.abs(over[:, 16:] - want) <= 1).all()
    assert decode(red_server.post("/remove-bg?overlay=1", data).body).shape == (32, 32, 3)

    for query in ["bg=image", "radius=3", "bg=blur&radius=300", "bg=ffffff&radius=2", "overlay=xyz",
                  "opacity=2", "mask=1&overlay=1", "bg=blur&overlay=1"]:
        assert_error(red_server.post("/remove-bg?" + query, data), 400, "bad_option")
    body, ctype = multipart([("image", "a.png", "image/png", data), ("background", "b.png", "image/png", picture)])
    assert_error(red_server.post("/remove-bg?bg=blur", body, headers={"Content-Type": ctype}), 400, "bad_option")
    body, ctype = multipart([("image", "a.png", "image/png", data),
                             ("background", "b.png", "image/png", b"not a picture")])
    err = assert_error(red_server.post("/remove-bg", body, headers={"Content-Type": ctype}), 400)
    assert "background image" in err["error"]


def test_remove_bg_webp_by_query_or_accept_header(red_server):
    rgb = pattern()
    data = png_bytes(rgb)
    visible = rgb[..., 0] > 0  # alpha = red; lossless WebP keeps every pixel with alpha > 0

    # format= picks, whatever Accept says.
    r = red_server.post("/remove-bg?format=webp-lossless", data, headers={"Accept": "image/png"})
    assert r.status == 200, r.body
    assert r.headers["content-type"] == "image/webp"
    assert r.headers["content-disposition"] == 'inline; filename="cutout.webp"'
    assert r.body[:4] == b"RIFF" and r.body[8:12] == b"WEBP"
    out = np.asarray(Image.open(io.BytesIO(r.body)).convert("RGBA"))
    assert np.array_equal(out[..., 3], rgb[..., 0])
    assert np.array_equal(out[..., :3][visible], rgb[visible])

    # Lossy: the alpha exact, the colours close; a lower quality gives fewer bytes.
    r = red_server.post("/remove-bg?format=webp", data)
    assert r.status == 200 and r.headers["content-type"] == "image/webp"
    out = np.asarray(Image.open(io.BytesIO(r.body)).convert("RGBA")).astype(int)
    assert np.array_equal(out[..., 3], rgb[..., 0])
    solid = rgb[..., 0] >= 128
    assert np.abs(out[..., :3][solid] - rgb[solid]).mean() <= 8
    small = red_server.post("/remove-bg?format=webp&quality=5", data)
    assert small.status == 200 and len(small.body) < len(r.body)

    # Accept: image/webp without format= gives lossless WebP; q=0 refuses it.
    r = red_server.post("/remove-bg?mask=1", data, headers={"Accept": "image/avif,image/webp,*/*;q=0.8"})
    assert r.status == 200 and r.headers["content-type"] == "image/webp"
    assert r.headers["vary"] == "Accept"
    assert r.headers["content-disposition"] == 'inline; filename="mask.webp"'
    mask = np.asarray(Image.open(io.BytesIO(r.body)).convert("RGB"))
    assert all(np.array_equal(mask[..., c], rgb[..., 0]) for c in range(3))  # gray RGB, exact
    for accept in ["image/webp;q=0", "image/png", "*/*"]:
        r = red_server.post("/remove-bg", data, headers={"Accept": accept})
        assert r.status == 200 and r.headers["content-type"] == "image/png", accept
    r = red_server.post("/remove-bg?format=png", data, headers={"Accept": "image/webp"})
    assert r.headers["content-type"] == "image/png"
    check_cutout(r.body, rgb)

    for query in ["format=gif", "format=", "quality=101", "quality=-1", "quality=x"]:
        assert_error(red_server.post("/remove-bg?" + query, data), 400, "bad_option")


def test_remove_bg_any_size(red_server):
    rgb = np.full((30, 45, 3), (200, 10, 20), np.uint8)
    out = decode(red_server.post("/remove-bg", png_bytes(rgb)).body)
    assert out.shape == (30, 45, 4)
    assert np.all(np.abs(out[..., 3].astype(int) - 200) <= 1)


def test_corrupt_and_empty_uploads_are_400(red_server):
    body = assert_error(red_server.post("/remove-bg", b"this is not an image at all"), 400, "PM_ERR_DECODE")
    assert "image" in body["error"].lower()
    truncated = png_bytes(pattern())[:60]
    assert_error(red_server.post("/remove-bg", truncated), 400, "PM_ERR_DECODE")
    assert_error(red_server.post("/remove-bg", b""), 400, "empty_body")
    body, ctype = multipart([("note", None, "text/plain", b"no file here")])
    assert_error(red_server.post("/remove-bg", body, headers={"Content-Type": ctype}), 400, "bad_form")
    assert_error(red_server.post("/remove-bg", b"x", headers={"Content-Type": "multipart/form-data"}), 400,
                 "bad_form")


def test_oversized_upload_is_413_before_the_body(red_server):
    limit = red_server.status()["max_upload_bytes"]
    assert limit == 1 << 20
    # Declared too large: refused on the headers alone, before any byte of body is sent.
    conn = red_server.connection(timeout=30)
    conn.putrequest("POST", "/remove-bg")
    conn.putheader("Content-Length", str(200 << 20))
    conn.putheader("Content-Type", "image/png")
    conn.putheader("Expect", "100-continue")
    conn.endheaders()
    r = conn.getresponse()
    body = json.loads(r.read())
    conn.close()
    assert r.status == 413, body
    assert body["code"] == "payload_too_large" and str(limit) in body["error"]


def test_oversized_chunked_upload_is_413_while_receiving(red_server):
    limit = red_server.status()["max_upload_bytes"]
    chunk = b"\0" * 65536
    chunks = [chunk] * (2 * limit // len(chunk))  # no Content-Length: counted as it arrives
    conn = red_server.connection(timeout=60)
    conn.request("POST", "/remove-bg", body=iter(chunks), encode_chunked=True,
                 headers={"Transfer-Encoding": "chunked", "Content-Type": "image/png"})
    r = conn.getresponse()
    body = json.loads(r.read())
    conn.close()
    assert r.status == 413, body
    assert body["code"] == "payload_too_large"
    # A multipart body over the limit too; and the server is fine afterwards.
    form, ctype = multipart([("image", "big.png", "image/png", b"\1" * (limit + 10))])
    conn = red_server.connection(timeout=60)
    conn.request("POST", "/remove-bg", body=iter([form[i:i + 65536] for i in range(0, len(form), 65536)]),
                 encode_chunked=True, headers={"Transfer-Encoding": "chunked", "Content-Type": ctype})
    r = conn.getresponse()
    r.read()
    conn.close()
    assert r.status == 413
    assert red_server.get("/health").status == 200


def cut_outs_in_parallel(server, images, during=None):
    """POSTs every image at once (a thread each) and returns the decoded cut-outs;
    during(), if given, runs while they are in flight."""
    def one(rgb):
        r = server.post("/remove-bg", png_bytes(rgb))
        assert r.status == 200, r.body
        return decode(r.body)

    with concurrent.futures.ThreadPoolExecutor(len(images)) as pool:
        outs = pool.map(one, images)
        if during:
            during()
        return list(outs)


def test_concurrent_requests_share_forward_passes_with_max_batch(start_server):
    # A 100 ms wait: eight requests sent together reach the model well inside it.
    s = start_server("red32.pt", "--max-batch", "4", "--tune", "batch_wait_us=100000", "--warmup")
    assert s.wait_for({"ready", "failed"})["state"] == "ready"
    assert s.status()["max_batch"] == 4
    images = [pattern() ^ np.uint8(9 * i) for i in range(8)]
    outs = cut_outs_in_parallel(s, images)
    for rgb, out in zip(images, outs):  # each request gets its own image's matte
        assert np.array_equal(out[..., 3], rgb[..., 0])
    st = s.status()
    assert st["images_processed"] == len(images)
    assert 1 <= st["forward_passes"] < len(images)


def test_forward_streams_reaches_the_library_and_its_status(start_server):
    s = start_server("red32.pt", "--tune", "forward_streams=3", "--warmup")
    assert s.wait_for({"ready", "failed"})["state"] == "ready"
    assert s.status()["forward_streams"] == 1  # a CPU context runs one stream whatever was asked
    images = [pattern() ^ np.uint8(7 * i) for i in range(4)]
    for rgb, out in zip(images, cut_outs_in_parallel(s, images)):
        assert np.array_equal(out[..., 3], rgb[..., 0])


def test_concurrent_requests(red_server):
    before = red_server.status()["images_processed"]
    images = [pattern() ^ np.uint8(i) for i in range(8)]

    def health_stays_quick():  # while cut-outs run
        assert red_server.get("/health").status == 200

    outs = cut_outs_in_parallel(red_server, images, during=health_stays_quick)
    for rgb, out in zip(images, outs):
        assert np.array_equal(out[..., 3], rgb[..., 0])
    assert red_server.status()["images_processed"] == before + len(images)


@pytest.mark.parametrize("args,message", [(["--port", "70000"], "--port"),
                                          (["--precision", "fp8"], "--precision"),
                                          (["--bogus"], "unrecognized")])
def test_bad_command_line(args, message):
    p = subprocess.run([server_exe(), *args], capture_output=True, text=True, timeout=60)
    assert p.returncode == 2
    assert message in p.stderr
