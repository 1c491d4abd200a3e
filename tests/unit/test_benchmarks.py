"""The benchmark scripts run from a fresh shell, explain themselves, and print key=value figures."""

import subprocess
import sys

import pytest

from support import ROOT
from support.browser import require_browser

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


def figures(out: subprocess.CompletedProcess) -> dict[str, str]:
    """stdout as key=value pairs; anything else on stdout fails (progress belongs on stderr)."""
    assert out.returncode == 0, out.stderr
    pairs = [token for line in out.stdout.splitlines() for token in line.split()]
    assert pairs and all("=" in token for token in pairs), out.stdout
    return dict(token.split("=", 1) for token in pairs)


def test_evaluation_prints_key_value_figures():
    result = figures(run("benchmarks/evaluation.py", "checkpoints/default.pt", "--repeats", "1"))
    assert result["images"] == "10000" and float(result["accuracy"]) > 0.99
    assert float(result["evaluate_cold_s"]) > 0 and float(result["evaluate_cached_ms"]) >= 0


def test_drawing_prints_key_value_figures():
    result = figures(run("benchmarks/drawing.py", "--digits", "100", "--repeats", "2"))
    assert result["digits_redrawn"] == "100" and float(result["accuracy_through_preprocessing"]) > 0.9
    assert {f"predict_plus_{m}_ms_median" for m in ("saliency", "grad_cam")} <= set(result)


def test_inside_prints_key_value_figures_including_the_page_rerun():
    """The page timing drives pages/inside.py through AppTest: the script must import `pages` from a
    plain `python benchmarks/inside.py`, as README quotes it."""
    result = figures(run("benchmarks/inside.py", "--repeats", "2", "--sample", "300", "--skip-tsne"))
    assert result["model"] == "better_cnn" and float(result["activations_ms_median"]) > 0
    assert float(result["page_rerun_after_click_ms_median"]) > 0


def test_lessons_prints_each_experiments_time_and_verdict(monkeypatch):
    monkeypatch.setenv("MNIST_LAB_LESSON_IMAGES", "500")
    result = figures(run("benchmarks/lessons.py", "--lesson", "confusion"))
    assert result["lesson"] == "confusion" and result["status"] == "judged" and result["runs"] == "1"
    assert 0 < float(result["fit_s"]) < float(result["experiment_s"]) <= float(result["budget_s"])
    assert result["images_cap"] == "500"


def test_train_speed_measures_the_precisions_asked_and_autos_own():
    """--precisions fp32: fp32 and whatever `auto` picks on this machine (bf16 only where native)."""
    from mnist_core.learn.device import choose_precision, pick_device

    auto = choose_precision("auto", pick_device("auto"))[0]
    args = ("--steps", "3", "--repeats", "1", "--skip-time-to-99", "--precisions", "fp32")
    result = figures(run("benchmarks/train_speed.py", *args))
    measured = {
        k.removeprefix("engine_").removesuffix("_images_per_s") for k in result if k.endswith("_images_per_s")
    }
    assert measured == {"textbook", "fp32", auto}
    assert result["auto_precision"] == auto and float(result[f"speedup_{auto}"]) > 0
    assert float(result["speedup_auto"]) == float(result[f"speedup_{auto}"])
    refused = run("benchmarks/train_speed.py", "--precisions", "fp16")
    assert refused.returncode == 2 and "fp16" in refused.stderr


def test_instant_drives_the_app_and_prints_every_figure_with_its_target():
    """A tiny run of the real app in Chromium (1 repeat, 2,000 images, 2 strokes): every figure is a
    number, every target figure says whether it passed."""
    require_browser()
    smoke = ("--repeats", "1", "--run-repeats", "1", "--limit", "2000", "--strokes", "2")
    result = figures(run("benchmarks/instant.py", *smoke))
    assert result["repeats"] == "1" and result["limit"] == "2000"
    keys = {
        "start_to_first_point_s",
        "start_to_first_batch_s",
        "ui_run_s",
        "fit_s",
        "ui_run_over_fit",
        "no_browser_run_s",
        "no_browser_run_over_fit",
        "draw_to_prediction_ms_p50",
        "draw_to_prediction_ms_p90",
        "saliency_ms_p50",
        "evaluate_first_visit_s",
        "evaluate_first_visit_cold_s",
        "page_switch_s",
    }
    assert all(float(result[k]) > 0 for k in keys), {k: result.get(k) for k in keys}
    # one UI run: its phases add up to it (each printed to 2 decimals)
    phases = ("start", "training", "end", "shown")
    assert abs(sum(float(result[f"ui_phase_{p}_s"]) for p in phases) - float(result["ui_run_s"])) <= 0.03
    # the first server evaluated the default model itself; the next found its evaluation on disk
    assert float(result["evaluate_first_visit_cold_s"]) > float(result["evaluate_first_visit_s"])
    # a short run's worker may have ended and been reaped before the CPU reading: 0 is possible
    assert all(float(result[f"ui_run_cpu_{who}_s"]) >= 0 for who in ("run", "dashboard", "browser"))
    targets = {k[: -len("_target")] for k in result if k.endswith("_target")}
    assert targets == {
        "start_to_first_point_s",
        "ui_run_over_fit",
        "draw_to_prediction_ms_p50",
        "draw_to_prediction_ms_p90",
        "evaluate_first_visit_s",
        "page_switch_s",
    }
    assert all(float(result[f"{k}_target"]) > 0 and result[f"{k}_pass"] in ("yes", "no") for k in targets)
    assert int(result["targets_met"]) == sum(result[f"{k}_pass"] == "yes" for k in targets)
