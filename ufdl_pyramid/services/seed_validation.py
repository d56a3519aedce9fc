"""Validation of Seed 1.0.0 manifests and of Scale v6 job type configurations (the Scale job-type API).

Pure functions over JSON values: no database, no Pyramid. Every function answers for any input (garbage included)
without raising; each problem is an item ``{"name": ..., "description": ...}`` named as Scale names it, so that
``POST /v6/job-types/validation/`` can answer ``{is_valid, errors, warnings}`` the way Scale does.

Manifest (``validate_manifest``): our own draft-04 schema written from the Seed 1.0.0 standard, then, if it
passes, the semantic checks. Errors:

- ``JSON_VALIDATION_ERROR``: the manifest breaks the schema (each problem separately, as ``<path>: <message>``).
- ``NAME_COLLISION_ERROR``: two names become the same environment variable (inputs, settings, ``ALLOCATED_``
  + resource, the reserved ``OUTPUT_DIR``; ``-`` reads as ``_`` and case is ignored, as Scale injects them), or
  two outputs share a name.
- ``DUPLICATE_MOUNT_NAMES``: two mounts share a name.
- ``INVALID_MOUNT_PATH``: a mount's container path is not absolute.
- ``DUPLICATE_MOUNT_PATHS``: two mounts at the same container path (Docker refuses to start such a container).
- ``DUPLICATE_ERROR_CODES`` / ``DUPLICATE_ERROR_NAMES``: two errors share an exit code (an exit code can mean
  one error only) or a name (the standard calls it the error's unique name).
- ``INVALID_OUTPUT_PATTERN``: an output file pattern that is absolute or climbs out with ``..``: outputs are
  captured relative to OUTPUT_DIR.

What would fail every job of a manifest that passed the above when it runs (``validate_runnable``): its
command, as the Seed executor splits it like a POSIX shell and replaces each ``${NAME}`` in its words, and the
media types of its outputs. Errors:

- ``INVALID_COMMAND``: the command cannot be split (an unclosed quote, a final backslash).
- ``UNKNOWN_COMMAND_VARIABLE``: a ``${NAME}`` that is no input, setting, ``ALLOCATED_`` resource variable or
  ``OUTPUT_DIR``, spelt as the run spells them.
- ``SECRET_COMMAND_VARIABLE``: a secret setting's ``${NAME}``: its value would be on the command line, which any
  local user reads (``ps``); the container reads it from its environment.
- ``INVALID_MEDIA_TYPE``: an output file's ``mediaType`` that cannot be its Content-Type (not printable ASCII, or
  over 200 characters).

Configuration (``validate_configuration``): the "Job Type Configuration JSON" of the v6 docs, checked on its own
and then, when the manifest is valid, against it. Errors:

- ``INVALID_CONFIGURATION``: the configuration's structure is wrong (each problem separately).
- ``INVALID_VERSION``: a ``version`` other than ``"6"`` (or ``"2.0"``, which Scale reads as 6).
- ``HOST_ABSOLUTE_PATH``: a host mount's ``host_path`` is not absolute.

Warnings (the job type is still valid): ``MISSING_MOUNT`` / ``MISSING_SETTING`` (a manifest mount or setting the
configuration does not give), ``UNKNOWN_MOUNT`` / ``UNKNOWN_SETTING`` (one the manifest does not define; it is
ignored), ``MISSING_WORKSPACE`` (file outputs with no workspace, neither the default nor their own) and
``UNKNOWN_OUTPUT`` (an ``output_workspaces.outputs`` entry for a name that is no file output of the manifest).

Where we differ from Scale, and why:

- Scale stops at its first error; we report every one (design.md §7). After 100 errors (or warnings) the rest
  are counted in one item per name, and a description names at most 5 of the things it is about, so that a huge
  garbage document cannot make a huge answer.
- Scale raises ``MISSING_WORKSPACE`` as an error, even when no configuration is given at all, which makes every
  job type with file outputs invalid without one. The configuration is optional here (design.md §7), so it is a
  warning. No workspace is looked up (this server has none), so Scale's ``INVALID_WORKSPACE`` and
  ``DEPRECATED_WORKSPACE`` do not arise.
- No configuration (``None``) is read as an empty one, as Scale does: the manifest's mounts, settings and file
  outputs are then reported missing, as warnings.
- ``UNKNOWN_OUTPUT``, ``DUPLICATE_MOUNT_PATHS``, ``DUPLICATE_ERROR_CODES``, ``DUPLICATE_ERROR_NAMES``,
  ``INVALID_OUTPUT_PATTERN``, ``INVALID_MEDIA_TYPE`` and the command's are ours (Scale does not check these); the names follow Scale's
  pattern. Scale's documentation example names ``${INPUT_FILES}``, none of its inputs: it is refused.
- Structure Scale's schema leaves loose is checked by the standard's text: ``resources`` needs ``scalar``
  (Scale's schema misplaces that ``required``); ``timeout`` is at least 1 second and resource values are not
  negative. As in Scale, ``seedVersion`` must be ``1.0.0`` and a JSON input or output's ``type`` is one of the
  six JSON schema types that carry a value (not ``null``).
- The regular expressions are anchored with ``\\A...\\Z``: jsonschema applies ``pattern`` with ``re.search``, and
  Python's ``$`` also matches before a final newline, so ``"my-job\\n"`` passed Scale's ``^...$``. (``\\A`` and
  ``\\Z`` are Python's: this schema is for this module, not for other JSON schema tools.)
- A string holding a character no database can store (NUL, a lone surrogate) is an error here, so that a job
  type this validation accepts can also be saved.
"""
import json
import posixpath
import re
import shlex
from collections import Counter
from itertools import islice

