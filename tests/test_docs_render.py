"""The math of the built documentation renders as a reader sees it: offline, in a real browser.

The docs are built into a temporary folder, and the method page is opened in headless Chromium,
driven through the DevTools protocol over a pipe (--remote-debugging-pipe: no extra Python
package, no browser download). The equations must be KaTeX boxes of non-zero size set in the KaTeX
fonts, no TeX source may be left in the visible text, and the page may load nothing that is not
local (the KaTeX CSS and fonts are served from the built site).
"""

import contextlib
import fcntl
import importlib.util
import json
import os
import select
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"

CHROMIUM = next((shutil.which(name) for name in ("chromium", "chromium-browser", "google-chrome") if shutil.which(name)), None)

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        importlib.util.find_spec("sphinxcontrib.katex") is None or importlib.util.find_spec("myst_parser") is None,
        reason='Sphinx, MyST or sphinxcontrib-katex is not installed: pip install -e ".[docs]"',
    ),
    pytest.mark.skipif(
        shutil.which("node") is None or shutil.which("npm") is None,
        reason="node and npm are needed to render the docs' math with KaTeX (apt-get install nodejs npm)",
    ),
    pytest.mark.skipif(CHROMIUM is None, reason="no headless browser to open the docs in (apt-get install chromium)"),
]

# Run in the page once it and its fonts have loaded: what a reader would see of the math.
INSPECT_PAGE = """
(async () => {
    await document.fonts.ready;
    const article = document.querySelector("article") || document.body;
    const boxes = [...article.querySelectorAll(".katex")].map((element) => {
        const rect = element.getBoundingClientRect();
        return {width: rect.width, height: rect.height, font: getComputedStyle(element).fontFamily};
    });
    // Text outside the equations and the code: where TeX source would be left if it were not rendered.
    const walker = document.createTreeWalker(article, NodeFilter.SHOW_TEXT);
    const prose = [];
    for (let node = walker.nextNode(); node; node = walker.nextNode()) {
        if (!node.parentElement.closest(".katex, pre, code, script, style")) prose.push(node.data);
    }
    // What a reader sees of the page outside its code (the code shown from the source has
    // docstrings with :math:`...` in it), once the boxes are measured.
    article.querySelectorAll("pre, code").forEach((element) => { element.style.display = "none"; });
    return {
        boxes: boxes,
        prose: prose.join(""),
        visible: article.innerText,
        // (document.fonts.check() is true too when no such font is declared at all)
        fontsLoaded: [...document.fonts]
            .filter((font) => font.status === "loaded")
            .map((font) => font.family.replace(/"/g, "")),
    };
})()
"""


class DevToolsPipe:
    """A minimal DevTools protocol client over Chromium's --remote-debugging-pipe (fds 3 and 4)."""

    def __init__(self, browser: str, profile: Path):
        to_browser_read, self._write = os.pipe()
        self._read, from_browser_write = os.pipe()

        def child_fds():
            # Move the ends onto fds 3 (commands in) and 4 (answers out), whatever numbers they got
            # (the copies above 10 close on exec; dup2 makes 3 and 4 inheritable).
            high_in = fcntl.fcntl(to_browser_read, fcntl.F_DUPFD_CLOEXEC, 10)
            high_out = fcntl.fcntl(from_browser_write, fcntl.F_DUPFD_CLOEXEC, 10)
            os.dup2(high_in, 3)
            os.dup2(high_out, 4)

        self.process = subprocess.Popen(
            [
                browser,
                "--headless",
                "--remote-debugging-pipe",
                "--no-sandbox",
                "--disable-gpu",
                "--no-first-run",
                "--disable-extensions",
                "--disable-background-networking",
                "--window-size=1400,1000",
                f"--user-data-dir={profile}",
                "about:blank",
            ],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            preexec_fn=child_fds,
            # Closing the other fds would close 3 and 4 too (it comes after preexec_fn); os.pipe's
            # fds and Python's own close on exec anyway.
            close_fds=False,
        )
        os.close(to_browser_read)
        os.close(from_browser_write)
        self._buffer = b""
        self._next_id = 0
        self.events: list[dict] = []

    def _receive(self, deadline: float) -> dict:
        while b"\0" not in self._buffer:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError("Chromium did not answer in time")
            readable, _, _ = select.select([self._read], [], [], remaining)
            if readable:
                chunk = os.read(self._read, 1 << 20)
                if not chunk:
                    raise RuntimeError(f"Chromium closed the pipe (exit status {self.process.poll()})")
                self._buffer += chunk
        message, self._buffer = self._buffer.split(b"\0", 1)
        return json.loads(message)

    def send(self, method: str, params: dict | None = None, session: str | None = None, timeout: float = 60) -> dict:
        self._next_id += 1
        command: dict = {"id": self._next_id, "method": method, "params": params or {}}
        if session is not None:
            command["sessionId"] = session
        os.write(self._write, json.dumps(command).encode() + b"\0")
        deadline = time.monotonic() + timeout
        while True:
            message = self._receive(deadline)
            if message.get("id") == self._next_id:
                assert "error" not in message, (method, message["error"])
                return message["result"]
            self.events.append(message)

    def wait_for(self, method: str, timeout: float = 60) -> dict:
        for event in self.events:
            if event.get("method") == method:
                return event
        deadline = time.monotonic() + timeout
        while True:
            message = self._receive(deadline)
            self.events.append(message)
            if message.get("method") == method:
                return message

    def close(self):
        with contextlib.suppress(OSError, RuntimeError, TimeoutError):
            self.send("Browser.close", timeout=10)
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        os.close(self._write)
        os.close(self._read)


