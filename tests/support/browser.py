"""Headless Chromium for end-to-end tests of the web pages: DOM dumps, screenshots, and a live page.

Chromium comes from Debian's `chromium` package (`apt-get install -y chromium`). It only ever talks
to 127.0.0.1: background networking, component updates, sync and QUIC are off, and the host
resolver maps every other name to "not found".

- `dump_dom(url)`: the DOM after the page loaded (`--dump-dom`).
- `screenshot(url, path)`: a PNG of the page (`--screenshot`).
- `live(url)`: a browser that stays open on the page, driven over the DevTools protocol (a
  websocket on a loopback port), so a test can watch the page change by itself, read where its
  elements are drawn and take a screenshot of what it shows (`LivePage.screenshot`).
- `read_png(data)`: the pixels of a PNG (Chromium's screenshots), to check what was drawn.

`Browser(workdir, timezone=...)` runs Chromium in that time zone (the viewer's zone, `TZ`).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
import urllib.request
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import aiohttp
import pytest

SETUP_TIMEOUT = 60.0


def chromium() -> str:
    """Path of Chromium; fails (never skips) the test when it is missing."""
    for name in ("chromium", "chromium-browser"):
        path = shutil.which(name)
        if path is not None:
            return path
    pytest.fail("chromium is not installed: run `apt-get install -y chromium`")


class Browser:
    """Runs headless Chromium with a private profile under `workdir`."""

    def __init__(self, workdir: Path, timezone: str | None = None) -> None:
        self.workdir = workdir
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.runs = 0
        self.env = {**os.environ, "TZ": timezone} if timezone else None

    def profile(self) -> Path:
        """A fresh, empty Chromium profile directory."""
        self.runs += 1
        return Path(tempfile.mkdtemp(prefix=f"profile-{self.runs}-", dir=self.workdir))

    def flags(self, profile: Path) -> list[str]:
        return [
            "--headless",
            "--no-sandbox",  # tests run as root in CI
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--no-default-browser-check",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-extensions",
            "--disable-default-apps",
            "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1",
            "--mute-audio",
            f"--user-data-dir={profile}",
        ]

    def _run(self, *args: str) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [chromium(), *self.flags(self.profile()), *args],
            capture_output=True,
            text=True,
            timeout=SETUP_TIMEOUT,
            check=False,
            stdin=subprocess.DEVNULL,
            env=self.env,
        )
        assert result.returncode == 0, (
            f"chromium {' '.join(args)} exited {result.returncode}:\n{result.stderr[-3000:]}"
        )
        return result

    def dump_dom(self, url: str) -> str:
        """The serialized DOM of `url` after it loaded."""
        dom = self._run("--dump-dom", url).stdout
        assert dom.strip(), f"chromium dumped an empty DOM for {url}"
        return dom

    def screenshot(self, url: str, path: Path, width: int = 1280, height: int = 900) -> Path:
        self._run(f"--screenshot={path}", f"--window-size={width},{height}", "--hide-scrollbars", url)
        assert path.exists(), f"chromium wrote no screenshot to {path}"
        return path

    @contextlib.contextmanager
    def live(self, url: str) -> Iterator[LivePage]:
        """A browser that keeps `url` open (and follows it wherever the page goes by itself)."""
        profile = self.profile()
        log = (self.workdir / f"chromium-live-{self.runs}.log").open("wb")
        process = subprocess.Popen(
            [chromium(), *self.flags(profile), "--remote-debugging-port=0", "--window-size=1280,900", url],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env=self.env,
        )
        log.close()
        try:
            yield LivePage.attach(process, profile / "DevToolsActivePort", url)
        finally:
            _stop(process)


def _stop(process: subprocess.Popen[bytes]) -> None:
    """Stop this Chromium and every process it started (its own session)."""
    if process.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(10)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(10)


class DevToolsError(AssertionError):
    """DevTools could not evaluate an expression (e.g. the page was reloading meanwhile)."""


@dataclass
class LivePage:
    """One open page of a live Chromium, reached over the DevTools protocol on 127.0.0.1."""

    process: subprocess.Popen[bytes]
    websocket_url: str
    _ids: Iterator[int] = field(default_factory=lambda: iter(range(1, 1_000_000)))

    @classmethod
    def attach(cls, process: subprocess.Popen[bytes], port_file: Path, url: str) -> LivePage:
        deadline = time.monotonic() + SETUP_TIMEOUT
        while True:
            if process.poll() is not None:
                raise AssertionError(f"chromium exited with {process.returncode} before DevTools came up")
            if port_file.exists() and port_file.read_text().strip():
                port = int(port_file.read_text().split()[0])
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=5) as response:
                    targets = json.loads(response.read())
                pages = [target for target in targets if target.get("type") == "page"]
                if pages:
                    ws_url: str = pages[0]["webSocketDebuggerUrl"]
                    assert ws_url.startswith("ws://127.0.0.1:"), ws_url
                    return cls(process, ws_url)
            if time.monotonic() > deadline:
                raise AssertionError(f"no DevTools page for {url} after {SETUP_TIMEOUT:g} s")
            time.sleep(0.1)

    def evaluate(self, expression: str) -> Any:
        """The JSON value of a JavaScript expression evaluated in the page as it is now."""
        params = {"expression": expression, "returnByValue": True, "awaitPromise": True}
        result = self.call("Runtime.evaluate", params, f"evaluating {expression!r}")
        if "exceptionDetails" in result:
            raise DevToolsError(f"{expression!r} raised in the page: {result['exceptionDetails']}")
        return result["result"].get("value")

    def screenshot(self, clip: dict[str, float] | None = None) -> bytes:
        """A PNG of the page as it is drawn now, one CSS pixel per pixel: the viewport, or the
        rectangle `clip` (`x`, `y`, `width`, `height` in page coordinates)."""
        params: dict[str, Any] = {"format": "png"}
        if clip is not None:
            params["clip"] = {**clip, "scale": 1}
        result = self.call("Page.captureScreenshot", params, "taking a screenshot")
        return base64.b64decode(result["data"])

    def call(self, method: str, params: dict[str, Any], what: str) -> Any:
        """The result of one DevTools command."""
        try:
            return asyncio.run(self._call(method, params, what))
        except (aiohttp.ClientError, TimeoutError) as error:
            raise DevToolsError(f"DevTools connection failed {what}: {error!r}") from error

    async def _call(self, method: str, params: dict[str, Any], what: str) -> Any:
        request_id = next(self._ids)
        request = {"id": request_id, "method": method, "params": params}
        timeout = aiohttp.ClientTimeout(total=15)
        async with (
            aiohttp.ClientSession(timeout=timeout) as session,
            session.ws_connect(self.websocket_url, max_msg_size=0) as socket,
        ):
            await socket.send_json(request)
            async for message in socket:
                if message.type is not aiohttp.WSMsgType.TEXT:
                    break
                answer = json.loads(message.data)
                if answer.get("id") != request_id:
                    continue  # an event
                if "error" in answer:
                    raise DevToolsError(f"DevTools error {what}: {answer['error']}")
                return answer["result"]
        raise DevToolsError(f"DevTools closed the connection {what}")


# --- reading a dumped DOM -----------------------------------------------------------------------------


@dataclass
class Cell:
    text: str
    attrs: dict[str, str]
    html_tags: list[str]  # tags found inside the cell
    elements: list[tuple[str, dict[str, str]]] = field(default_factory=list)  # those tags, with attributes

    def find(self, tag: str, css_class: str | None = None) -> list[dict[str, str]]:
        """Attributes of the elements `tag` (with class `css_class`) inside the cell."""
        return _matching(self.elements, tag, css_class)


class _Tables(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tables: dict[str, list[list[Cell]]] = {}
        self.meta: list[dict[str, str]] = []
        self.elements: list[tuple[str, dict[str, str]]] = []
        self._table: str | None = None
        self._section = ""
        self._row: list[Cell] | None = None
        self._cell: Cell | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {name: value or "" for name, value in attrs}
        self.elements.append((tag, values))
        if tag == "meta":
            self.meta.append(values)
        elif tag == "table":
            self._table = values.get("id", f"table-{len(self.tables)}")
            self.tables[self._table] = []
        elif tag in ("thead", "tbody"):
            self._section = tag
        elif tag == "tr" and self._table is not None and self._section != "thead":
            self._row = []
        elif tag in ("td", "th") and self._row is not None:
            self._cell = Cell("", values, [])
        elif self._cell is not None:
            self._cell.html_tags.append(tag)
            self._cell.elements.append((tag, values))

    def handle_endtag(self, tag: str) -> None:
        if tag in ("td", "th") and self._cell is not None and self._row is not None:
            self._cell.text = " ".join(self._cell.text.split())
            self._row.append(self._cell)
            self._cell = None
        elif tag == "tr" and self._row is not None and self._table is not None:
            self.tables[self._table].append(self._row)
            self._row = None
        elif tag in ("thead", "tbody"):
            self._section = ""
        elif tag == "table":
            self._table = None

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell.text += data


@dataclass
class Page:
    """The tables (body rows of cells, by table id) and meta tags of a dumped DOM."""

    html: str
    tables: dict[str, list[list[Cell]]]
    meta: list[dict[str, str]]
    elements: list[tuple[str, dict[str, str]]]  # every element of the page, in document order

    @classmethod
    def parse(cls, html: str) -> Page:
        parser = _Tables()
        parser.feed(html)
        parser.close()
        return cls(html, parser.tables, parser.meta, parser.elements)

    def find(self, tag: str, css_class: str | None = None) -> list[dict[str, str]]:
        """Attributes of the page's elements `tag` (with class `css_class`), in document order."""
        return _matching(self.elements, tag, css_class)

    def rows(self, table: str) -> list[list[Cell]]:
        assert table in self.tables, f"no table #{table} in the page:\n{self.html[:3000]}"
        return self.tables[table]


