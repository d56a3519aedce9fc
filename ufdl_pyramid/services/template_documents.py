"""The import/export document of a job template, and its JSON and YAML forms.

The document is upstream's: ``name, version, description, scope, domain, licence, specific``, where
``specific`` is a workable spec (``job_type, executor_class, required_packages, parameters``) or a meta graph
(``nodes, dependencies``). YAML is written for people reviewing diffs: keys in a fixed order, block style,
multi-line text as literal blocks, no tags or anchors; it is read with the safe loader only.
"""
import json
import math

import yaml

from ..errors import InvalidInput
from .validation import MAX_INT_DIGITS, UNSTORABLE, compile_schema, unstorable, validate

# The patterns are anchored with \A and \Z: "$" matches before a final newline too, and a graph node "first\n"
# named its job's outputs "first\n:output", a newline in a header when downloaded.
# Not starting with a dot: the name is a folder of the registry (hidden, or '.' and '..', it would not be).
_NAME = {"type": "string", "minLength": 1, "maxLength": 200, "pattern": r"\A[A-Za-z0-9_][A-Za-z0-9_.\-]*\Z",
         "description": "letters, digits, '_', '.' and '-', not starting with '.' or '-'"}
_IDENTIFIER = {"type": "string", "minLength": 1, "maxLength": 200, "pattern": r"\A[A-Za-z_][A-Za-z0-9_]*\Z",
               "description": "an identifier: letters, digits and '_', not starting with a digit"}
# An inner meta-template's inputs and outputs are its steps', named ``step:name`` (nested: ``a:b:name``).
_PORT = {"type": "string", "minLength": 1, "maxLength": 1000,
         "pattern": r"\A[A-Za-z_][A-Za-z0-9_]*(:[A-Za-z_][A-Za-z0-9_]*)*\Z",
         "description": "an input or output name: an identifier, or for an inner graph's 'step:name'"}
_TYPE = {"type": "string", "minLength": 1, "maxLength": 1000}
MAX_VERSION = 2**31 - 1  # what PostgreSQL's INTEGER holds
_VERSION = {"type": "integer", "minimum": 1, "maximum": MAX_VERSION}
_VALUE_AND_TYPE = {"type": "object", "additionalProperties": False, "required": ["value", "type"],
                   "properties": {"value": True, "type": _TYPE}}

PARAMETER_SCHEMA = {
    "type": "object",
    "additionalProperties": False,
    "required": ["types", "help"],
    "properties": {
        "types": {"type": "array", "minItems": 1, "maxItems": 20, "items": _TYPE},
        "help": {"type": "string", "maxLength": 10000},
        "default": True,
        "default_type": _TYPE,
        "const": {"type": "boolean"},
    },
}

WORKABLE_SCHEMA = {
    "type": "object",
    "additionalProperties": False,
    "required": ["job_type", "executor_class", "required_packages", "parameters"],
    "properties": {
        "job_type": {"type": "string", "minLength": 1, "maxLength": 1000},
        "executor_class": {"type": "string", "minLength": 1, "maxLength": 200,
                           "pattern": r"\A[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*\Z",
                           "description": "a dotted Python name (module.ClassName)"},
        "required_packages": {"type": "string", "maxLength": 10000},
        "parameters": {"type": "object", "maxProperties": 200, "propertyNames": _IDENTIFIER,
                       "additionalProperties": PARAMETER_SCHEMA},
    },
}

META_SCHEMA = {
    "type": "object",
    "additionalProperties": False,
    "required": ["nodes", "dependencies"],
    "properties": {
        "nodes": {"type": "object", "minProperties": 1, "maxProperties": 100, "propertyNames": _IDENTIFIER,
                  "additionalProperties": {
                      "type": "object", "additionalProperties": False, "required": ["name"],
                      "properties": {"name": _NAME, "version": _VERSION,
                                     "parameter_default_overrides": {
                                         "type": "object", "additionalProperties": _VALUE_AND_TYPE}}}},
        "dependencies": {"type": "array", "maxItems": 1000, "items": {
            "type": "object", "additionalProperties": False,
            "required": ["from_node", "from_output", "to_node", "to_input"],
            "properties": {"from_node": _IDENTIFIER, "from_output": _PORT, "to_node": _IDENTIFIER,
                           "to_input": _PORT}}},
    },
}

