"""Each lesson's experiment, run as a learner's button runs it (the job API, one run at a time), timed
from the first submit to the verdict; key=value lines (never imported by the library)."""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BUDGET_S = 90.0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Run every lesson's experiment and print its time.")
    parser.add_argument("--lesson", action="append", help="lesson key (repeatable; default: all)")
    parser.add_argument("--root", default=None, help="run store folder (default: a fresh temporary one)")
    args = parser.parse_args(argv)

    from mnist_core.jobs.identity import LOCAL
    from mnist_core.jobs.manager import JobManager
    from mnist_core.jobs.store import RunStore
    from mnist_core.lessons import attempts as lessons
    from mnist_core.lessons.book import BY_KEY, LESSONS

    chosen = [BY_KEY[k] for k in args.lesson] if args.lesson else list(LESSONS)
    root = Path(args.root or tempfile.mkdtemp(prefix="mnist-lessons-"))
    jobs = JobManager(RunStore(root), max_concurrent=1)
    print(f"cpu_cores={os.cpu_count()} root={root} images_cap={os.environ.get(lessons.IMAGES_ENV, '0')}")
    worst = 0.0
    for lesson in chosen:
        attempt = lessons.load_attempt(jobs.store, LOCAL.id, lesson.key)
        lessons.predict(jobs.store, attempt, lesson.choices[0].key, lesson)
        t0 = time.perf_counter()
        lessons.advance(jobs, lesson, attempt, LOCAL)
        while True:
            p = lessons.progress(jobs.store, lesson, attempt, judge=False)
            if p.status in ("judged", "problem"):
                break
            lessons.advance(jobs, lesson, attempt, LOCAL)
            jobs.schedule()
            time.sleep(0.2)
        train_s = time.perf_counter() - t0
        t1 = time.perf_counter()
        p = lessons.progress(jobs.store, lesson, attempt)
        judge_s = time.perf_counter() - t1
        worst = max(worst, train_s)
        fit = sum(r.train_seconds for r in p.runs.values())
        print(
            f"lesson={lesson.key} runs={len(p.runs)} experiment_s={train_s:.1f} fit_s={fit:.1f} "
            f"judge_s={judge_s:.2f} status={p.status} outcome={p.outcome} within_budget={train_s <= BUDGET_S}"
        )
        print(f"  {lesson.key}: {p.explanation or p.message}", file=sys.stderr)  # words, not figures
    print(f"lessons={len(chosen)} max_experiment_s={worst:.1f} budget_s={BUDGET_S:.0f}")
    return 0 if worst <= BUDGET_S else 1


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    sys.exit(main())
