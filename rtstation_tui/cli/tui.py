"""``rtstation`` / ``rtstation tui``: the operator console."""

from __future__ import annotations

import argparse

from ..engine.config.model import Config


def register(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("tui", parents=[common], help="the operator console (the default command)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace, config: Config) -> int:
    try:
        from ..ui.app import run_console
    except ImportError:
        from . import build_parser

        build_parser().print_help()
        return 0
    def reread() -> Config:
        from . import load  # the same file and command-line overrides as at start

        return load(args)

    return run_console(config, log_level=args.log_level, reread=reread)
