"""The templates registry: a directory of job templates kept in git, ``<name>/<version>.yaml`` per version.

``read_registry`` reads a directory and ``parse_registry`` the same files sent over HTTP (every problem named
with its file and line), ``validate_offline`` checks it without a database (schema, type strings against a
given type registry, meta graphs, cycles between templates; not the graphs using a Scale job type's template,
which lives on the server), ``plan_sync`` compares it with the templates a server has, and ``RegistrySync``
applies it in the caller's transaction. Importing goes through ``TemplateService``, so the rules are the API's
(identical = no-op, same version with other content = conflict).
"""
import contextlib
import copy
import difflib
import os
import re
import stat
import tempfile
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from types import SimpleNamespace

import yaml
from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session

from ..errors import Conflict, InvalidInput, ServiceError
from ..models import Job, JobTemplate, TemplateChild
from ..models.jobs import FINAL_STATUSES
from ..models.seed_job_types import SCALE_TEMPLATE_PREFIX
from ..types import TypeRegistry
from .template_documents import (BoundedNesting, FittingTags, UniqueKeys, check_document, check_nesting,
                                 is_meta, json_compatible, ordered_document, same_json, to_yaml, whole_versions)
from .templates import TemplateService, check_not_scale_name, template_document
from .type_registry import type_registry

SETTINGS_FILE = "registry.yaml"
# \A...\Z: "$" also matches before a trailing newline, which a file name (or a key of the sync body) may end with.
_VERSION_FILE = re.compile(r"\A([1-9][0-9]*)\.yaml\Z")


class _Loader(BoundedNesting, FittingTags, UniqueKeys, getattr(yaml, "CSafeLoader", yaml.SafeLoader)):
    """The safe loader (libyaml's when there is one; a key given twice refused), with scalars' implicit tags
    cached: re-syncs of large registries spend most of their time here."""

    _tags: dict = {}

    def resolve(self, kind, value, implicit):
        if kind is not yaml.ScalarNode:
            return super().resolve(kind, value, implicit)
        key = (value, implicit)
        tag = self._tags.get(key)
        if tag is None:
            tag = super().resolve(kind, value, implicit)
            if len(value) <= 200 and len(self._tags) < 100_000:
                self._tags[key] = tag
        return tag

Key = tuple[str, int]  # (template name, version)


@dataclass(frozen=True)
class Problem:
    path: str
    line: int | None
    message: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.message}" if self.line else f"{self.path}: {self.message}"


class RegistryInvalid(InvalidInput):
    """A registry with problems; ``problems`` has one entry per problem."""

    def __init__(self, problems: list[Problem]):
        super().__init__(f"{len(problems)} problem(s) in the templates registry:\n"
                         + "\n".join(map(str, problems)))
        self.problems = problems
        self.extra = {"problems": [{"path": problem.path, "line": problem.line, "message": problem.message}
                                   for problem in problems]}


@dataclass
class RegistryEntry:
    path: str  # relative to the registry directory, with '/'
    document: dict
    node: yaml.Node  # the parsed YAML, for line numbers

    @property
    def key(self) -> Key:
        return self.document["name"], self.document["version"]

    def line(self, where: str) -> int | None:
        """The line of a field named like the service's messages do (``specific.parameters.x.types[0]``)."""
        return _line_of(self.node, where)


@dataclass
class Registry:
    entries: list[RegistryEntry]  # children before parents
    settings: dict

    def keys(self) -> set[Key]:
        return {entry.key for entry in self.entries}


def _line_of(node: yaml.Node, where: str) -> int | None:
    line = node.start_mark.line + 1
    for part in re.findall(r"[^.\[\]]+|\[\d+\]", where.split(":")[0].split(" ")[0]):
        if isinstance(node, yaml.MappingNode):
            found = next((value for key, value in node.value if key.value == part), None)
            if found is None:
                break
            node = found
        elif isinstance(node, yaml.SequenceNode) and part.startswith("["):
            index = int(part[1:-1])
            if index >= len(node.value):
                break
            node = node.value[index]
        else:
            break
        line = node.start_mark.line + 1
    return line


