"""The command line: `mnist-lab` (or `python -m mnist_core`) train, evaluate, predict, inside, runs, check."""

from __future__ import annotations

import argparse
import json
import sqlite3
import sys
from dataclasses import fields

from .learn.config import ConfigError, TrainConfig, field_help
from .words import count


def _add_config_flags(p: argparse.ArgumentParser) -> None:
    """One flag per TrainConfig field, help text from the dataclass; unset flags stay unset."""
    helps, defaults = field_help(), TrainConfig()
    for f in fields(TrainConfig):
        flag = "--" + f.name.replace("_", "-")
        default = getattr(defaults, f.name)
        help_text = f"{helps[f.name]} (default: {default})"
        kw: dict = dict(dest=f.name, default=argparse.SUPPRESS, help=help_text)
        if f.type == "bool":
            p.add_argument(flag, action=argparse.BooleanOptionalAction, **kw)
        elif f.type == "dict":
            p.add_argument(flag, type=json.loads, metavar="JSON", **kw)
        else:
            kw.update(type={"int": int, "float": float, "str": str}[str(f.type)])
            if f.metadata.get("choices"):
                kw.update(choices=f.metadata["choices"])
            p.add_argument(flag, **kw)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mnist-lab",
        description="MNIST Lab command line (also `python -m mnist_core`). Benchmarks live in benchmarks/.",
    )
    sub = parser.add_subparsers(dest="command", required=True)

    t = sub.add_parser("train", help="train a registry model and save a checkpoint")
    t.add_argument("--preset", action="store_true", help="start from the model's reference settings")
    t.add_argument(
        "--out", default=None, help="checkpoint path (default: checkpoints/<model>-<time>-acc<NN>.pt)"
    )
    t.add_argument("--no-save", action="store_true", help="do not write a checkpoint")
    t.add_argument("--data-dir", default=None, help="MNIST folder (default: $MNIST_DATA_DIR or data/mnist)")
    t.add_argument(
        "--background",
        action="store_true",
        help="queue the run as a background job, print run_id=ID and return at once",
    )
    _add_config_flags(t)

    sub.add_parser("runs", help="one line per run: id, status, model, progress, accuracy")
    s = sub.add_parser("stop", help="stop a running run (or cancel a queued one)")
    s.add_argument("run_id", help="run id from `runs`")
    x = sub.add_parser("extend", help="continue a finished or stopped run for more epochs")
    x.add_argument("run_id", help="run id from `runs`")
    x.add_argument("epochs", type=int, help="how many more epochs")
    d = sub.add_parser("delete", help="delete a run's records and files")
    d.add_argument("run_id", help="run id from `runs`")

    c = sub.add_parser(
        "check", help="check the run store: database, epoch records, checkpoints; exit 1 on problems"
    )
    c.add_argument(
        "--repair",
        action="store_true",
        help="first rebuild a damaged (or lost) runs.db from the run folders, keeping the damaged file "
        "aside as runs.db.damaged-<time>; on a sound store, add back run folders it lacks",
    )

    sub.add_parser(
        "prune",
        help="remove epoch files of finished runs, keeping each run's best and last; print what it freed",
    )

    e = sub.add_parser("evaluate", help="test accuracy, per-class accuracy and confusion matrix")
    e.add_argument("checkpoint", help="path to a .pt checkpoint")
    e.add_argument("--split", choices=("test", "val"), default="test", help="which split to measure")
    e.add_argument("--data-dir", default=None, help="MNIST folder (default: $MNIST_DATA_DIR or data/mnist)")

    sub.add_parser("models", help="list the model registry with parameter counts")

    ins = sub.add_parser(
        "inside",
        help="one digit through the network: activation grids, filters and an embedding map as PNG files",
    )
    ins.add_argument("checkpoint", help="path to a .pt checkpoint")
    what = ins.add_mutually_exclusive_group(required=True)
    what.add_argument("--image", help="an image file of one digit (preprocessed like the Draw page)")
    what.add_argument("--index", type=int, help="a test-set digit by index (0-9999)")
    ins.add_argument("--out", required=True, help="folder for the PNG files (created if missing)")
    ins.add_argument("--sample", type=int, default=2000, help="test digits in the embedding map (max 10,000)")
    ins.add_argument("--data-dir", default=None, help="MNIST folder (default: $MNIST_DATA_DIR or data/mnist)")

    ls = sub.add_parser(
        "lesson",
        help="the Lessons: list them with your progress; show one; --predict runs it and prints the verdict",
    )
    ls.add_argument("key", nargs="?", help="a lesson's key (see `lesson`); none: list them all")
    ls.add_argument(
        "--predict", help="your prediction (a choice key); records it, runs the experiment, judges"
    )
    ls.add_argument(
        "--redo", action="store_true", help="start the lesson over first (the old attempt is kept)"
    )

    pr = sub.add_parser("predict", help="read digits from image files (PNG, JPEG, ...), one batch")
    pr.add_argument("images", nargs="+", help="image files; dark-on-light or light-on-dark, any size")
    pr.add_argument("--model", default=None, help="checkpoint to use (default: checkpoints/default.pt)")

    return parser