DOCUMENT_SCHEMA = {
    "type": "object",
    "additionalProperties": False,
    "required": ["name", "scope", "licence", "specific"],
    "properties": {
        "name": _NAME,
        "version": _VERSION,
        "description": {"type": "string", "maxLength": 100000},
        "scope": {"enum": ["public", "project", "user"]},
        "licence": {"type": "string", "minLength": 1, "maxLength": 100},
        "domain": {"type": ["string", "null"], "minLength": 2, "maxLength": 2},
        "specific": {"type": "object"},
    },
}

_DOCUMENT = compile_schema(DOCUMENT_SCHEMA)
_WORKABLE = compile_schema(WORKABLE_SCHEMA)
_META = compile_schema(META_SCHEMA)

DOCUMENT_KEYS = ("name", "version", "description", "scope", "domain", "licence", "specific")
WORKABLE_KEYS = ("job_type", "executor_class", "required_packages", "parameters")
PARAMETER_KEYS = ("types", "help", "default", "default_type", "const")
META_KEYS = ("nodes", "dependencies")
NODE_KEYS = ("name", "version", "parameter_default_overrides")
DEPENDENCY_KEYS = ("from_node", "from_output", "to_node", "to_input")


def is_meta(specific: dict) -> bool:
    return "nodes" in specific or "dependencies" in specific


def whole_versions(document) -> None:
    """A version written ``1.0`` (the document's, a node's) made the integer it is, in place: JSON Schema takes
    1.0 for an integer, and the template was then version 1.0 (in a registry, ``version: 2.0`` in ``1.yaml`` did
    not disagree with its file name)."""
    if not isinstance(document, dict):
        return
    specific = document.get("specific")
    nodes = specific.get("nodes") if isinstance(specific, dict) else None
    for holder in [document, *(nodes.values() if isinstance(nodes, dict) else ())]:
        version = holder.get("version") if isinstance(holder, dict) else None
        if isinstance(version, float) and version.is_integer():
            holder["version"] = int(version)


def check_document(document, name: str = "body") -> None:
    """Structure only (types, names, graph checks come after); every problem named with its field (problems of
    the document as a whole with ``name``). Versions written ``1.0`` become ``1`` (`whole_versions`)."""
    whole_versions(document)
    validate(_DOCUMENT, document, name=name)
    specific = document["specific"]
    validate(_META if is_meta(specific) else _WORKABLE, specific, name="specific", prefix="specific")


def _ordered(mapping: dict, keys: tuple[str, ...]) -> dict:
    return {key: mapping[key] for key in keys if key in mapping}


def ordered_document(document: dict) -> dict:
    """The document with its keys in the fixed order (used for JSON and YAML alike)."""
    ordered = _ordered(document, DOCUMENT_KEYS)
    specific = document["specific"]
    if is_meta(specific):
        ordered["specific"] = {
            "nodes": {name: _ordered(node, NODE_KEYS) for name, node in specific["nodes"].items()},
            "dependencies": [_ordered(dependency, DEPENDENCY_KEYS) for dependency in specific["dependencies"]],
        }
    else:
        ordered["specific"] = {**_ordered(specific, WORKABLE_KEYS), "parameters": {
            name: _ordered(parameter, PARAMETER_KEYS) for name, parameter in specific["parameters"].items()}}
    return ordered


class _ReviewDumper(yaml.SafeDumper):
    """Block style, literal blocks for multi-line strings, and no anchors/aliases for repeated values."""

    def ignore_aliases(self, data):
        return True


def _represent_str(dumper, value: str):
    # Quoted with escapes where a plain or block scalar would not read back the same: YAML folds its other
    # line breaks (CR, NEL, LS, PS) into spaces or newlines.
    style = '"' if any(character in value for character in "\r\x85\u2028\u2029") else "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_ReviewDumper.add_representer(str, _represent_str)


def to_yaml(document: dict) -> str:
    return yaml.dump(ordered_document(document), Dumper=_ReviewDumper, sort_keys=False, default_flow_style=False,
                     allow_unicode=True, width=120)


