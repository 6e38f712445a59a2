"""The report in a real browser: headless Chromium loads it, runs its
script, and the assertions read what the script drew (the DOM after
rendering, and the pixels of a screenshot), not the static file.

Chromium is part of the test environment: the project's test script
(``./scripts/test``, which ``.ci/run`` calls) installs it. A missing browser is a failure, not a skip, so
a machine without it cannot pass the suite silently.
"""

from __future__ import annotations

import html as htmllib
import json
import os
import re
import shutil
import struct
import subprocess
import zlib
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest

from dst.report.html import write_report
from dst.sim.runner import run_seed
from dst.sim.scenario import load

# Chromium starts, loads a local file and renders in about a second here;
# the bound only keeps a wedged browser from hanging the suite.
BROWSER_TIMEOUT_S = 90
VIRTUAL_TIME_MS = 5000
WINDOW = (1400, 2400)
HOSTILE = "</script><b>x\"'&<!--\udc80"

# Canvas colours the timeline script uses (see dst/report/html.py).
OK_RGB = (0x3C, 0x9A, 0x5F)
LEAD_RGB = (0xE0, 0x00, 0x7A)


def chromium() -> str:
    candidates = [os.environ.get("DST_CHROMIUM"), "/usr/bin/chromium",
                  shutil.which("chromium"), shutil.which("chromium-browser")]
    for c in candidates:
        if c and os.path.isfile(c) and os.access(c, os.X_OK):
            return c
    pytest.fail("Chromium is not installed (looked for $DST_CHROMIUM, /usr/bin/chromium, chromium, "
                "chromium-browser). The browser test needs it: run the project's test script, "
                "./scripts/test, which installs it.", pytrace=False)


def browse(page: Path, tmp: Path, *extra: str, fragment: str = "") -> subprocess.CompletedProcess:
    profile = tmp / f"profile-{len(list(tmp.glob('profile-*')))}"
    cmd = [chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
           "--disable-background-networking", "--disable-component-update", "--disable-sync",
           "--disable-extensions", "--hide-scrollbars", "--force-device-scale-factor=1",
           f"--user-data-dir={profile}", f"--window-size={WINDOW[0]},{WINDOW[1]}",
           f"--virtual-time-budget={VIRTUAL_TIME_MS}", *extra, page.resolve().as_uri() + fragment]
    run = subprocess.run(cmd, capture_output=True, timeout=BROWSER_TIMEOUT_S,
                         env={**os.environ, "HOME": str(tmp)})
    assert run.returncode == 0, f"chromium exited {run.returncode}: {run.stderr.decode(errors='replace')[-2000:]}"
    return run


class Dom(HTMLParser):
    """The elements of a dumped DOM, as (tag, attrs) in document order."""

    def __init__(self, text: str):
        super().__init__(convert_charrefs=True)
        self.elements: list[tuple[str, dict[str, str]]] = []
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        self.elements.append((tag, {k: v or "" for k, v in attrs}))

    def with_attr(self, name: str) -> list[dict[str, str]]:
        return [a for _, a in self.elements if name in a]

    def by_id(self, id_: str) -> dict[str, str]:
        found = [a for _, a in self.elements if a.get("id") == id_]
        assert len(found) == 1, f"expected one #{id_}, found {len(found)}"
        return found[0]


