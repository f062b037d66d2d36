"""``rtstation``: the console (bare, or ``tui``) and headless subcommands. One module per subcommand; each has
``register(subparsers, common)`` and sets ``func(args, config) -> exit code`` on its parser."""

from __future__ import annotations

import argparse
import errno
import importlib
import os
import sys
from typing import Sequence

from ..engine.config.model import ConfigError, find_config_file, load_config
from ..engine.store.schema import SchemaError

# subcommand modules, in help order
COMMANDS = ["tui", "serve", "stop", "show", "send", "echo", "find", "retrieve", "search", "queuecmd", "rulescmd",
            "importcmd", "indexcmd", "deletecmd", "cleanup", "synthcmd", "derive", "dvhcmd", "metricscmd", "reportcmd", "anonymize"]
EXIT_USAGE = 2

# One example per subcommand, shown by its --help (``describe``): what an operator types first.
EXAMPLES = {
    "tui": "rtstation --config /etc/rtstation/rtstation.toml",
    "serve": "rtstation serve --config /etc/rtstation/rtstation.toml",
    "stop": "rtstation stop --config /etc/rtstation/rtstation.toml --timeout 60",
    "show": "rtstation show --patient 123456",
    "send": "rtstation send --plan B1 --patient 123456 --to QA,ARCHIVE --wait --timeout 600",
    "echo": "rtstation echo QA ORTHANC@10.0.0.5:4242",
    "find": "rtstation find --from PACS --level study --patient 123456",
    "retrieve": "rtstation retrieve --from PACS --patient 123456 --plan B1 --approved-only",
    "search": "rtstation search --tag \"(300a,0002)=B1\" --path /media/usb",
    "queue": "rtstation queue --active; rtstation queue cancel 12",
    "rules": "rtstation rules test --plan B1",
    "rules check": "rtstation rules check",
    "rules test": "rtstation rules test --plan B1 --patient 123456",
    "import": "rtstation import /media/usb/export.zip",
    "anonymize": "rtstation anonymize --plan B1 --patient 123456 --profile rt-research --out /tmp/anon",
    "index": "rtstation index --rebuild",
    "delete": "rtstation delete --plan B1 --patient 123456 --dry-run",
    "cleanup": "rtstation cleanup --dry-run",
    "synth": "rtstation synth --patients 3 --slices 50 /tmp/synthetic",
    "derive": "rtstation derive seg --plan B1 --patient 123456 --roi 'PTV*' --out /tmp/seg",
    "derive overlay": "rtstation derive overlay --plan B1 --roi 'PTV*' --out /tmp/overlay --png /tmp/qa",
    "derive seg": "rtstation derive seg --plan B1 --roi 'PTV*' --exclude '*z*' --out /tmp/seg",
    "derive classic": "rtstation derive classic --out /tmp/classic MR_enhanced.dcm",
    "dvh": "rtstation dvh RD.dcm RS.dcm --roi PTV --step 0.5",
    "metrics": "rtstation metrics --where 'max_dose>60Gy' --sort -max_dose",
    "report": "rtstation report --month 2026-11",
}


def common_options(suppress: bool = False) -> argparse.ArgumentParser:
    """The station options. Subcommands get them with SUPPRESS defaults, so ``rtstation --port 5 serve`` and
    ``rtstation serve --port 5`` both work (argparse would otherwise reset the value to None)."""
    common = argparse.ArgumentParser(add_help=False, argument_default=argparse.SUPPRESS if suppress else None)
    g = common.add_argument_group("station options (every command)")
    g.add_argument("--config", metavar="PATH", help="config file (default: $RTSTATION_CONFIG, ./rtstation.toml, "
                   "/etc/rtstation/rtstation.toml, else built-in defaults)")
    g.add_argument("--port", type=int, metavar="N", help="override [station] port")
    g.add_argument("--data-dir", metavar="DIR", help="override [station] data_dir")
    g.add_argument("--ae-title", metavar="AET", help="override [station] ae_title")
    g.add_argument("--theme", metavar="NAME", help="override [ui] theme")
    g.add_argument("--log-level", metavar="LEVEL", choices=["DEBUG", "INFO", "WARNING", "ERROR"],
                   help="override [logging] level")
    return common


