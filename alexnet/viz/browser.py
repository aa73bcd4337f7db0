"""Open a page in a real headless Chromium and report what a person would see: whether it
rendered, its console errors and uncaught exceptions, failed loads, and every image's natural
size; optionally a full-page screenshot.

Chromium is driven over the DevTools protocol on a pipe (--remote-debugging-pipe: JSON
messages ending in a NUL byte, on file descriptors 3 and 4), so no driver, port or extra Python
package is needed. It runs with a fresh profile and the flags that keep it off the network."""
from __future__ import annotations

import base64
import json
import os
import select
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from ..errors import UserError

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--remote-debugging-pipe", "--hide-scrollbars", "--window-size=1100,900"]
IMAGES_JS = ("JSON.stringify({title: document.title, text: document.body ? document.body.innerText.length : 0, "
             "images: Array.from(document.images).map(i => ({alt: i.alt, complete: i.complete, "
             "width: i.naturalWidth, height: i.naturalHeight}))})")


def find_chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    raise UserError("no Chromium found: install it (Debian: apt-get install chromium) to check pages in a browser")


class Pipe:
    """The DevTools protocol over Chromium's pipe: send a command, read events until its answer."""

    def __init__(self, write_fd: int, read_fd: int, timeout: float):
        self.w, self.r, self.timeout = write_fd, read_fd, timeout
        self.buf, self.next_id, self.events = b"", 0, []

    def send(self, method: str, params: dict | None = None, session: str | None = None) -> dict:
        self.next_id += 1
        msg = {"id": self.next_id, "method": method, "params": params or {}}
        if session:
            msg["sessionId"] = session
        os.write(self.w, json.dumps(msg).encode() + b"\0")
        while True:
            reply = self.receive()
            if reply.get("id") == self.next_id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error'].get('message')}")
                return reply.get("result", {})
            self.events.append(reply)

    def wait_for(self, method: str) -> dict:
        seen = next((e for e in self.events if e.get("method") == method), None)
        while seen is None:
            event = self.receive()
            self.events.append(event)
            seen = event if event.get("method") == method else None
        return seen

    def receive(self) -> dict:
        deadline = time.monotonic() + self.timeout
        while b"\0" not in self.buf:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self.r], [], [], left)[0]:
                raise TimeoutError("Chromium did not answer in time")
            chunk = os.read(self.r, 1 << 20)
            if not chunk:
                raise RuntimeError("Chromium closed the pipe")
            self.buf += chunk
        msg, self.buf = self.buf.split(b"\0", 1)
        return json.loads(msg)


def check_page(path: str | Path, screenshot: str | Path | None = None, timeout: float = 60.0) -> dict:
    """Load the file at `path` in headless Chromium; returns {title, text_chars, images, broken_images,
    console_errors, exceptions, failed_loads, ok}."""
    url = Path(path).resolve().as_uri()
    to_chrome, from_chrome = os.pipe(), os.pipe()
    with tempfile.TemporaryDirectory(prefix="alexnet-chromium-") as profile:
        cmd = f'exec "$0" "$@" 3<&{to_chrome[0]} 4>&{from_chrome[1]}'  # bash: fd numbers above 9 (dash has none)
        log = open(Path(profile) / "chromium.log", "w+b")
        proc = subprocess.Popen(["bash", "-c", cmd, find_chromium(), *FLAGS, f"--user-data-dir={profile}", "about:blank"],
                                pass_fds=(to_chrome[0], from_chrome[1]), stdout=log, stderr=log)
        os.close(to_chrome[0])
        os.close(from_chrome[1])
        pipe = Pipe(to_chrome[1], from_chrome[0], timeout)
        try:
            return _inspect(pipe, url, screenshot)
        except (RuntimeError, TimeoutError, OSError) as e:
            log.seek(0)
            tail = log.read().decode(errors="replace").strip().splitlines()[-5:]
            raise RuntimeError(f"Chromium failed ({e}); its last output: {' | '.join(tail)}") from None
        finally:
            log.close()
            try:
                pipe.send("Browser.close")
            except (RuntimeError, TimeoutError, OSError):
                pass
            if not _exited(proc):
                proc.kill()
                proc.wait()
            os.close(to_chrome[1])
            os.close(from_chrome[0])


def _exited(proc: subprocess.Popen, wait: float = 5.0) -> bool:
    try:
        proc.wait(wait)
        return True
    except subprocess.TimeoutExpired:
        return False


def _inspect(pipe: Pipe, url: str, screenshot) -> dict:
    target = pipe.send("Target.createTarget", {"url": "about:blank"})["targetId"]
    session = pipe.send("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
    for domain in ("Page", "Runtime", "Log"):
        pipe.send(f"{domain}.enable", session=session)
    pipe.send("Page.navigate", {"url": url}, session=session)
    pipe.wait_for("Page.loadEventFired")
    page = json.loads(pipe.send("Runtime.evaluate", {"expression": IMAGES_JS, "returnByValue": True},
                                session=session)["result"]["value"])
    if screenshot:
        size = pipe.send("Page.getLayoutMetrics", session=session)["cssContentSize"]
        shot = pipe.send("Page.captureScreenshot", {"format": "png", "captureBeyondViewport": True, "clip": {
            "x": 0, "y": 0, "width": size["width"], "height": size["height"], "scale": 1}}, session=session)
        Path(screenshot).write_bytes(base64.b64decode(shot["data"]))
    events = pipe.events
    console = [_args_text(e["params"]) for e in events if e.get("method") == "Runtime.consoleAPICalled"
               and e["params"].get("type") in ("error", "assert")]
    exceptions = [_exception_text(e["params"]["exceptionDetails"]) for e in events
                  if e.get("method") == "Runtime.exceptionThrown"]
    logged = [e["params"]["entry"] for e in events if e.get("method") == "Log.entryAdded"]
    failed = [f"{x.get('url', '')}: {x.get('text', '')}" for x in logged if x.get("source") == "network"]
    log_errors = [x.get("text", "") for x in logged if x.get("level") == "error" and x.get("source") != "network"]
    broken = [i for i in page["images"] if not i["complete"] or i["width"] == 0]
    result = {"title": page["title"], "text_chars": page["text"], "images": page["images"], "broken_images": broken,
              "console_errors": console + log_errors, "exceptions": exceptions, "failed_loads": failed}
    result["ok"] = bool(page["text"]) and not (broken or console or log_errors or exceptions or failed)
    return result


def _args_text(params: dict) -> str:
    return " ".join(str(a.get("value", a.get("description", ""))) for a in params.get("args", []))


def _exception_text(details: dict) -> str:
    return details.get("exception", {}).get("description") or details.get("text", "")