def _parse(text: str, path: str) -> tuple[object, yaml.Node | None]:
    try:
        check_nesting(text, path)
    except InvalidInput as error:
        raise _ProblemError(Problem(path, None, error.detail)) from None
    loader = _Loader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None, None
        try:
            return json_compatible(loader.construct_document(node), path), node
        except InvalidInput as error:
            raise _ProblemError(Problem(path, node.start_mark.line + 1, error.detail)) from None
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark
        raise _ProblemError(Problem(path, mark.line + 1 if mark else None,
                                    f"invalid YAML: {error.problem or error}")) from None
    except yaml.YAMLError as error:
        raise _ProblemError(Problem(path, None, f"invalid YAML: {error}")) from None
    finally:
        loader.dispose()


class _ProblemError(Exception):
    def __init__(self, problem: Problem):
        self.problem = problem


MAX_FILE_SIZE = 8 * 1024 * 1024  # bytes a registry file may hold: far past any template, short of any memory


def registry_files(directory: str) -> tuple[dict[str, str], list[Problem]]:
    """The texts of a registry directory's files by path (``registry.yaml``, ``<name>/<version>.yaml``), and
    the problems of the files that cannot be read or have no place in a registry (hidden files are skipped).

    Refused unread: a symbolic link to outside the directory, what is not a regular file (a FIFO would block the
    read), a file over ``MAX_FILE_SIZE``."""
    if not os.path.isdir(directory):
        # One template's file given for the registry (validate shell/1.yaml) was "no such directory" too.
        raise InvalidInput(f"{directory}: not a directory (give the registry's directory, not one of its files)"
                           if os.path.exists(directory) else f"{directory}: no such directory")
    root = os.path.realpath(directory)
    files: dict[str, str] = {}
    problems: list[Problem] = []

    def listing(path: str, full: str) -> list[os.DirEntry]:
        try:
            with os.scandir(full) as entries:
                return sorted((entry for entry in entries if not entry.name.startswith(".")),
                              key=lambda entry: entry.name)
        except OSError as error:
            if not path:
                raise InvalidInput(f"{directory}: cannot list: {error.strerror or error}") from None
            problems.append(Problem(path, None, f"cannot list: {error.strerror or error}"))
            return []

    def outside(path: str, entry: os.DirEntry) -> bool:
        if entry.is_symlink() and os.path.commonpath([root, os.path.realpath(entry.path)]) != root:
            problems.append(Problem(path, None, "a symbolic link to outside the registry: refused"))
            return True
        return False

    for entry in listing("", directory):
        if outside(entry.name, entry):
            continue
        if not entry.is_dir():
            _read_file(entry.name, entry.path, files, problems)
            continue
        for file_entry in listing(entry.name, entry.path):
            path = f"{entry.name}/{file_entry.name}"
            if not outside(path, file_entry):
                _read_file(path, file_entry.path, files, problems)
    return files, problems