def to_json(document: dict) -> str:
    return json.dumps(ordered_document(document), indent=2, ensure_ascii=False) + "\n"


MAX_NESTING = 100  # levels of lists and mappings in a document: far past any template, short of any stack
MAX_NODES = 200_000  # values in a document once its aliases are expanded: a "billion laughs" stops here
_TOO_MANY_DIGITS = 10 ** MAX_INT_DIGITS  # a YAML int in hexadecimal (or 1:2:3, base 60) can be that large


def check_nesting(text: str | bytes, source: str = "body") -> None:
    """Refuse flow-style nesting deeper than `MAX_NESTING` before a parser recurses into it (libyaml's C loader
    crashes the process on a hundred thousand ``[``; Python's raises RecursionError).

    Counting brackets is quick but counts those in strings and comments too (a description of 200 ``[`` is no
    nesting): past the limit, the parser's events tell the nesting for sure. Both parsers are loops, not
    recursions; the composers, which build the nodes, are what recurses."""
    depth = deepest = 0
    for character in text.decode("utf-8", "replace") if isinstance(text, bytes) else text:
        if character in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif character in "]}":
            depth = max(0, depth - 1)
    if deepest <= MAX_NESTING:
        return
    depth = 0
    try:
        for event in yaml.parse(text, Loader=getattr(yaml, "CBaseLoader", yaml.BaseLoader)):
            if isinstance(event, yaml.CollectionStartEvent):
                depth += 1
                if depth > MAX_NESTING:
                    raise InvalidInput(f"Invalid YAML ({source}): nested more than {MAX_NESTING} levels deep")
            elif isinstance(event, yaml.CollectionEndEvent):
                depth -= 1
    except yaml.YAMLError:
        return  # not YAML: the loader says where, having nested no deeper than the events before


def json_compatible(value, source: str = "body", language: str = "YAML"):
    """A YAML document as the JSON it will be stored as, or InvalidInput: only strings as keys, only JSON's
    values (not dates, sets or bytes; no NaN; integers of at most `MAX_INT_DIGITS`), at most `MAX_NESTING`
    levels of lists and mappings and `MAX_NODES` values, which also ends a self-referencing alias or an alias
    bomb. Stored and compared as JSON, a document then reads back the same (``{1: a}`` would come back as
    ``{"1": "a"}``). A JSON document (``language``) is held to the same limits."""
    budget = [MAX_NODES]
    invalid = f"Invalid {language} ({source})"
    aliases = language == "YAML"

    def convert(item, depth: int):
        budget[0] -= 1
        if budget[0] < 0:
            raise InvalidInput(f"{invalid}: more than {MAX_NODES} values"
                               + (" once its aliases are expanded" if aliases else ""))
        if depth >= MAX_NESTING and isinstance(item, (list, dict)):
            raise InvalidInput(f"{invalid}: nested more than {MAX_NESTING} levels deep"
                               + (" (or an alias that contains itself)" if aliases else ""))
        if isinstance(item, str) and unstorable(item):
            raise InvalidInput(f"{invalid}: {UNSTORABLE}")
        if isinstance(item, int) and not isinstance(item, bool) and abs(item) >= _TOO_MANY_DIGITS:
            raise InvalidInput(f"{invalid}: an integer of more than {MAX_INT_DIGITS} digits")
        if item is None or isinstance(item, (str, bool, int)):
            return item
        if isinstance(item, float):
            if not math.isfinite(item):
                raise InvalidInput(f"{invalid}: {item} is not a JSON number")
            return item
        if isinstance(item, list):
            return [convert(element, depth + 1) for element in item]
        if isinstance(item, dict):
            for key in item:
                if not isinstance(key, str):
                    raise InvalidInput(f"{invalid}: the key {key!r} is not a string")
                if unstorable(key):
                    raise InvalidInput(f"{invalid}: {UNSTORABLE}")
            return {key: convert(element, depth + 1) for key, element in item.items()}
        raise InvalidInput(f"{invalid}: a {type(item).__name__} is not a JSON value")

    return convert(value, 0)


