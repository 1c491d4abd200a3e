"""The benchmark scripts run from a fresh shell, explain themselves, and print key=value figures."""

import subprocess
import sys

import pytest

from support import ROOT

SCRIPTS = sorted((ROOT / "benchmarks").glob("*.py"))


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *args], cwd=ROOT, capture_output=True, text=True, timeout=300)


def test_there_is_one_script_per_figure_family():
    assert {p.stem for p in SCRIPTS} >= {"train_speed", "jobs", "evaluation", "drawing", "reproduction"}


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.stem)
def test_help(script):
    out = run(str(script), "--help")
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("usage:")


def test_evaluation_prints_key_value_figures():
    out = run("benchmarks/evaluation.py", "checkpoints/default.pt", "--repeats", "1")
    assert out.returncode == 0, out.stderr
    figures = dict(line.split("=", 1) for line in out.stdout.splitlines())
    assert figures["images"] == "10000" and float(figures["accuracy"]) > 0.99
    assert float(figures["evaluate_cold_s"]) > 0 and float(figures["evaluate_cached_ms"]) >= 0
