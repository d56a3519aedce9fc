"""What the job type's configuration adds to a run: its settings, as the container's environment, and its mounts,
as ``docker create`` options. The node fetches the configuration from the server (``seed-configuration``), which
gives it to the node holding the job and no one else.

Setting values never go on the docker command line, which any local user can read (``ps``): they go through an
environment file (``--env-file``) that only the worker's user can read, removed after the run."""
import csv
import io
import os
import posixpath
from pathlib import Path
from typing import Any

from ufdl_pyramid.executors import ExecutionContext, ExecutionError

from .interface import CONTAINER_INPUTS, OUTPUT_DIR, SeedInterface

CONFIGURATION = "seed-configuration"  # GET /v1/jobs/{pk}/seed-configuration
# The worker's folders a job type's host mount may name (':'-separated); unset, any: a host mount of / or of the
# docker socket is root on the worker, so whoever configures job types has it.
HOST_PATHS_VARIABLE = "UFDL_SEED_HOST_PATHS"
SEED_ROOT = posixpath.dirname(OUTPUT_DIR)  # /seed: the inputs' and the outputs' mounts


def fetch_configuration(interface: SeedInterface, context: ExecutionContext) -> dict:
    """The job type's ``{"settings", "mounts"}``: asked only when the manifest declares either."""
    if not (interface.settings or interface.mounts):
        return {"settings": {}, "mounts": {}}
    try:
        configuration = context.fetch(CONFIGURATION)
    except ExecutionError:
        raise
    except Exception as error:  # the server's refusal (the job is no longer this node's, say)
        raise ExecutionError(f"cannot fetch the job type's configuration: {error}") from None
    if not isinstance(configuration, dict):
        raise ExecutionError("the job type's configuration from the server is no JSON object")
    return configuration


def settings(interface: SeedInterface, configuration: dict) -> dict[str, str]:
    """The manifest's settings that the configuration gives, by name (one it leaves out stays unset). An error
    names the setting, never its value."""
    given = _object(configuration.get("settings"))
    values = {}
    for setting in interface.settings:
        if setting.name not in given:
            continue
        value = given[setting.name]
        if not isinstance(value, str):
            raise ExecutionError(f"setting {setting.name!r}: its value is no string")
        if any(character in value for character in "\n\r\0"):
            # An environment file holds one variable per line, and no environment holds a NUL.
            raise ExecutionError(f"setting {setting.name!r}: a value with a line break or a NUL cannot be passed")
        values[setting.name] = value
    return values


def mount_options(interface: SeedInterface, configuration: dict) -> list[str]:
    """Each of the manifest's mounts as configured: a ``host`` mount ``-v HOST_PATH:PATH:MODE``, a ``volume``
    mount an anonymous volume (``--rm`` removes it) of the given driver and options at PATH. A mount the
    configuration does not give, or cannot be mounted as given, fails the job, naming it."""
    given = _object(configuration.get("mounts"))
    options = []
    for mount in interface.mounts:
        where = f"the manifest's mount {mount.name!r}"
        if not isinstance(mount.path, str) or not posixpath.isabs(mount.path) or ":" in mount.path:
            raise ExecutionError(f"{where}: its path {mount.path!r} is not an absolute path without ':'")
        if _overlaps_ours(mount.path):
            # Over /seed/outputs docker refuses a duplicate, over /seed it makes our folders in the host's (or
            # fails on a read-only one), under either it makes its mount point in our folders.
            raise ExecutionError(f"{where}: its path {mount.path!r} overlaps the executor's own {SEED_ROOT} "
                                 f"({CONTAINER_INPUTS}, {OUTPUT_DIR})")
        if mount.name not in given:
            raise ExecutionError(f"{where} ({mount.path}) is not configured: the job type's configuration gives "
                                 f"no mounts.{mount.name}")
        configured = _object(given[mount.name])
        mode = "ro" if mount.read_only else "rw"
        if configured.get("type") == "host":
            host_path = configured.get("host_path")
            if not isinstance(host_path, str) or not posixpath.isabs(host_path) or ":" in host_path:
                raise ExecutionError(f"{where}: the host path {host_path!r} is not an absolute path without ':'")
            _check_host_path(where, host_path)
            options += ["-v", f"{host_path}:{mount.path}:{mode}"]
        elif configured.get("type") == "volume":
            fields = ["type=volume", f"target={mount.path}"] + (["readonly"] if mount.read_only else [])
            driver = configured.get("driver")
            if driver:
                fields.append(f"volume-driver={driver}")
            for name, value in _object(configured.get("driver_opts")).items():
                if not name or "=" in name or not isinstance(value, str):
                    # docker splits volume-opt=NAME=VALUE at the first '=': o=x=y would be the option o.
                    raise ExecutionError(f"{where}: the volume driver option {name[:80]!r} is not a name without "
                                         f"'=' with a string value")
                fields.append(f"volume-opt={name}={value}")
            options += ["--mount", _csv(fields)]
        else:
            raise ExecutionError(f"{where}: its configuration's type {configured.get('type')!r} is neither host "
                                 f"nor volume")
    return options


def write_environment_file(path: Path, variables: dict[str, str]) -> list[str]:
    """``--env-file PATH`` with the variables, the file readable by the worker's user only; no option for
    none."""
    if not variables:
        return []
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w", encoding="utf-8") as file:
        file.writelines(f"{name}={value}\n" for name, value in variables.items())
    return ["--env-file", str(path)]


def _check_host_path(where: str, host_path: str) -> None:
    """Within one of the worker's UFDL_SEED_HOST_PATHS when it is set, links and '..' resolved (as docker
    resolves them on the same host)."""
    allowed = os.environ.get(HOST_PATHS_VARIABLE)
    if allowed is None:
        return
    real = os.path.realpath(host_path)
    roots = [os.path.realpath(root) for root in allowed.split(":") if os.path.isabs(root)]
    if not any(real == root or real.startswith(root.rstrip("/") + "/") for root in roots):
        raise ExecutionError(f"{where}: the host path {host_path!r} is not within the worker's "
                             f"{HOST_PATHS_VARIABLE} ({allowed})")


def _overlaps_ours(path: str) -> bool:
    """At, above or under /seed: the root (or a path that cleans to it) holds /seed too."""
    path = posixpath.normpath(path)
    return path == "/" or path == SEED_ROOT or path.startswith(SEED_ROOT + "/")


def _csv(fields: list[str]) -> str:
    """One CSV line, as docker reads ``--mount`` (a field with a comma or a quote quoted)."""
    line = io.StringIO()
    csv.writer(line, lineterminator="").writerow(fields)
    return line.getvalue()


def _object(value: Any) -> dict:
    return value if isinstance(value, dict) else {}
