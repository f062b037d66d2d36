"""``rtstation derive overlay|seg|classic``: derived series for viewers that cannot show RTSTRUCT or read multi-frame
images, written into ``--out`` (the station's store is only read).

    rtstation derive overlay --plan LABEL [--roi 'PTV*'] [--type PTV] [--merge] --out DIR
    rtstation derive seg --structure-set UID --out DIR
    rtstation derive overlay --rtstruct RS.dcm --images CT/ --out DIR
    rtstation derive classic FILE... | --series UID --out DIR
"""

from __future__ import annotations

import argparse
import os
import re
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

from ..engine.config.model import Config
from .output import fail, print_json

if TYPE_CHECKING:
    from pydicom.dataset import Dataset

    from ..engine.derive.sources import ContourInputs


def _errors() -> tuple[type[Exception], ...]:
    """What a derivation refuses with a message for the user. Imported here, not at the top: highdicom and the
    rasterizer cost half a second that every other ``rtstation`` command would pay."""
    from ..engine.derive.enhanced import EnhancedError
    from ..engine.derive.overlay import OverlayError
    from ..engine.derive.rasterize import GeometryError
    from ..engine.derive.rois import SelectionError
    from ..engine.derive.seg import SegError
    from ..engine.derive.sources import SourceError
    return (SourceError, SelectionError, GeometryError, OverlayError, SegError, EnhancedError)


