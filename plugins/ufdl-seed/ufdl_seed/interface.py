"""What a Seed manifest's interface asks of one run: the inputs it takes (bound to a job's ``input`` object), the
environment and the command line it gets, the outputs it leaves and the meaning of its exit codes.

The manifest was validated against the Seed schema when its job type was made; what is read here is only what
the run needs, and anything unusable still fails the job with a message rather than a ``KeyError``."""
import json
import re
import shlex
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ufdl_pyramid.executors import ALGORITHM, DATA, ExecutionError, checked_content_type
from ufdl_pyramid.services.docker_references import IMAGE_REFERENCE, is_image_reference

CONTAINER_INPUTS = "/seed/inputs"
OUTPUT_DIR = "/seed/outputs"  # the container's OUTPUT_DIR
OUTPUTS_MANIFEST = "seed.outputs.json"
# The executor's own outputs: the container's logs (BLOB) and the JSON outputs together (the contract's
# ``output`` of Process<JSON, JSON>). A manifest output of the same name and kind would collide with them.
LOG_OUTPUTS = ("stdout", "stderr")
ALL_JSON_OUTPUT = "output"

# ${NAME}: the standard's placeholder (names are [a-zA-Z0-9_-]+).
_PLACEHOLDER = re.compile(r"\$\{([A-Za-z0-9_-]+)\}")
_NAME = re.compile(r"[A-Za-z0-9_-]+")

_JSON_TYPES = {
    "string": lambda value: isinstance(value, str),
    "integer": lambda value: (isinstance(value, int) and not isinstance(value, bool)
                              or isinstance(value, float) and value.is_integer()),
    "number": lambda value: isinstance(value, (int, float)) and not isinstance(value, bool),
    "boolean": lambda value: isinstance(value, bool),
    "object": lambda value: isinstance(value, dict),
    "array": lambda value: isinstance(value, list),
    "null": lambda value: value is None,
}


@dataclass(frozen=True)
class FileInput:
    name: str
    multiple: bool
    required: bool


@dataclass(frozen=True)
class JsonInput:
    name: str
    type: str
    required: bool


@dataclass(frozen=True)
class FileOutput:
    name: str
    pattern: str
    multiple: bool
    required: bool
    media_type: Any  # the manifest's mediaType (None: none given), its files' Content-Type


@dataclass(frozen=True)
class JsonOutput:
    name: str
    key: str
    type: str
    required: bool


@dataclass(frozen=True)
class Setting:
    name: str
    secret: bool


@dataclass(frozen=True)
class MountPoint:
    name: str
    path: str  # in the container
    read_only: bool  # the standard's default mode is "ro"


@dataclass(frozen=True)
class Resource:
    name: str
    value: float
    input_multiplier: float  # MiB of input → more of the resource (0: none)


