"""The outputs a Seed run left in its output directory, as the manifest's ``outputs`` name them: files by glob
pattern (BLOB), JSON values from ``seed.outputs.json`` (JSON). Everything is checked before anything is kept,
so that a run with a missing or bad output adds none of its outputs."""
import glob
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ufdl_pyramid.executors import ExecutionError

from .interface import ALL_JSON_OUTPUT, OUTPUTS_MANIFEST, FileOutput, SeedInterface, check_json_output

# The server's output names are [A-Za-z0-9_.:-]{1,200}: a file of a `multiple` output is NAME:its/path with
# each '/' a ':' and any other character the server refuses an '_'.
MAX_NAME = 200
_REFUSED = re.compile(r"[^A-Za-z0-9_.-]")


@dataclass(frozen=True)
class Captured:
    name: str
    type: str
    data: Any  # a Path (BLOB) or JSON text


def capture(interface: SeedInterface, output_dir: Path) -> list[Captured]:
    captured = []
    for output in interface.file_outputs:
        captured += _files(output, output_dir)
    values = _json_values(interface, output_dir)
    captured += [Captured(name, "JSON", json.dumps(value)) for name, value in values.items()]
    captured.append(Captured(ALL_JSON_OUTPUT, "JSON", json.dumps(values)))
    return captured


def _files(output: FileOutput, output_dir: Path) -> list[Captured]:
    root = output_dir.resolve()
    matches = []
    for relative in sorted(glob.glob(output.pattern, root_dir=output_dir)):
        path = (output_dir / relative).resolve()
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
        return [Captured(output.name, "BLOB", matches[0][1])]
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
        captured.append(Captured(name, "BLOB", path))
    return captured


def _json_values(interface: SeedInterface, output_dir: Path) -> dict[str, Any]:
    if not interface.json_outputs:
        return {}
    path = output_dir / OUTPUTS_MANIFEST
    document = {}
    if path.is_file() and path.resolve().is_relative_to(output_dir.resolve()):
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
