"""`python -m representation_probe <command> [hydra overrides]`.

The commands are the entry configs in conf/. The command word becomes `--config-name=<command>` in
place, so sys.argv stays whole for Lightning's DDP re-launch of ranks (which re-runs
`python -m representation_probe <argv[1:]>`).
"""

import sys
from pathlib import Path

CONF = Path(__file__).resolve().parent.parent / "conf"
COMMANDS = sorted(path.stem for path in CONF.glob("*.yaml"))
USAGE = f"usage: python -m representation_probe <command> [hydra overrides]\ncommands: {', '.join(COMMANDS)}"


def main() -> None:
    command = sys.argv[1] if len(sys.argv) > 1 else "--help"
    if command in ("-h", "--help"):
        print(USAGE)
        sys.exit(0)
    if command in COMMANDS:
        sys.argv[1] = f"--config-name={command}"
        if command == "report":  # `report DIR [DIR ...]`: positional directories become runs=[...]
            dirs = [arg for arg in sys.argv[2:] if "=" not in arg and not arg.startswith("-")]
            if dirs:
                rest = [arg for arg in sys.argv[2:] if arg not in dirs]
                sys.argv[2:] = [f"runs=[{','.join(repr(d) for d in dirs)}]", *rest]
    elif not command.startswith("--config-name"):  # that one is a re-launched DDP rank
        print(f"error: unknown command '{command}'\n{USAGE}", file=sys.stderr)
        sys.exit(2)

    import hydra  # imported only now: --help stays instant

    from representation_probe.commands import main as task

    hydra.main(config_path=str(CONF), config_name=None, version_base="1.3")(task)()


if __name__ == "__main__":
    main()
