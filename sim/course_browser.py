"""The built course in a real browser: headless Chromium opens each page from ``file://``.

For each page it records the console errors and uncaught exceptions, every request that left
the machine (anything but ``file:``, ``data:``, ``blob:``, ``about:``), how many formulas MathJax
typeset and whether raw TeX (``$\\lambda$``) is still visible, and saves a screenshot. It talks to
Chromium through the DevTools protocol over a WebSocket (the ``websockets`` package the project
already uses); Chromium is started on 127.0.0.1 with a fresh profile in a temporary directory,
every wait is bounded, and the browser is stopped even when a check fails.

    python -m sim course --browser-check            # the whole course, screenshots in build/course/screenshots/
    python -m sim.course_browser build/course/index.html build/course/00_simulator_primer.html
"""

from __future__ import annotations

import asyncio
import base64
import itertools
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

CANDIDATES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
START_TIMEOUT = 30.0  # seconds for Chromium to open its DevTools port
PAGE_TIMEOUT = 60.0  # seconds for one page to load and MathJax to finish
WIDTH, HEIGHT = 1280, 900  # the window of the screenshots, in CSS pixels
MAX_SCREENSHOT_HEIGHT = 6000  # a long notebook is captured from its top down to this height

# A TeX command between dollars left in the visible text: MathJax did not typeset it.
RAW_TEX = re.compile(r"\$[^$\n]{0,80}\\[A-Za-z]+[^$\n]{0,80}\$")

_STATE = """(() => {
  const mathjax = typeof MathJax !== 'undefined' && !!MathJax.startup;
  const typeset = document.querySelectorAll('mjx-container').length;
  const errors = document.querySelectorAll('mjx-merror, [data-mjx-error]').length;
  // outputs wider than their cell: each must scroll inside it (overflow-x auto or scroll)
  const wide = [...document.querySelectorAll('.jp-OutputArea-output')].filter(e => e.scrollWidth > e.clientWidth + 1);
  const cut = wide.filter(e => !['auto', 'scroll'].includes(getComputedStyle(e).overflowX)).length;
  const pageWide = document.documentElement.scrollWidth > window.innerWidth + 1;
  return JSON.stringify({mathjax, typeset, errors, title: document.title, wide: wide.length, cut, pageWide,
                         text: document.body ? document.body.innerText : '',
                         height: Math.ceil(document.documentElement.scrollHeight)});
})()"""

# Resolves once MathJax has typeset the page (at once, false, on a page without MathJax).
_MATHJAX_DONE = """new Promise(resolve => {
  if (typeof MathJax === 'undefined' || !MathJax.startup) { resolve(false); return; }
  MathJax.startup.promise.then(() => resolve(true), () => resolve(false));  // MathJax 3
})"""


def find_chromium() -> str | None:
    """The Chromium (or Chrome) executable on PATH, or None."""
    for name in CANDIDATES:
        found = shutil.which(name)
        if found:
            return found
    return None


@dataclass
class PageCheck:
    """What Chromium saw on one page."""

    path: Path
    title: str = ""
    mathjax_loaded: bool = False
    typeset: int = 0  # formulas MathJax rendered
    wide_outputs: int = 0  # outputs wider than their cell (they scroll inside it)
    cut_outputs: int = 0  # of those, the ones that cannot scroll: cut off
    page_scrolls_sideways: bool = False  # something makes the whole page wider than the window
    math_errors: int = 0
    raw_tex: list[str] = field(default_factory=list)  # TeX still visible as text
    console_errors: list[str] = field(default_factory=list)
    remote_requests: list[str] = field(default_factory=list)  # requests that would need a network
    screenshot: Path | None = None
    problem: str | None = None  # the page could not be checked at all

    @property
    def ok(self) -> bool:
        return not (self.problem or self.math_errors or self.raw_tex or self.console_errors or self.remote_requests
                    or self.cut_outputs or self.page_scrolls_sideways)

    def line(self) -> str:
        head = f"chromium: {self.path.name}: "
        if self.problem:
            return head + f"NOT CHECKED: {self.problem}"
        what = [f"{self.typeset} formula(s) typeset", f"{len(self.console_errors)} console error(s)"]
        if self.raw_tex:
            what.append(f"raw TeX left: {self.raw_tex[0]!r}")
        if self.math_errors:
            what.append(f"{self.math_errors} MathJax error(s)")
        if self.cut_outputs:
            what.append(f"{self.cut_outputs} output(s) cut off")
        if self.page_scrolls_sideways:
            what.append("the page is wider than the window")
        if self.remote_requests:
            what.append(f"network request: {self.remote_requests[0]}")
        if self.console_errors:
            what.append(f"first error: {self.console_errors[0]}")
        return head + ("ok" if self.ok else "FAILED") + ": " + "; ".join(what)


