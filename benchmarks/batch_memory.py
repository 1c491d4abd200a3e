"""A training step's peak memory against the batch-memory estimate the class's limit uses
(key=value lines, one per model and batch size).

python benchmarks/batch_memory.py            # cnn_3, better_cnn, mlp_500_125 at batch 256 and 1024
python benchmarks/batch_memory.py --models cnn_3 --batches 2048

Each measurement runs in a fresh process (peak RSS never goes down): one forward, backward and Adam
step on the CPU in fp32; `sum_mb` is one image's input and layer outputs x the batch, the estimate
`classroom.batch_memory_bytes` is that x ACTIVATION_FACTOR.
"""

from __future__ import annotations

import argparse
import subprocess
import sys

STEP = """
import math, resource, sys, torch
from mnist_core.jobs.classroom import batch_memory_bytes
from mnist_core.learn.config import TrainConfig
from mnist_core.learn.models import build_model, memory_format, summary
torch.set_num_threads(1)
key, b = sys.argv[1], int(sys.argv[2])
model = build_model(key)
fmt = memory_format(model)
model = model.to(memory_format=fmt)
opt = torch.optim.Adam(model.parameters())
x = torch.randn(b, 1, 28, 28).contiguous(memory_format=fmt)
y = torch.randint(0, 10, (b,))
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
torch.nn.functional.cross_entropy(model(x), y).backward()
opt.step()
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
floats = 784 + sum(math.prod(r["output_shape"]) for r in summary(key).layers)
est = batch_memory_bytes(TrainConfig.for_model(key, batch_size=b))
print(f"model={key} batch={b} peak_growth_mb={(peak - base) / 1024:.0f} sum_mb={floats * 4 * b / 2**20:.0f} "
      f"estimate_mb={est / 2**20:.0f}")
"""


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", nargs="+", default=["cnn_3", "better_cnn", "mlp_500_125"])
    p.add_argument("--batches", nargs="+", type=int, default=[256, 1024])
    args = p.parse_args(argv)
    for model in args.models:
        for batch in args.batches:
            cmd = [sys.executable, "-c", STEP, model, str(batch)]
            out = subprocess.run(cmd, capture_output=True, text=True)
            print(out.stdout.strip() or out.stderr.strip().splitlines()[-1], flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
