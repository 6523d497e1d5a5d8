"""Check that a report renders in headless Chromium with every image loaded (no network).

    python -m astrofm.demo.browser DIR/report.html [--screenshot shot.png]

A copy of the report gets a small script that, once the page has loaded, writes each ``<img>``'s
``complete`` flag and natural size into an attribute of ``<body>``; Chromium (``--headless
--dump-dom``) prints the resulting DOM, which is parsed here. Network access is blocked for the
browser (``--host-resolver-rules``), so an image that needed it would fail. Exit status 0 when the
page rendered and every image decoded, 1 otherwise, 2 when no Chromium is installed.
"""

from __future__ import annotations

import argparse
import html
import json
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from astrofm.errors import ConfigError

_PROBE = """<script>
window.addEventListener('load', function () {
  var images = Array.prototype.map.call(document.images, function (img) {
    return {complete: img.complete, width: img.naturalWidth, height: img.naturalHeight,
            inline: img.src.indexOf('data:image/') === 0, alt: img.alt};
  });
  document.body.setAttribute('data-image-check', JSON.stringify(images));
});
</script>"""
_ATTRIBUTE = re.compile(r'data-image-check="([^"]*)"')


def find_chromium() -> str | None:
    """The Chromium executable (``chromium``, ``chromium-browser`` or ``google-chrome``), or None."""
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        found = shutil.which(name)
        if found:
            return found
    return None


def check_report(report: str | Path, *, chromium: str | None = None, screenshot: str | Path | None = None,
                 timeout: float = 120.0) -> dict[str, Any]:
    """Open ``report`` in headless Chromium; returns ``{"images", "loaded", "failed", "title", "ok"}``."""
    report = Path(report).resolve()
    if not report.is_file():
        raise ConfigError(f"no report at {report}")
    browser = chromium or find_chromium()
    if browser is None:
        raise ConfigError("no Chromium found (Debian: apt-get install chromium)")
    text = report.read_text(encoding="utf-8")
    if "</body>" not in text:
        raise ConfigError(f"{report}: no </body>; not an HTML report")
    with tempfile.TemporaryDirectory(prefix="astrofm-report-check-") as tmp:
        probe = Path(tmp) / "report.html"
        probe.write_text(text.replace("</body>", _PROBE + "</body>", 1), encoding="utf-8")
        flags = [browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 "--host-resolver-rules=MAP * ~NOTFOUND", f"--user-data-dir={Path(tmp) / 'profile'}",
                 "--virtual-time-budget=10000", "--window-size=1280,2000"]
        done = subprocess.run([*flags, "--dump-dom", probe.as_uri()], capture_output=True, text=True,
                              timeout=timeout, check=False)
        if screenshot is not None:
            subprocess.run([*flags, f"--screenshot={Path(screenshot).resolve()}", probe.as_uri()],
                           capture_output=True, text=True, timeout=timeout, check=False)
    match = _ATTRIBUTE.search(done.stdout)
    if done.returncode != 0 or match is None:
        return {"ok": False, "images": None, "loaded": 0, "failed": [], "returncode": done.returncode,
                "error": (done.stderr or done.stdout)[-2000:]}
    images = json.loads(html.unescape(match.group(1)))
    failed = [img["alt"] for img in images if not (img["complete"] and img["width"] > 0 and img["inline"])]
    title = re.search(r"<title>(.*?)</title>", done.stdout)
    return {"ok": bool(images) and not failed, "images": len(images), "loaded": len(images) - len(failed),
            "failed": failed, "title": title.group(1) if title else None}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("report", type=Path)
    parser.add_argument("--chromium", help="browser executable (default: found on PATH)")
    parser.add_argument("--screenshot", type=Path, help="also save a screenshot of the page")
    args = parser.parse_args(argv)
    if (args.chromium or find_chromium()) is None:
        print("no Chromium found (Debian: apt-get install chromium)", file=sys.stderr)
        return 2
    result = check_report(args.report, chromium=args.chromium, screenshot=args.screenshot)
    print(json.dumps(result, indent=1))
    return 0 if result["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
