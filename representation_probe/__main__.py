"""`python -m representation_probe <command> [hydra overrides]`.

The command word becomes `--config-name=<command>` in place, so sys.argv stays whole for
Lightning's DDP re-launch of ranks (which re-runs `python -m representation_probe <argv[1:]>`).
"""

import sys
from pathlib import Path

import hydra

from representation_probe.tasks import TASKS, run

CONF = str(Path(__file__).resolve().parent.parent / "conf")
USAGE = f"usage: python -m representation_probe <command> [hydra overrides]\ncommands: {', '.join(TASKS)}"


@hydra.main(config_path=CONF, config_name=None, version_base="1.3")
def _main(cfg):
    return run(cfg)


def main() -> None:
    command = sys.argv[1] if len(sys.argv) > 1 else "--help"
    if command.startswith("--config-name"):
        pass  # a re-launched DDP rank
    elif command in TASKS:
        sys.argv[1] = f"--config-name={command}"
    elif command in ("-h", "--help"):
        print(USAGE)
        sys.exit(0)
    else:
        print(f"error: unknown command '{command}'\n{USAGE}", file=sys.stderr)
        sys.exit(2)
    _main()


if __name__ == "__main__":
    main()