from jsonschema import Draft4Validator

from ..executors import CONTENT_TYPE
from .validation import UNSTORABLE, holds_unstorable

MAX_ERRORS = 100  # problems listed one by one; the rest are counted in one more item (per name)
MAX_NAMED = 5  # things (inputs, mounts, ...) a description names; the rest are counted
MAX_DEPTH = 32  # a valid manifest nests 8 deep, a configuration 4; deeper garbage is refused unread
_SHOWN = 80  # characters of a value (or of a key in a path) quoted in a description
_PLAIN_KEY = re.compile(r"\A[a-zA-Z0-9_-]{1,80}\Z")  # a key shown bare in a path; others are quoted

_NAME = r"\A[a-zA-Z0-9_-]+\Z"
_NAME_TEXT = "only letters, digits, '-' and '_'"
# SemVer 2.0.0 (semver.org); [0-9], not \d, which would take any Unicode digit.
_NUMBER = r"(0|[1-9][0-9]*)"
_IDENTIFIER = r"(0|[1-9][0-9]*|[0-9]*[a-zA-Z-][0-9a-zA-Z-]*)"
_SEMVER = (rf"\A{_NUMBER}\.{_NUMBER}\.{_NUMBER}(-{_IDENTIFIER}(\.{_IDENTIFIER})*)?"
           r"(\+[0-9a-zA-Z-]+(\.[0-9a-zA-Z-]+)*)?\Z")
_VALUE_TYPES = ["array", "boolean", "integer", "number", "object", "string"]
# The Seed executor's placeholder in the command's words (plugins/ufdl-seed, interface.py).
_PLACEHOLDER = re.compile(r"\$\{([A-Za-z0-9_-]+)\}")


def _name(description: str = _NAME_TEXT) -> dict:
    return {"type": "string", "pattern": _NAME, "description": description}


def _semver() -> dict:
    return {"type": "string", "pattern": _SEMVER, "description": "a SemVer version (such as 1.0.0)"}


def _strings() -> dict:
    return {"type": "array", "items": {"type": "string"}}


