"""Checking JSON bodies against JSON schemas, with every problem named in one 400 message, and for text that
no database column can store."""
import re

from jsonschema import Draft202012Validator

from ..errors import InvalidInput


# A value is quoted in a message up to this many characters: jsonschema quotes it whole, and a description one
# character past its limit came back in a 100 kB message. What else a message quotes (an unknown field's name)
# is cut with the message, past _SHOWN_MESSAGE.
_SHOWN_CHARS = 100
_SHOWN_MESSAGE = 400


def shown(value) -> str:
    """``repr(value)``, cut after _SHOWN_CHARS characters: how an error message quotes what it refuses."""
    quoted = repr(value)
    return quoted if len(quoted) <= _SHOWN_CHARS else quoted[:_SHOWN_CHARS] + "..."


def _message(error) -> str:
    quoted, shown_here = repr(error.instance), shown(error.instance)
    # A pattern's error quoted the regular expression; a schema's "description" says what it wants instead.
    if error.validator == "pattern" and isinstance(error.schema, dict) and "description" in error.schema:
        message = f"{shown_here} must be {error.schema['description']}"
    else:
        message = error.message.replace(quoted, shown_here, 1)
    return message if len(message) <= _SHOWN_MESSAGE else message[:_SHOWN_MESSAGE] + "..."


def _where(error, name: str, prefix: str) -> str:
    path = "".join(f"[{part}]" if isinstance(part, int) else f".{part}" for part in error.absolute_path)
    return name if not path else prefix + path if prefix else path.lstrip(".")


def validate(validator: Draft202012Validator, instance, *, name: str = "body", prefix: str = "") -> None:
    """Every problem of ``instance`` in one 400, each named by its place: ``name`` for the instance itself,
    its fields by their path (after ``prefix``, for an instance nested in a document)."""
    errors = sorted(validator.iter_errors(instance), key=lambda error: list(map(str, error.absolute_path)))
    if errors:
        raise InvalidInput("; ".join(f"{_where(error, name, prefix)}: {_message(error)}" for error in errors[:20]))


def compile_schema(schema: dict) -> Draft202012Validator:
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema)


# NUL (PostgreSQL stores none in text or JSON) and the halves of surrogate pairs, which JSON's \uD800 escapes
# and YAML's can produce alone, but which no UTF-8 text holds: either would fail in the database as a 500.
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")
# Python reads and writes an int as decimal text up to this many digits (sys.int_info.default_max_str_digits): a
# longer one could not be stored as JSON.
MAX_INT_DIGITS = 4300
UNSTORABLE = "a string holds a character that cannot be stored (NUL, or half of a surrogate pair)"


def unstorable(text: str) -> bool:
    return _UNSTORABLE.search(text) is not None


def holds_unstorable(value) -> bool:
    """Whether one of a JSON value's strings or keys holds a character that cannot be stored."""
    if isinstance(value, str):
        return unstorable(value)
    if isinstance(value, list):
        return any(map(holds_unstorable, value))
    if isinstance(value, dict):
        return any(unstorable(key) or holds_unstorable(item) for key, item in value.items())
    return False
