"""The outputs a Seed run left in its output directory, as the manifest's ``outputs`` name them: files by glob
pattern (BLOB, as their ``mediaType``, else the type their file name tells), JSON values from
``seed.outputs.json`` (JSON, as ``application/json``). Everything is checked before anything is kept,
so that a run with a missing or bad output adds none of its outputs."""
import glob
import itertools
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ufdl_pyramid.executors import DEFAULT_CONTENT_TYPE, ExecutionError, guessed_content_type

from .interface import ALL_JSON_OUTPUT, OUTPUTS_MANIFEST, FileOutput, SeedInterface, check_json_output

# The server's output names are [A-Za-z0-9_.:-]{1,200}: a file of a `multiple` output is NAME:its/path with
# each '/' a ':' and any other character the server refuses an '_'.
MAX_NAME = 200
# What a run may leave to be read: the paths a pattern matches (each file of a `multiple` output is an output of
# its own on the server) and the size of seed.outputs.json (parsed in memory).
MAX_MATCHES = 1000
MAX_OUTPUTS_MANIFEST_SIZE = 16 * 2**20
_REFUSED = re.compile(r"[^A-Za-z0-9_.-]")
JSON_CONTENT_TYPE = "application/json"


@dataclass(frozen=True)
class Captured:
    name: str
    type: str
    data: Any  # a Path (BLOB) or JSON text
    content_type: str


def capture(interface: SeedInterface, output_dir: Path) -> list[Captured]:
    captured = []
    for output in interface.file_outputs:
        captured += _files(output, output_dir)
    values = _json_values(interface, output_dir)
    captured += [Captured(name, "JSON", json.dumps(value), JSON_CONTENT_TYPE) for name, value in values.items()]
    captured.append(Captured(ALL_JSON_OUTPUT, "JSON", json.dumps(values), JSON_CONTENT_TYPE))
    return captured


def _files(output: FileOutput, output_dir: Path) -> list[Captured]:
    root = output_dir.resolve()
    found = list(itertools.islice(glob.iglob(output.pattern, root_dir=output_dir), MAX_MATCHES + 1))
    if len(found) > MAX_MATCHES:
        raise ExecutionError(f"output {output.name!r}: more than {MAX_MATCHES} paths match {output.pattern!r}")
    matches = []
    for relative in sorted(found):
        try:
            path = (output_dir / relative).resolve()
        except (OSError, RuntimeError):  # a loop of links
            raise ExecutionError(f"output {output.name!r}: {relative!r} is a link that leads nowhere") from None
        if not path.is_relative_to(root):  # a '..' in the pattern, or a link the container made
            raise ExecutionError(f"output {output.name!r}: {relative!r} is outside the output directory")
        if path.is_file():
            matches.append((relative, path))
    if not matches:
        if output.required:
            raise ExecutionError(f"the required output {output.name!r} is missing: no file matches "
                                 f"{output.pattern!r} in OUTPUT_DIR")
        return []
    if not output.multiple:
        if len(matches) > 1:
            raise ExecutionError(f"output {output.name!r} is one file, and {len(matches)} match "
                                 f"{output.pattern!r}: {', '.join(relative for relative, _ in matches[:5])}")
        return [Captured(output.name, "BLOB", matches[0][1], _content_type(output, matches[0][0]))]
    captured, seen = [], {}
    for relative, path in matches:
        name = ":".join([output.name, *(_REFUSED.sub("_", part) for part in Path(relative).parts)])
        if len(name) > MAX_NAME:
            raise ExecutionError(f"output {output.name!r}: the file {relative!r} makes an output name longer than "
                                 f"{MAX_NAME} characters")
        if name in seen:
            raise ExecutionError(f"output {output.name!r}: the files {seen[name]!r} and {relative!r} would both be "
                                 f"the output {name!r}")
        seen[name] = relative
        captured.append(Captured(name, "BLOB", path, _content_type(output, relative)))
    return captured


def _content_type(output: FileOutput, relative: str) -> str:
    """The manifest's ``mediaType``, else what the name the container gave the file tells (not a link's
    target's), else the worker's default."""
    if output.media_type is not None:
        return output.media_type
    return guessed_content_type(relative) or DEFAULT_CONTENT_TYPE


def _json_values(interface: SeedInterface, output_dir: Path) -> dict[str, Any]:
    if not interface.json_outputs:
        return {}
    path = output_dir / OUTPUTS_MANIFEST
    document = {}
    if path.is_file() and _inside(path, output_dir):
        if path.stat().st_size > MAX_OUTPUTS_MANIFEST_SIZE:
            raise ExecutionError(f"{OUTPUTS_MANIFEST} is larger than {MAX_OUTPUTS_MANIFEST_SIZE // 2**20} MiB")
        try:
            document = json.loads(path.read_bytes())
        except ValueError as error:
            raise ExecutionError(f"{OUTPUTS_MANIFEST} is not JSON: {error}") from None
        if not isinstance(document, dict):
            raise ExecutionError(f"{OUTPUTS_MANIFEST} must hold a JSON object")
    values = {}
    for output in interface.json_outputs:
        if output.key not in document:
            if output.required:
                raise ExecutionError(f"the required output {output.name!r} is missing: {OUTPUTS_MANIFEST} has no "
                                     f"{output.key!r}" if path.exists() else
                                     f"the required output {output.name!r} is missing: there is no "
                                     f"{OUTPUTS_MANIFEST} in OUTPUT_DIR")
            continue
        check_json_output(output, document[output.key])
        values[output.name] = document[output.key]
    return values


def _inside(path: Path, output_dir: Path) -> bool:
    try:
        return path.resolve().is_relative_to(output_dir.resolve())
    except (OSError, RuntimeError):  # a loop of links
        return False