def _record(required: list[str], /, **properties) -> dict:
    schema = {"type": "object", "additionalProperties": False, "properties": properties}
    return schema | {"required": required} if required else schema  # draft-04 wants no empty "required"


# Written from the Seed 1.0.0 standard (fixtures/seed/seed-standard-1.0.0.adoc), one object per section.
SEED_MANIFEST_SCHEMA = _record(
    ["seedVersion", "job"],
    seedVersion={"type": "string", "pattern": r"\A1\.0\.0\Z", "description": "1.0.0 (the Seed version served)"},
    job=_record(
        ["name", "jobVersion", "packageVersion", "title", "description", "timeout", "maintainer"],
        name=_name("only letters, digits and '-'") | {"pattern": r"\A[a-zA-Z0-9-]+\Z"},
        jobVersion=_semver(),
        packageVersion=_semver(),
        title={"type": "string"},
        description={"type": "string"},
        tags=_strings(),
        timeout={"type": "integer", "minimum": 1},
        maintainer=_record(["name", "email"], name={"type": "string"}, email={"type": "string"},
                           phone={"type": "string"}, organization={"type": "string"}, url={"type": "string"}),
        resources=_record(["scalar"], scalar={"type": "array", "items": _record(
            ["name", "value"], name=_name(), value={"type": "number", "minimum": 0},
            inputMultiplier={"type": "number", "minimum": 0})}),
        interface=_record(
            [],
            command={"type": "string"},
            inputs=_record(
                [],
                files={"type": "array", "items": _record(
                    ["name"], name=_name(), mediaTypes=_strings(), multiple={"type": "boolean"},
                    partial={"type": "boolean"}, required={"type": "boolean"})},
                json={"type": "array", "items": _record(
                    ["name", "type"], name=_name(), type={"enum": _VALUE_TYPES}, required={"type": "boolean"})},
            ),
            outputs=_record(
                [],
                files={"type": "array", "items": _record(
                    ["name", "pattern"], name=_name(), mediaType={"type": "string"}, pattern={"type": "string"},
                    multiple={"type": "boolean"}, required={"type": "boolean"})},
                json={"type": "array", "items": _record(
                    ["name", "type"], name=_name(), type={"enum": _VALUE_TYPES}, key={"type": "string"},
                    required={"type": "boolean"})},
            ),
            mounts={"type": "array", "items": _record(
                ["name", "path"], name=_name(), path={"type": "string"}, mode={"enum": ["ro", "rw"]})},
            settings={"type": "array", "items": _record(["name"], name=_name(), secret={"type": "boolean"})},
        ),
        errors={"type": "array", "items": _record(
            ["code", "name"], code={"type": "integer"}, name=_name(), title={"type": "string"},
            description={"type": "string"}, category={"enum": ["job", "data"]})},
    ),
)

_STRING_MAP = {"type": "object", "additionalProperties": {"type": "string"}}

# The v6 "Job Type Configuration JSON". Every member is optional (Scale fills in defaults). Which mount type
# takes which fields is checked in _mount_problems, with plainer messages than a draft-04 oneOf gives.
JOB_CONFIGURATION_SCHEMA = _record(
    [],
    version={"type": "string"},
    mounts={"type": "object", "additionalProperties": _record(
        ["type"], type={"enum": ["host", "volume"]}, host_path={"type": "string"}, driver={"type": "string"},
        driver_opts=_STRING_MAP)},
    output_workspaces=_record([], default={"type": "string"}, outputs=_STRING_MAP),
    priority={"type": "integer", "minimum": 1},
    settings=_STRING_MAP,
)

Draft4Validator.check_schema(SEED_MANIFEST_SCHEMA)
Draft4Validator.check_schema(JOB_CONFIGURATION_SCHEMA)
_MANIFEST_VALIDATOR = Draft4Validator(SEED_MANIFEST_SCHEMA)
_CONFIGURATION_VALIDATOR = Draft4Validator(JOB_CONFIGURATION_SCHEMA)