@dataclass
class SeedInterface:
    image: str
    title: str  # "name jobVersion", for messages
    timeout: float
    command: str | None
    file_inputs: list[FileInput] = field(default_factory=list)
    json_inputs: list[JsonInput] = field(default_factory=list)
    file_outputs: list[FileOutput] = field(default_factory=list)
    json_outputs: list[JsonOutput] = field(default_factory=list)
    errors: dict[int, dict] = field(default_factory=dict)
    settings: list[Setting] = field(default_factory=list)
    mounts: list[MountPoint] = field(default_factory=list)
    resources: list[Resource] = field(default_factory=list)

    @classmethod
    def from_parameters(cls, parameters: dict) -> "SeedInterface":
        """From a template's ``seed_image`` and ``seed_manifest`` parameters."""
        image, manifest = parameters.get("seed_image"), parameters.get("seed_manifest")
        if not isinstance(image, str) or not image:
            raise ExecutionError("the parameter 'seed_image' must name the Seed image (the template of a Scale "
                                 "job type's revision sets it)")
        if not is_image_reference(image):
            # The server checks a job type's image, but a template imported by hand may name any: docker must
            # not read it as an option (--privileged).
            raise ExecutionError(f"the parameter 'seed_image' must be {IMAGE_REFERENCE}, not {image[:80]!r}")
        job = manifest.get("job") if isinstance(manifest, dict) else None
        if not isinstance(job, dict):
            raise ExecutionError("the parameter 'seed_manifest' must be a Seed manifest (with a 'job' object)")
        timeout = job.get("timeout")
        if not isinstance(timeout, (int, float)) or isinstance(timeout, bool) or timeout <= 0:
            raise ExecutionError(f"the manifest's job.timeout must be a positive number of seconds, not {timeout!r}")
        interface = _object(job.get("interface"))
        inputs, outputs = _object(interface.get("inputs")), _object(interface.get("outputs"))
        command = interface.get("command")
        created = cls(
            image=image, title=f"{job.get('name')} {job.get('jobVersion')}", timeout=float(timeout),
            command=command if isinstance(command, str) else None,
            file_inputs=[FileInput(entry["name"], entry.get("multiple", False) is True,
                                   entry.get("required", True) is not False)
                         for entry in _entries(inputs.get("files"))],
            json_inputs=[JsonInput(entry["name"], entry.get("type"), entry.get("required", True) is not False)
                         for entry in _entries(inputs.get("json"))],
            file_outputs=[FileOutput(entry["name"], entry.get("pattern", ""), entry.get("multiple", False) is True,
                                     entry.get("required", True) is not False, entry.get("mediaType"))
                          for entry in _entries(outputs.get("files"))],
            json_outputs=[JsonOutput(entry["name"], entry.get("key") or entry["name"], entry.get("type"),
                                     entry.get("required", True) is not False)
                          for entry in _entries(outputs.get("json"))],
            errors={entry["code"]: entry for entry in _entries(job.get("errors"), "code")
                    if isinstance(entry["code"], int)},
            settings=[Setting(entry["name"], entry.get("secret") is True)
                      for entry in _entries(interface.get("settings"))],
            mounts=[MountPoint(entry["name"], entry.get("path"), entry.get("mode", "ro") != "rw")
                    for entry in _entries(interface.get("mounts"))],
            resources=[Resource(entry["name"], entry["value"], _number(entry.get("inputMultiplier")))
                       for entry in _entries(_object(job.get("resources")).get("scalar"))
                       if _number(entry.get("value")) == entry["value"]])
        created.check_names()
        return created

    def check_names(self) -> None:
        """The standard's names only ([A-Za-z0-9_-]+, as the job type API checks them): a template imported by
        hand may hold any, and a name becomes a folder under /seed/inputs (a '../..' would write outside the
        scratch directory), a variable (``-e A=B=x`` sets A; a line break in the environment file makes another
        variable) and an output's name."""
        for kind, entries in (("input", [*self.file_inputs, *self.json_inputs]),
                              ("output", [*self.file_outputs, *self.json_outputs]), ("setting", self.settings),
                              ("mount", self.mounts), ("resource", self.resources)):
            for entry in entries:
                if not isinstance(entry.name, str) or not _NAME.fullmatch(entry.name):
                    raise ExecutionError(f"the manifest's {kind} name {str(entry.name)[:80]!r} is not a Seed name "
                                         f"(only letters, digits, '-' and '_')")

    def check_outputs(self) -> None:
        """Refuses, before running anything, the outputs that the executor's own would collide with, and a
        ``mediaType`` that the server would not keep as the files' Content-Type (a template imported by hand may
        hold any: the job type API checks only that it is a string)."""
        taken = [output.name for output in self.file_outputs if output.name in LOG_OUTPUTS]
        taken += [output.name for output in self.json_outputs if output.name == ALL_JSON_OUTPUT]
        if taken:
            raise ExecutionError(f"the manifest's output {taken[0]!r} cannot be kept: the Seed executor's own "
                                 f"outputs are {', '.join(LOG_OUTPUTS)} (BLOB) and {ALL_JSON_OUTPUT} (JSON)")
        for output in self.file_outputs:
            if output.media_type is not None:
                try:
                    checked_content_type(output.media_type)
                except ValueError as error:
                    raise ExecutionError(f"the manifest's output {output.name!r} has an unusable mediaType: "
                                         f"{error}") from None

    def bind(self, given: Any) -> "BoundInputs":
        """The job's ``input`` object checked against the manifest: required inputs present, JSON inputs of
        their type, file inputs job-output pks (a list of them when ``multiple``), no unknown name."""
        if not isinstance(given, dict):
            raise ExecutionError(f"the input 'input' must be a JSON object of the manifest's inputs by name, not "
                                 f"{_json_kind(given)}")
        known = {entry.name for entry in (*self.file_inputs, *self.json_inputs)}
        unknown = sorted(set(given) - known)
        if unknown:
            raise ExecutionError(f"input {unknown[0]!r} is not an input of {self.title} (its inputs: "
                                 f"{', '.join(sorted(known)) or 'none'})")
        bound = BoundInputs()
        for entry in self.file_inputs:
            value = given.get(entry.name)
            if value is None:
                _check_present(entry.name, entry.required)
                continue
            pks = value if entry.multiple else [value]
            if (not isinstance(pks, list) or not all(_is_pk(pk) for pk in pks)
                    or (entry.required and not pks)):
                wanted = "a non-empty list of job-output pks" if entry.multiple and entry.required else (
                    "a list of job-output pks" if entry.multiple else "a job-output pk")
                raise ExecutionError(f"input {entry.name!r} must be {wanted}, not {json.dumps(value)[:100]}")
            bound.files[entry.name] = (entry, [int(pk) for pk in dict.fromkeys(pks)])
        for entry in self.json_inputs:
            if entry.name not in given:
                _check_present(entry.name, entry.required)
                continue
            value = given[entry.name]
            check = _JSON_TYPES.get(entry.type)
            if check is not None and not check(value):
                raise ExecutionError(f"input {entry.name!r} must be of JSON type {entry.type}, not "
                                     f"{_json_kind(value)}")
            # JSON's 5.0 is the integer 5 (as create-job keeps it): the container gets "5".
            bound.json[entry.name] = int(value) if entry.type == "integer" and isinstance(value, float) else value
        return bound

    def error_text(self, code: int) -> str:
        """What the manifest says of an exit code: ``name (category): description``, or nothing."""
        entry = self.errors.get(code)
        if entry is None:
            return ""
        text = f"{entry['name']} ({entry.get('category') or 'job'})"
        detail = entry.get("description") or entry.get("title")
        return f"{text}: {detail}" if detail else text

    def error_category(self, code: int) -> str | None:
        """The job's error category for an exit code the manifest names: its error's ``data`` is DATA, ``job``
        (the default) ALGORITHM; None for a code it does not name (the worker's default)."""
        entry = self.errors.get(code)
        if entry is None:
            return None
        return DATA if entry.get("category") == "data" else ALGORITHM


