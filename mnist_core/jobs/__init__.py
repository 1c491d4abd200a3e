"""The job wing: the job manager, the run store, classroom rules, executors, workers, disk, repair."""
