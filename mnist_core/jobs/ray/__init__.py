"""The Ray backend: cluster settings, the driver on the dashboard machine, the task on a node."""
