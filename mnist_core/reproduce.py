"""Train every registry model with its reference preset and print the README's table."""
from __future__ import annotations

import json
import statistics
import sys

from .checkpoints import save_checkpoint
from .cli import ProgressBar
from .config import TrainConfig, checkpoints_dir
from .data import load_mnist
from .models import REGISTRY, build_model, count_parameters
from .train import train_model


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
            path = save_checkpoint(r.model, cfg, None, r.state.history, r.metrics)
            runs.append(dict(seed=seed, test_acc=r.metrics["test_acc"], seconds=r.metrics["train_seconds"],
                             epochs=r.metrics["epochs_run"], checkpoint=str(path)))
            print(f"{key} seed={seed} test_accuracy={r.metrics['test_acc']:.4f} "
                  f"train_seconds={r.metrics['train_seconds']:.0f} checkpoint={path}", flush=True)
        results[key] = runs
        results_path.parent.mkdir(parents=True, exist_ok=True)
        results_path.write_text(json.dumps(results, indent=1))
    print(table(results))
    return 0


def table(results: dict) -> str:
    lines = ["| model | parameters | epochs | time on this CPU | test accuracy | reference |",
             "|---|---:|---:|---:|---:|---|"]
    for key, runs in results.items():
        spec = REGISTRY[key]
        accs = [r["test_acc"] for r in runs]
        acc = f"{statistics.mean(accs):.2%}" + (f" (mean of {len(runs)} seeds: "
                                                + ", ".join(f"{a:.2%}" for a in accs) + ")" if len(runs) > 1 else "")
        secs = statistics.mean(r["seconds"] for r in runs)
        lines.append(f"| `{key}` | {count_parameters(build_model(key)):,} | {runs[0]['epochs']} | "
                     f"{secs:.0f} s | {acc} | {spec.reference} |")
    return "\n".join(lines)
