"""Real Chromium: select two runs on the Runs page and see both runs' curves."""

from mnist_core.jobs.identity import ADMIN
from mnist_core.jobs.manager import JobManager
from mnist_core.jobs.store import RunStore
from mnist_core.learn.config import TrainConfig
from support.browser import wait_until


def test_two_selected_runs_are_overlaid(page, server):
    jobs = JobManager(RunStore(server.store), max_concurrent=1)
    a = jobs.submit(TrainConfig.from_dict(dict(model="mlp_128_64", epochs=2, limit=1500)), actor=ADMIN)
    b = jobs.clone(a.id, weight_decay=1e-3, actor=ADMIN)
    for run in (a, b):
        assert jobs.wait(run.id, timeout_s=180).status == "completed"
    page.goto(server.url + "/runs")
    picker = page.get_by_role("combobox", name="Select runs to compare")
    for run in (a, b):
        picker.click()
        page.get_by_role("option", name=run.id[-6:]).click()
    page.get_by_text("Comparing 2 runs").wait_for()

    def legend_names():
        return page.evaluate("""() => {
            const plot = [...document.querySelectorAll('.js-plotly-plot')]
                .find(p => p.data && p.data.length >= 4);
            return plot ? plot.data.map(t => t.name) : [];
        }""")

    names = wait_until(legend_names, timeout_s=30)
    for run in (a, b):
        assert any(run.id[-6:] in n and "train" in n for n in names)
        assert any(run.id[-6:] in n and "val" in n for n in names)
