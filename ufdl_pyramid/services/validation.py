"""Checking JSON bodies against JSON schemas, with every problem named in one 400 message."""
from jsonschema import Draft202012Validator

from ..errors import InvalidInput


def _where(error) -> str:
    path = "".join(f"[{part}]" if isinstance(part, int) else f".{part}" for part in error.absolute_path)
    return path.lstrip(".") or "body"


def validate(validator: Draft202012Validator, instance) -> None:
    errors = sorted(validator.iter_errors(instance), key=lambda error: list(map(str, error.absolute_path)))
    if errors:
        raise InvalidInput("; ".join(f"{_where(error)}: {error.message}" for error in errors[:20]))


def compile_schema(schema: dict) -> Draft202012Validator:
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema)
