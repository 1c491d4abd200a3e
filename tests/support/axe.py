"""axe-core in the real browser: the WCAG 2.0/2.1 A and AA rules, critical and serious findings.

The engine is axe-core from npm when `.ci/run` installed it (AXE_CORE_JS, the version the
accessibility target names), else the copy that the pinned axe-playwright-python wheel carries."""

from __future__ import annotations

import os
import re
from pathlib import Path

TAGS = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]
BLOCKING = ("critical", "serious")

# Findings in Streamlit's or Plotly's own markup that the app cannot change: (rule id, a CSS
# selector fragment of the element, the upstream report). Empty: none are needed today.
EXCLUDED: list[tuple[str, str, str]] = []


def axe_source() -> Path:
    configured = os.environ.get("AXE_CORE_JS")
    if configured:
        return Path(configured)
    import axe_playwright_python

    return Path(axe_playwright_python.__file__).with_name("axe.min.js")


def axe_version() -> str:
    head = axe_source().read_text()[:200]
    found = re.search(r"axe v(\d+\.\d+\.\d+)", head)
    return found.group(1) if found else "unknown"


def blocking_violations(page) -> list[str]:
    """One line per critical or serious violation on the page as it is now (none: [])."""
    if not page.evaluate("() => typeof window.axe !== 'undefined'"):
        page.add_script_tag(content=axe_source().read_text())
    found = page.evaluate(
        """async (tags) => {
            const r = await axe.run(document, {runOnly: {type: 'tag', values: tags}});
            return r.violations.map(v => ({id: v.id, impact: v.impact,
                nodes: v.nodes.map(n => ({target: n.target.join(' '),
                    why: ((n.any[0] || n.all[0] || n.none[0] || {}).message || '')}))}));
        }""",
        TAGS,
    )
    lines = []
    for v in found:
        if v["impact"] not in BLOCKING:
            continue
        for node in v["nodes"]:
            if any(v["id"] == rule and part in node["target"] for rule, part, _ in EXCLUDED):
                continue
            lines.append(f"{v['impact']} {v['id']}: {node['target'][-120:]} -- {node['why'][:160]}")
    return lines
