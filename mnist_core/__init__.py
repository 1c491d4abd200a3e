"""MNIST Lab's library: data, models, training, checkpoints, evaluation and the CLI (no Streamlit)."""

__version__ = "0.1.0"