def register(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("derive", parents=[common], help="derived series: contours as overlays or SEG, "
                       "Enhanced multi-frame split into classic images")
    kinds = p.add_subparsers(dest="kind", metavar="KIND", required=True)
    for kind, text in (("overlay", "a copy of the image series with the ROIs as overlay planes"),
                       ("seg", "a DICOM Segmentation with one segment per ROI")):
        k = kinds.add_parser(kind, parents=[common], help=text)
        what = k.add_mutually_exclusive_group(required=True)
        what.add_argument("--plan", metavar="UID|LABEL", help="the structure set of this stored plan")
        what.add_argument("--structure-set", metavar="UID", help="a stored RTSTRUCT by SOP Instance UID")
        what.add_argument("--rtstruct", metavar="FILE", type=Path, help="an RTSTRUCT file (with --images)")
        k.add_argument("--images", metavar="PATH", type=Path, nargs="+", help="image files or folders (--rtstruct)")
        k.add_argument("--patient", metavar="ID", help="PatientID, when a plan label is used by several patients")
        k.add_argument("--roi", metavar="PATTERN", action="append", default=[],
                       help="ROI names to include: case-insensitive glob, or re:REGEX (repeatable; default all)")
        k.add_argument("--exclude", metavar="PATTERN", action="append", default=[], help="ROI names to leave out")
        k.add_argument("--type", metavar="TYPE", action="append", default=[],
                       help="RT ROI Interpreted Type to keep, e.g. PTV, CTV, ORGAN (repeatable)")
        k.add_argument("--merge", action="store_true", help="all selected ROIs in one mask (default: one per ROI)")
        k.add_argument("--description", metavar="TEMPLATE", default="",
                       help="SeriesDescription template: {original}, {rois}, {structure_set} (default "
                       + ("'{original} + contours')" if kind == "overlay" else "'{original} SEG')"))
        k.add_argument("--out", metavar="DIR", type=Path, required=True, help="folder for the derived files")
        k.add_argument("--png", metavar="DIR", type=Path, help="also QA pictures (image + ROI outlines) into DIR")
        k.add_argument("--json", action="store_true")
        k.set_defaults(func=run_contours)
    c = kinds.add_parser("classic", parents=[common], help="split Enhanced MR/CT (multi-frame) into classic images")
    c.add_argument("files", metavar="FILE", type=Path, nargs="*", help="Enhanced / Legacy Converted files")
    c.add_argument("--series", metavar="UID", help="every multi-frame instance of this stored series")
    c.add_argument("--out", metavar="DIR", type=Path, required=True, help="folder for the classic images")
    c.add_argument("--json", action="store_true")
    c.set_defaults(func=run_classic)


def write_datasets(datasets: Sequence["Dataset"], out: Path) -> list[Path]:
    """Each dataset as ``<Modality>.<SOPInstanceUID>.dcm`` in ``out``, atomically (temp file, then rename)."""
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for ds in datasets:
        modality = re.sub(r"[^A-Za-z0-9]", "", str(ds.get("Modality", "") or "")) or "OT"
        uid = re.sub(r"[^0-9.]", "", str(ds.SOPInstanceUID))
        path = out / f"{modality}.{uid}.dcm"
        tmp = path.with_name(f".{path.name}.tmp")
        ds.save_as(tmp, enforce_file_format=True)
        os.replace(tmp, path)
        paths.append(path)
    return paths


def _inputs(args: argparse.Namespace, config: Config) -> "ContourInputs":
    from ..engine.derive.sources import SourceError, from_files, from_store, structure_set_of_plan
    from ..engine.store.index import Index
    from .send import resolve_plan

    if args.rtstruct is not None:
        if not args.images:
            raise SourceError("--rtstruct needs --images (the image files or folders)")
        return from_files(args.rtstruct, args.images)
    index = Index(config.data_dir)
    uid = args.structure_set
    if uid is None:
        try:
            plan_uid = resolve_plan(index, args.plan, args.patient)
        except ValueError as exc:
            raise SourceError(str(exc)) from None
        uid = structure_set_of_plan(index.conn, plan_uid)
    return from_store(index.conn, config.data_dir / "store", uid)


def _report(args: argparse.Namespace, results: list[dict[str, object]]) -> int:
    if args.json:
        print_json(results)
    else:
        for r in results:
            print(f"wrote {r['files']} files of series {r['series_uid']} ({r['description']}) to {args.out}")
    return 0


def run_contours(args: argparse.Namespace, config: Config) -> int:
    from ..engine.derive.contours import ContourRequest, overlay_for, seg_for
    from ..engine.derive.rois import RoiSelection

    request = ContourRequest(RoiSelection(tuple(args.roi), tuple(args.exclude), tuple(args.type)), args.merge,
                             args.description, previews=args.png is not None)
    make = overlay_for if args.kind == "overlay" else seg_for
    try:
        inputs = _inputs(args, config)
        results = []
        for images in inputs.series.values():
            derived = make(inputs.structure_set, images, request)
            paths = write_datasets(derived.datasets, args.out)
            if args.png is not None:
                args.png.mkdir(parents=True, exist_ok=True)
                for name, png in derived.previews:
                    (args.png / name).write_bytes(png)
            first = derived.datasets[0]
            results.append({"kind": args.kind, "series_uid": str(first.SeriesInstanceUID),
                            "description": str(first.get("SeriesDescription", "")), "files": len(paths),
                            "source_series_uid": str(images[0].SeriesInstanceUID),
                            "rois": [r.name for r in derived.rois], "previews": len(derived.previews)})
    except _errors() as exc:
        return fail(str(exc), 2)
    return _report(args, results)


def _classic_sources(args: argparse.Namespace, config: Config) -> list[Path]:
    from ..engine.derive.sources import SourceError
    from ..engine.store.index import Index

    if args.files and args.series:
        raise SourceError("give FILE... or --series, not both")
    if args.files:
        return list(args.files)
    if not args.series:
        raise SourceError("give the Enhanced files, or --series UID of a stored series")
    index = Index(config.data_dir)
    rows = index.conn.execute("SELECT DISTINCT path FROM instances WHERE series_uid=? AND conflict=0 ORDER BY path",
                              (args.series,)).fetchall()
    if not rows:
        raise SourceError(f"no series {args.series} in the store")
    return [config.data_dir / "store" / r["path"] for r in rows]


def run_classic(args: argparse.Namespace, config: Config) -> int:
    from ..engine.derive.enhanced import split_enhanced
    from ..engine.derive.sources import read

    try:
        results = []
        for path in _classic_sources(args, config):
            images = split_enhanced(read(path))
            write_datasets(images, args.out)
            results.append({"kind": "classic", "source": str(path), "series_uid": str(images[0].SeriesInstanceUID),
                            "description": str(images[0].get("SeriesDescription", "")), "files": len(images)})
    except _errors() as exc:
        return fail(str(exc), 2)
    return _report(args, results)