def check_pages(pages: list[Path], screenshots: Path | None, *, chromium: str | None = None,
                page_timeout: float = PAGE_TIMEOUT) -> list[PageCheck]:
    """Open each page in one headless Chromium; a screenshot of each into ``screenshots`` (if given)."""
    executable = chromium or find_chromium()
    if executable is None:
        raise FileNotFoundError("no Chromium on PATH (Debian package `chromium`)")
    if screenshots is not None:
        screenshots.mkdir(parents=True, exist_ok=True)
    return asyncio.run(_check_all(executable, [Path(p).resolve() for p in pages], screenshots, page_timeout))


async def _check_all(executable: str, pages: list[Path], screenshots: Path | None,
                     page_timeout: float) -> list[PageCheck]:
    profile = Path(tempfile.mkdtemp(prefix="sim-chromium-"))
    args = [executable, "--headless=new", "--disable-gpu", "--no-first-run", "--no-default-browser-check",
            "--disable-extensions", "--disable-background-networking", "--disable-sync",
            "--disable-component-update", "--mute-audio",
            f"--window-size={WIDTH},{HEIGHT}", "--remote-debugging-address=127.0.0.1",
            "--remote-debugging-port=0", f"--user-data-dir={profile}", "about:blank"]
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        args.insert(1, "--no-sandbox")  # Chromium refuses to run as root with its sandbox
    # Chromium puts its singleton socket in a directory of its own under TMPDIR and leaves it
    # there when it is stopped: inside the profile, it goes with the profile (a socket's path
    # must stay under 108 bytes, so no deeper)
    process = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL, start_new_session=True,
                               env={**os.environ, "TMPDIR": str(profile)})
    try:
        url = await asyncio.wait_for(_devtools_url(profile, process), START_TIMEOUT)
        async with _DevTools(url) as browser:
            results = []
            for page in pages:
                try:
                    results.append(await asyncio.wait_for(_check_one(browser, page, screenshots), page_timeout))
                except asyncio.TimeoutError:
                    results.append(PageCheck(page, problem=f"not loaded and typeset within {page_timeout:.0f} s"))
            try:
                await asyncio.wait_for(browser.call("Browser.close"), 5)
            except Exception:  # closing anyway below
                pass
            return results
    finally:
        _stop(process)
        shutil.rmtree(profile, ignore_errors=True)


async def _devtools_url(profile: Path, process: subprocess.Popen) -> str:
    """The browser's DevTools WebSocket address, from the DevToolsActivePort file Chromium writes."""
    port_file = profile / "DevToolsActivePort"
    while True:
        if process.poll() is not None:
            raise RuntimeError(f"Chromium exited with status {process.returncode} before opening its DevTools port")
        try:
            port, path = port_file.read_text().split()[:2]
            return f"ws://127.0.0.1:{int(port)}{path}"
        except (OSError, ValueError):
            await asyncio.sleep(0.1)


