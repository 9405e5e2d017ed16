"""Engine settings: declared once here, validated, saved as JSON in the data folder."""

from __future__ import annotations

import dataclasses
import json
import os
import tempfile
from pathlib import Path
from typing import Any

from engine.catalog.params import Param, ParamType
from engine.errors import ConfigError, ValidationError

SETTINGS_FILE = "settings.json"


def _setting(default: Any, type: ParamType, label: str, help: str = "", **extra: Any) -> Any:
    param = Param("", type, label, help=help, required=False, default=default, **extra)
    return dataclasses.field(default=default, metadata={"param": param})


@dataclasses.dataclass(frozen=True)
class Settings:
    """Every setting, with its default and help; the GUI and CLI derive from this."""

    database_url: str = _setting(
        "", ParamType.TEXT, "Database URL",
        "Where Hookline keeps your automations and their history. Leave it empty to keep "
        "them in a file in the data folder, which is right on this computer. Fill it in "
        "only for a server install that keeps them in a PostgreSQL database: the "
        "address its administrator gives you, as given (postgresql://user:password@host/"
        "database). Set from the command line, its password is kept in the keyring, not "
        "in the settings file; one typed here stays in the file.",
    )
    listener_enabled: bool = _setting(
        True, ParamType.BOOL, "Webhook listener",
        "Receive webhooks for automations whose trigger is a webhook.",
    )
    listener_host: str = _setting(
        "127.0.0.1", ParamType.TEXT, "Listen on address",
        "127.0.0.1 keeps webhooks local to this machine; 0.0.0.0 accepts them from your "
        "network (use a signature secret then).",
    )
    listener_port: int = _setting(
        8787, ParamType.INTEGER, "Webhook port", "The TCP port of the webhook listener.",
        minimum=0, maximum=65535,
    )
    public_url: str = _setting(
        "", ParamType.URL, "Public base URL",
        "If a tunnel or reverse proxy forwards to the listener, its base URL: shown in "
        "webhook addresses and accepted as Host.",
    )
    remote_enabled: bool = _setting(
        False, ParamType.BOOL, "Control from another computer",
        "Let Hookline on another computer (the app's “Connect to another computer…”) "
        "manage this one over your network, encrypted, once paired with a one-time code "
        "from `hookline pair`. Off by default.",
    )
    remote_host: str = _setting(
        "0.0.0.0", ParamType.TEXT, "Remote control address",  # noqa: S104 - asked for
        "0.0.0.0 accepts paired computers from any network this one is on; an address of "
        "this computer's accepts them only through that network.",
    )
    remote_port: int = _setting(
        8789, ParamType.INTEGER, "Remote control port",
        "The TCP port paired computers connect to (let it through the firewall).",
        minimum=0, maximum=65535,
    )
    allow_shell: bool = _setting(
        False, ParamType.BOOL, "Run shell commands",
        "Let automations run programs on this computer. Off by default: one that runs "
        "programs can do anything you can.",
    )
    allow_internal_targets: bool = _setting(
        False, ParamType.BOOL, "Allow internal addresses",
        "Let HTTP reactions and URLs call link-local, cloud-metadata addresses and "
        "Hookline's own listener.",
    )
    secrets_file_fallback: bool = _setting(
        False, ParamType.BOOL, "Encrypted file when there is no keyring",
        "Only where the system has no keyring (e.g. a headless server): keep secrets in an "
        "encrypted file in the data folder, unlocked with the passphrase in "
        "$HOOKLINE_SECRETS_PASSPHRASE. Off by default: the OS keyring is safer.",
    )
    pause_after_failures: int = _setting(
        5, ParamType.INTEGER, "Pause after failed runs",
        "An automation pauses itself after this many failed runs in a row (0 never pauses).",
        minimum=0, maximum=1000,
    )
    reaction_attempts: int = _setting(
        3, ParamType.INTEGER, "Attempts per reaction",
        "How many times a failing reaction is tried before its run fails.",
        minimum=1, maximum=10,
    )
    retry_delay: float = _setting(
        2.0, ParamType.DURATION, "First retry delay",
        "Wait before the second attempt; doubles for each attempt after.",
        minimum=0, maximum=3600,
    )
    service_concurrency: int = _setting(
        4, ParamType.INTEGER, "Calls at once per service",
        "How many reactions of one service may run at the same time.",
        minimum=1, maximum=64,
    )
    keep_successful_runs_days: int = _setting(
        14, ParamType.INTEGER, "Keep successful runs (days)",
        minimum=1, maximum=3650,
    )
    keep_failed_runs_days: int = _setting(
        90, ParamType.INTEGER, "Keep failed runs (days)",
        "Failures are kept longer than successes so you can look into them.",
        minimum=1, maximum=3650,
    )
    max_runs_per_area: int = _setting(
        1000, ParamType.INTEGER, "Runs kept per automation",
        "Older runs beyond this count are removed (failures last).",
        minimum=10, maximum=1_000_000,
    )
    log_level: str = _setting(
        "INFO", ParamType.CHOICE, "Log level",
        choices=(("DEBUG", "Debug"), ("INFO", "Info"), ("WARNING", "Warnings"),
                 ("ERROR", "Errors")),
    )
    events_mqtt_enabled: bool = _setting(
        False, ParamType.BOOL, "Share Hookline's events over MQTT",
        "Publish runs, pauses, failing checks and accounts to reconnect as JSON on an MQTT "
        "broker (Home Assistant, Node-RED). Off by default.",
    )
    events_mqtt_host: str = _setting(
        "", ParamType.TEXT, "Broker address", "The MQTT broker's host name or address.",
        example="homeassistant.local",
    )
    events_mqtt_port: int = _setting(
        1883, ParamType.INTEGER, "Broker port", "1883, or 8883 with TLS.",
        minimum=1, maximum=65535,
    )
    events_mqtt_username: str = _setting(
        "", ParamType.TEXT, "Broker user name",
        "Empty: connect without logging in. The password is kept in the keyring.",
    )
    events_mqtt_tls: bool = _setting(False, ParamType.BOOL, "Connect to the broker with TLS")
    events_mqtt_prefix: str = _setting(
        "hookline", ParamType.TEXT, "Topic prefix",
        "Topics are <prefix>/<automation>/run, .../paused, .../poll and "
        "<prefix>/account/<service>/<name>/needs_reconnect.",
    )
    metrics_enabled: bool = _setting(
        False, ParamType.BOOL, "Metrics at /metrics",
        "Prometheus metrics on the webhook listener (runs, durations, failing checks, "
        "backlog), answered only to this computer.",
    )
    otel_endpoint: str = _setting(
        "", ParamType.URL, "OpenTelemetry endpoint",
        "An OTLP/HTTP collector (e.g. http://localhost:4318) to send each run to as a "
        "trace. Empty: off. Needs the otel extra (pip install 'hookline[otel]').",
    )
    start_at_login: bool = _setting(False, ParamType.BOOL, "Start at login")
    close_to_tray: bool = _setting(
        True, ParamType.BOOL, "Keep running in the tray when the window closes",
    )

    @classmethod
    def params(cls) -> list[Param]:
        """Each setting as a Param (named), in declaration order."""
        return [dataclasses.replace(f.metadata["param"], name=f.name)
                for f in dataclasses.fields(cls)]

    @classmethod
    def from_mapping(cls, values: dict[str, Any]) -> Settings:
        """Settings from user values; unknown names and bad values are refused."""
        known = {p.name: p for p in cls.params()}
        checked: dict[str, Any] = {}
        for name, value in values.items():
            if name not in known:
                from engine.errors import CatalogError

                raise ConfigError(CatalogError.unknown("setting", name, known).args[0])
            try:
                checked[name] = known[name].validate(value)
            except ValidationError as exc:
                raise ConfigError(f"setting {name}: {exc.problem}") from None
        return cls(**checked)

    def replace(self, **changes: Any) -> Settings:
        """A copy with ``changes`` validated and applied."""
        return Settings.from_mapping({**self.to_mapping(), **changes})

    def to_mapping(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def load_settings(data_dir: Path) -> Settings:
    """The settings saved in ``data_dir`` (defaults if there are none)."""
    path = data_dir / SETTINGS_FILE
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return Settings()
    except (OSError, ValueError) as exc:
        raise ConfigError(f"Cannot read {path}: {exc}. Fix or delete the file.") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{path} must hold a JSON object. Fix or delete the file.")
    return Settings.from_mapping(raw)


def save_settings(data_dir: Path, settings: Settings) -> None:
    """Write the settings that differ from the defaults, atomically."""
    defaults = Settings().to_mapping()
    changed = {k: v for k, v in settings.to_mapping().items() if defaults[k] != v}
    data_dir.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=data_dir, prefix=".settings-", suffix=".json")
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        json.dump(changed, out, indent=2, sort_keys=True)
        out.write("\n")
    os.replace(tmp, data_dir / SETTINGS_FILE)