@dataclass
class BoundInputs:
    files: dict[str, tuple[FileInput, list[int]]] = field(default_factory=dict)
    json: dict[str, Any] = field(default_factory=dict)

    def environment(self, filenames: Mapping[int, str]) -> dict[str, str]:
        """The standard's variables: each input by its name (a file: its path in the container,
        ``NAME/PK/FILENAME`` with ``filenames`` by pk (the pk when it has none), the folder of its files'
        folders when ``multiple``; JSON: the value, a string as it is, anything else as JSON) and OUTPUT_DIR."""
        environment = {}
        for name, (entry, pks) in self.files.items():
            environment[name] = (input_folder(name) if entry.multiple
                                 else f"{input_folder(name)}/{pks[0]}/{filenames.get(pks[0], pks[0])}")
        for name, value in self.json.items():
            environment[name] = value if isinstance(value, str) else json.dumps(value)
        environment["OUTPUT_DIR"] = OUTPUT_DIR
        return environment


def input_folder(name: str) -> str:
    """The container's folder of a file input's files, each in a folder named by its job-output pk."""
    return f"{CONTAINER_INPUTS}/{name}"


def command_arguments(interface: SeedInterface, environment: dict[str, str]) -> list[str]:
    """The manifest's ``command`` split like a POSIX shell would (no shell runs it), each ``${NAME}`` replaced
    by the variable's value. An optional input that was not given, or a setting the configuration does not give,
    is empty, and a word that was only such placeholders is left out (as an unquoted empty variable in a shell).
    A secret setting fails the job: its value would be on the command line, which any local user can read
    (``ps``). So does a name that is none of the variables."""
    if not interface.command:
        return []
    secret = {entry.name for entry in interface.settings if entry.secret}
    optional = {entry.name for entry in (*interface.file_inputs, *interface.json_inputs, *interface.settings)}

    def substitute(match):
        name = match.group(1)
        if name in secret:
            raise ExecutionError(f"the manifest's command names the secret setting ${{{name}}}: its value would "
                                 f"be visible on the command line; the container reads it from its environment")
        if name in environment:
            return environment[name]
        if name in optional:
            return ""
        raise ExecutionError(f"the manifest's command names ${{{name}}}, which is no input, setting or resource "
                             f"variable of {interface.title} and not OUTPUT_DIR")

    try:
        words = shlex.split(interface.command)
    except ValueError as error:
        raise ExecutionError(f"cannot split the manifest's command: {error}") from None
    arguments = []
    for word in words:
        replaced = _PLACEHOLDER.sub(substitute, word)
        if replaced or not _PLACEHOLDER.search(word):
            arguments.append(replaced)
    return arguments


def check_json_output(output: JsonOutput, value: Any) -> None:
    check = _JSON_TYPES.get(output.type)
    if check is not None and not check(value):
        raise ExecutionError(f"output {output.name!r}: {OUTPUTS_MANIFEST}'s {output.key!r} must be of JSON type "
                             f"{output.type}, not {_json_kind(value)}")


def _check_present(name: str, required: bool) -> None:
    if required:
        raise ExecutionError(f"the required input {name!r} is missing")


def _is_pk(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value > 0


def _json_kind(value) -> str:
    for name in ("null", "boolean", "integer", "number", "string", "array", "object"):
        if _JSON_TYPES[name](value):
            return name
    return type(value).__name__


def _number(value) -> float:
    """A JSON number as a float; anything else (absent, a boolean) 0."""
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else 0.0


def _object(value) -> dict:
    return value if isinstance(value, dict) else {}


def _entries(value, key: str = "name") -> list[dict]:
    return [entry for entry in value if isinstance(entry, dict) and key in entry] if isinstance(value, list) else []