def open_in_browser(page: Path, profile: Path) -> tuple[dict, list[str]]:
    """What INSPECT_PAGE finds on the page, and the URLs of every request the page made."""
    assert CHROMIUM is not None
    browser = DevToolsPipe(CHROMIUM, profile)
    try:
        target = browser.send("Target.createTarget", {"url": "about:blank"})["targetId"]
        session = browser.send("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        browser.send("Network.enable", session=session)
        browser.send("Page.enable", session=session)
        browser.send("Page.navigate", {"url": page.as_uri()}, session=session)
        browser.wait_for("Page.loadEventFired")
        found = browser.send(
            "Runtime.evaluate",
            {"expression": INSPECT_PAGE, "awaitPromise": True, "returnByValue": True},
            session=session,
        )
        assert "exceptionDetails" not in found, found["exceptionDetails"]
        requests = [
            event["params"]["request"]["url"] for event in browser.events if event.get("method") == "Network.requestWillBeSent"
        ]
        return found["result"]["value"], requests
    finally:
        browser.close()


def build_docs(out: Path) -> None:
    build = subprocess.run(
        [sys.executable, "-m", "sphinx", "-W", "--keep-going", "-q", "-b", "html", str(DOCS), str(out)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert build.returncode == 0, build.stdout + build.stderr


def assert_math_rendered(found: dict, requests: list[str]) -> None:
    boxes = found["boxes"]
    # method.md has dozens of equations (inline $...$ and display $$...$$ blocks).
    assert len(boxes) >= 20, f"only {len(boxes)} KaTeX equations on the page"
    empty = [box for box in boxes if box["width"] <= 0 or box["height"] <= 0]
    assert not empty, f"{len(empty)} of {len(boxes)} equations have no size"
    assert all("KaTeX_Main" in box["font"] for box in boxes), "the KaTeX CSS did not apply"
    assert {"KaTeX_Main", "KaTeX_Math"} <= set(found["fontsLoaded"]), f"the KaTeX fonts did not load: {found['fontsLoaded']}"
    for tex in ("\\(", "\\)", "\\[", "\\]", "$", "\\theta", "\\frac", "\\hat", "\\sqrt"):
        assert tex not in found["prose"], f"TeX source {tex!r} left in the page's text"
        assert tex not in found["visible"], f"TeX source {tex!r} visible on the page"
    remote = [url for url in requests if not url.startswith(("file:", "data:", "about:"))]
    assert not remote, f"the page requested non-local URLs: {remote}"
    assert any(url.endswith("katex.min.css") for url in requests), requests


def test_method_page_math_renders_offline(tmp_path):
    build_docs(tmp_path / "html")
    page = tmp_path / "html" / "method.html"
    assert page.is_file()
    found, requests = open_in_browser(page, tmp_path / "profile")
    assert_math_rendered(found, requests)
