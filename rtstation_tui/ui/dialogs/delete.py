"""The question before a delete from the store: it names what goes — the patient or plan, every plan label, the
objects by modality, the size, and what stays because another plan still uses it — so nobody deletes blind."""

from __future__ import annotations

from ...engine.api import DeletePreview, human_bytes
from .confirm import ConfirmDialog


def delete_question(p: DeletePreview) -> str:
    name = p.patient_name.replace("^", " ").strip()
    who = f"patient {p.patient_id}" + (f" ({name})" if name else "")
    labels = ", ".join(label or uid for uid, label in p.plans)
    if p.what == "patient":
        head = f"Every object of {who} leaves the store"
        plans = f"{len(p.plans)} plan{'s' if len(p.plans) != 1 else ''}" + (f": {labels}" if labels else "")
    else:
        head = f"Plan {labels} of {who} leaves the store"
        plans = ""
    counts = ", ".join(f"{n} {m}" for m, n in p.counts) or "no objects"
    lines = [head + ":", *([plans] if plans else []), f"{p.instances} objects ({counts}), {human_bytes(p.nbytes)}"]
    if p.kept_shared:
        lines.append(f"{p.kept_shared} objects stay: another plan of the patient still uses them")
    lines.append("This cannot be undone (the audit log keeps what was deleted).")
    return "\n".join(lines)


class DeleteDialog(ConfirmDialog):
    """Yes deletes, no (the default, and Esc) keeps."""

    def __init__(self, preview: DeletePreview) -> None:
        super().__init__(f"Delete {'patient' if preview.what == 'patient' else 'plan'}?", delete_question(preview),
                         "Delete", "Keep")