def cmd_train(args) -> int:
    from .data.mnist import load_mnist
    from .learn.checkpoints import save_checkpoint
    from .learn.models import REGISTRY

    given = {f.name: getattr(args, f.name) for f in fields(TrainConfig) if hasattr(args, f.name)}
    model = given.get("model", TrainConfig.model)
    base = dict(REGISTRY[model].preset) if args.preset and model in REGISTRY else {}
    cfg = TrainConfig.from_dict({**base, **given, "model": model})
    if args.background:
        from .jobs.identity import ADMIN
        from .jobs.manager import JobManager

        run = JobManager().submit(cfg, actor=ADMIN)  # the command line acts as the administrator
        where = f" (queued, position {run.queue_position})" if run.status == "queued" else ""
        print(f"run_id={run.id}{where}")
        return 0
    mnist = load_mnist(args.data_dir)
    from .learn.engine import ProgressBar, train_model

    print(
        f"training {cfg.model} for {count(cfg.epochs, 'epoch')}: "
        + ", ".join(f"{k}={v}" for k, v in cfg.to_dict().items() if k != "model"),
        file=sys.stderr,
    )
    result = train_model(cfg, [ProgressBar()], mnist=mnist)
    m = result.metrics
    val = f"{m.val_acc:.4f}" if m.val_acc is not None else "n/a"
    print(f"model={cfg.model}")
    print(f"epochs_run={m.epochs_run} best_epoch={m.best_epoch} train_seconds={m.train_seconds:.1f}")
    print(f"images_per_s={m.images_per_s:.0f}" if m.images_per_s else "images_per_s=n/a")
    print(f"val_accuracy={val}")
    print(f"test_accuracy={m.test_acc:.4f}")
    if not args.no_save:
        path = save_checkpoint(result.model, cfg, args.out, result.state.history, m.to_dict())
        print(f"checkpoint={path}")
    return 0


def cmd_evaluate(args) -> int:
    from .data.mnist import load_mnist, make_splits
    from .learn.checkpoints import load_checkpoint
    from .learn.device import run_precision
    from .learn.evaluate import confusion_text, evaluate

    ckpt = load_checkpoint(args.checkpoint)
    cfg = ckpt.config
    data = make_splits(load_mnist(args.data_dir), cfg.val_fraction, cfg.seed)
    x, y = (data.test_x, data.test_y) if args.split == "test" else (data.val_x, data.val_y)
    res = evaluate(ckpt.model, x, y, precision=run_precision(cfg, next(ckpt.model.parameters()).device))
    print(f"checkpoint: {ckpt.path} ({ckpt.meta['model_key']}, {len(y)} {args.split} images)")
    print("per-class accuracy: " + "  ".join(f"{d}:{a:.4f}" for d, a in enumerate(res["per_class_accuracy"])))
    print(confusion_text(res["confusion"]))
    print(f"{args.split}_loss={res['loss']:.4f}")
    print(f"{args.split}_accuracy={res['accuracy']:.4f}")
    return 0


