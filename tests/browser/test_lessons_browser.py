"""Real Chromium through lesson 1 end to end, on a small subset: predict, run, live progress, the
verdict written from the runs' own numbers, a reload that keeps it, and the next step into Train."""

import re

from mnist_core.jobs.store import RunStore
from mnist_core.lessons.attempts import load_attempt
from support.axe import blocking_violations
from support.browser import Server


def test_lesson_one_from_prediction_to_verdict_and_next_step(browser, tmp_path):
    srv = Server(tmp_path / "store", env={"MNIST_LAB_LESSON_IMAGES": "3000"})
    try:
        context = browser.new_context(viewport={"width": 1400, "height": 1000})
        page = context.new_page()
        page.set_default_timeout(60_000)
        page.goto(srv.url + "/lessons")
        page.get_by_text("1. A line is not enough").first.wait_for()
        start = page.get_by_role("button", name="Record my prediction and run the experiment")
        assert start.is_disabled()  # nothing runs before a prediction
        page.get_by_text("The hidden layer wins by 2 points or more").click()
        start.click()
        page.get_by_text("waiting to be queued").or_(page.get_by_text("epoch 1/3")).first.wait_for(
            timeout=30_000
        )
        verdict = page.get_by_text(re.compile(r"Your 1-hidden-layer net reached \d+\.\d%"))
        verdict.wait_for(timeout=120_000)
        page.screenshot(path=str(tmp_path / "lesson-verdict.png"), full_page=True)

        store = RunStore(tmp_path / "store")
        attempt = load_attempt(store, "local", "line")
        assert attempt.prediction == "hidden"
        runs = {arm: store.get(run_id) for arm, run_id in attempt.runs.items()}
        assert {r.status for r in runs.values()} == {"completed"}
        assert all(r.config["limit"] == 3000 for r in runs.values())  # the subset cap reached the runs
        text = verdict.inner_text()
        for arm in ("hidden", "perceptron"):  # the explanation quotes the store's own numbers
            assert f"{runs[arm].test_acc:.1%}" in text
        right = runs["hidden"].test_acc - runs["perceptron"].test_acc >= 0.02
        headline = "Your prediction was right." if right else "Your runs measured otherwise."
        assert page.get_by_text(headline).is_visible()
        page.wait_for_timeout(2000)  # the verdict's charts draw
        assert not blocking_violations(page), blocking_violations(page)  # WCAG 2.1 AA, as every page

        page.reload()  # a reload (or a restart) keeps the prediction, the runs and the verdict
        verdict.wait_for(timeout=60_000)
        assert page.get_by_text(headline).is_visible()
        assert page.get_by_role("radio", name="The hidden layer wins by 2 points or more").is_checked()

        page.get_by_role("button", name="Train a two-hidden-layer MLP").click()
        page.get_by_text("Set up by your lesson").wait_for(timeout=30_000)
        page.get_by_text("Two hidden layers (128, 64)").wait_for()  # the model the lesson chose
        page.screenshot(path=str(tmp_path / "lesson-next-train.png"), full_page=True)
        context.close()
    finally:
        srv.stop()