def _stop(process: subprocess.Popen) -> None:
    """Stop Chromium and its helper processes (its own process group): TERM, then KILL after 5 s."""
    if process.poll() is None:
        try:
            os.killpg(process.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
    try:
        process.wait(timeout=5)
    except subprocess.TimeoutExpired:
        try:
            os.killpg(process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        process.wait(timeout=5)


class _DevTools:
    """A minimal DevTools protocol client: commands with ids, events handed to listeners."""

    def __init__(self, url: str) -> None:
        self.url = url
        self._ids = itertools.count(1)
        self._waiting: dict[int, asyncio.Future] = {}
        self.listeners: list[Any] = []

    async def __aenter__(self) -> "_DevTools":
        from websockets.asyncio.client import connect

        self._socket = await connect(self.url, max_size=None, open_timeout=10, ping_interval=None)
        self._reader = asyncio.create_task(self._read())
        return self

    async def __aexit__(self, *exc) -> None:
        self._reader.cancel()
        await self._socket.close()

    async def _read(self) -> None:
        async for text in self._socket:
            message = json.loads(text)
            if "id" in message and message["id"] in self._waiting:
                future = self._waiting.pop(message["id"])
                if not future.done():
                    future.set_result(message)
            else:
                for listener in list(self.listeners):
                    listener(message)

    async def call(self, method: str, params: dict | None = None, session: str | None = None) -> dict:
        ident = next(self._ids)
        request: dict[str, Any] = {"id": ident, "method": method, "params": params or {}}
        if session:
            request["sessionId"] = session
        future = asyncio.get_running_loop().create_future()
        self._waiting[ident] = future
        await self._socket.send(json.dumps(request))
        reply = await future
        if "error" in reply:
            raise RuntimeError(f"{method}: {reply['error'].get('message')}")
        return reply.get("result", {})


async def _check_one(browser: _DevTools, page: Path, screenshots: Path | None) -> PageCheck:
    report = PageCheck(page)
    target = (await browser.call("Target.createTarget", {"url": "about:blank"}))["targetId"]
    session = (await browser.call("Target.attachToTarget", {"targetId": target, "flatten": True}))["sessionId"]
    loaded = asyncio.get_running_loop().create_future()

    def listen(message: dict) -> None:
        if message.get("sessionId") != session:
            return
        method, params = message.get("method"), message.get("params", {})
        if method == "Runtime.consoleAPICalled" and params.get("type") in ("error", "assert"):
            report.console_errors.append(" ".join(str(a.get("value", a.get("description", ""))) for a in params.get("args", [])))
        elif method == "Runtime.exceptionThrown":
            details = params.get("exceptionDetails", {})
            report.console_errors.append(details.get("exception", {}).get("description") or details.get("text", "exception"))
        elif method == "Log.entryAdded" and params.get("entry", {}).get("level") == "error":
            entry = params["entry"]
            report.console_errors.append(f"{entry.get('text', '')} {entry.get('url', '')}".strip())
        elif method == "Network.requestWillBeSent":
            url = params.get("request", {}).get("url", "")
            if not url.startswith(("file:", "data:", "blob:", "about:")):
                report.remote_requests.append(url)
        elif method == "Page.loadEventFired" and not loaded.done():
            loaded.set_result(True)

    browser.listeners.append(listen)
    try:
        for domain in ("Page", "Runtime", "Log", "Network"):
            await browser.call(f"{domain}.enable", session=session)
        await browser.call("Emulation.setDeviceMetricsOverride",
                           {"width": WIDTH, "height": HEIGHT, "deviceScaleFactor": 1, "mobile": False}, session)
        await browser.call("Page.navigate", {"url": page.as_uri()}, session)
        await loaded
        done = await browser.call("Runtime.evaluate", {"expression": _MATHJAX_DONE, "awaitPromise": True,
                                                       "returnByValue": True}, session)
        state = json.loads((await browser.call("Runtime.evaluate", {"expression": _STATE, "returnByValue": True},
                                               session))["result"]["value"])
        report.title = state["title"]
        report.mathjax_loaded = bool(done.get("result", {}).get("value")) and state["mathjax"]
        report.typeset, report.math_errors = state["typeset"], state["errors"]
        report.wide_outputs, report.cut_outputs = state["wide"], state["cut"]
        report.page_scrolls_sideways = state["pageWide"]
        report.raw_tex = RAW_TEX.findall(state["text"])[:5]
        if screenshots is not None:
            height = min(max(state["height"], HEIGHT), MAX_SCREENSHOT_HEIGHT)
            await browser.call("Emulation.setDeviceMetricsOverride",
                               {"width": WIDTH, "height": height, "deviceScaleFactor": 1, "mobile": False}, session)
            shot = await browser.call("Page.captureScreenshot", {"format": "png"}, session)
            report.screenshot = screenshots / (page.stem + ".png")
            report.screenshot.write_bytes(base64.b64decode(shot["data"]))
        await asyncio.sleep(0.2)  # errors logged by the last scripts still arrive
    finally:
        browser.listeners.remove(listen)
        try:
            await browser.call("Target.closeTarget", {"targetId": target})
        except RuntimeError:
            pass
    return report


def main(argv: list[str] | None = None) -> int:
    paths = [Path(p) for p in (sys.argv[1:] if argv is None else argv)]
    if not paths:
        print("usage: python -m sim.course_browser PAGE.html [PAGE.html ...]  (screenshots next to the first page)",
              file=sys.stderr)
        return 2
    if find_chromium() is None:
        print("no Chromium on PATH (Debian package `chromium`): nothing checked", file=sys.stderr)
        return 2
    started = time.perf_counter()
    reports = check_pages(paths, paths[0].resolve().parent / "screenshots")
    for report in reports:
        print(report.line())
    print(f"{len(reports)} page(s) checked in {time.perf_counter() - started:.1f} s")
    return 0 if all(r.ok for r in reports) else 1


if __name__ == "__main__":
    sys.exit(main())
