"""Station configuration: TOML read with ``tomllib``, validated into frozen dataclasses.

Why a hand-written validator: every error must say which file, which key, the bad value and what is allowed
(operators fix configs over SSH at 2 a.m.; "validation error" is useless). Field constraints live next to the
fields as metadata, so adding a key is one line. Writing the file back (keeping comments) is ``configfile.py``.
"""

from __future__ import annotations

import os
import re
import tomllib
from dataclasses import MISSING, dataclass, fields, replace
from pathlib import Path
from typing import Any

from .anonymize import AnonymizeConfig, parse_anonymize
from .checks import ConfigError, check_value
from .checks import setting as _c
from .groups import GroupConfig, validate_groups
from .nodes import NodeConfig
from .rules import RuleConfig, check_delete_after_send, validate_rules
from .transforms import check_chains

# the DVH points metrics/compute.py understands (kept here so the config loader needs no NumPy import)
_DVH_POINT = re.compile(r"^(D\d+(\.\d+)?(%|cc)?|V\d+(\.\d+)?(Gy|cGy)?)$")
DEFAULT_CONFIG_PATHS = ("./rtstation.toml", "/etc/rtstation/rtstation.toml")
ENV_STOCK_PYNETDICOM = "RTSTATION_STOCK_PYNETDICOM"  # 1: [network] fast_paths = false, whatever the file says
_ENV_YES, _ENV_NO = ("1", "true", "yes", "on"), ("0", "false", "no", "off")


@dataclass(frozen=True)
class StationConfig:
    ae_title: str = _c("RTSTATION", kind="ae")
    bind: str = _c("0.0.0.0", kind="host")
    port: int = _c(11112, min=1, max=65535)
    data_dir: Path = _c(Path("./var"))


@dataclass(frozen=True)
class ReceiverConfig:
    allowed_calling_aes: tuple[str, ...] = _c((), kind="acl")
    check_called_ae: bool = _c(True)
    settle_seconds: float = _c(10.0, min=0, max=86400)
    min_free_mb: int = _c(500, min=0)
    max_associations: int = _c(16, min=1, max=1000)
    durability: str = _c("fsync", choices=("fsync", "os"))
    max_pdu: int = _c(65536, min=0, max=4_194_304)
    network_timeout_s: float = _c(60.0, min=1, max=86400)
    split_enhanced: bool = _c(False)  # also store classic images split from Enhanced MR/CT/PET (originals kept)


@dataclass(frozen=True)
class NetworkConfig:
    """How we drive pynetdicom. ``fast_paths`` False: its stock loops and temp files (the upgrade fallback; see
    ``engine/dimse/settings.py``)."""

    fast_paths: bool = _c(True)


@dataclass(frozen=True)
class LoggingConfig:
    level: str = _c("INFO", choices=("DEBUG", "INFO", "WARNING", "ERROR"), upper=True)
    dir: Path | None = _c(None)
    retention_days: int = _c(30, min=1, max=3650)
    heartbeat_minutes: float = _c(0.0, min=0, max=1440)  # serve: a line of the station's counters this often (0: off)


@dataclass(frozen=True)
class ImportConfig:
    folder: Path | None = _c(None)
    recursive: bool = _c(True)
    include: tuple[str, ...] = _c(("*",))
    exclude: tuple[str, ...] = _c((".*", "*.tmp", "*.part"))
    settle_seconds: float = _c(2.0, min=0, max=3600)
    after_import: str = _c("move", choices=("delete", "move", "keep"))
    source_ae: str = _c("IMPORT_FOLDER", kind="ae")


@dataclass(frozen=True)
class TlsConfig:
    enabled: bool = _c(False)
    certificate: Path | None = _c(None)
    key: Path | None = _c(None)
    ca: Path | None = _c(None)
    require_client_cert: bool = _c(False)
    handshake_timeout_s: float = _c(10.0, min=0.1, max=600)


