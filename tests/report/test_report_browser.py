"""``report/index.html`` in a real browser: headless Chromium loads a copy of the page with a
small probe script, which writes into the DOM whether every image decoded (``naturalWidth >
0``) and every error the page raised; ``--dump-dom`` returns that DOM and
``--enable-logging=stderr`` every console message. Two broken pages check that the probe sees
a failure when there is one.

Chromium is the Debian package ``chromium`` (``.ci/run`` installs it when missing); without
it the test is skipped, except under CI (``CI`` set), where that is a failure.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--enable-logging=stderr",
    "--v=0",
    "--virtual-time-budget=10000",
    "--dump-dom",
)
PROBE = """<script>
window.__errors = [];
window.addEventListener("error", (e) => window.__errors.push(
  e.message || ("failed to load " + ((e.target && (e.target.src || e.target.href)) || "?"))
    .slice(0, 80)), true);
const __consoleError = console.error;
console.error = (...args) => { window.__errors.push(args.join(" ")); __consoleError(...args); };
window.addEventListener("load", () => {
  const out = document.createElement("pre");
  out.id = "probe";
  out.textContent = JSON.stringify({
    images: [...document.images].map((i) => ({complete: i.complete, width: i.naturalWidth,
                                              alt: i.alt})),
    errors: window.__errors});
  document.body.appendChild(out);
});
</script>"""
CONSOLE = re.compile(r":CONSOLE[^\]]*\] (.*)")
GOOD_PNG = (
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmM"
    "IQAAAABJRU5ErkJggg=="
)

if CHROMIUM is None and not os.environ.get("CI"):
    pytest.skip(
        "Chromium is not installed (apt-get install chromium); the report is not "
        "checked in a browser here. CI installs it.",
        allow_module_level=True,
    )


def render(page: Path, tmp_path: Path) -> tuple[dict, list[str]]:
    """Load a probed copy of ``page`` (kept in its folder, so relative links resolve) and
    return the probe's findings and the console messages."""
    assert CHROMIUM is not None, "CI must install chromium (see .ci/run)"
    text = page.read_text(encoding="utf-8")
    probed = page.with_name(f".probe-{page.name}")
    probed.write_text(text.replace("<head>", "<head>" + PROBE, 1), encoding="utf-8")
    try:
        run = subprocess.run(
            [CHROMIUM, *FLAGS, f"--user-data-dir={tmp_path / 'profile'}", probed.as_uri()],
            capture_output=True,
            text=True,
            timeout=120,
        )
    finally:
        probed.unlink()
    found = re.search(r'<pre id="probe">(.*?)</pre>', run.stdout, re.S)
    assert found, f"the probe did not run; chromium said:\n{run.stderr[-2000:]}"
    probe = json.loads(
        found.group(1)
        .replace("&quot;", '"')
        .replace("&amp;", "&")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
    )
    return probe, CONSOLE.findall(run.stderr)


def test_report_renders_every_image_without_console_errors(survival_report, tmp_path):
    probe, console = render(survival_report.folder / "index.html", tmp_path)
    pngs = list(survival_report.folder.rglob("*.png"))
    assert len(probe["images"]) == len(pngs) >= 8
    broken = [i["alt"] for i in probe["images"] if not (i["complete"] and i["width"] > 0)]
    assert broken == []
    assert probe["errors"] == [] and console == []


def test_the_probe_sees_a_broken_image_and_a_console_error(tmp_path):
    page = tmp_path / "broken.html"
    page.write_text(
        "<!DOCTYPE html><html><head></head><body>"
        f'<img alt="good" src="data:image/png;base64,{GOOD_PNG}">'
        '<img alt="bad" src="data:image/png;base64,AAAA">'
        '<script>console.error("boom")</script></body></html>',
        encoding="utf-8",
    )
    probe, console = render(page, tmp_path)
    widths = {i["alt"]: i["width"] for i in probe["images"]}
    assert widths == {"good": 1, "bad": 0}
    assert "boom" in probe["errors"] and any("boom" in line for line in console)
