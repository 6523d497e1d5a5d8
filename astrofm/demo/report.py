"""A self-contained HTML report: every figure inline (base64 PNG), no network needed to view it."""

from __future__ import annotations

import base64
import html
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from astrofm._version import __version__
from astrofm.utils.atomic import atomic_write_text

_STYLE = """
body { font-family: -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; max-width: 1100px; margin: 2em auto;
       color: #222; line-height: 1.45; padding: 0 1em; }
h1 { border-bottom: 2px solid #334; padding-bottom: .2em; }
h2 { margin-top: 2em; color: #334; }
table { border-collapse: collapse; margin: 1em 0; }
th, td { border: 1px solid #ccc; padding: .3em .7em; text-align: right; }
th { background: #eef; } td:first-child, th:first-child { text-align: left; }
figure { margin: 1em 0; } figure img { max-width: 100%; border: 1px solid #ddd; }
figcaption { font-size: .9em; color: #555; }
.better { color: #175; font-weight: bold; } .worse { color: #a22; }
.note { color: #555; font-size: .9em; }
"""


@dataclass
class Section:
    """One report section: a title, paragraphs, tables and figures, in order."""

    title: str
    blocks: list[str] = field(default_factory=list)

    def text(self, paragraph: str) -> Section:
        self.blocks.append(f"<p>{html.escape(paragraph)}</p>")
        return self

    def table(self, header: Sequence[str], rows: Sequence[Sequence[Any]]) -> Section:
        cells = "".join(f"<th>{html.escape(str(h))}</th>" for h in header)
        body = []
        for row in rows:
            body.append("<tr>" + "".join(f"<td>{html.escape(_fmt(v))}</td>" for v in row) + "</tr>")
        self.blocks.append(f"<table><tr>{cells}</tr>{''.join(body)}</table>")
        return self

    def figure(self, png: str | Path, caption: str) -> Section:
        data = base64.b64encode(Path(png).read_bytes()).decode()
        self.blocks.append(f'<figure><img alt="{html.escape(caption)}" src="data:image/png;base64,{data}">'
                           f"<figcaption>{html.escape(caption)}</figcaption></figure>")
        return self


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.3f}"
    return str(value)


def write_report(path: str | Path, title: str, sections: Sequence[Section], *,
                 metrics: Mapping[str, Any] | None = None) -> Path:
    """Write the report (atomically); ``metrics`` are embedded as JSON for machines too."""
    parts = [f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>{html.escape(title)}</title>",
             f"<style>{_STYLE}</style></head><body><h1>{html.escape(title)}</h1>",
             f"<p class='note'>astrofm {__version__}</p>"]
    for section in sections:
        parts.append(f"<h2>{html.escape(section.title)}</h2>")
        parts.extend(section.blocks)
    if metrics is not None:
        # raw JSON (a script's text is not HTML-decoded); "</" escaped so that no "</script>" ends it early
        parts.append("<script type='application/json' id='metrics'>"
                     + json.dumps(metrics, default=str).replace("</", "<\\/") + "</script>")
    parts.append("</body></html>")
    atomic_write_text(path, "\n".join(parts))
    return Path(path)