@dataclass(frozen=True)
class RetentionConfig:
    days: float = _c(0.0, min=0, max=36500)  # 0: never remove anything
    auto: bool = _c(False)  # serve runs the cleanup once a day (and the size check every 10 minutes)
    # the store's size limit in GB (0: none): over it, the oldest fully delivered bundles go first; unsent,
    # queued, failed or uncommitted data is never removed (a warning says the store stays over)
    max_store_gb: float = _c(0.0, min=0, max=1_000_000)


@dataclass(frozen=True)
class MetricsConfig:
    enabled: bool = _c(True)  # compute plan metrics and DVHs when a bundle becomes ready
    dvh_points: tuple[str, ...] = _c(())  # extra DVH points for every ROI: "V20Gy", "D2cc", "D95%"


@dataclass(frozen=True)
class UiConfig:
    theme: str = _c("dark")
    themes_dir: Path | None = _c(None)  # user themes; None: $XDG_CONFIG_HOME/rtstation/themes (ui/themes)


@dataclass(frozen=True)
class ApiConfig:
    """The local control API ([ATTACH]): HTTP/JSON on a Unix socket (mode 0660: the owner and group only)."""

    enabled: bool = _c(True)
    socket: Path | None = _c(None)  # None: <data_dir>/api.sock, where consoles and the CLI look for it
    replay_events: int = _c(10000, min=100, max=1_000_000)  # events a reconnecting client can catch up on
    client_timeout_s: float = _c(10.0, min=0.5, max=600)  # an event-stream client accepting nothing is dropped
    # optional TCP listener (0: off): every request on it needs the bearer token of token_file
    tcp_port: int = _c(0, min=0, max=65535)
    tcp_bind: str = _c("127.0.0.1", kind="host")  # loopback unless configured otherwise
    token_file: Path | None = _c(None)  # None: <data_dir>/api.token, created (0640) when the TCP listener starts
    tcp_tls: bool = _c(False)  # the TCP listener speaks TLS with [tls] certificate and key


@dataclass(frozen=True)
class Config:
    """The whole configuration. ``path`` is the file it came from (None: built-in defaults)."""

    station: StationConfig = StationConfig()
    receiver: ReceiverConfig = ReceiverConfig()
    network: NetworkConfig = NetworkConfig()
    logging: LoggingConfig = LoggingConfig()
    ui: UiConfig = UiConfig()
    import_: ImportConfig = ImportConfig()
    tls: TlsConfig = TlsConfig()
    retention: RetentionConfig = RetentionConfig()
    api: ApiConfig = ApiConfig()
    metrics: MetricsConfig = MetricsConfig()
    nodes: tuple[NodeConfig, ...] = ()
    rules: tuple[RuleConfig, ...] = ()
    groups: tuple[GroupConfig, ...] = ()  # [[groups]]: one name for several nodes (config/groups.py)
    anonymize: AnonymizeConfig = AnonymizeConfig()
    path: Path | None = None

    @property
    def data_dir(self) -> Path:
        return self.station.data_dir

    @property
    def log_dir(self) -> Path:
        return self.logging.dir if self.logging.dir is not None else self.data_dir / "logs"

    @property
    def api_socket(self) -> Path:
        return self.api.socket if self.api.socket is not None else self.data_dir / "api.sock"

    @property
    def api_token_file(self) -> Path:
        return self.api.token_file if self.api.token_file is not None else self.data_dir / "api.token"

    def node(self, name: str) -> NodeConfig | None:
        return next((n for n in self.nodes if n.name == name), None)


# TOML table name -> (Config attribute, dataclass)
SECTIONS: dict[str, tuple[str, type]] = {
    "station": ("station", StationConfig),
    "receiver": ("receiver", ReceiverConfig),
    "network": ("network", NetworkConfig),
    "logging": ("logging", LoggingConfig),
    "ui": ("ui", UiConfig),
    "import": ("import_", ImportConfig),
    "tls": ("tls", TlsConfig),
    "retention": ("retention", RetentionConfig),
    "api": ("api", ApiConfig),
    "metrics": ("metrics", MetricsConfig),
}
ARRAYS: dict[str, type] = {"nodes": NodeConfig, "rules": RuleConfig, "groups": GroupConfig}


