"""Real Chromium, real OpenID Connect provider: a learner's run is theirs. Learner A starts a run on
the Train page; learner B sees it on the Runs page but cannot stop, delete or clone it; the teacher can;
the job API refuses B too."""

import pytest

from mnist_core.jobs.classroom import NotAllowed
from mnist_core.jobs.identity import ADMIN, User
from mnist_core.jobs.manager import JobManager
from mnist_core.jobs.store import RunStore
from support.helpers import wait_until
from support.oidc import (
    TEACHER,
    TEACHER_NAME,
    provider,  # noqa: F401  (fixture)
    signed_in_page,
    signin_server,  # noqa: F401  (fixture)
)
from support.reliability import _choose_model

A_EMAIL, B_EMAIL = "ada@school.example", "ben@school.example"


def select_run(page, url: str, run_id: str) -> None:
    page.goto(url + "/runs")
    page.get_by_role("combobox", name="Select runs to compare").click()
    page.get_by_role("option", name=run_id[-6:]).click()
    page.keyboard.press("Escape")
    page.get_by_text("Comparing 1 run").wait_for()


def confirm(page) -> None:
    """Tick the delete confirmation once the expander has opened."""
    box = page.get_by_role("checkbox", name="Yes, delete their records and checkpoint files")
    box.wait_for()
    page.wait_for_timeout(500)  # the expander's opening animation
    page.get_by_text("Yes, delete their records and checkpoint files").click()
    wait_until(box.is_checked, timeout_s=10)


def test_learner_b_has_no_control_over_learner_as_run(browser, signin_server):  # noqa: F811
    jobs = JobManager(RunStore(signin_server.store), max_concurrent=1)
    a = signed_in_page(browser, signin_server, A_EMAIL, "Ada")
    b = signed_in_page(browser, signin_server, B_EMAIL, "Ben")
    teacher = signed_in_page(browser, signin_server, TEACHER, TEACHER_NAME)
    try:
        # A starts a run through the Train page: it is recorded as A's
        a.goto(signin_server.url + "/train")
        _choose_model(a, "cnn_basic", 3000)
        a.get_by_role("button", name="Start training").click()
        a.get_by_text("cnn_basic · running").wait_for()
        run = wait_until(lambda: jobs.store.list(("running",)) and jobs.store.list(("running",))[0])
        assert run.owner == A_EMAIL and run.owner_name == "Ada"
        main = a.get_by_test_id("stMainBlockContainer")  # not the header's rerun "Stop"
        assert main.get_by_role("button", name="Stop", exact=True).is_enabled()

        # B: the run is listed with its owner's name, but neither Delete nor Clone acts on it
        select_run(b, signin_server.url, run.id)
        b.get_by_text("Delete 1 selected run").click()
        b.get_by_text("belong to other learners").wait_for()
        confirm(b)
        assert b.get_by_role("button", name="Delete", exact=True).is_disabled()
        b.get_by_text("Change one thing").click()
        value = b.get_by_role("textbox", name="New value")
        value.fill("0.01")
        value.press("Enter")
        b.get_by_role("button", name="Start the clone").click()
        b.get_by_text("belongs to Ada: only they or a teacher can clone it").wait_for()
        # B's Train page does not attach to A's run
        b.goto(signin_server.url + "/train")
        b.get_by_role("button", name="Start training").wait_for()
        assert b.get_by_text("cnn_basic · running").count() == 0
        # and the job API refuses B directly
        ben = User(B_EMAIL, "Ben", "learner")
        with pytest.raises(NotAllowed):
            jobs.stop(run.id, actor=ben)
        assert jobs.get(run.id).status == "running"

        assert b.get_by_role("button", name="Stop 1 selected active run").count() == 0
        # the teacher may stop it and delete it
        select_run(teacher, signin_server.url, run.id)
        stop = teacher.get_by_role("button", name="Stop 1 selected active run")
        stop.click()
        wait_until(lambda: jobs.store.get(run.id).status == "stopped", timeout_s=30)
        stop.wait_for(state="detached")  # the page has rerun: the run is no longer active
        teacher.get_by_text("Delete 1 selected run").click()
        confirm(teacher)
        assert teacher.get_by_text("belong to other learners").count() == 0
        teacher.get_by_role("button", name="Delete", exact=True).click()
        wait_until(lambda: all(r.id != run.id for r in jobs.store.list()), timeout_s=30)
    finally:
        for pg in (a, b, teacher):
            pg.context.close()
        for r in jobs.store.list(("running", "queued")):
            jobs.stop(r.id, grace_s=2, actor=ADMIN)
