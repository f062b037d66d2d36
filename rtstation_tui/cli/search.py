"""``rtstation search --tag "(0010,0020)=Phantom-1" --tag "(0008,0060)=?" [--path DIR] [--pattern GLOB] [--stats]
[--dirs-only] [--json]``: files whose tags match, in a folder or (default) the store.

``=value`` filters (``*``/``?`` wildcards), ``=?`` prints the value, sequence paths such as
``(300A,00B0)/(300A,00B2)=?`` look into every item. Over the store the index answers its own columns.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from ..engine.config.model import Config
from ..engine.dicom.tagpath import TagPathError, parse_term
from ..engine.plans.search import as_json, search_folder, search_store, terms_text
from ..engine.store.index import Index
from .output import fail, print_json


def register(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("search", parents=[common], help="find files by tag values (a folder or the store)")
    p.add_argument("--tag", action="append", required=True, metavar='"(gggg,eeee)=value|?"',
                   help="filter (wildcards * ?) or =? to print; sequence paths (300A,00B0)/(300A,00B2); repeatable")
    p.add_argument("--path", metavar="DIR", help="search this folder (default: the station's store, via its index)")
    p.add_argument("--pattern", default="*", metavar="GLOB", help="only files whose name matches (default *)")
    out = p.add_mutually_exclusive_group()
    out.add_argument("--stats", action="store_true", help="count the values of each term over the matches")
    out.add_argument("--dirs-only", action="store_true", help="list the folders holding matches")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=run)


def run(args: argparse.Namespace, config: Config) -> int:
    try:
        terms = tuple(parse_term(t) for t in args.tag)
    except TagPathError as exc:
        return fail(str(exc), 2)
    if args.path is not None:
        root = Path(args.path)
        if not root.is_dir():
            return fail(f"--path {args.path}: no such folder", 2)
        result = search_folder(root, terms, args.pattern)
    else:
        result = search_store(Index(config.data_dir), config.data_dir / "store", terms, args.pattern)
    if args.json:
        print_json(as_json(result, args.stats, args.dirs_only))
        return 0
    if args.stats:
        for text, counts in result.stats().items():
            name = next(t.name for t in terms if t.text == text)
            print(f"{name} {text}")
            for value, n in counts.items():
                print(f"  {n:6d}  {value}")
    elif args.dirs_only:
        for d in result.dirs():
            print(d)
    else:
        for h in result.hits:
            print(f"{h.path}  {terms_text(h.values, terms)}")
    where = "the index" if result.used_index else "files"
    print(f"{len(result.hits)} matching of {result.scanned} read from {where}"
          f"{f', {result.not_dicom} not DICOM' if result.not_dicom else ''}")
    return 0