def build_dataclass(cls: type, table: Any, where: str, file: str) -> Any:
    """Validate one TOML table into ``cls``; unknown keys and bad values raise ConfigError."""
    if not isinstance(table, dict):
        raise ConfigError(file, where, f"must be a table, got {table!r}")
    known = {f.name.rstrip("_"): f for f in fields(cls)}
    values: dict[str, Any] = {}
    for key, raw in table.items():
        f = known.get(key)
        if f is None:
            raise ConfigError.unknown_key(file, where, key, sorted(known))
        values[f.name] = check_value(raw, f, f"{where}.{key}" if where else key, file)
    for f in fields(cls):
        if f.name not in values and f.default is MISSING and f.default_factory is MISSING:
            raise ConfigError(file, f"{where}.{f.name.rstrip('_')}", "is required")
    return cls(**values)


def parse_config(data: dict[str, Any], file: str, base: Path | None = None) -> Config:
    """Build a Config from already-parsed TOML data. ``base`` resolves relative paths (default: the CWD)."""
    base = base or Path.cwd()
    parts: dict[str, Any] = {}
    for key, value in data.items():
        if key in SECTIONS:
            attr, cls = SECTIONS[key]
            parts[attr] = build_dataclass(cls, value, key, file)
        elif key in ARRAYS:
            if not isinstance(value, list):
                raise ConfigError(file, key, f"must be an array of tables ([[{key}]]), got {value!r}")
            parts[key] = tuple(
                build_dataclass(ARRAYS[key], item, f"{key}[{i}]", file) for i, item in enumerate(value)
            )
        elif key == "anonymize":
            parts[key] = parse_anonymize(value, file)
        else:
            raise ConfigError.unknown_key(file, "", key, sorted([*SECTIONS, *ARRAYS, "anonymize"]))
    config = Config(**parts, path=Path(file) if file != "<defaults>" else None)
    return finish(config, file, base)


def finish(config: Config, file: str, base: Path) -> Config:
    """Resolve paths and check what spans sections (node names unique, rule targets exist)."""
    station = replace(config.station, data_dir=_absolute(config.station.data_dir, base))
    log_dir = config.logging.dir
    if log_dir is not None:
        log_dir = Path(str(log_dir).replace("<data_dir>", str(station.data_dir)))
        log_dir = _absolute(log_dir, base)
    imp = config.import_
    if imp.folder is not None:
        imp = replace(imp, folder=_absolute(imp.folder, base))
    api = config.api
    for key in ("socket", "token_file"):
        value = getattr(api, key)
        if value is not None:
            api = replace(api, **{key: _absolute(Path(str(value).replace("<data_dir>", str(station.data_dir))), base)})
    tls = config.tls
    tls = replace(tls, **{k: _absolute(getattr(tls, k), base) for k in ("certificate", "key", "ca")
                          if getattr(tls, k) is not None})
    if api.tcp_tls and (tls.certificate is None or tls.key is None):
        raise ConfigError(file, "api.tcp_tls", "TLS on the API's TCP listener needs [tls] certificate and key")
    if tls.enabled and (tls.certificate is None or tls.key is None):
        raise ConfigError(file, "tls.certificate", "TLS is enabled: certificate and key are both required")
    names = [n.name for n in config.nodes]
    for i, name in enumerate(names):
        if name in names[:i]:
            raise ConfigError(file, f"nodes[{i}].name", f"{name!r} is used by another node; names must be unique")
    validate_groups(config.groups, names, file)
    validate_rules(config.rules, names, file, [g.name for g in config.groups])
    check_delete_after_send(config.rules, {n.name: n.commitment for n in config.nodes}, file, config.groups)
    check_chains(file, config.rules, config.nodes, config.anonymize.profile_names())
    for i, point in enumerate(config.metrics.dvh_points):
        if not _DVH_POINT.match(point):
            raise ConfigError(file, f"metrics.dvh_points[{i}]", f"{point!r} is not a DVH point: use Dx% (D95%), "
                              f"Dxcc (D2cc), VxGy (V20Gy) or VxcGy (V2000cGy)")
    network = replace(config.network, fast_paths=fast_paths_from_environment(config.network.fast_paths))
    anon = config.anonymize
    if anon.key_file is not None:
        anon = replace(anon, key_file=_absolute(anon.key_file, base))
    ui = config.ui
    if ui.themes_dir is not None:
        ui = replace(ui, themes_dir=_absolute(ui.themes_dir, base))
    return replace(config, station=station, network=network, logging=replace(config.logging, dir=log_dir),
                   import_=imp, tls=tls, api=api, ui=ui, anonymize=anon)


