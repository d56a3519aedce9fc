"""Settings: defaults, environment overrides and coercion, all in one place.

Every setting ``ufdl.foo_bar`` (and ``sqlalchemy.url``) can be overridden by an environment variable: the
setting's name upper-cased with dots turned into underscores and ``UFDL_`` in front when it does not start
with it (``ufdl.auth.secret`` -> ``UFDL_AUTH_SECRET``). ``UFDL_DATABASE_URL`` overrides ``sqlalchemy.url``.
"""
import json
import math
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
    """Bytes, with an optional K/M/G suffix (binary multiples): at least one."""
    text = str(value).strip().upper().removesuffix("B").removesuffix("I")
    multiplier = 1
    for suffix, factor in (("K", 1 << 10), ("M", 1 << 20), ("G", 1 << 30)):
        if text.endswith(suffix):
            text, multiplier = text[:-1], factor
            break
    try:
        size = float(text) * multiplier
    except ValueError:
        raise ValueError(f"must be a size such as 512K, 1M or 10G, not {value!r}") from None
    # 0 or a negative size was taken, and refused every body (413) once the server ran.
    if not 1 <= size < math.inf:  # NaN fails it too
        raise ValueError(f"must be a size of at least 1 byte, not {value!r}")
    return int(size)


def _json_object(value: Any) -> dict:
    """A JSON object (from the INI or the environment), or a dict given directly."""
    if isinstance(value, dict):
        return value
    parsed = json.loads(str(value) or "{}")
    if not isinstance(parsed, dict):
        raise ValueError("must be a JSON object")
    return parsed


def _positive(kind: Callable[[Any], Any], most: float = math.inf) -> Callable[[Any], Any]:
    def coerce(value: Any):
        try:
            number = kind(value)
        except ValueError:  # int()'s or float()'s own message named neither the setting's kind nor its range
            raise ValueError(f"must be a {'whole ' if kind is int else ''}number above 0, not {value!r}") from None
        if not 0 < number <= most or number == math.inf:  # NaN fails the first test
            raise ValueError(f"must be a finite number above 0{f' and at most {most:g}' if most < math.inf else ''}"
                             f", not {value!r}")
        return number
    return coerce


def _whole(least: int, most: int) -> Callable[[Any], int]:
    """A whole number from ``least`` to ``most``."""
    def coerce(value: Any) -> int:
        try:
            number = int(value)
        except ValueError:
            number = None
        if number is None or not least <= number <= most:
            raise ValueError(f"must be a whole number from {least} to {most}, not {value!r}")
        return number
    return coerce


_TEN_YEARS = 10 * 365 * 86400
_seconds = _positive(float, most=_TEN_YEARS)  # ten years: beyond, datetime arithmetic overflows


def _seconds_or_off(value: Any) -> float:
    """Seconds, or 0: off."""
    try:
        off = float(value) == 0
    except ValueError:
        raise ValueError(f"must be a number of seconds (0: off), not {value!r}") from None
    return 0.0 if off else _seconds(value)


def _age(value: Any) -> str | None:
    """An age such as ``30d`` (see ``parse_age``), checked here and kept as written; blank is unset."""
    from .services.events import parse_age  # the events module imports the models: not at start-up
    if not str(value).strip():
        return None
    try:
        seconds = parse_age(value).total_seconds()
    except (ValueError, OverflowError):  # float()'s own words ("could not convert string to float") named no age
        seconds = None
    if seconds is None or not seconds > 0:
        raise ValueError(f"must be an age above 0 such as 30d, 12h, 15m or 90s, not {value!r}")
    return str(value)


def _fernet_key(value: Any) -> str | None:
    """A Fernet key (32 bytes, url-safe base64), checked at start-up rather than at the first secret stored;
    blank is unset."""
    from cryptography.fernet import Fernet
    text = str(value).strip()
    if not text:
        return None
    try:
        Fernet(text)
    except (TypeError, ValueError):
        raise ValueError("must be a Fernet key (32 url-safe base64-encoded bytes), as "
                         "`python -c 'from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())'` "
                         "makes one") from None
    return text


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