def read_png(data: bytes) -> np.ndarray:
    """Decode an 8-bit RGB/RGBA PNG (what Chromium writes) to an array."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    pos, idat, header = 8, [], None
    while pos < len(data):
        n, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + n]
        pos += 12 + n
        if kind == b"IHDR":
            header = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            idat.append(body)
    assert header is not None
    w, h, depth, ctype, _, _, interlace = header
    assert depth == 8 and ctype in (2, 6) and interlace == 0, header
    ch = 3 if ctype == 2 else 4
    raw = np.frombuffer(zlib.decompress(b"".join(idat)), np.uint8).reshape(h, 1 + w * ch)
    out = np.zeros((h, w * ch), np.uint8)
    prev = np.zeros(w * ch, np.int32)
    for y in range(h):
        ft, line = raw[y, 0], raw[y, 1:].astype(np.int32)
        if ft == 0:
            cur = line
        elif ft == 2:
            cur = (line + prev) & 255
        else:   # Sub, Average, Paeth: each byte depends on the one to its left
            cur = np.zeros_like(line)
            for x in range(w * ch):
                a = int(cur[x - ch]) if x >= ch else 0
                b = int(prev[x])
                c = int(prev[x - ch]) if x >= ch else 0
                if ft == 1:
                    p = a
                elif ft == 3:
                    p = (a + b) // 2
                else:
                    pa, pb, pc = abs(b - c), abs(a - c), abs(a + b - 2 * c)
                    p = a if pa <= pb and pa <= pc else b if pb <= pc else c
                cur[x] = (int(line[x]) + p) & 255
        out[y] = cur
        prev = cur
    return out.reshape(h, w, ch)[:, :, :3]


def count_rgb(img: np.ndarray, rgb: tuple[int, int, int], tol: int = 6) -> int:
    return int(np.all(np.abs(img.astype(np.int32) - np.array(rgb)) <= tol, axis=2).sum())


@pytest.fixture(scope="module")
def failing(tmp_path_factory):
    """A failing run's report, its DOM after the script ran, and a screenshot."""
    tmp = tmp_path_factory.mktemp("browser")
    result, history = run_seed(load("default"), 0, "tests.broken_backends:lost_write")
    assert result.verdict == "violation"
    page = tmp / "report.html"
    write_report(page, history, result.summary())
    dom = Dom(browse(page, tmp, "--dump-dom").stdout.decode("utf-8"))
    shot = tmp / "report.png"
    browse(page, tmp, f"--screenshot={shot}")
    return result, history, dom, read_png(shot.read_bytes()), page


def test_lanes_per_process_on_the_event_axis(failing, tmp_path):
    result, history, _, _, page = failing
    dom = Dom(browse(page, tmp_path, "--dump-dom", fragment="#lanes=process&axis=order").stdout.decode("utf-8"))
    status = dom.by_id("dst-status")
    assert status["data-rendered"] == "1" and "data-error" not in status
    procs = {e["process"] for e in history.events if e["process"] != "nemesis"}
    lanes = [a["data-lane"] for a in dom.with_attr("data-lane")]
    assert len(lanes) == len(procs) + 1 and lanes[0] == "faults"
    numbered = sorted(p for p in procs if isinstance(p, int))
    assert lanes[1:] == [f"p:{p}" for p in numbered] + ["p:probe"]
    marks = [a for _, a in dom.elements if "violation" in a.get("class", "").split()]
    assert marks[0]["data-op"] == str(result.violations[0]["op"]["index"]) and marks[0]["data-visible"] == "1"


def test_rendered_timeline_has_lanes_and_the_violation(failing):
    result, history, dom, _, _ = failing
    status = dom.by_id("dst-status")
    assert "data-error" not in status, status["data-error"]
    assert status["data-rendered"] == "1", "the timeline script did not finish"
    # Lanes the script drew: faults, one per client, the probe.
    lanes = dom.with_attr("data-lane")
    kinds = [a["data-kind"] for a in lanes]
    clients = history.meta["scenario_config"]["clients"]
    assert kinds.count("client") == clients
    assert kinds[0] == "faults" and "probe" in kinds
    assert [a["data-lane"] for a in lanes if a["data-kind"] == "client"] == [f"c{n}" for n in range(clients)]
    assert int(status["data-lanes"]) == len(lanes) - 1
    # The violating op, marked over the canvas and in view.
    want = str(result.violations[0]["op"]["index"])
    marks = [a for _, a in dom.elements if "violation" in a.get("class", "").split()]
    assert len(marks) == 1 and marks[0]["data-op"] == want and marks[0]["data-visible"] == "1"
    assert status["data-violation"] == want
    assert int(status["data-drawn"]) > 10
    assert int(status["data-ops"]) == len({e["index"] for e in history.events if e["type"] == "invoke"})
    # The prefix list the script built, ending in the op that could not go next.
    buttons = [a for t, a in dom.elements if t == "button" and "prefix" in a.get("class", "")]
    assert buttons, "no prefix ops listed"
    assert any("lead" in a.get("class", "") for t, a in dom.elements if t == "button")


