"""Settings: defaults, environment overrides and coercion, all in one place.

Every setting ``ufdl.foo_bar`` (and ``sqlalchemy.url``) can be overridden by an environment variable: the
setting's name upper-cased with dots turned into underscores and ``UFDL_`` in front when it does not start
with it (``ufdl.auth.secret`` -> ``UFDL_AUTH_SECRET``). ``UFDL_DATABASE_URL`` overrides ``sqlalchemy.url``.
"""
import os
from dataclasses import dataclass
from typing import Any, Callable, Mapping


class SettingsError(ValueError):
    """A setting is missing or malformed: the server refuses to start."""


def _bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off", ""):
        return False
    raise ValueError(f"not a boolean: {value!r}")


def _size(value: Any) -> int:
    """Bytes, with an optional K/M/G suffix (binary multiples)."""
    text = str(value).strip().upper().removesuffix("B").removesuffix("I")
    multiplier = 1
    for suffix, factor in (("K", 1 << 10), ("M", 1 << 20), ("G", 1 << 30)):
        if text.endswith(suffix):
            text, multiplier = text[:-1], factor
            break
    return int(float(text) * multiplier)


@dataclass(frozen=True)
class Setting:
    name: str
    default: Any
    coerce: Callable[[Any], Any] = str
    help: str = ""

    @property
    def env_var(self) -> str:
        if self.name == "sqlalchemy.url":
            return "UFDL_DATABASE_URL"
        key = self.name.upper().replace(".", "_")
        return key if key.startswith("UFDL_") else f"UFDL_{key}"


# The one list of settings: the README's configuration table is written from it.
SETTINGS = (
    Setting("sqlalchemy.url", None, str, "Database URL (SQLite or PostgreSQL via psycopg)."),
    Setting("ufdl.auth.secret", None, str, "Key that signs access tokens. Required."),
    Setting("ufdl.auth.access_ttl", 300, int, "Lifetime of an access token, seconds."),
    Setting("ufdl.auth.refresh_ttl", 7 * 24 * 3600, int, "Lifetime of a refresh token, seconds."),
    Setting("ufdl.auth.argon2_time_cost", 2, int, "Argon2 passes when hashing a password."),
    Setting("ufdl.auth.argon2_memory_cost", 19456, int, "Argon2 memory per hash, KiB."),
    Setting("ufdl.max_json_size", "1M", _size, "Largest JSON request body (413 beyond)."),
    Setting("ufdl.max_page_size", 1000, int, "Largest page a list request may ask for."),
    Setting("ufdl.node_timeout", 120, float, "Seconds without a request from a node before its jobs are "
            "aborted (a lost lease)."),
    Setting("ufdl.max_tries", 3, int, "Lost leases after which a job fails instead of going back to PENDING."),
    Setting("ufdl.db.pool_size", 10, int, "Connections kept per process (PostgreSQL)."),
    Setting("ufdl.db.echo", False, _bool, "Log every SQL statement."),
    Setting("ufdl.plugins.strict", False, _bool, "A plugin that fails to load stops the server (else: skipped)."),
    Setting("ufdl.templates_registry", None, str, "A templates registry directory synced at start-up (off when "
            "unset)."),
)

SETTINGS_BY_NAME = {setting.name: setting for setting in SETTINGS}


def load_settings(raw: Mapping[str, Any], environ: Mapping[str, str] | None = None) -> dict[str, Any]:
    """Merge defaults, the INI's values and the environment; coerce the known settings."""
    environ = os.environ if environ is None else environ
    settings = dict(raw)
    for setting in SETTINGS:
        value = environ.get(setting.env_var, settings.get(setting.name, setting.default))
        if value is None:
            settings[setting.name] = None
            continue
        try:
            settings[setting.name] = setting.coerce(value)
        except (TypeError, ValueError) as error:
            raise SettingsError(f"setting {setting.name} ({setting.env_var}): {error}") from None
    if not settings.get("sqlalchemy.url"):
        raise SettingsError("no database: set sqlalchemy.url in the INI file or UFDL_DATABASE_URL")
    if not settings.get("ufdl.auth.secret"):
        raise SettingsError("no token secret: set ufdl.auth.secret in the INI file or UFDL_AUTH_SECRET")
    if len(settings["ufdl.auth.secret"].encode()) < 32:
        raise SettingsError("ufdl.auth.secret must be at least 32 bytes long (HS256 keys shorter than the hash "
                            "are weak)")
    return settings