def cmd_predict(args) -> int:
    """One line per image: name prediction=D confidence=0.XXXX (or error=...); one forward pass."""
    import torch

    from .data.preprocess import InputError, preprocess
    from .learn.checkpoints import load_checkpoint
    from .learn.evaluate import predict_proba
    from .paths import default_model_path

    model = load_checkpoint(args.model or default_model_path()).model
    ready, failed = [], 0
    for path in args.images:
        try:
            ready.append((path, preprocess(path).tensor))
        except InputError as exc:
            failed += 1
            print(f"{path} error={exc}")
    if ready:
        probs = predict_proba(model, torch.cat([t for _, t in ready]))
        for (path, _), p in zip(ready, probs):
            print(f"{path} prediction={int(p.argmax())} confidence={float(p.max()):.4f}")
    return 1 if failed else 0


def cmd_inside(args) -> int:
    """Write the PNG files of mnist_core.figures.pictures.write_pngs and print key=value lines."""
    from .analysis.inside import cap_sample, test_inputs, to_image
    from .data.mnist import load_mnist
    from .data.preprocess import InputError, preprocess
    from .figures.pictures import write_pngs
    from .learn.checkpoints import load_checkpoint

    model = load_checkpoint(args.checkpoint).model
    mnist = load_mnist(args.data_dir)
    x_test = test_inputs(mnist)
    if args.image:
        try:
            image = preprocess(args.image).stages["centered"]
        except InputError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
    elif not 0 <= args.index < len(x_test):
        print(f"error: --index must be between 0 and {len(x_test) - 1}", file=sys.stderr)
        return 2
    else:
        image = to_image(x_test[args.index])
    n, capped = cap_sample(args.sample, len(x_test))
    if capped:
        print(capped, file=sys.stderr)
    result = write_pngs(model, image, args.out, x_test, mnist.test_labels, n)
    print(" ".join(f"{k}={v}" for k, v in result.items()))
    return 0


def cmd_models(args) -> int:
    from .learn.models import REGISTRY, summary

    print(f"{'key':<12} {'params':>9} {'MFLOPs':>7}  reference / description")
    for key, spec in REGISTRY.items():
        s = summary(key)
        print(f"{key:<12} {s.parameters:>9,} {s.flops / 1e6:>7.2f}  {spec.reference}: {spec.description}")
    return 0


def cmd_runs(args) -> int:
    from .jobs.identity import ADMIN
    from .jobs.manager import JobManager

    jobs = JobManager()
    if args.command == "stop":
        run = jobs.stop(args.run_id, actor=ADMIN)
        print(f"{run.id} {run.status}" + (f": {run.reason}" if run.reason else ""))
    elif args.command == "extend":
        run = jobs.extend(args.run_id, args.epochs, actor=ADMIN)
        print(f"{run.id} {run.status} for {run.config['epochs']} epochs in all")
    elif args.command == "delete":
        jobs.delete(args.run_id, actor=ADMIN)
        print(f"{args.run_id} deleted")
    else:
        for run in jobs.list():
            p = run.progress
            state = {
                "queued": f"position {run.queue_position}",
                "running": f"epoch {p.get('epoch', 0)}/{run.config['epochs']} batch {p.get('batch', 0)}"
                f"/{p.get('batches', '?')}",
            }.get(run.status, f"{run.epochs_done} epochs")
            acc = f" test {run.test_acc:.4f}" if run.test_acc is not None else ""
            print(
                f"{run.id} {run.status:<11} {run.model:<12} {state}{acc}"
                + (f"  ({run.reason})" if run.reason else "")
            )
    return 0


