"""mkdocs hooks: generate the CLI reference and the benchmark table from the code, so they never go stale."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]


def _cli_reference() -> str:
    from astrofm.cli import build_parser

    parser = build_parser()
    sections = ["```text", parser.format_help().rstrip(), "```"]
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                sections += ["", f"## astrofm {name}", "", "```text", sub.format_help().rstrip(), "```"]
    return "\n".join(sections)


def on_page_markdown(markdown: str, page: Any, **_: Any) -> str:
    if "<!-- cli-reference -->" in markdown:
        markdown = markdown.replace("<!-- cli-reference -->", _cli_reference())
    if "<!-- benchmark-results -->" in markdown:
        table = (ROOT / "benchmarks" / "RESULTS.md").read_text().split("\n", 2)[2]
        markdown = markdown.replace("<!-- benchmark-results -->", table)
    return markdown
