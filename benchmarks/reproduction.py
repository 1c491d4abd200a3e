"""Train every registry model with its reference preset and print the models table (docs/models.md).

python benchmarks/reproduction.py                      # all models (about 20 minutes on 2 cores)
python benchmarks/reproduction.py --models perceptron deep
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys

from mnist_core.data.mnist import load_mnist
from mnist_core.learn.checkpoints import save_checkpoint
from mnist_core.learn.config import TrainConfig
from mnist_core.learn.engine import ProgressBar, train_model
from mnist_core.learn.models import REGISTRY, summary
from mnist_core.paths import checkpoints_dir


def run_reproduction(args) -> int:
    mnist = load_mnist(args.data_dir)
    keys = args.models or list(REGISTRY)
    unknown = [k for k in keys if k not in REGISTRY]
    if unknown:
        print(f"error: unknown model(s) {', '.join(unknown)}", file=sys.stderr)
        return 2
    results_path = checkpoints_dir() / "reproduction.json"
    results = json.loads(results_path.read_text()) if results_path.is_file() else {}
    for key in keys:
        seeds = range(args.seeds) if key == "better_cnn" else range(1)
        runs = []
        for seed in seeds:
            cfg = TrainConfig.for_model(key, seed=seed)
            print(f"== {key} seed {seed}", file=sys.stderr, flush=True)
            r = train_model(cfg, [ProgressBar()], mnist=mnist)
            m = r.metrics
            path = save_checkpoint(r.model, cfg, None, r.state.history, m.to_dict())
            runs.append(
                dict(
                    seed=seed,
                    test_acc=m.test_acc,
                    seconds=m.train_seconds,
                    epochs=m.epochs_run,
                    checkpoint=str(path),
                )
            )
            print(
                f"model={key} seed={seed} test_accuracy={m.test_acc:.4f} train_seconds={m.train_seconds:.0f} "
                f"checkpoint={path}",
                flush=True,
            )
        results[key] = runs
        results_path.parent.mkdir(parents=True, exist_ok=True)
        results_path.write_text(json.dumps(results, indent=1))
    print(table(results), file=sys.stderr)  # the docs/models.md table; the figures above are key=value
    return 0


def table(results: dict) -> str:
    lines = [
        "| model | parameters | epochs | time on this CPU | test accuracy | reference |",
        "|---|---:|---:|---:|---:|---|",
    ]
    for key, runs in results.items():
        spec = REGISTRY[key]
        accs = [r["test_acc"] for r in runs]
        acc = f"{statistics.mean(accs):.2%}" + (
            f" (mean of {len(runs)} seeds: " + ", ".join(f"{a:.2%}" for a in accs) + ")"
            if len(runs) > 1
            else ""
        )
        secs = statistics.mean(r["seconds"] for r in runs)
        lines.append(
            f"| `{key}` | {summary(key).parameters:,} | {runs[0]['epochs']} | "
            f"{secs:.0f} s | {acc} | {spec.reference} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        description="Train every model with its reference preset; print the docs/models.md table "
        "and key=value lines per run."
    )
    p.add_argument("--models", nargs="*", default=None, help="registry keys (default: all)")
    p.add_argument("--seeds", type=int, default=3, help="seeds for better_cnn (its target is a mean of 3)")
    p.add_argument("--data-dir", default=None, help="MNIST folder (default: $MNIST_DATA_DIR or ./data/mnist)")
    return run_reproduction(p.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
