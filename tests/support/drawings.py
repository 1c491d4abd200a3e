"""Synthetic drawings made from MNIST digits, as a learner's canvas would give them (tests, benchmarks).

The renderer lives in the library (the Lessons page scores models on such drawings); tests import it
from here as before."""

from mnist_core.data.preprocess import render_like_canvas

__all__ = ["render_like_canvas"]