def _read_file(path: str, full: str, files: dict[str, str], problems: list[Problem]) -> None:
    problem = _layout_problem(path)
    if problem:
        problems.append(problem)
        return
    try:
        if not stat.S_ISREG(os.stat(full).st_mode):  # not opened: opening a device may do something
            problems.append(Problem(path, None, "not a regular file (a FIFO, device or socket): refused"))
            return
        # Non-blocking: a FIFO put in the file's place since would otherwise wait for a writer.
        descriptor = os.open(full, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
        try:
            status = os.fstat(descriptor)
            if not stat.S_ISREG(status.st_mode):
                problems.append(Problem(path, None, "not a regular file (a FIFO, device or socket): refused"))
                return
            data = b""
            if status.st_size <= MAX_FILE_SIZE:
                with os.fdopen(os.dup(descriptor), "rb") as file:
                    data = file.read(MAX_FILE_SIZE + 1)  # it may have grown since
            if status.st_size > MAX_FILE_SIZE or len(data) > MAX_FILE_SIZE:
                problems.append(Problem(path, None, f"{max(status.st_size, len(data))} bytes: larger than the "
                                                    f"{MAX_FILE_SIZE // 1024 // 1024} MiB a registry file may hold"))
                return
        finally:
            os.close(descriptor)
        files[path] = data.decode("utf-8")
    except (OSError, UnicodeDecodeError) as error:
        problems.append(Problem(path, None, f"cannot read: {error}"))


def _layout_problem(path: str) -> Problem | None:
    if path == SETTINGS_FILE:
        return None
    name, slash, file_name = path.partition("/")
    if not slash or not name or name.startswith("."):
        return Problem(path, None, "unexpected file: templates go in <name>/<version>.yaml")
    if not _VERSION_FILE.match(file_name):
        return Problem(path, None, "unexpected file: templates go in <name>/<version>.yaml "
                                   "(the version a positive integer)")
    return None


def read_registry(directory: str, known: dict[Key, dict] | None = None) -> Registry:
    """The registry in a directory: ``parse_registry`` of its files."""
    files, problems = registry_files(directory)
    return parse_registry(files, known, problems)


def parse_registry(files: Mapping[str, str], known: dict[Key, dict] | None = None,
                   problems: Iterable[Problem] = ()) -> Registry:
    """The registry of these files (path -> text, as ``registry_files`` reads them) with its templates in
    dependency order, or ``RegistryInvalid`` listing every problem (``problems``: those found before).

    ``known``: documents already checked (the server's export forms); a file equal to one skips the schema check.
    """
    known = known or {}
    problems = list(problems)
    entries: list[RegistryEntry] = []
    settings: dict = {}
    if SETTINGS_FILE in files:
        try:
            parsed, settings_node = _parse(files[SETTINGS_FILE], SETTINGS_FILE)
            settings = _checked_settings(parsed, settings_node, problems)
        except _ProblemError as error:
            problems.append(error.problem)
    for path in sorted(files, key=lambda path: path.split("/")):
        if path == SETTINGS_FILE:
            continue
        layout = _layout_problem(path)
        if layout:
            problems.append(layout)
            continue
        name, file_name = path.split("/")
        try:
            document, node = _parse(files[path], path)
        except _ProblemError as error:
            problems.append(error.problem)
            continue
        version = int(_VERSION_FILE.match(file_name).group(1))
        whole_versions(document)
        if isinstance(document, dict) and document.get("name") == name and document.get("version") == version \
                and known.get((name, version)) == document:
            entries.append(RegistryEntry(path, document, node))
            continue
        found = _check_entry(document, node, path, name, version)
        if found:
            problems.extend(found)
        else:
            entries.append(RegistryEntry(path, document, node))
    # Every command (validate, diff, sync) refuses what the registry's own settings forbid.
    for entry in entries:
        problems.extend(_settings_problems(entry, settings))
    entries = _ordered(entries, problems)
    if problems:
        raise RegistryInvalid(problems)
    return Registry(entries, settings)


# registry.yaml: what a setting restricts (the templates' field it lists the allowed values of).
_SETTINGS = {"licences": "licence", "domains": "domain"}


def _kind(value) -> str:
    return {list: "a list", str: "a string", bool: "a boolean", int: "a number", float: "a number"}.get(
        type(value), "null" if value is None else type(value).__name__)


def _checked_settings(settings, node: yaml.Node | None, problems: list[Problem]) -> dict:
    """registry.yaml's settings; its problems are added to ``problems`` (a wrong setting is ignored)."""
    if settings is None:
        return {}
    if not isinstance(settings, dict):
        problems.append(Problem(SETTINGS_FILE, 1, f"registry settings must be a mapping, not {_kind(settings)}"))
        return {}
    checked = {}
    for key, value in settings.items():
        line = _line_of(node, str(key)) if node is not None else None
        if key not in _SETTINGS:
            problems.append(Problem(SETTINGS_FILE, line, f"unknown setting '{key}' (known: "
                                                         f"{', '.join(_SETTINGS)})"))
        elif not isinstance(value, list) or not all(isinstance(item, str) for item in value):
            problems.append(Problem(SETTINGS_FILE, line, f"{key}: must be a list of names"))
        else:
            checked[key] = value
    return checked


def _settings_problems(entry: RegistryEntry, settings: dict) -> list[Problem]:
    problems = []
    for key, field_name in _SETTINGS.items():
        allowed, value = settings.get(key), entry.document.get(field_name)
        if allowed is not None and value is not None and value not in allowed:
            problems.append(Problem(entry.path, entry.line(field_name), f"{field_name}: '{value}' is not one of "
                                                                        f"the registry's {key} ({', '.join(allowed)})"))
    return problems


def _check_entry(document, node, path: str, name: str, version: int) -> list[Problem]:
    """Every problem of one template file: its schema's, and its name and version against its place."""
    if node is None:
        return [Problem(path, None, "the file is empty: a template document is a mapping")]
    if not isinstance(document, dict):
        return [Problem(path, node.start_mark.line + 1, f"a template document must be a mapping, not "
                                                        f"{_kind(document)}")]
    problems = []
    try:
        check_document(document, name="document")
    except InvalidInput as error:
        problems.append(Problem(path, _line_of(node, error.detail), error.detail))
    # A name or a version of the wrong type is the schema's to report; a missing version is ours.
    if isinstance(document.get("name"), str) and document["name"] != name:
        problems.append(Problem(path, _line_of(node, "name"),
                                f"name: '{document['name']}' does not agree with the directory name '{name}'"))
    stated = document.get("version")
    if stated != version and (stated is None or isinstance(stated, int) and not isinstance(stated, bool)):
        problems.append(Problem(path, _line_of(node, "version") if "version" in document else 1,
                                f"version: {stated} does not agree with the file name ({version})"))
    return problems


def is_server_reference(name: str) -> bool:
    """A child that lives on the server, not in the registry: a Scale job type's template (``seed-job-type-{id}``,
    made and kept by the v6 API; no registry file may hold one). ``diff`` and ``sync`` find it among the server's
    templates; ``validate``, offline, leaves the graphs that use one unchecked."""
    return name.startswith(SCALE_TEMPLATE_PREFIX)


def _child_key(spec: dict, versions: dict[str, list[int]]) -> Key | None:
    if "version" in spec:
        return spec["name"], spec["version"]
    known = versions.get(spec["name"])
    return (spec["name"], max(known)) if known else None


def _ordered(entries: list[RegistryEntry], problems: list[Problem]) -> list[RegistryEntry]:
    """Children before parents; problems for children missing from the registry and for cycles. A Scale job
    type's template (``is_server_reference``) is no registry's: a child so named is left to the server, with its
    version (no problem for it here, none in the order).

    A child named without a version gets the registry's newest here, when the registry is read: validate, diff
    and sync then agree on it, whatever newer versions the server has. The walk keeps its own stack (a chain of
    meta-templates may be far longer than Python's recursion limit before the nesting check refuses it)."""
    by_key = {entry.key: entry for entry in entries}
    versions: dict[str, list[int]] = {}
    for name, version in by_key:
        versions.setdefault(name, []).append(version)
    children: dict[Key, list[Key]] = {}
    for entry in entries:
        children[entry.key] = []
        specific = entry.document["specific"]
        if not is_meta(specific):
            continue
        for node_name, spec in sorted(specific["nodes"].items()):
            if is_server_reference(spec["name"]):
                if "version" not in spec:  # the server's newest would differ from server to server, and in time
                    problems.append(Problem(entry.path, entry.line(f"specific.nodes.{node_name}.name"),
                                            f"specific.nodes.{node_name}: template '{spec['name']}' is a Scale job "
                                            f"type's, which lives on the server: name its version"))
                continue
            key = _child_key(spec, versions)
            if key is None or key not in by_key:
                wanted = f"'{spec['name']}'" + (f" version {spec['version']}" if "version" in spec else "")
                problems.append(Problem(entry.path, entry.line(f"specific.nodes.{node_name}.name"),
                                        f"specific.nodes.{node_name}: template {wanted} is not in the registry"))
            else:
                spec["version"] = key[1]
                children[entry.key].append(key)
    ordered: list[RegistryEntry] = []
    state: dict[Key, int] = {}  # 1: on the path, 2: done
    for root in sorted(by_key):
        if root in state:
            continue
        state[root] = 1
        path, pending = [root], [iter(children[root])]  # the keys from the root down, their children to visit
        while path:
            key, child = path[-1], next(pending[-1], None)
            if child is None:
                path.pop()
                pending.pop()
                state[key] = 2
                ordered.append(by_key[key])
            elif state.get(child) == 1:
                cycle = path[path.index(child):] + [child]
                entry = by_key[key]
                problems.append(Problem(entry.path, entry.line("specific.nodes"), "templates refer to each other "
                                        "in a cycle: " + " -> ".join(f"{n}/{v}" for n, v in cycle)))
            elif child not in state:
                state[child] = 1
                path.append(child)
                pending.append(iter(children[child]))
    return ordered


# Offline validation

class _OfflineTemplates(TemplateService):
    """``TemplateService``'s checks with the registry's own templates standing in for the database."""

    def __init__(self, registry: TypeRegistry):
        super().__init__(None, registry)
        self.known: dict[Key, SimpleNamespace] = {}

    def normalise(self, document):
        check_document(document)
        domain = document.get("domain")
        common = dict(name=document["name"], version=document.get("version"),
                      description=document.get("description", ""), scope=document["scope"],
                      domain=SimpleNamespace(name=domain, id=None) if domain else None,
                      licence=SimpleNamespace(name=document["licence"], id=None))
        specific = document["specific"]
        return (self._normalise_meta if is_meta(specific) else self._normalise_workable)(specific, common)

    def _find_child(self, spec: dict, where: str):
        versions = {}
        for name, version in self.known:
            versions.setdefault(name, []).append(version)
        key = _child_key(spec, versions)
        if key is None or key not in self.known:
            raise InvalidInput(f"{where}: template '{spec['name']}' is not in the registry (or is invalid)")
        return self.known[key]

    def _measure(self, children) -> tuple[int, int]:
        return max(child.depth for child in children.values()), sum(child.steps for child in children.values())


def unchecked_offline(registry: Registry) -> dict[Key, Problem]:
    """The meta-templates whose graphs ``validate_offline`` leaves unchecked, with a note each: those naming a
    template that lives on the server (a Scale job type's), and those whose children are such meta-templates.
    Without the child's inputs and outputs, their wiring cannot be checked; ``diff`` and ``sync`` check it."""
    unchecked: dict[Key, Problem] = {}
    for entry in registry.entries:  # children before parents
        specific = entry.document["specific"]
        if not is_meta(specific):
            continue
        for node_name, spec in sorted(specific["nodes"].items()):
            child = (spec["name"], spec.get("version"))
            if is_server_reference(spec["name"]):
                why = "is a Scale job type's, which lives on the server"
            elif child in unchecked:
                why = "is not checked offline either"
            else:
                continue
            unchecked[entry.key] = Problem(
                entry.path, entry.line(f"specific.nodes.{node_name}.name"),
                f"note: specific.nodes.{node_name}: template '{child[0]}' version {child[1]} {why}: this graph is "
                f"not checked offline (diff and sync check it against the server's templates)")
            break
    return unchecked


def validate_offline(registry: Registry, types: TypeRegistry) -> list[Problem]:
    """Every template checked as the server's import would, with ``types`` (the installed plugins' types), but
    for the graphs ``unchecked_offline`` names (their documents' schema is checked all the same)."""
    problems = []
    service = _OfflineTemplates(types)
    unchecked = unchecked_offline(registry)
    for entry in registry.entries:
        if entry.key in unchecked:
            try:
                check_not_scale_name(entry.document["name"])
            except InvalidInput as error:
                problems.append(Problem(entry.path, entry.line("name"), error.detail))
            continue
        try:
            normalised = service.normalise(copy.deepcopy(entry.document))
            check_not_scale_name(normalised.name)  # as the import will
        except InvalidInput as error:
            problems.append(Problem(entry.path, entry.line(error.detail), error.detail))
            continue
        service.known[entry.key] = SimpleNamespace(name=normalised.name, version=entry.key[1],
                                                   scope=normalised.scope, inputs=normalised.inputs,
                                                   outputs=normalised.outputs, parameters=normalised.parameters,
                                                   depth=normalised.depth, steps=normalised.steps)
    return problems


def registry_warnings(registry: Registry, executors: Iterable[str]) -> list[Problem]:
    """What is allowed but likely a mistake (``validate`` prints it, and exits 0 all the same): template names
    that differ only in case, and an ``executor_class`` that none of ``executors`` (the installed plugins') is."""
    warnings = [Problem(names[-1], None, f"warning: {case_collision(names)}")
                for names in case_collisions(entry.document["name"] for entry in registry.entries)]
    executors = set(executors)
    for entry in sorted(registry.entries, key=lambda entry: entry.path.split("/")):
        specific = entry.document["specific"]
        if not is_meta(specific) and specific["executor_class"] not in executors:
            warnings.append(Problem(entry.path, entry.line("specific.executor_class"),
                                    f"warning: executor_class '{specific['executor_class']}' is no installed "
                                    f"plugin's executor (only a worker that has one can run the template)"))
    return warnings


def case_collisions(names: Iterable[str]) -> list[list[str]]:
    """The groups of template names that differ only in case, each sorted."""
    groups: dict[str, set[str]] = {}
    for name in names:
        groups.setdefault(name.casefold(), set()).add(name)
    return [sorted(group) for _, group in sorted(groups.items()) if len(group) > 1]


def case_collision(names: list[str]) -> str:
    return (f"the template names {', '.join(names[:-1])} and {names[-1]} differ only in case: on a "
            f"case-insensitive filesystem (macOS, Windows) their folders are one")


# Planning and applying

@dataclass
class PlanConflict:
    entry: RegistryEntry
    existing: dict  # the server's document
    reason: str = ""
    normalised: dict | None = None  # the file's document in the server's export form, when it has one

    def diff(self) -> str:
        # The export form on both sides, so that only what differs in substance shows: a file that leaves out
        # ``domain: null`` (or a parameter's ``default_type``) showed it as a change beside the real one.
        ours = self.entry.document if self.normalised is None else ordered_document(self.normalised)
        return "".join(difflib.unified_diff(
            to_yaml(ordered_document(self.existing)).splitlines(keepends=True),
            to_yaml(ours).splitlines(keepends=True),
            fromfile=f"server: {self.entry.key[0]} version {self.entry.key[1]}", tofile=self.entry.path))


@dataclass
class Plan:
    create: list[RegistryEntry] = field(default_factory=list)
    identical: list[RegistryEntry] = field(default_factory=list)
    conflicts: list[PlanConflict] = field(default_factory=list)
    prune: list[Key] = field(default_factory=list)
    keep: dict[Key, str] = field(default_factory=dict)  # not in the registry, but kept: why

    def as_json(self) -> dict:
        """The plan as the CLI prints it and ``POST /v1/job-templates/sync`` answers it."""
        return {"create": [entry.path for entry in self.create],
                "identical": [entry.path for entry in self.identical],
                "conflicts": [{"path": conflict.entry.path, "reason": conflict.reason, "diff": conflict.diff()}
                              for conflict in self.conflicts],
                "prune": [f"{name}/{version}" for name, version in self.prune],
                "keep": {f"{name}/{version}": why for (name, version), why in sorted(self.keep.items())}}


class RegistryConflicts(Conflict):
    """The registry changes templates the server has (same version, other content): nothing is applied.
    ``plan``: the plan (``Plan.as_json``) with its conflicts."""

    def __init__(self, plan: dict):
        super().__init__(f"{len(plan['conflicts'])} conflict(s): nothing applied (a changed template needs a new "
                         f"version)")
        self.plan = plan
        self.extra = {"plan": plan}


def same_document(registry_document: dict, server_document: dict) -> bool:
    """The cheap check: the file is the server's export form (what ``export`` writes)."""
    return same_json(ordered_document(registry_document), ordered_document(server_document))


def plan_sync(registry: Registry, existing: dict[Key, dict],
              normalise: Callable[[dict], dict] | None = None) -> Plan:
    """What a sync would do, given the server's active templates' documents. ``normalise`` (a document to its
    normalised export form) settles the documents that differ from the server's only in form."""
    plan = Plan()
    for entry in registry.entries:
        server = existing.get(entry.key)
        if server is None:
            plan.create.append(entry)
        elif same_document(entry.document, server):
            plan.identical.append(entry)
        else:
            reason, normalised = "", None
            if normalise is not None:
                try:
                    normalised = normalise(copy.deepcopy(entry.document))
                    if same_document(normalised, server):
                        plan.identical.append(entry)
                        continue
                except InvalidInput as error:
                    reason = error.detail
            plan.conflicts.append(PlanConflict(entry, server, reason, normalised))
    plan.prune = sorted(set(existing) - registry.keys())
    return plan


# An empty directory (a wrong path, a checkout gone wrong) is far likelier than the wish to delete everything.
NOTHING_TO_PRUNE_AGAINST = "the registry holds no templates: --prune would delete every template (refused)"


def registry_templates() -> Select:
    """The active templates a registry manages: not those the revisions of Scale job types are (the v6 API makes
    and keeps them), which a ``--prune`` would otherwise delete and an export write out."""
    return select(JobTemplate).where(JobTemplate.active(),
                                     ~JobTemplate.name.startswith(SCALE_TEMPLATE_PREFIX, autoescape=True))


class RegistrySync:
    """Applies a registry to a database in the caller's transaction (the caller commits or rolls back)."""

    def __init__(self, db: Session):
        self.db = db
        self.service = TemplateService(db, type_registry(db))
        self._active: tuple[dict, dict] | None = None

    def active_templates(self) -> dict[Key, JobTemplate]:
        return {(row.name, row.version): row for row in self.db.scalars(registry_templates())}

    def read(self, directory: str) -> Registry:
        """``read_registry``, the files identical to the server's templates taken as checked (fast re-syncs)."""
        return read_registry(directory, self._loaded()[1])

    def parse(self, files: Mapping[str, str]) -> Registry:
        """``parse_registry`` of files sent over HTTP, with the same shortcut as ``read``."""
        return parse_registry(files, self._loaded()[1])

    def sync(self, registry: Registry, prune: bool = False,
             progress: Callable[[int, int], None] | None = None) -> Plan:
        """Plan, refuse conflicts (``RegistryConflicts``), apply; the caller commits (or rolls back a dry run)."""
        plan = self.plan(registry, prune)
        if plan.conflicts:
            raise RegistryConflicts(plan.as_json())
        self.apply(registry, plan, progress)
        return plan

    def _loaded(self) -> tuple[dict[Key, JobTemplate], dict[Key, dict]]:
        """The active templates and their documents, loaded once per sync."""
        if self._active is None:
            rows = self.active_templates()
            self._active = rows, {key: template_document(row) for key, row in rows.items()}
        return self._active

    def plan(self, registry: Registry, prune: bool = False) -> Plan:
        if prune and not registry.entries:
            raise InvalidInput(NOTHING_TO_PRUNE_AGAINST)
        rows, documents = self._loaded()
        plan = plan_sync(registry, documents, self._normalised)
        if prune:
            self._check_prunable(plan, rows, registry.keys())
        else:
            plan.prune = []
        return plan

    def _normalised(self, document: dict) -> dict:
        normalised = self.service.normalise(document)
        return normalised.document(document["version"])

    def _check_prunable(self, plan: Plan, rows: dict[Key, JobTemplate], wanted: set[Key]) -> None:
        candidates = {key: rows[key] for key in plan.prune}
        ids = [row.id for row in candidates.values()]
        if ids:
            # Locked before their jobs are counted: a create-job under way (it share-locks its template) commits
            # first and its job is counted, or waits for this sync and finds the template deleted. Parents before
            # their children (imported before them: lower ids), as a meta-job's creation locks them.
            self.db.execute(select(JobTemplate.id).where(JobTemplate.id.in_(ids))
                            .order_by(JobTemplate.id.desc()).with_for_update())
        busy = dict(self.db.execute(
            select(Job.template_id, func.count()).where(Job.template_id.in_(ids), Job.active(),
                                                        Job.status.not_in(FINAL_STATUSES))
            .group_by(Job.template_id)).all()) if ids else {}
        for key, row in candidates.items():
            if busy.get(row.id):
                plan.keep[key] = f"{busy[row.id]} active job(s)"
        # A template stays while a template that stays uses it as a child.
        by_id = {row.id: key for key, row in rows.items()}
        links = self.db.execute(select(TemplateChild.template_id, TemplateChild.child_id)).all()
        changed = True
        while changed:
            changed = False
            staying = {rows[key].id for key in rows if key not in candidates or key in plan.keep}
            for parent, child in links:
                key = by_id.get(child)
                if parent in staying and key in candidates and key not in plan.keep:
                    plan.keep[key] = f"a child of {'/'.join(map(str, by_id[parent]))}, which stays"
                    changed = True
        plan.prune = [key for key in plan.prune if key not in plan.keep]

    def apply(self, registry: Registry, plan: Plan, progress: Callable[[int, int], None] | None = None) -> None:
        """Soft-delete what the plan prunes, then create what it creates. Conflicts must have been refused
        before; an import error raises ``RegistryInvalid`` naming the file (the caller rolls back).

        Pruning first: a new meta-template naming a child without a version takes the newest active one, which
        must then be the registry's (as `validate` resolved it), not a newer one this very sync removes."""
        if plan.prune:
            rows = self.active_templates()
            for key in plan.prune:
                rows[key].soft_delete()
            self.db.flush()
        for count, entry in enumerate(plan.create, 1):
            try:
                self.service.import_document(copy.deepcopy(entry.document), None)
            except ServiceError as error:
                raise RegistryInvalid([Problem(entry.path, entry.line(error.detail), error.detail)]) from None
            if progress:
                progress(count, len(plan.create))
        self.db.flush()


def exported_keys(nodes: Mapping[Key, dict], all_versions: bool = False) -> set[Key]:
    """The templates an export writes, of the active ones a registry manages (``nodes``: each one's graph nodes,
    ``{}`` for a workable one): every one, or the latest version of each plus every version a meta-template
    exported uses."""
    if all_versions:
        return set(nodes)
    latest: dict[str, int] = {}
    for name, version in nodes:
        latest[name] = max(version, latest.get(name, 0))
    chosen, stack = set(), list(latest.items())
    while stack:
        key = stack.pop()
        if key in chosen or key not in nodes:
            continue
        chosen.add(key)
        stack.extend((node["name"], node["version"]) for node in nodes[key].values())
    return chosen


def deleted_children(nodes: Mapping[Key, dict], chosen: Iterable[Key], active: set[Key]) -> list[Problem]:
    """A problem for each graph node of an exported meta-template whose child is no active template (it was
    soft-deleted since): a registry holding the meta-template does not validate, one leaving it out has a
    ``sync --prune`` delete it. ``active``: the server's active templates, Scale job types' included."""
    problems = []
    for name, version in sorted(chosen):
        for node_name, node in sorted(nodes[(name, version)].items()):
            if (node["name"], node["version"]) not in active:
                problems.append(Problem(f"{name}/{version}.yaml", None,
                                        f"specific.nodes.{node_name}: its child {node['name']}/{node['version']} "
                                        f"is deleted on the server"))
    return problems


def export_documents(db: Session, all_versions: bool = False) -> tuple[dict[str, str], list[Problem]]:
    """``{relative path: YAML}`` of the active templates (``exported_keys``): a registry that ``sync`` accepts
    unchanged, but for the meta-templates whose children were deleted (``deleted_children``, the second part)."""
    rows = {(row.name, row.version): row for row in db.scalars(registry_templates())}
    nodes = {key: row.spec["nodes"] if row.is_meta else {} for key, row in rows.items()}
    chosen = exported_keys(nodes, all_versions)
    active = set(rows) | {(name, version) for name, version in db.execute(
        select(JobTemplate.name, JobTemplate.version).where(
            JobTemplate.active(), JobTemplate.name.startswith(SCALE_TEMPLATE_PREFIX, autoescape=True)))}
    return ({f"{name}/{version}.yaml": to_yaml(template_document(rows[(name, version)]))
             for name, version in sorted(chosen)}, deleted_children(nodes, chosen, active))


def write_registry(directory: str, files: dict[str, str]) -> tuple[list[str], list[Problem]]:
    """Write the files, each whole or not at all (a temporary file renamed over it): the paths of those that
    changed, and a problem for each that could not be written (the others are written all the same)."""
    os.makedirs(directory, exist_ok=True)  # a file in the way is an error even when nothing is to be written
    written, problems = [], []
    for path, text in files.items():
        full = os.path.join(directory, *path.split("/"))
        try:
            if _write_file(full, text):
                written.append(path)
        except OSError as error:
            problems.append(Problem(path, None, f"cannot write: {error.strerror or error}"))
    return written, problems


def _write_file(full: str, text: str) -> bool:
    """Write ``text`` to ``full`` unless it holds it already; whether it was written."""
    folder = os.path.dirname(full)
    os.makedirs(folder, exist_ok=True)
    mode = 0o666 & ~_umask()  # as open() would make it
    if os.path.isfile(full):  # a regular file (opening a FIFO would block)
        mode = stat.S_IMODE(os.stat(full).st_mode)  # a file replaced keeps its permissions
        with contextlib.suppress(UnicodeDecodeError), open(full, encoding="utf-8") as file:
            if file.read(len(text) + 1) == text:
                return False
    # Hidden, so that a registry read never takes one left by a crash for a template.
    descriptor, temporary = tempfile.mkstemp(prefix=f".{os.path.basename(full)}.", suffix=".tmp", dir=folder)
    try:
        with os.fdopen(descriptor, "w", encoding="utf-8") as file:
            file.write(text)
        os.chmod(temporary, mode)  # mkstemp's are 0600
        os.replace(temporary, full)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise
    return True


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def summary(plan: dict) -> Iterable[str]:
    """One line per template of a plan (``Plan.as_json``)."""
    for path in plan["create"]:
        yield f"create    {path}"
    for path in plan["identical"]:
        yield f"identical {path}"
    for conflict in plan["conflicts"]:
        yield f"CONFLICT  {conflict['path']}" + (f" ({conflict['reason']})" if conflict["reason"] else "")
    for key in plan["prune"]:
        yield f"prune     {key}"
    for key, why in plan["keep"].items():
        yield f"keep      {key} (not in the registry, but {why})"