def cmd_lesson(args) -> int:
    """The Lessons page's loop for the local user: the same attempts, runs and verdicts."""
    import time

    from .jobs.identity import LOCAL
    from .jobs.manager import JobManager
    from .jobs.store import RunError
    from .lessons import attempts as lessons
    from .lessons.book import BY_KEY, LESSONS

    jobs = JobManager()
    if not args.key:
        for n, row in enumerate(lessons.overview(jobs.store, LOCAL.id, list(LESSONS)), 1):
            print(f"{n}. {row['key']:<11} {row['state']:<19} {row['lesson']}")
        return 0
    if args.key not in BY_KEY:
        raise RunError(f"No lesson {args.key!r}; choose one of {', '.join(BY_KEY)}.")
    lesson = BY_KEY[args.key]
    attempt = lessons.load_attempt(jobs.store, LOCAL.id, lesson.key)
    if args.redo:
        attempt = lessons.redo(jobs.store, attempt)
    if args.predict and not attempt.runs:
        lessons.predict(jobs.store, attempt, args.predict, lesson)
    if not attempt.prediction:
        print(lesson.question)
        for c in lesson.choices:
            print(f"  --predict {c.key:<9} {c.text}")
        return 0
    while (p := lessons.progress(jobs.store, lesson, attempt)).status == "running":
        note = lessons.advance(jobs, lesson, attempt, LOCAL)
        jobs.schedule()
        done = [r for r in p.runs.values() if not r.active]
        print(f"\r{len(done)}/{len(lesson.arms)} runs finished {note}", end="", file=sys.stderr, flush=True)
        time.sleep(0.5)
    print(file=sys.stderr)
    if p.status == "problem":
        print(f"problem: {p.message} (run `lesson {lesson.key}` with --redo to start over)")
        return 1
    lessons.record_verdict(jobs.store, attempt, p)
    print(("right: " if p.correct else "measured otherwise: ") + p.explanation)
    return 0


def cmd_check(args) -> int:
    from .jobs.integrity import summary, verify
    from .jobs.manager import JobManager
    from .jobs.store import REPAIR_HINT, StoreDamaged

    if getattr(args, "repair", False):
        from .jobs.repair import rebuild

        report = rebuild()
        print(" ".join(f"{k}={v}" for k, v in report.figures().items()))
        for folder, why in report.skipped:
            print(f"skipped: {folder}: {why}")
        for note in report.notes:
            print(f"note: {note}")
    try:
        jobs = JobManager()
    except StoreDamaged as exc:
        print(f"problem: {exc}")
        print("problems=1")
        return 1
    jobs.reap()  # runs whose process died are marked first, as the dashboard would
    problems = verify(jobs.store)
    for problem in problems:
        print(f"problem: {problem}")
    if any(p.startswith("database: ") for p in problems):
        print(f"repair: the database is damaged. {REPAIR_HINT}")
    print(" ".join(f"{k}={v}" for k, v in summary(jobs.store).items()) + f" problems={len(problems)}")
    return 1 if problems else 0


def cmd_prune(args) -> int:
    from .jobs.disk import MB, prune, usage
    from .jobs.identity import ADMIN
    from .jobs.store import RunStore

    store = RunStore()
    report = prune(store, actor=ADMIN)  # every run's: the command line is the administrator
    now = usage(store)
    print(
        f"runs={report.runs} files={report.files} freed_mb={report.freed_bytes / MB:.1f} "
        f"store_mb={now['store_bytes'] / MB:.1f} free_mb={now['free_bytes'] / MB:.1f}"
    )
    return 0


def main(argv: list[str] | None = None) -> int:
    from .data.mnist import DataError
    from .jobs.disk import DiskBudgetError
    from .jobs.store import DB_NAME, RunError, StoreDamaged, is_damage
    from .learn.checkpoints import CheckpointError
    from .learn.device import DeviceError
    from .learn.engine import TrainingError
    from .paths import checkpoints_dir

    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return {
            "train": cmd_train,
            "evaluate": cmd_evaluate,
            "models": cmd_models,
            "predict": cmd_predict,
            "lesson": cmd_lesson,
            "inside": cmd_inside,
            "runs": cmd_runs,
            "check": cmd_check,
            "prune": cmd_prune,
            "stop": cmd_runs,
            "extend": cmd_runs,
            "delete": cmd_runs,
        }[args.command](args)
    except (ConfigError, RunError, DiskBudgetError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except (DataError, CheckpointError, TrainingError, DeviceError) as exc:
        print(f"\nerror: {exc}", file=sys.stderr)
        return 1
    except StoreDamaged as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except sqlite3.DatabaseError as exc:  # damage found after the store opened
        if not is_damage(exc):
            raise
        print(f"error: {StoreDamaged(checkpoints_dir() / DB_NAME, str(exc))}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("\ninterrupted", file=sys.stderr)
        return 130


def run() -> None:
    """The `mnist-lab` console script."""
    sys.exit(main())
