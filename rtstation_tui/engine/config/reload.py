"""Live configuration reload (SIGHUP under ``rtstation serve``): what changed, and what can change without a restart.

Why: the allowlist, destinations, rules and the disk threshold change while plans are being received; a restart
would drop associations in flight. Everything the receiver reads per association or per C-STORE is swapped
atomically (one attribute assignment); what is bound when the socket opens (address, port, AE title, data_dir,
PDU size) keeps its old value until the next restart, and the log says so.
"""

from __future__ import annotations

from dataclasses import fields, replace
from .model import SECTIONS, Config

# keys whose new value only takes effect at the next start
RESTART_ONLY = ("station.ae_title", "station.bind", "station.port", "station.data_dir", "receiver.max_pdu",
                "logging.dir", "retention.days", "retention.auto", "retention.max_store_gb", "network.fast_paths")
# the import-folder watcher takes its settings when it starts; the API binds its socket and sizes its replay buffer
RESTART_SECTIONS = ("import", "api")


def restart_only(key: str) -> bool:
    return key in RESTART_ONLY or key.split(".", 1)[0] in RESTART_SECTIONS


class ReloadError(ValueError):
    """The new configuration cannot be applied; the old one stays in force."""


def config_changes(old: Config, new: Config) -> list[str]:
    """Dotted keys whose values differ (``receiver.min_free_mb``), plus ``nodes``/``rules``/``groups`` as wholes."""
    changed = []
    for attr, _cls in SECTIONS.values():
        a, b = getattr(old, attr), getattr(new, attr)
        section = attr.rstrip("_")
        changed += [f"{section}.{f.name}" for f in fields(a) if getattr(a, f.name) != getattr(b, f.name)]
    changed += [key for key in ("nodes", "rules", "groups", "anonymize") if getattr(old, key) != getattr(new, key)]
    return changed


def effective(old: Config, new: Config) -> tuple[Config, list[str]]:
    """``new`` with every restart-only key kept at its running value, and the list of those that were held back."""
    held = [k for k in config_changes(old, new) if restart_only(k)]
    for key in held:
        section, name = key.split(".")
        attr = section if hasattr(new, section) else f"{section}_"
        kept = replace(getattr(new, attr), **{name: getattr(getattr(old, attr), name)})
        new = replace(new, **{attr: kept})
    return new, held