def validate_manifest(manifest) -> tuple[list[dict], list[dict]]:
    """(errors, warnings) of a Seed 1.0.0 manifest; each item {"name": "...", "description": "..."}."""
    errors = _schema_errors(_MANIFEST_VALIDATOR, manifest, "manifest", "JSON_VALIDATION_ERROR")
    if not errors:  # the semantic checks read the structure the schema guarantees
        errors = _listed(_manifest_problems(manifest))
    return errors, []


def validate_configuration(configuration, manifest, *,
                           manifest_is_valid: bool | None = None) -> tuple[list[dict], list[dict]]:
    """(errors, warnings) of a Scale job type configuration against a (valid) manifest; configuration may be
    None. ``manifest_is_valid``: what ``validate_manifest`` said of it, when the caller has asked already (the
    schema is the costly part: checked once per request)."""
    if configuration is None:
        configuration = {}
    errors = _schema_errors(_CONFIGURATION_VALIDATOR, configuration, "configuration", "INVALID_CONFIGURATION",
                            concealed="settings")
    if not isinstance(configuration, dict):
        return errors, []
    version = configuration.get("version")
    if isinstance(version, str) and version not in ("6", "2.0"):
        errors.append(_item("INVALID_VERSION", f"Invalid configuration version: {_show(version)} (must be \"6\")"))
    mounts = configuration.get("mounts")
    if isinstance(mounts, dict):
        errors.extend(_listed([problem for name, mount in mounts.items() for problem in _mount_problems(name, mount)]))
    warnings = []
    if manifest_is_valid is None:
        manifest_is_valid = not validate_manifest(manifest)[0]
    if manifest_is_valid:  # against an invalid manifest every comparison would be noise
        warnings = _listed(_configuration_warnings(configuration, manifest))
    return errors, warnings


def validate_runnable(manifest: dict) -> list[dict]:
    """Errors of a valid manifest that would fail each of its jobs when it runs: its command's, its outputs'
    media types'."""
    errors = []
    for output in manifest["job"].get("interface", {}).get("outputs", {}).get("files", []):
        if "mediaType" in output and not CONTENT_TYPE.fullmatch(output["mediaType"]):
            errors.append(_item("INVALID_MEDIA_TYPE", f"Output {_show(output['name'])} has the mediaType "
                                                      f"{_show(output['mediaType'])}: a Content-Type is printable "
                                                      "ASCII, at most 200 characters"))
    return _listed(_command_errors(manifest) + errors)


def _command_errors(manifest: dict) -> list[dict]:
    job = manifest["job"]
    interface = job.get("interface", {})
    if not interface.get("command"):
        return []
    try:
        words = shlex.split(interface["command"])
    except ValueError as error:
        return [_item("INVALID_COMMAND", f"The command cannot be split into words as a POSIX shell would: {error}")]
    inputs, settings = interface.get("inputs", {}), interface.get("settings", [])
    # The run's variables, as the executor names them: ALLOCATED_ and the resource upper-cased, '-' as '_'.
    known = {"OUTPUT_DIR", *(item["name"] for item in inputs.get("files", []) + inputs.get("json", []) + settings),
             *("ALLOCATED_" + item["name"].upper().replace("-", "_")
               for item in job.get("resources", {}).get("scalar", []))}
    secret = secret_setting_names(manifest)
    errors = []
    for name in dict.fromkeys(name for word in words for name in _PLACEHOLDER.findall(word)):
        placeholder = _cut("${" + name + "}")
        if name in secret:
            errors.append(_item("SECRET_COMMAND_VARIABLE", (
                f"The command names the secret setting {placeholder}: its value would be on the command line, "
                "which any local user reads; the container reads it from its environment")))
        elif name not in known:
            errors.append(_item("UNKNOWN_COMMAND_VARIABLE", (
                f"The command names {placeholder}, which is no input, setting or resource variable "
                "(ALLOCATED_NAME) of the manifest and not OUTPUT_DIR")))
    return errors


