"""The job API: start, stop, extend, clone and queue background runs (UI, CLI and tests alike)."""

from __future__ import annotations

import json
import time

from ..learn.config import TrainConfig
from ..words import count
from . import classroom, disk
from . import executor as ex
from .classroom import ClassPolicy
from .identity import User
from .store import Run, RunError, RunStore

POLICY_KEY = "class_policy"


class JobManager:
    """Start, stop, extend, clone and queue runs. The UI, the CLI and the tests all use this.

    Every action takes the acting user (`actor`, keyword-only and required, so a caller that
    forgets it fails loudly instead of acting as the administrator): learners act on their own runs
    only, within the class's limits; teachers and the administrator (the CLI) on every run."""

    def __init__(
        self,
        store: RunStore | None = None,
        max_concurrent: int | None = None,
        executor: ex.Executor | None = None,
        policy: ClassPolicy | None = None,
    ):
        self.store = store or RunStore()
        self.executor = executor or ex.from_environment()  # local, or Ray at $MNIST_LAB_RAY_ADDRESS
        self._max_concurrent = max_concurrent
        self.configured_policy = policy or ClassPolicy()  # from configuration; a teacher may change it
        self.keep_warm = False  # set by prepare(): the dashboard's manager keeps warm workers

    @property
    def max_concurrent(self) -> int:
        """How many runs train at once: as given, else what the backend holds (executor.capacity)."""
        return self._max_concurrent or self.executor.capacity()

    # ---- the class's rules ----
    def policy(self) -> ClassPolicy:
        """The rules in force: what a teacher last set, else the configured ones."""
        saved = self.store.setting(POLICY_KEY)
        return ClassPolicy.from_dict(saved) if saved is not None else self.configured_policy

    def set_policy(self, policy: ClassPolicy | dict, *, actor: User) -> ClassPolicy:
        if not actor.is_teacher:
            raise classroom.NotAllowed("Only a teacher can change the class's limits and exercise.")
        policy = policy if isinstance(policy, ClassPolicy) else ClassPolicy.from_dict(policy)
        self.store.set_setting(POLICY_KEY, json.loads(policy.to_json()))
        return policy

    # ---- starting ----
    def submit(
        self,
        config: TrainConfig | dict,
        parent: str | None = None,
        *,
        actor: User,
        request_key: str | None = None,
    ) -> Run:
        """Validate, queue, and start at once if a slot is free. Returns the run (maybe queued).
        A `request_key` the store already holds (a lesson arm submitted from a second tab) returns
        that run instead of a second one."""
        cfg = config if isinstance(config, TrainConfig) else TrainConfig.from_dict(config)
        cfg.validate()
        problem = self.executor.unavailable()
        if problem:
            raise ex.BackendUnavailable(problem)  # refused with the reason, nothing queued
        policy = self.policy()
        classroom.check_submit(policy, actor, cfg, self.store.active_count(actor.id))
        # refused before it starts, with the numbers: the free disk less what the queue will write,
        # and a learner's quota
        disk.check_fits(self.store, cfg, owner=actor.id, quota=classroom.disk_quota_bytes(policy, actor))
        run = self.store.create(
            cfg.to_dict(),
            parent=parent,
            owner=actor.id,
            owner_name=actor.name,
            exercise=policy.exercise,
            # the class's queue limit again, inside the insert's transaction: two tabs at once
            max_active_for_owner=None if actor.is_teacher else policy.max_queued or None,
            request_key=request_key,
            time_limit=classroom.time_limit(policy, actor),  # the worker stops it there
        )
        self.schedule()
        return self.store.get(run.id)

    def schedule(self) -> list[str]:
        """Mark dead runs interrupted, then start queued runs while slots are free; a manager that
        keeps warm workers (see prepare) then has one ready while a slot is free."""
        started = ex.schedule(self.store, self.executor, self.max_concurrent)
        if self.keep_warm:
            self._warm_while_a_slot_is_free()
        return started

    def prepare(self) -> None:
        """Keep a warm worker ready, so that a Start trains at once (the dashboard calls this as it
        starts; the CLI does not, so its one-off runs leave no idle process behind; on a cluster,
        nothing to do)."""
        self.keep_warm = True
        self._warm_while_a_slot_is_free()

    def _warm_while_a_slot_is_free(self) -> None:
        # A standby warming up takes about 4 CPU seconds; beside a run it takes them from the run
        # (nice 19 both). It is only of use once a slot is free, so it is warmed then: after the
        # run that took the last one ends (the dashboard's next poll), not while it trains.
        if self.store.running_count() < self.max_concurrent:
            self.executor.prepare(self.store, self.max_concurrent)

    def reap(self) -> list[str]:
        """Runs marked running whose process is gone become `interrupted`, with a reason."""
        return ex.reap(self.store, self.executor)

    def trains_here(self) -> bool:
        """A run is training on this machine (the local backend), sharing its cores with whatever
        else computes here."""
        return self.executor.name == "local" and self.store.running_count() > 0

    # ---- reading ----
    def list(self) -> list[Run]:
        self.schedule()
        return self.store.list()

    def get(self, run_id: str) -> Run:
        self.reap()
        return self.store.get(run_id)

    def log_tail(self, run_id: str, lines: int = 40) -> str:
        path = self.store.layout.log_path(run_id)
        if not path.is_file():
            return ""
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])

    # ---- controlling ----
    def stop(self, run_id: str, grace_s: float = 5.0, *, actor: User) -> Run:
        """Queued: cancelled. Running: asked to stop at the next batch, killed after `grace_s`."""
        run = self.store.get(run_id)
        classroom.check_control(run, actor, "stop")
        if run.status == "queued":
            self.store.cancel_queued(run_id, "Cancelled before it started.")
            return self.store.get(run_id)
        if run.status != "running":
            return run
        if not self.store.ask_to_stop(run_id):  # it ended since the read above
            return self.store.get(run_id)
        self.executor.request_stop(run)
        deadline = time.time() + grace_s
        while time.time() < deadline:
            run = self.get(run_id)
            if run.status != "running":
                break
            time.sleep(0.05)
        if run.status == "running":
            self.executor.kill(run)
            reason = (
                f"Did not stop within {grace_s:.0f} s and was killed; "
                f"{count(run.epochs_done, 'finished epoch')} kept."
            )
            # only while it still runs under the process killed: one that completed keeps `completed`
            if self.store.end_running(run_id, run.pid, "stopped", reason):
                self.store.remove_temp_files(run_id)
        self.schedule()
        return self.store.get(run_id)

    def extend(self, run_id: str, more_epochs: int, *, actor: User) -> Run:
        """Continue a finished run for more epochs from its last checkpoint; curves continue."""
        run = self.get(run_id)
        classroom.check_control(run, actor, "extend")
        if run.status not in ("completed", "stopped", "interrupted", "failed"):
            raise RunError(f"Run {run_id} is {run.status}; only finished runs can be extended.")
        if not isinstance(more_epochs, int) or not 1 <= more_epochs <= 1000:
            raise RunError(f"Extend by 1 to 1000 epochs, not {more_epochs!r}.")
        cfg = TrainConfig.from_dict({**run.config, "epochs": run.epochs_done + more_epochs})
        policy = self.policy()
        classroom.check_submit(policy, actor, cfg, self.store.active_count(run.owner))
        quota = classroom.disk_quota_bytes(policy, actor)
        disk.check_fits(self.store, cfg, run.epochs_done, owner=run.owner, quota=quota)
        self.store.update(run_id, time_limit=classroom.time_limit(policy, actor))  # before the requeue
        self.store.requeue(run_id, cfg.to_dict())
        self.schedule()
        return self.store.get(run_id)

    def clone(self, run_id: str, *, actor: User, **changes) -> Run:
        """A new run with this run's config and `changes` (seed kept unless changed)."""
        run = self.store.get(run_id)
        classroom.check_control(run, actor, "clone")
        return self.submit({**run.config, **changes}, parent=run_id, actor=actor)

    def delete(self, run_id: str, *, actor: User) -> None:
        run = self.store.get(run_id)
        classroom.check_control(run, actor, "delete")
        if run.active:
            self.stop(run_id, actor=actor)
        self.store.delete(run_id)

    def wait(self, run_id: str, timeout_s: float = 600, poll_s: float = 0.2) -> Run:
        """Block until the run leaves queued/running (for the CLI and tests)."""
        deadline = time.time() + timeout_s
        while time.time() < deadline:
            run = self.get(run_id)
            if not run.active:
                return run
            if run.status == "queued":
                self.schedule()
            time.sleep(poll_s)
        raise TimeoutError(f"Run {run_id} still {run.status} after {timeout_s:.0f} s.")
