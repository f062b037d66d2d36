"""The one interface every outgoing transform implements, so a rule or a node can chain them ([ACTIONS]).

Why all objects at once: a transform that changes identity (UIDs) must remap every reference inside the bundle the
same way, and one that cannot apply to any object must refuse the whole bundle, never send half of it transformed.
"""

from __future__ import annotations

from typing import Any, Protocol, Sequence, runtime_checkable

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


def apply_chain(transforms: Sequence[Transform], objects: Sequence[Dataset]) -> list[Dataset]:
    """Each transform over the output of the previous one; a TransformError stops the chain (nothing half done)."""
    out = list(objects)
    for t in transforms:
        try:
            out = t.apply(out)
        except TransformError as exc:  # the job's error names the step that refused, not the whole chain
            if len(transforms) > 1 and not str(exc).startswith(t.name):
                raise TransformError(f"{t.name}: {exc}") from None
            raise
    return out