def secret_setting_names(manifest) -> set[str]:
    """Names of the manifest's settings marked secret (for encrypting them and never returning them)."""
    settings = _get(manifest, "job", "interface", "settings")
    if not isinstance(settings, list):
        return set()
    return {setting["name"] for setting in settings
            if isinstance(setting, dict) and isinstance(setting.get("name"), str) and setting.get("secret") is True}


# --- the manifest's semantic checks (on a manifest that passed the schema) ---

def _manifest_problems(manifest: dict) -> list[dict]:
    job = manifest["job"]
    interface = job.get("interface", {})
    inputs, outputs = interface.get("inputs", {}), interface.get("outputs", {})
    mounts, settings = interface.get("mounts", []), interface.get("settings", [])
    errors = []

    # Inputs, settings and resources reach the job as environment variables (Seed's variable injection).
    variables = [("OUTPUT_DIR", "the reserved variable OUTPUT_DIR")]
    variables += [(item["name"], f"input {_show(item['name'])}")
                  for item in inputs.get("files", []) + inputs.get("json", [])]
    variables += [(item["name"], f"setting {_show(item['name'])}") for item in settings]
    variables += [("ALLOCATED_" + item["name"], f"resource {_show(item['name'])}")
                  for item in job.get("resources", {}).get("scalar", [])]
    for variable, owners in _duplicates((name.replace("-", "_").upper(), owner) for name, owner in variables):
        errors.append(_item("NAME_COLLISION_ERROR", f"{_some(owners)} collide as the environment variable "
                                                    f"{variable}: inputs, settings, resources and reserved "
                                                    "variables need distinct names"))
    for name, _ in _duplicates((item["name"], None) for item in outputs.get("files", []) + outputs.get("json", [])):
        errors.append(_item("NAME_COLLISION_ERROR", f"More than one output is named {_show(name)}"))

    for name, _ in _duplicates((mount["name"], None) for mount in mounts):
        errors.append(_item("DUPLICATE_MOUNT_NAMES", f"More than one mount is named {_show(name)}"))
    for mount in mounts:
        if not posixpath.isabs(mount["path"]):
            errors.append(_item("INVALID_MOUNT_PATH",
                                f"Mount {_show(mount['name'])} must have an absolute path, not {_show(mount['path'])}"))
    absolute = ((posixpath.normpath(mount["path"]), mount["name"]) for mount in mounts
                if posixpath.isabs(mount["path"]))
    for path, names in _duplicates(absolute):
        errors.append(_item("DUPLICATE_MOUNT_PATHS", f"Mounts {_some(list(map(_show, names)))} share the path "
                                                     f"{_show(path)}"))

    for output in outputs.get("files", []):
        pattern = output["pattern"]
        if posixpath.isabs(pattern) or ".." in pattern.split("/"):
            errors.append(_item("INVALID_OUTPUT_PATTERN", f"Output {_show(output['name'])} has the pattern "
                                                          f"{_show(pattern)}: patterns are relative to OUTPUT_DIR "
                                                          "and stay inside it"))

    declared = job.get("errors", [])
    for code, names in _duplicates((error["code"], error["name"]) for error in declared):
        errors.append(_item("DUPLICATE_ERROR_CODES", f"Errors {_some(list(map(_show, names)))} share the exit code "
                                                     f"{_show(code)}"))
    for name, _ in _duplicates((error["name"], None) for error in declared):
        errors.append(_item("DUPLICATE_ERROR_NAMES", f"More than one error is named {_show(name)}"))
    return errors