def same_json(first, second) -> bool:
    """Equal as JSON: Python's ``True == 1`` (and ``1 == 1.0``) would take a changed value for the same."""
    return json.dumps(first, sort_keys=True) == json.dumps(second, sort_keys=True)


class UniqueKeys:
    """A loader mixin that refuses a key given twice in one mapping. PyYAML keeps the last value: a registry file
    with a leftover of a merge, ``version: 1`` then ``version: 2``, was read as version 2 without a word (a
    merge key's values, ``<<: *defaults``, may still be overridden)."""

    def construct_mapping(self, node, deep=False):
        if isinstance(node, yaml.MappingNode):
            seen = set()
            for key_node, _value in node.value:
                if not isinstance(key_node, yaml.ScalarNode) or key_node.tag == "tag:yaml.org,2002:merge":
                    continue
                if (key_node.tag, key_node.value) in seen:
                    raise yaml.constructor.ConstructorError(
                        "while constructing a mapping", node.start_mark,
                        f"found the key {key_node.value!r} twice", key_node.start_mark)
                seen.add((key_node.tag, key_node.value))
        return super().construct_mapping(node, deep)


class FittingTags:
    """A loader mixin: a value its explicit tag does not fit (``!!int x``, ``!!timestamp 12``) is a
    ConstructorError at its line, not the ValueError (IndexError, KeyError...) PyYAML's constructor raises."""

    def construct_object(self, node, deep=False):
        if node.tag == "tag:yaml.org,2002:int" and len(node.value) > MAX_INT_DIGITS:  # int() would refuse it
            raise yaml.constructor.ConstructorError(None, None, f"an integer of more than {MAX_INT_DIGITS} digits",
                                                    node.start_mark)
        try:
            return super().construct_object(node, deep)
        except yaml.YAMLError:
            raise
        except (ValueError, TypeError, LookupError, AttributeError) as error:
            value = node.value if isinstance(node, yaml.ScalarNode) else "a collection"
            value = f"{value[:40]}..." if len(value) > 40 else value
            tag = node.tag.replace("tag:yaml.org,2002:", "!!")
            raise yaml.constructor.ConstructorError(None, None, f"{value!r} is not a valid {tag}",
                                                    node.start_mark) from error


class BoundedNesting:
    """A loader mixin: lists and mappings at most `MAX_NESTING` levels deep, refused at the line of the first one
    deeper. PyYAML's composer recurses once per level, of indentation as of brackets (`check_nesting` only sees
    brackets): 5,000 levels of ``- `` were a RecursionError. (libyaml's composer is C, and stops at 1,000.)"""

    _levels = 0

    def _deeper(self, compose, anchor):
        if self._levels >= MAX_NESTING:
            raise yaml.composer.ComposerError(None, None, f"nested more than {MAX_NESTING} levels deep",
                                              self.peek_event().start_mark)
        self._levels += 1
        try:
            return compose(anchor)
        finally:
            self._levels -= 1

    def compose_sequence_node(self, anchor):
        return self._deeper(super().compose_sequence_node, anchor)

    def compose_mapping_node(self, anchor):
        return self._deeper(super().compose_mapping_node, anchor)


# libyaml's loader when there is one, as the templates registry reads its files: PyYAML's own scanner refuses a tab
# that YAML allows between tokens (``key:<tab>value``), so an import refused what validate and sync accepted.
class UniqueKeysLoader(BoundedNesting, FittingTags, UniqueKeys, getattr(yaml, "CSafeLoader", yaml.SafeLoader)):
    pass


def parse_yaml(text: str | bytes, source: str = "body"):
    """YAML with the safe loader, as JSON values (`json_compatible`); errors name the line (and refuse tags
    such as ``!!python/object``, and a key given twice)."""
    check_nesting(text, source)
    try:
        return json_compatible(yaml.load(text, Loader=UniqueKeysLoader), source)
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark
        where = f"{source}, line {mark.line + 1}, column {mark.column + 1}" if mark else source
        raise InvalidInput(f"Invalid YAML ({where}): {error.problem or error}") from None
    except yaml.YAMLError as error:
        raise InvalidInput(f"Invalid YAML ({source}): {error}") from None
