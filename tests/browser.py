"""A real browser for the tests of what a person looks at: Debian's Chromium, headless.

``tools/browser/install.sh`` installs it on first use (``apt-get install chromium``); where
that is impossible the tests that need it skip. Screenshots are kept under
:data:`ARTIFACTS`. Every call starts a fresh browser with a
fresh profile and everything that would reach the network turned off (on a closed
network Chromium otherwise stalls on its background services).
"""

from __future__ import annotations

import html
import json
import os
import re
import subprocess
import tempfile
from pathlib import Path

import pytest

INSTALL_SCRIPT = Path(__file__).resolve().parents[1] / "tools" / "browser" / "install.sh"
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
)
TIMEOUT_SECONDS = 120
# Screenshots outlive pytest's rotated temporary directories here (CI may point it at its
# artifact folder).
ARTIFACTS = Path(
    os.environ.get("PARETOMERGE_TEST_ARTIFACTS", Path.home() / ".cache/paretomerge-test/artifacts")
)
# Written into the page by PROBE once every image has loaded or failed.
RESULT = re.compile(r'<pre id="browser-probe">(.*?)</pre>', re.DOTALL)
PROBE = """<script>
window.addEventListener("load", () => {
  const rows = [...document.querySelectorAll("table#pareto tbody tr[data-point]")];
  const images = [...document.images].map((image) => ({
    alt: image.alt, complete: image.complete, naturalWidth: image.naturalWidth,
  }));
  const external = [...document.querySelectorAll("[src],[href]")]
    .map((e) => e.getAttribute("src") || e.getAttribute("href"))
    .filter((url) => !url.startsWith("data:") && !url.startsWith("#"));
  const deploy = document.getElementById("deploy");
  const baselineFronts = [...document.querySelectorAll("table.baseline-front")].map((t) => ({
    run: t.dataset.run,
    points: [...t.querySelectorAll("tbody tr[data-point]")].map((row) => row.dataset.point),
  }));
  const probe = document.createElement("pre");
  probe.id = "browser-probe";
  probe.textContent = JSON.stringify({
    title: document.title,
    points: rows.map((row) => row.dataset.point),
    images, external,
    deploy: deploy ? [...deploy.querySelectorAll("li")].map((item) => item.textContent) : null,
    nothingToDeploy: deploy && deploy.tagName === "P" ? deploy.textContent : null,
    deployTop: deploy ? deploy.getBoundingClientRect().top : null,
    baselineFronts,
  });
  document.body.appendChild(probe);
});
</script>"""


def chromium() -> str:
    """The browser's path, installing it first if needed; skips the test when it cannot."""
    result = subprocess.run(
        ["bash", str(INSTALL_SCRIPT)], capture_output=True, text=True, timeout=900
    )
    if result.returncode == 2:
        pytest.skip(f"no Chromium here: {result.stderr.strip()}")
    if result.returncode != 0:
        raise RuntimeError(f"{INSTALL_SCRIPT} failed:\n{result.stdout}{result.stderr}")
    return result.stdout.strip().splitlines()[-1]


def _run(browser: str, *arguments: str) -> str:
    with tempfile.TemporaryDirectory(prefix="chromium-profile-") as profile:
        result = subprocess.run(
            [browser, *FLAGS, f"--user-data-dir={profile}", *arguments],
            capture_output=True,
            text=True,
            timeout=TIMEOUT_SECONDS,
        )
    if result.returncode != 0:
        raise RuntimeError(f"chromium {arguments} failed:\n{result.stderr[-3000:]}")
    return result.stdout


def probe_page(browser: str, page: Path, scratch: Path) -> dict:
    """Load a copy of ``page`` with :data:`PROBE` added and return what it found: the
    ``title``, the ``data-point`` of every row of ``table#pareto``, every image's
    ``naturalWidth`` (0 when it did not decode), any URL that is not a data URI, the
    report's "what to deploy" lines (``deploy``; ``nothingToDeploy`` the sentence in their
    place when there are none) and how far down the page they start (``deployTop``, CSS
    pixels), and each baseline front's run and ``data-point``s (``baselineFronts``)."""
    copy = scratch / f"probe-{page.name}"
    copy.write_text(page.read_text(encoding="utf-8").replace("</body>", PROBE + "</body>"))
    dom = _run(browser, "--virtual-time-budget=10000", "--dump-dom", copy.as_uri())
    found = RESULT.search(dom)
    if found is None:
        raise AssertionError(f"the probe found no loaded page in {copy}:\n{dom[-2000:]}")
    return json.loads(html.unescape(found.group(1)))


def screenshot(browser: str, page: Path, name: str, width: int = 1200, height: int = 2400) -> Path:
    """A PNG of ``page`` as a ``width`` x ``height`` window shows it, kept as
    ``ARTIFACTS/name``."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    out = ARTIFACTS / name
    _run(browser, f"--window-size={width},{height}", f"--screenshot={out}", page.as_uri())
    return out