def _listed(problems: list[dict]) -> list[dict]:
    """The first MAX_ERRORS problems, then one item per name counting those left out."""
    if len(problems) <= MAX_ERRORS:
        return problems
    left_out = Counter(problem["name"] for problem in problems[MAX_ERRORS:])
    return problems[:MAX_ERRORS] + [_item(name, f"{count} more not listed (only the first {MAX_ERRORS} problems "
                                                "are)") for name, count in left_out.items()]


def _some(names: list[str]) -> str:
    """The first MAX_NAMED names, and how many more there are."""
    more = f" (and {len(names) - MAX_NAMED} more)" if len(names) > MAX_NAMED else ""
    return ", ".join(names[:MAX_NAMED]) + more


def _duplicates(pairs) -> list[tuple]:
    """(key, [values]) for each key that comes more than once, in order of first appearance."""
    seen: dict = {}
    for key, value in pairs:
        seen.setdefault(key, []).append(value)
    return [(key, values) for key, values in seen.items() if len(values) > 1]


# --- the configuration's checks ---

def _mount_problems(name, mount) -> list[dict]:
    """Which fields each type of mount takes (the schema checked their types)."""
    if not isinstance(mount, dict) or mount.get("type") not in ("host", "volume"):
        return []  # already a schema error
    where = f"configuration{_path(['mounts', name])}"
    if mount["type"] == "host":
        problems = [_item("INVALID_CONFIGURATION", f"{where}: {_show(field)} is for a volume mount, not a host mount")
                    for field in ("driver", "driver_opts") if field in mount]
        host_path = mount.get("host_path")
        if "host_path" not in mount:
            problems.append(_item("INVALID_CONFIGURATION", f"{where}: a host mount needs a \"host_path\""))
        elif isinstance(host_path, str) and not posixpath.isabs(host_path):
            problems.append(_item("HOST_ABSOLUTE_PATH",
                                  f"Host mount {_show(name)} must use an absolute host path, not {_show(host_path)}"))
        return problems
    if "host_path" in mount:
        return [_item("INVALID_CONFIGURATION", f"{where}: \"host_path\" is for a host mount, not a volume mount")]
    return []


def _configuration_warnings(configuration: dict, manifest: dict) -> list[dict]:
    """What the configuration leaves out of the (valid) manifest, or gives that the manifest does not know."""
    interface = manifest["job"].get("interface", {})
    warnings = []
    for kind, declared in (("mount", interface.get("mounts", [])), ("setting", interface.get("settings", []))):
        names = [item["name"] for item in declared]
        given = configuration.get(kind + "s")
        given = given if isinstance(given, dict) else {}
        known = set(names)  # not the list: thousands of names on each side took seconds
        warnings += [_item(f"UNKNOWN_{kind.upper()}", f"Unknown {kind} {_show(name)} ignored")
                     for name in given if name not in known]
        warnings += [_item(f"MISSING_{kind.upper()}", f"Missing configuration for {kind} {_show(name)}")
                     for name in names if name not in given]

    file_outputs = [output["name"] for output in interface.get("outputs", {}).get("files", [])]
    workspaces = configuration.get("output_workspaces")
    workspaces = workspaces if isinstance(workspaces, dict) else {}
    per_output = workspaces.get("outputs")
    per_output = per_output if isinstance(per_output, dict) else {}
    known = set(file_outputs)
    warnings += [_item("UNKNOWN_OUTPUT", f"Unknown file output {_show(name)} in output_workspaces ignored")
                 for name in per_output if name not in known]
    if not workspaces.get("default"):  # Scale reads an empty default as none
        missing = [name for name in file_outputs if not per_output.get(name)]
        if missing:
            warnings.append(_item("MISSING_WORKSPACE", "Missing workspace for outputs "
                                                       f"{_some(list(map(_show, missing)))}: no default workspace"))
    return warnings


# --- schema errors, made short and safe ---