def _matching(
    elements: list[tuple[str, dict[str, str]]], tag: str, css_class: str | None
) -> list[dict[str, str]]:
    return [
        attrs
        for name, attrs in elements
        if name == tag and (css_class is None or css_class in attrs.get("class", "").split())
    ]


# --- reading a screenshot -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Picture:
    """The pixels of a PNG as rows of (red, green, blue) (alpha dropped)."""

    width: int
    height: int
    rows: list[list[tuple[int, int, int]]]

    def pixel(self, x: float, y: float) -> tuple[int, int, int]:
        return self.rows[int(y)][int(x)]


def read_png(data: bytes) -> Picture:
    """Decode an 8-bit RGB or RGBA, non-interlaced PNG (what Chromium writes)."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    position, header, compressed = 8, b"", b""
    while position < len(data):
        length = int.from_bytes(data[position : position + 4], "big")
        kind = data[position + 4 : position + 8]
        body = data[position + 8 : position + 8 + length]
        if kind == b"IHDR":
            header = body
        elif kind == b"IDAT":
            compressed += body
        elif kind == b"IEND":
            break
        position += 12 + length
    width, height = int.from_bytes(header[0:4], "big"), int.from_bytes(header[4:8], "big")
    depth, color_type, interlace = header[8], header[9], header[12]
    assert depth == 8 and color_type in (2, 6) and interlace == 0, f"unsupported PNG {header.hex()}"
    channels = 3 if color_type == 2 else 4
    stride = width * channels
    raw = zlib.decompress(compressed)
    rows: list[list[tuple[int, int, int]]] = []
    previous = bytearray(stride)
    for row_index in range(height):
        start = row_index * (stride + 1)
        line_filter, line = raw[start], bytearray(raw[start + 1 : start + 1 + stride])
        for i in range(stride):
            left = line[i - channels] if i >= channels else 0
            up = previous[i]
            up_left = previous[i - channels] if i >= channels else 0
            if line_filter == 1:
                line[i] = (line[i] + left) & 0xFF
            elif line_filter == 2:
                line[i] = (line[i] + up) & 0xFF
            elif line_filter == 3:
                line[i] = (line[i] + (left + up) // 2) & 0xFF
            elif line_filter == 4:
                estimate = left + up - up_left
                distances = (abs(estimate - left), abs(estimate - up), abs(estimate - up_left))
                predictor = (left, up, up_left)[distances.index(min(distances))]
                line[i] = (line[i] + predictor) & 0xFF
        rows.append([(line[x], line[x + 1], line[x + 2]) for x in range(0, stride, channels)])
        previous = line
    return Picture(width, height, rows)


def png_size(path: Path) -> tuple[int, int]:
    """(width, height) from a PNG's header; fails when the file is not a PNG."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", f"{path} is not a PNG"
    assert data[12:16] == b"IHDR", f"{path}: no IHDR chunk"
    return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
