"""``machine_map``: a node's own names for the treatment machines, in every beam of (Ion)BeamSequence.

Why per node: two linacs of one model are commissioned as "TB_A" and "TB_B"; the TPS plans for "TrueBeam1" and
the record-and-verify system of each vault only accepts a plan naming its own machine. ``map`` renames by the
plan's name (``"*"``: any other name); ``default`` names beams that have none, by their machine model
(ManufacturerModelName of the beam, else of the plan; ``"*"``: any model). A beam without a name for which a
default is configured but none matches refuses the plan: a linac must never guess.
"""

from __future__ import annotations

import copy
import json
from typing import Sequence

from pydicom.dataset import Dataset

from .base import TransformError


class MachineMap:
    changes_identity = False

    def __init__(self, mapping: dict[str, str], defaults: dict[str, str]) -> None:
        self.mapping, self.defaults = dict(mapping), dict(defaults)
        self.name = "machine_map:" + json.dumps({"map": self.mapping, "default": self.defaults}, sort_keys=True)

    @property
    def config(self) -> dict[str, dict[str, str]]:
        return {"map": self.mapping, "default": self.defaults}

    def describe(self) -> str:
        parts = [f"{old} -> {new}" for old, new in self.mapping.items()]
        parts += [f"unnamed {model} -> {new}" for model, new in self.defaults.items()]
        return "treatment machines: " + ", ".join(parts)

    def apply(self, objects: Sequence[Dataset]) -> list[Dataset]:
        out = [copy.deepcopy(ds) for ds in objects]
        for ds in out:
            for beam in list(ds.get("BeamSequence") or []) + list(ds.get("IonBeamSequence") or []):
                new = self._name_for(ds, beam)
                if new is not None:
                    beam.TreatmentMachineName = new
        return out

    def _name_for(self, plan: Dataset, beam: Dataset) -> str | None:
        old = str(beam.get("TreatmentMachineName", "") or "").strip()
        if old:
            return self.mapping.get(old, self.mapping.get("*"))
        if not self.defaults:
            return None
        model = str(beam.get("ManufacturerModelName", "") or plan.get("ManufacturerModelName", "") or "").strip()
        new = self.defaults.get(model, self.defaults.get("*"))
        if new is None:
            raise TransformError(f"RTPLAN {plan.get('SOPInstanceUID', '?')}: beam {beam.get('BeamNumber', '?')} "
                                 f"names no treatment machine and default_machine has none for model "
                                 f"{model or '(none)'!r} (it knows {', '.join(self.defaults)})")
        return new


def build(arg: str) -> MachineMap:
    try:
        value = json.loads(arg)
    except ValueError as exc:
        raise TransformError(f"machine_map: {exc}") from None
    return MachineMap(value.get("map", {}), value.get("default", {}))
