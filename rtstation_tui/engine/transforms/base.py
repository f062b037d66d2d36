"""The one interface every outgoing transform implements, so a rule or a node can chain them ([ACTIONS]).

Why all objects at once: a transform that changes identity (UIDs) must remap every reference inside the bundle the
same way, and one that cannot apply to any object must refuse the whole bundle, never send half of it transformed.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from typing import Any, Callable, Protocol, Sequence, runtime_checkable

from pydicom.dataset import Dataset


class TransformError(Exception):
    """The transform refuses these objects; the message says which object and why (the job fails with it)."""


@runtime_checkable
class Transform(Protocol):
    """``apply`` returns new datasets (deep copies) and never modifies the ones it was given."""

    name: str  # as written in a rule or on the command line, e.g. "anonymize:rt-research"
    changes_identity: bool  # True: UIDs are replaced (and every reference to them, consistently)

    @property
    def config(self) -> Any: ...

    def describe(self) -> str: ...

    def apply(self, objects: Sequence[Dataset]) -> list[Dataset]: ...


@runtime_checkable
class Deriving(Transform, Protocol):
    """A transform that adds or splits objects (``seg``, ``classic``): N objects in, M out. ``derive`` says, for each
    output, which input it stands for (its index: sent in that stored object's place) or None (a new object, such as
    a SEG or one classic frame). An input no output stands for is *replaced* (an Enhanced image by its frames).
    ``apply`` is the same without the provenance (exports and dry runs need only the objects)."""

    def derive(self, objects: Sequence[Dataset]) -> list[tuple[int | None, Dataset]]: ...


@dataclass(frozen=True)
class Made:
    """One output of a chain: the dataset and the index of the input it stands for (None: derived, new)."""

    dataset: Dataset
    source: int | None


def _step(t: Transform, made: list[Made]) -> list[Made]:
    objects = [m.dataset for m in made]
    if isinstance(t, Deriving):
        return [Made(ds, None if k is None else made[k].source) for k, ds in t.derive(objects)]
    out = t.apply(objects)
    if len(out) != len(made):  # a 1:1 transform that is not: its outputs cannot be matched to what it was given
        raise TransformError(f"{t.name} made {len(out)} objects of {len(made)}; a transform that adds or splits "
                             "objects must say which input each stands for (transforms.base.Deriving)")
    return [Made(ds, m.source) for ds, m in zip(out, made)]


def apply_chain_mapped(transforms: Sequence[Transform], objects: Sequence[Dataset]) -> list[Made]:
    """``apply_chain`` that keeps track of provenance: a send job needs to know which output goes out in a stored
    instance's place (its queue row) and which are new derived objects (rows of their own)."""
    made = [Made(o, i) for i, o in enumerate(objects)]
    for t in transforms:
        made = _named(t, len(transforms), partial(_step, t, made))
    return made


def derives(transforms: Sequence[Transform]) -> bool:
    """Whether the chain may add or split objects (its job's rows are settled when the copies are made)."""
    return any(isinstance(t, Deriving) for t in transforms)


def _named(t: Transform, chain_length: int, run: Callable[[], Any]) -> Any:
    try:
        return run()
    except TransformError as exc:  # the job's error names the step that refused, not the whole chain
        if chain_length > 1 and not str(exc).startswith(t.name):
            raise TransformError(f"{t.name}: {exc}") from None
        raise


def apply_chain(transforms: Sequence[Transform], objects: Sequence[Dataset]) -> list[Dataset]:
    """Each transform over the output of the previous one; a TransformError stops the chain (nothing half done)."""
    out = list(objects)
    for t in transforms:
        out = _named(t, len(transforms), partial(t.apply, out))
    return out