def test_screenshot_shows_the_drawing(failing):
    _, _, dom, img, _ = failing
    assert img.shape[:2] == (WINDOW[1], WINDOW[0])
    colours = np.unique(img.reshape(-1, 3)[::7], axis=0)
    assert len(colours) > 50, f"the screenshot is nearly blank ({len(colours)} colours)"
    # Ops drawn as bars (the page's only other green is a 14x10 legend swatch).
    assert count_rgb(img, OK_RGB) > 2_000
    # The violation, outlined where the script says it put the marker.
    x, y, w, h = (int(n) for n in dom.by_id("dst-status")["data-lead-box"].split(","))
    assert w > 4 and h > 4 and 0 <= x and x + w <= WINDOW[0], (x, y, w, h)
    assert y + h <= WINDOW[1], f"the violation marker is below the screenshot (y={y}); enlarge WINDOW"
    box = img[y:y + h, x:x + w]
    assert count_rgb(box, LEAD_RGB, tol=24) >= w + h, "no violation outline drawn at the marker"
    inside = img[y + 6:y + h - 6, x + 8:x + w - 8]
    assert inside.size and count_rgb(inside, LEAD_RGB, tol=24) < inside.shape[0] * inside.shape[1] / 2


# A page that loads the report in a frame and plays a user: hover the
# violating op, click it, wheel-zoom in, and writes what the report showed.
PLAYER = """<!DOCTYPE html><html><body><pre id="out">waiting</pre>
<iframe id="f" src="report.html" width="1400" height="1200"></iframe>
<script>
document.getElementById("f").addEventListener("load", function () {
  var out = document.getElementById("out");
  try {
    var d = this.contentDocument, w = this.contentWindow;
    var canvas = d.querySelector(".tl-canvas"), box = d.querySelector(".violation").getBoundingClientRect();
    var x = box.left + box.width / 2, y = box.top + box.height / 2;
    function fire(type, target, extra) {
      var init = Object.assign({bubbles: true, cancelable: true, clientX: x, clientY: y, view: w}, extra || {});
      target.dispatchEvent(type === "wheel" ? new w.WheelEvent(type, init) : new w.MouseEvent(type, init));
    }
    var status = d.getElementById("dst-status"), before = +status.getAttribute("data-drawn");
    fire("mousemove", canvas);
    var tip = d.getElementById("tooltip");
    var hover = tip.hidden ? "(hidden)" : tip.textContent;
    fire("mousedown", canvas);
    fire("mouseup", canvas);
    var pinned = d.querySelector(".tl-details").textContent;
    fire("wheel", canvas, {deltaY: 800});
    var after = +status.getAttribute("data-drawn");
    out.textContent = JSON.stringify({hover: hover, pinned: pinned, before: before, after: after});
  } catch (e) { out.textContent = "error: " + e; }
});
</script></body></html>"""


def test_hover_click_and_zoom_in_the_browser(failing):
    result, _, _, _, page = failing
    player = page.parent / "player.html"
    player.write_text(PLAYER, encoding="utf-8")
    dom = browse(player, page.parent, "--dump-dom", "--allow-file-access-from-files").stdout.decode("utf-8")
    m = re.search(r'<pre id="out">(.*?)</pre>', dom, re.S)
    assert m and m.group(1).startswith("{"), m and m.group(1)[:300]
    seen = json.loads(htmllib.unescape(m.group(1)))
    op = result.violations[0]["op"]
    for text in (seen["hover"], seen["pinned"]):
        assert text.startswith(f"#{op['index']}  process {op['process']}  {op['f']}"), text
        assert f"output: {op['output']}" in text and "VIOLATION: " + result.violations[0]["message"] in text
    assert seen["after"] > seen["before"] > 0      # wheel down zooms out: more ops in view


def test_hostile_strings_stay_text_in_the_browser(tmp_path):
    from dst.history import History
    h = History(meta={"scenario": HOSTILE, "seed": 0, "backend": HOSTILE, "dim": 2, "exact": True,
                      "score_eps": 1e-4, "atomic_batches": False})
    v = h.table.ref([0.0, 1.0])
    h.add(0, 0, "invoke", "store", {"id": HOSTILE, "vector": v})
    h.add(3, 0, "ok", "store", None, dispatch=0)
    h.add(4, 0, "invoke", "get", {"id": HOSTILE})
    h.add(6, 0, "ok", "get", v, dispatch=1)
    page = tmp_path / "hostile.html"
    write_report(page, h, {"seed": 0, "verdict": "ok", "violations": []}, title=HOSTILE)
    dom = Dom(browse(page, tmp_path, "--dump-dom").stdout.decode("utf-8"))
    status = dom.by_id("dst-status")
    assert status["data-rendered"] == "1" and "data-error" not in status
    assert status["data-ops"] == "2"
    assert not [t for t, _ in dom.elements if t == "b"], "an id was parsed as markup"
