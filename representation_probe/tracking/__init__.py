"""Experiment tracking: the loggers of a command (loggers.py), what a result tells W&B (results.py), how a
run's rows are told apart in metric keys (keys.py), and the W&B workspace of a sweep (dashboard.py)."""
