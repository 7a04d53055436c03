"""One module per command: `commands/<command>.py` holds `run(cfg)` for the entry config `conf/<command>.yaml`:
arguments from the config, the library's call, the run directory; it returns the number a sweeper optimises
(or None). The task that dispatches to them and the one-line errors are the command line's (cli/task.py)."""
