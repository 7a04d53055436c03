"""`python -m representation_probe <command> [hydra overrides]`.

The commands are the entry configs in conf/. The command word becomes `--config-name=<command>` in
place, so sys.argv stays whole for Lightning's DDP re-launch of ranks (which re-runs
`python -m representation_probe <argv[1:]>`).

What goes wrong reaches the user here as one `error:` line and exit code 2 when it is the user's to
fix (a bad override, an unknown config, an unwritable directory, failed jobs of a multirun); a bug
keeps its traceback and exit code 1.
"""

import os
import re
import sys
import time
from pathlib import Path

from representation_probe.config.presets import CONF

COMMANDS = sorted(path.stem for path in CONF.glob("*.yaml"))
USAGE = (f"usage: python -m representation_probe <command> [hydra overrides]  (or: representation-probe ...); --version\n"
         f"commands: {', '.join(COMMANDS)}")
OVERRIDE = re.compile(r"[+~]{0,2}[\w.@/-]*[\w@]=")  # key=value, +key=value, group/option=value
REPORT_USAGE = "report takes run or multirun directories: python -m representation_probe report <dir> [<dir> ...]"


def main() -> None:
    command = sys.argv[1] if len(sys.argv) > 1 else "--help"
    if command in ("-h", "--help"):
        print(USAGE)
        sys.exit(0)
    if command in ("-V", "--version"):
        from representation_probe import __version__

        print(f"representation-probe {__version__}")
        sys.exit(0)
    if command in COMMANDS:
        sys.argv[1] = f"--config-name={command}"
        if command == "report":
            report_arguments()
        if command == "dashboard":
            dashboard_arguments()
    elif not command.startswith("--config-name"):  # that one is a re-launched DDP rank
        fail(f"unknown command '{command}'\n{USAGE}")

    from representation_probe.runs import lock as run_lock
    from representation_probe.runs.interrupts import Interrupted, signals_end_the_run

    try:
        with signals_end_the_run():  # from the start: a signal while it loads ends it the same way
            run(command)
    except Interrupted as err:  # before the command ran (after, its wrapper recorded it and exited)
        fail(f"interrupted by {err} before the command started", code=err.exit_code)
    finally:
        run_lock.release_all()


def run(command: str) -> None:
    lock_the_run_directory(command)
    import hydra  # imported only now: --help stays instant

    from representation_probe.cli.task import main as task

    # Hydra prints its own errors (search paths, stack traces) unless told to raise them to us.
    os.environ.setdefault("HYDRA_FULL_ERROR", "1")
    started = time.time()
    try:
        hydra.main(config_path=str(CONF), config_name=None, version_base="1.3")(task)()
    except Exception as err:
        from representation_probe.cli.task import failed_jobs
        from representation_probe.cli.user_errors import user_error

        if getattr(err, "sweep_dir", None):  # a multirun job failed; Hydra re-raised the first failure
            jobs, ran = failed_jobs(Path(err.sweep_dir), since=started)
            fail(f"{len(jobs)} of {ran} jobs of the multirun in {err.sweep_dir} failed:\n"
                 + "\n".join(f"  {job}: {line}" for job, line in jobs), code=2 if user_error(err) else 1)
        line = user_error(err)
        if line is None:
            raise
        fail(line)


def lock_the_run_directory(command: str) -> None:
    """A run directory given on the command line is locked before Hydra writes its .hydra/ files into it
    (runs/lock.py); the command's wrapper locks the others, and a multirun's jobs."""
    if "-m" in sys.argv or "--multirun" in sys.argv:
        return
    given = [arg.split("=", 1)[1] for arg in sys.argv[2:] if arg.startswith("hydra.run.dir=")]
    if given and "${" not in given[-1]:  # an interpolation (${now:...}) is Hydra's to resolve: the wrapper locks
        from representation_probe.errors import ConfigError
        from representation_probe.runs import lock as run_lock

        try:
            run_lock.acquire(Path(given[-1].strip("'\"")), command)
        except ConfigError as err:
            fail(str(err))


def report_arguments() -> None:
    """`report DIR [DIR ...]`: the positional directories become runs=[...] (a path may contain '=',
    as Hydra's job directories named by their overrides do)."""
    args = sys.argv[2:]
    dirs = _positional(args)
    if dirs:
        rest = [arg for arg in args if arg not in dirs]
        sys.argv[2:] = [f"runs=[{','.join(_quoted(d) for d in dirs)}]", *rest]
    elif not any(arg.startswith("runs=") for arg in args) and not any(arg.startswith("--") for arg in args):
        fail(REPORT_USAGE)


def dashboard_arguments() -> None:
    """`dashboard DIR|PROJECT`: the first positional argument becomes source=..."""
    args = sys.argv[2:]
    positional = _positional(args)
    if positional:
        sys.argv[2:] = [f"source={_quoted(positional[0])}", *(arg for arg in args if arg != positional[0])]


def _positional(args: list[str]) -> list[str]:
    """The arguments that are not overrides or options: a directory, even one named `key=value`."""
    return [arg for arg in args if Path(arg).is_dir() or not (OVERRIDE.match(arg) or arg.startswith("-"))]


def _quoted(path: str) -> str:
    """A path as a quoted string of Hydra's override grammar ('=', ',' and brackets are then plain)."""
    return "'" + path.replace("\\", "\\\\").replace("'", "\\'") + "'"


def fail(message: str, code: int = 2) -> None:
    print(f"error: {message}", file=sys.stderr)
    sys.exit(code)


if __name__ == "__main__":
    main()