def fast_paths_from_environment(configured: bool, environ: dict[str, str] | None = None) -> bool:
    """``[network] fast_paths`` as ``RTSTATION_STOCK_PYNETDICOM`` overrides it (1/true/yes/on: stock pynetdicom;
    0/false/no/off: fast paths; unset or empty: the file decides). Why an environment variable too: after a
    pynetdicom upgrade an operator must be able to fall back without editing a file the console may rewrite."""
    raw = (os.environ if environ is None else environ).get(ENV_STOCK_PYNETDICOM, "").strip().lower()
    if not raw:
        return configured
    if raw in _ENV_YES:
        return False
    if raw in _ENV_NO:
        return True
    raise ConfigError("environment", "", f"{ENV_STOCK_PYNETDICOM}={raw!r} is not allowed: use 1 (stock pynetdicom "
                      f"loops) or 0 (our fast paths), or leave it unset to follow [network] fast_paths")


def _absolute(p: Path, base: Path) -> Path:
    p = p.expanduser()
    return p if p.is_absolute() else (base / p)


def find_config_file(explicit: str | None) -> Path | None:
    """--config, else $RTSTATION_CONFIG, else ./rtstation.toml, else /etc/rtstation/rtstation.toml, else none."""
    if explicit:
        return Path(explicit)
    env = os.environ.get("RTSTATION_CONFIG")
    if env:
        return Path(env)
    for candidate in DEFAULT_CONFIG_PATHS:
        if Path(candidate).is_file():
            return Path(candidate)
    return None


def load_config(path: str | Path | None = None, *, overrides: dict[str, Any] | None = None) -> Config:
    """Read and validate a config file (or built-in defaults when ``path`` is None), then apply CLI overrides.

    ``overrides`` keys: ``port``, ``data_dir``, ``ae_title``, ``theme`` (the command-line options every command has).
    """
    if path is None:
        data: dict[str, Any] = {}
        file = "<defaults>"
    else:
        file = str(path)
        try:
            with open(path, "rb") as fh:
                data = tomllib.load(fh)
        except FileNotFoundError:
            raise ConfigError(file, "", "file not found") from None
        except OSError as exc:
            raise ConfigError(file, "", f"cannot read: {exc.strerror}") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(file, "", f"not valid TOML: {exc}") from None
    given = {k: v for k, v in (overrides or {}).items() if v is not None}
    try:
        return parse_config(apply_overrides(data, given), file)
    except ConfigError as exc:  # a bad --port is the command line's, not the file's: say so
        option = next((k for k in given if exc.key == ".".join(OVERRIDE_KEYS[k])), None)
        if option is None:
            raise
        raise ConfigError("command line", "", f"--{option.replace('_', '-')} {given[option]}: {exc.message}"
                          f" (overrides [{OVERRIDE_KEYS[option][0]}] {OVERRIDE_KEYS[option][1]} of {file})"
                          ) from None


OVERRIDE_KEYS = {"port": ("station", "port"), "data_dir": ("station", "data_dir"),
                 "ae_title": ("station", "ae_title"), "theme": ("ui", "theme")}


def apply_overrides(data: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    """Command-line options win over the file; they are validated like file values."""
    mapping = OVERRIDE_KEYS
    out = {k: (dict(v) if isinstance(v, dict) else v) for k, v in data.items()}
    for key, value in overrides.items():
        if value is None:
            continue
        section, name = mapping[key]
        out.setdefault(section, {})
        if not isinstance(out[section], dict):
            continue  # parse_config reports the malformed section
        out[section][name] = str(value) if isinstance(value, Path) else value
    return out