def command_of(module: str) -> str:
    """``queuecmd`` registers ``queue``: a module is named after its command, with ``cmd`` where the bare name
    would shadow a standard module."""
    return module.removesuffix("cmd")


def modules_for(argv: Sequence[str] | None) -> list[str]:
    """The subcommand modules a command line needs. Importing all of them costs ~0.4 s of CPU per run (the
    station, pynetdicom, aiohttp, numpy) that ``rtstation queue`` or ``show`` never use, and scripts and the test
    suite run the CLI hundreds of times. Every token that names a command selects its module (a superset of what
    the parse needs is harmless); help without a command, or a stray word that may be a mistyped command, loads
    all so the listing and argparse's "invalid choice" message stay complete."""
    if argv is None:
        return COMMANDS
    by_command = {command_of(m): m for m in COMMANDS}
    # station options that take a value (from the parser that defines them): the token after one is no command
    takes_value = {o for a in common_options()._actions if a.nargs != 0 for o in a.option_strings}
    chosen = [by_command[t] for t in argv if t in by_command]
    if chosen:
        return list(dict.fromkeys(chosen))
    stray = [t for i, t in enumerate(argv) if not t.startswith("-") and (i == 0 or argv[i - 1] not in takes_value)]
    if stray or any(t in ("-h", "--help") for t in argv):
        return COMMANDS
    return ["tui"]


def build_parser(argv: Sequence[str] | None = None) -> argparse.ArgumentParser:
    """The parser for ``argv`` (every subcommand when None)."""
    common = common_options(suppress=True)
    parser = argparse.ArgumentParser(prog="rtstation", parents=[common_options()],
                                     description="DICOM-RT station: receive, bundle by reference chain, forward.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in modules_for(argv):
        importlib.import_module(f"{__name__}.{name}").register(sub, common)
    describe(sub)
    return parser


def describe(sub: argparse._SubParsersAction, prefix: str = "") -> None:
    """Every subcommand's --help opens with its one-line description and ends with an example (``EXAMPLES``)."""
    helps = {a.dest: a.help for a in sub._choices_actions}
    for name, parser in sub.choices.items():
        full = f"{prefix}{name}"
        parser.description = parser.description or helps.get(name)
        if full in EXAMPLES and not parser.epilog:
            parser.epilog = f"example:\n  {EXAMPLES[full]}"
            parser.formatter_class = argparse.RawDescriptionHelpFormatter
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                describe(action, f"{full} ")


def load(args: argparse.Namespace):  # type: ignore[no-untyped-def]
    path = find_config_file(args.config)
    overrides = {"port": args.port, "data_dir": args.data_dir, "ae_title": args.ae_title, "theme": args.theme}
    return load_config(path, overrides=overrides)


def main(argv: Sequence[str] | None = None) -> int:
    os.umask(0o027)  # patient data: files and folders never readable by other users
    argv = list(argv if argv is not None else sys.argv[1:])
    parser = build_parser(argv)
    args = parser.parse_args(argv)
    if args.command is None:
        args = parser.parse_args([*argv, "tui"])
    try:
        config = load(args)
    except ConfigError as exc:
        print(f"rtstation: configuration error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    try:
        return int(args.func(args, config) or 0)
    except SchemaError as exc:  # a database from a newer release, one no release wrote, or a damaged one
        print(f"rtstation: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:
        if exc.errno not in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG):
            raise
        print(f"rtstation: the disk is full: cannot write {exc.filename or 'a file'} ({exc.strerror}). Free space "
              f"on the disk holding {config.data_dir}, then run it again", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return 0
