"""The learning wing: configuration, the model zoo, the engine, checkpoints, metrics, evaluation."""
