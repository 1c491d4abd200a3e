"""Speed figures of the Inside page's computations as key=value lines (never imported by the library)."""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Time the Inside page: activations, dataset examples, "
        "PCA and t-SNE maps, and the page's rerun after a click "
        "on the map."
    )
    parser.add_argument("--checkpoint", default=None, help="checkpoint (default: checkpoints/default.pt)")
    parser.add_argument("--repeats", type=int, default=50, help="timed activation passes (median reported)")
    parser.add_argument("--sample", type=int, default=2000, help="digits in the PCA and t-SNE maps")
    parser.add_argument("--skip-tsne", action="store_true", help="leave out the t-SNE timing")
    parser.add_argument("--skip-page", action="store_true", help="leave out the AppTest page timing")
    args = parser.parse_args(argv)

    import torch

    from mnist_core.analysis import inside
    from mnist_core.data.mnist import load_mnist
    from mnist_core.learn.checkpoints import load_checkpoint
    from mnist_core.learn.models import identity
    from mnist_core.paths import default_model_path

    path = Path(args.checkpoint or default_model_path())
    model = load_checkpoint(path).model
    mnist = load_mnist()
    x, y = inside.test_inputs(mnist), mnist.test_labels
    print(f"checkpoint={path} model={identity(model)[0]} torch_threads={torch.get_num_threads()}")

    image = inside.to_image(x[0])
    inside.activations(model, image)
    times = []
    for i in range(args.repeats):
        t = time.perf_counter()
        inside.activations(model, inside.to_image(x[i]))
        times.append(time.perf_counter() - t)
    print(
        f"activations_ms_median={1000 * statistics.median(times):.1f} "
        f"activations_ms_max={1000 * max(times):.1f}"
    )

    t = time.perf_counter()
    examples = inside.dataset_examples(path, model, x)
    cold = time.perf_counter() - t
    t = time.perf_counter()
    inside.dataset_examples(path, model, x)
    channels = sum(len(idx) for idx, _ in examples.values())
    print(
        f"dataset_examples_s={cold:.2f} dataset_examples_cached_ms={1000 * (time.perf_counter() - t):.3f} "
        f"channels={channels} images={len(x)}"
    )

    t = time.perf_counter()
    [pca] = inside.embedding_maps([model], x, y, args.sample, "pca")
    print(f"pca_map_s={time.perf_counter() - t:.2f} digits={args.sample} separation={pca.separation:.4f}")

    if not args.skip_tsne:
        steps = []
        t = time.perf_counter()
        [tsne] = inside.embedding_maps(
            [model], x, y, args.sample, "tsne", progress=lambda text, f: steps.append(text)
        )
        print(
            f"tsne_map_s={time.perf_counter() - t:.2f} digits={args.sample} "
            f"separation={tsne.separation:.4f} "
            f"progress_steps={len(steps)}"
        )

    if not args.skip_page:
        import streamlit as st
        from streamlit.testing.v1 import AppTest

        if str(ROOT) not in sys.path:  # the page imports `pages.ui`, which lives at the project root
            sys.path.insert(0, str(ROOT))

        st.cache_resource.clear()
        at = AppTest.from_file(str(ROOT / "pages" / "inside.py"), default_timeout=300)
        at.run()  # everything else on the page is computed and cached once
        wrong = pca.indices[pca.preds != pca.labels].tolist() + pca.indices[:5].tolist()
        reruns = []
        for index in wrong[:5]:  # each rerun: a new point clicked, its activations computed and drawn
            at.session_state["inside_clicked"] = int(index)
            t = time.perf_counter()
            at.run()
            reruns.append(time.perf_counter() - t)
        if at.exception:
            print(f"page_error={at.exception[0].value}", file=sys.stderr)
            return 1
        print(
            f"page_rerun_after_click_ms_median={1000 * statistics.median(reruns):.0f} "
            f"page_rerun_after_click_ms_max={1000 * max(reruns):.0f}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