def _schema_errors(validator: Draft4Validator, instance, document: str, name: str,
                   concealed: str | None = None) -> list[dict]:
    """``concealed``: the member whose values an error names by their JSON type only (the settings: a value may
    be a secret, and the answer and the logs would hold it)."""
    if _nested_deeper_than(instance, MAX_DEPTH):
        return [_item(name, f"{document}: nested more than {MAX_DEPTH} levels deep")]
    if not isinstance(instance, dict):
        return [_item(name, f"{document}: {_show(instance)} is not an object")]
    found = list(islice(validator.iter_errors(instance), 10 * MAX_ERRORS))
    found.sort(key=lambda error: [(isinstance(part, str), part) for part in error.absolute_path])  # [2] < [10]
    errors = [_item(name, f"{document}{_path(error.absolute_path)}: "
                          f"{_concealed(error) if tuple(error.absolute_path)[:1] == (concealed,) else _message(error)}")
              for error in found[:MAX_ERRORS]]
    if len(found) > MAX_ERRORS:
        errors.append(_item(name, f"{document}: more problems not listed (only the first {MAX_ERRORS} are)"))
    if holds_unstorable(instance):
        errors.append(_item(name, f"{document}: {UNSTORABLE}"))
    return errors


def _concealed(error) -> str:
    """What is wrong, without the value."""
    if error.validator == "type":
        return f"{_json_type(error.instance)} is not of type {_show(error.validator_value)} (the value is not shown)"
    return f"the value (not shown) does not meet the schema's {_show(error.validator)} rule"


def _json_type(value) -> str:
    for kind, article, name in ((bool, "a", "boolean"), ((int, float), "a", "number"), (str, "a", "string"),
                                (list, "an", "array"), (dict, "an", "object")):
        if isinstance(value, kind):
            return f"{article} {name}"
    return "null" if value is None else type(value).__name__


def _message(error) -> str:
    instance, expected = error.instance, error.validator_value
    if error.validator == "type":
        return f"{_show(instance)} is not of type {_show(expected)}"
    if error.validator == "pattern":  # the schema's description says what the regular expression wants
        return f"{_show(instance)} must be {error.schema.get('description', 'of another form')}"
    if error.validator == "enum":
        return f"{_show(instance)} is not one of {', '.join(map(_show, expected))}"
    if error.validator == "minimum":
        return f"{_show(instance)} is less than the minimum of {_show(expected)}"
    if error.validator == "additionalProperties":
        unknown = [key for key in instance if key not in error.schema.get("properties", {})]
        more = f" (and {len(unknown) - 5} more)" if len(unknown) > 5 else ""
        return f"unknown field(s) {', '.join(map(_show, unknown[:5]))}{more}"
    return _cut(error.message)


def _path(parts) -> str:
    return "".join(f"[{part}]" if isinstance(part, int) else
                   f".{part}" if isinstance(part, str) and _PLAIN_KEY.match(part) else f"[{_show(part)}]"
                   for part in parts)


def _show(value) -> str:
    """A value as JSON, cut short."""
    if isinstance(value, str) and len(value) > _SHOWN:
        value = value[:_SHOWN]  # not the whole of a huge string through json.dumps
    try:
        text = json.dumps(value, ensure_ascii=False)
    except (TypeError, ValueError, RecursionError):  # not JSON (a Python caller's object)
        text = type(value).__name__
    return _cut(text)


def _cut(text: str) -> str:
    return text if len(text) <= _SHOWN else text[:_SHOWN - 3] + "..."


def _nested_deeper_than(value, limit: int) -> bool:
    stack = [(value, 1)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, (dict, list)):
            if depth > limit:
                return True
            stack.extend((item, depth + 1) for item in (value.values() if isinstance(value, dict) else value))
    return False


def _get(value, *keys):
    for key in keys:
        if not isinstance(value, dict):
            return None
        value = value.get(key)
    return value


def _item(name: str, description: str) -> dict:
    return {"name": name, "description": description}
