"""The demo page in headless Chromium, driven over the DevTools protocol.

Loads the page, watches it warm the model ("Preparing the model… N%", then ready),
uploads a photo through the file input (DOM.setFileInputFiles), waits for the cut-out
and saves a screenshot to $PETMATTE_TEST_ARTIFACTS (the build's tests folder).
"""
import base64
import json
import os
import re
import shutil
import subprocess
import tempfile
import time
import urllib.request

import pytest

CHELSEA = "/usr/lib/python3/dist-packages/skimage/data/chelsea.png"

websocket = pytest.importorskip("websocket", reason="python3-websocket is not installed (apt-get install python3-websocket)")


def chromium_path():
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    return None


class DevTools:
    """A minimal CDP client: one websocket, requests answered in order of id."""

    def __init__(self, ws_url):
        self.ws = websocket.create_connection(ws_url, timeout=60, suppress_origin=True)
        self.next_id = 0

    def call(self, method, **params):
        self.next_id += 1
        self.ws.send(json.dumps({"id": self.next_id, "method": method, "params": params}))
        while True:
            msg = json.loads(self.ws.recv())
            if msg.get("id") == self.next_id:
                if "error" in msg:
                    raise AssertionError(f"{method}: {msg['error']}")
                return msg.get("result", {})

    def eval(self, expression):
        r = self.call("Runtime.evaluate", expression=expression, returnByValue=True)
        if "exceptionDetails" in r:
            raise AssertionError(f"{expression}: {r['exceptionDetails']}")
        return r["result"].get("value")

    def close(self):
        self.ws.close()


@pytest.fixture
def browser():
    exe = chromium_path()
    if not exe:
        pytest.skip("chromium is not installed (apt-get install chromium), so the page cannot be tested")
    profile = tempfile.mkdtemp(prefix="petmatte-chromium-")
    log = tempfile.TemporaryFile()
    proc = subprocess.Popen([exe, "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                             "--no-first-run", "--no-default-browser-check", "--disable-extensions",
                             f"--user-data-dir={profile}", "--remote-debugging-port=0",
                             "--remote-allow-origins=*", "--window-size=1100,900", "about:blank"],
                            stdout=subprocess.DEVNULL, stderr=log)
    try:
        port_file = os.path.join(profile, "DevToolsActivePort")
        deadline = time.monotonic() + 60
        while not (os.path.exists(port_file) and open(port_file).read().count("\n") >= 1):
            if proc.poll() is not None or time.monotonic() > deadline:
                log.seek(0)
                raise AssertionError(f"chromium did not start:\n{log.read().decode(errors='replace')[-3000:]}")
            time.sleep(0.1)
        port = int(open(port_file).read().split("\n")[0])
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=30) as r:
            pages = [t for t in json.load(r) if t["type"] == "page"]
        tools = DevTools(pages[0]["webSocketDebuggerUrl"])
        yield tools
        try:
            tools.call("Browser.close")
        except Exception:
            pass
        tools.close()
    finally:
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()
        shutil.rmtree(profile, ignore_errors=True)


def wait_until(tools, expression, timeout, every=0.05, seen=None):
    """Polls a JS expression until truthy; appends each value to seen (if given)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = tools.eval(expression)
        if seen is not None:
            seen.append(value)
        if value and (not isinstance(value, dict) or value.get("done")):
            return value
        time.sleep(every)
    raise AssertionError(f"timed out waiting for {expression}; last: {seen[-3:] if seen else None}")


def test_page_warms_uploads_and_shows_cutout(start_server, browser, capsys):
    if not os.path.exists(CHELSEA):
        pytest.skip(f"{CHELSEA} missing (Debian package python3-skimage)")
    server = start_server("slow96.pt", "--tune", "warmup_min_runs=20", "--tune", "warmup_max_runs=25")
    tools = browser
    tools.call("Page.enable")
    tools.call("Page.navigate", url=server.url + "/")

    texts = []
    status_js = ("(() => { const t = document.getElementById('status-text');"
                 " return t ? {done: document.body.dataset.state === 'ready' ||"
                 " document.body.dataset.state === 'failed',"
                 " state: document.body.dataset.state, text: t.textContent} : null; })()")
    final = wait_until(tools, status_js, timeout=120, seen=texts)
    assert final["state"] == "ready", final
    assert re.match(r"Ready: the model was prepared in [\d.]+ m?s on cpu\.", final["text"]), final
    progress = [t["text"] for t in texts if t and re.fullmatch(r"Preparing the model… (\d+)%", t["text"])]
    assert progress, f"the page never showed the warm-up progress: {[t and t['text'] for t in texts]}"
    percents = [int(re.search(r"(\d+)%", t).group(1)) for t in progress]
    assert any(0 < p < 100 for p in percents), percents
    assert percents == sorted(percents), percents
    assert tools.eval("document.getElementById('file').disabled") is False

    root = tools.call("DOM.getDocument")["root"]["nodeId"]
    node = tools.call("DOM.querySelector", nodeId=root, selector="#file")["nodeId"]
    tools.call("DOM.setFileInputFiles", nodeId=node, files=[CHELSEA])

    result_js = ("(() => ({done: document.body.dataset.result === 'done' &&"
                 " document.getElementById('result').complete &&"
                 " document.getElementById('result').naturalWidth > 0 ||"
                 " document.body.dataset.result === 'error',"
                 " result: document.body.dataset.result,"
                 " width: document.getElementById('result').naturalWidth,"
                 " height: document.getElementById('result').naturalHeight,"
                 " message: document.getElementById('upload-text').textContent,"
                 " download: document.getElementById('download').href,"
                 " name: document.getElementById('download').download}))()")
    done = wait_until(tools, result_js, timeout=120)
    assert done["result"] == "done", done
    assert (done["width"], done["height"]) == (451, 300), done
    assert done["download"].startswith("blob:") and done["name"] == "chelsea-cutout.png", done
    assert done["message"].startswith("Done"), done
    # The cut-out sits on the checkerboard.
    assert tools.eval("getComputedStyle(document.querySelector('.checker')).backgroundImage")\
        .startswith("linear-gradient")

    shot = tools.call("Page.captureScreenshot", format="png", captureBeyondViewport=True)["data"]
    folder = os.environ.get("PETMATTE_TEST_ARTIFACTS") or tempfile.gettempdir()
    os.makedirs(folder, exist_ok=True)
    path = os.path.join(folder, "server_page.png")
    with open(path, "wb") as f:
        f.write(base64.b64decode(shot))
    with capsys.disabled():
        print(f"\nscreenshot of the demo page: {path}")
    assert open(path, "rb").read(8) == b"\x89PNG\r\n\x1a\n"
    assert server.status()["images_processed"] == 1