# The one list of settings (the README's configuration table describes each).
SETTINGS = (
    Setting("sqlalchemy.url", None, str, "Database URL (SQLite or PostgreSQL via psycopg)."),
    Setting("ufdl.auth.secret", None, str, "Key that signs access tokens. Required."),
    # At most ten years, as _seconds: a token's expiry past year 9999 overflowed, and every login was a 500.
    Setting("ufdl.auth.access_ttl", 300, _positive(int, most=_TEN_YEARS), "Lifetime of an access token, seconds."),
    Setting("ufdl.auth.refresh_ttl", 7 * 24 * 3600, _positive(int, most=_TEN_YEARS),
            "Lifetime of a refresh token, seconds."),
    # Argon2's own bounds (its C library takes 32-bit unsigned numbers; memory at least 8 KiB per lane, and
    # argon2-cffi's PasswordHasher hashes with 4 lanes): beyond them every login failed with argon2's traceback.
    Setting("ufdl.auth.argon2_time_cost", 2, _whole(1, 2**32 - 1), "Argon2 passes when hashing a password."),
    Setting("ufdl.auth.argon2_memory_cost", 19456, _whole(32, 2**32 - 1), "Argon2 memory per hash, KiB."),
    Setting("ufdl.max_json_size", "1M", _size, "Largest JSON request body (413 beyond)."),
    Setting("ufdl.max_registry_size", "64M", _size, "Largest templates registry a remote sync may send "
            "(POST /v1/job-templates/sync; 413 beyond)."),
    # A page size is a LIMIT, a 64-bit integer: one beyond answered a list asking for that many with a 500.
    Setting("ufdl.max_page_size", 1000, _whole(1, 2**63 - 1), "Largest page a list request may ask for."),
    Setting("ufdl.node_timeout", 120, _seconds, "Seconds without a request from a node before its jobs "
            "are aborted (a lost lease)."),
    Setting("ufdl.leases.check_interval", 30.0, _seconds_or_off, "Seconds between each server process's own "
            "checks of the leases (each acquire-next checks them too); 0: only at acquire-next."),
    Setting("ufdl.max_tries", 3, _positive(int), "Lost leases after which a job fails instead of going back to "
            "PENDING."),
    Setting("ufdl.express_lanes", True, _bool, "PostgreSQL: answer create-job and a node's acquire, start, "
            "progress report, finish and small upload ahead of the full stack (a transition in one statement) "
            "when all is in order (false: always through the full stack)."),
    Setting("ufdl.db.pool_size", 10, _positive(int), "Connections kept per process (PostgreSQL)."),
    Setting("ufdl.db.connect_timeout", 10, _positive(int), "Seconds to wait for a new PostgreSQL connection "
            "(a host that does not answer: the request is answered 503 then, instead of waiting minutes)."),
    Setting("ufdl.db.echo", False, _bool, "Log every SQL statement."),
    Setting("ufdl.plugins.strict", False, _bool, "A plugin that fails to load stops the server (else: skipped)."),
    Setting("ufdl.templates_registry", None, str, "A templates registry directory synced at start-up (off when "
            "unset)."),
    Setting("ufdl.ws_ping_interval", 20.0, _seconds, "Progress channel: seconds between heartbeat pings; "
            "a watcher silent for two intervals is dropped."),
    Setting("ufdl.ws_poll_interval", 0.05, _seconds, "Progress channel on SQLite: seconds between reads "
            "of the events outbox (PostgreSQL wakes on NOTIFY)."),
    Setting("ufdl.events.retention", None, _age, "Age after which the websocket listener prunes job events "
            "(`30d`, `12h`; kept forever when unset). By hand: `ufdl events prune --older-than 30d`."),
    Setting("ufdl.events.prune_interval", 3600.0, _seconds, "Seconds between the listener's automatic "
            "prunes."),
    Setting("ufdl.storage.path", os.path.join("var", "outputs"), str, "Directory where job outputs are stored."),
    Setting("ufdl.max_output_size", "10G", _size, "Largest job output a node may upload (413 beyond)."),
    Setting("ufdl.notifications.defaults", "{}", _json_object, "Server-wide notifications as JSON: "
            "`{\"on_finish\": [{\"type\": \"print\", \"message\": \"...\"}]}`."),
    Setting("ufdl.smtp.host", "localhost", str, "SMTP server for `email` notifications."),
    Setting("ufdl.smtp.port", 25, _whole(1, 65535), "SMTP port."),
    Setting("ufdl.smtp.from", "ufdl@localhost", str, "Sender of notification e-mails."),
    Setting("ufdl.smtp.user", None, str, "SMTP login (none when unset)."),
    Setting("ufdl.smtp.password", None, str, "SMTP password."),
    Setting("ufdl.smtp.starttls", False, _bool, "Switch to TLS with STARTTLS before logging in."),
    Setting("ufdl.smtp.timeout", 10, _seconds, "Seconds to wait for the SMTP server."),
    Setting("ufdl.seed.secret_key", None, _fernet_key, "Fernet key that encrypts the secret settings of Scale job "
            "types (v6); unset: a job type with secret setting values is refused."),
)

SETTINGS_BY_NAME = {setting.name: setting for setting in SETTINGS}


def load_setting(setting: Setting, raw: Mapping[str, Any], environ: Mapping[str, str] | None = None) -> Any:
    """One setting's value: the environment's, else the INI's, else its default; coerced."""
    environ = os.environ if environ is None else environ
    value = environ.get(setting.env_var, raw.get(setting.name, setting.default))
    if value is None:
        return None
    try:
        return setting.coerce(value)
    except (TypeError, ValueError, OverflowError) as error:
        raise SettingsError(f"setting {setting.name} ({setting.env_var}): {error}") from None


def load_settings(raw: Mapping[str, Any], environ: Mapping[str, str] | None = None) -> dict[str, Any]:
    """Merge defaults, the INI's values and the environment; coerce the known settings."""
    settings = dict(raw)
    for setting in SETTINGS:
        settings[setting.name] = load_setting(setting, raw, environ)
    if not settings.get("sqlalchemy.url"):
        raise SettingsError("no database: set sqlalchemy.url in the INI file or UFDL_DATABASE_URL")
    if not settings.get("ufdl.auth.secret"):
        raise SettingsError("no token secret: set ufdl.auth.secret in the INI file or UFDL_AUTH_SECRET")
    # pyramid_retry's own check (int(), an assert) stopped the start with a traceback; blank is its default.
    if str(settings.get("retry.attempts", "")).strip():
        try:
            settings["retry.attempts"] = _positive(int)(settings["retry.attempts"])
        except ValueError as error:
            raise SettingsError(f"setting retry.attempts: {error}") from None
    if len(settings["ufdl.auth.secret"].encode()) < 32:
        raise SettingsError("ufdl.auth.secret must be at least 32 bytes long (HS256 keys shorter than the hash "
                            "are weak)")
    return settings
