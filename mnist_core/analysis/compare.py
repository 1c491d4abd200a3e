"""Comparing runs: config diffs, 'change one thing' summaries, the reference comparison table."""

from __future__ import annotations

import csv
import io

from ..learn.config import TrainConfig
from ..learn.metrics import final_gap

IGNORED = ("device", "threads")  # how a run was executed, not what was trained

# (row label, registry key, overrides of its preset): the reference project's comparison table
COMPARISON = [
    ("Perceptron", "perceptron", {}),
    ("Deep", "deep", {"weight_decay": 0.0}),
    ("Deep + L2", "deep", {}),
    ("CNN", "cnn_basic", {}),
    ("BetterCNN", "better_cnn", {}),
]


def config_diff(configs: dict[str, dict]) -> dict[str, dict[str, object]]:
    """Settings whose values differ between the runs: {setting: {run id: value}}."""
    if len(configs) < 2:
        return {}
    keys = sorted({k for c in configs.values() for k in c} - set(IGNORED))
    return {
        k: {run: c.get(k) for run, c in configs.items()}
        for k in keys
        if len({repr(c.get(k)) for c in configs.values()}) > 1
    }


def change_summary(base, changed, base_epochs: list[dict], changed_epochs: list[dict]) -> str:
    """One paragraph on what a 'change one thing' experiment changed and by how much."""
    diff = config_diff({"a": base.config, "b": changed.config})
    what = ", ".join(f"{k} from {v['a']} to {v['b']}" for k, v in diff.items()) or "nothing"
    parts = [f"Changing {what}"]
    if base.test_acc is not None and changed.test_acc is not None:
        delta = 100 * (changed.test_acc - base.test_acc)
        parts.append(
            f"moved test accuracy from {base.test_acc:.2%} to {changed.test_acc:.2%} ({delta:+.2f} points)"
        )
    g0, g1 = final_gap(base_epochs), final_gap(changed_epochs)
    if g0 is not None and g1 is not None:
        gaps = (g0, g1)
        parts.append(
            f"and the final train-validation gap from {100 * gaps[0]:.2f} to {100 * gaps[1]:.2f} "
            "points"
            + (
                " (less overfitting)"
                if gaps[1] < gaps[0]
                else " (more overfitting)"
                if gaps[1] > gaps[0]
                else ""
            )
        )
    return " ".join(parts) + "."


def comparison_rows(runs) -> list[dict]:
    """The reference table filled from completed full-data runs; `config` is what to queue if missing."""
    rows = []
    for label, key, overrides in COMPARISON:
        cfg = TrainConfig.for_model(key, **overrides)
        match = [
            r
            for r in runs
            if r.status == "completed"
            and r.test_acc is not None
            and r.config.get("limit", 0) == 0
            and r.config["model"] == key
            and r.config.get("weight_decay") == cfg.weight_decay
        ]
        best = max(match, key=lambda r: r.test_acc, default=None)
        rows.append(
            dict(
                model=label,
                registry_key=key,
                test_accuracy=best.test_acc if best else None,
                run=best.id if best else None,
                config=cfg,
            )
        )
    return rows


def to_csv(rows: list[dict]) -> str:
    """A list of flat dicts as CSV text (columns from the union of keys, in first-seen order)."""
    columns: list[str] = []
    for row in rows:
        columns += [k for k in row if k not in columns]
    buf = io.StringIO()
    writer = csv.DictWriter(buf, columns)
    writer.writeheader()
    writer.writerows(rows)
    return buf.getvalue()
