"""Create, update and delete for one model at a time; each model's service adds its own schema and checks."""
from typing import Any, ClassVar

from jsonschema import Draft202012Validator
from sqlalchemy import exists, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from ..errors import Conflict, NotFound
from ..models import User
from .validation import compile_schema, validate


def partial_schema(schema: dict) -> dict:
    """The same schema with nothing required (PATCH). An empty body changes nothing and answers the record
    (the seeds make every field optional, and DRF answers it so)."""
    return {**schema, "required": []}


def whole_integers(schema: dict, data: dict) -> dict:
    """The body with its integer fields written ``1.0`` made the integers they are: JSON Schema takes 1.0 for an
    integer, and the row then answered 1.0 where it stored 1."""
    for name, spec in schema.get("properties", {}).items():
        types = spec.get("type")
        value = data.get(name)
        if "integer" in (types if isinstance(types, list) else [types]) and isinstance(value, float):
            data = {**data, name: int(value)}  # validated: a whole number
    return data


def _column_default(column) -> Any:
    default = column.default
    return default.arg if default is not None and default.is_scalar else None


class RecordService:
    model: ClassVar[type]
    # JSON schema of a full body (create and PUT); PATCH uses it with nothing required.
    schema: ClassVar[dict]
    # Groups of columns that must be unique together, checked before writing so that the 409 names them.
    unique_together: ClassVar[tuple[tuple[str, ...], ...]] = ()

    _validators: ClassVar[dict[type, tuple[Draft202012Validator, Draft202012Validator]]] = {}

    def __init__(self, db: Session):
        self.db = db

    def _validator(self, partial: bool) -> Draft202012Validator:
        cls = type(self)
        if cls not in RecordService._validators:
            RecordService._validators[cls] = (compile_schema(cls.schema), compile_schema(partial_schema(cls.schema)))
        return RecordService._validators[cls][partial]

    def check(self, data: dict[str, Any], row=None) -> dict[str, Any]:
        """Model-specific checks; returns the values to store (possibly normalised)."""
        return data

    def create(self, data: Any, user: User | None):
        validate(self._validator(False), data)
        values = self.check(whole_integers(self.schema, data))
        self._check_unique(values)
        row = self.new_row(values, user)
        self.db.add(row)
        self._flush()
        return row

    def new_row(self, values: dict[str, Any], user: User | None):
        row = self.model(**values)
        if hasattr(self.model, "creator_id") and user is not None:
            row.creator_id = user.id
        return row

    def update(self, row, data: Any, *, partial: bool):
        validate(self._validator(partial), data)
        if not partial:  # PUT replaces the record: what it leaves out is reset, as create would set it
            data = {**self._optional_defaults(), **data}
        values = self.check(whole_integers(self.schema, data), row)
        self._check_unique(values, row)
        for name, value in values.items():
            setattr(row, name, value)
        self._flush()
        return row

    def _optional_defaults(self) -> dict[str, Any]:
        """The fields a body may leave out, at what create gives them: the column's default, else null. Fields
        no body sets (pk, owner, last_seen, ...) are not in the schema: they are not the client's to reset."""
        columns = self.model.__table__.columns
        return {name: _column_default(columns[name]) for name in self.schema.get("properties", {})
                if name not in self.schema.get("required", ())}

    def destroy(self, row):
        """Soft-delete where the model supports it, otherwise delete for good."""
        if hasattr(row, "soft_delete"):
            row.soft_delete()
            self._flush()
            return row
        return self.hard_delete(row)

    def reinstate(self, row):
        row.reinstate()
        self._flush()
        return row

    def hard_delete(self, row):
        # Locked first (PostgreSQL): of two deletions at once the second waits for the first, then finds nothing.
        if self.db.scalar(select(self.model.id).where(self.model.id == row.id).with_for_update()) is None:
            raise NotFound("Not found.")
        self.check_unreferenced(row)
        self.db.delete(row)
        self._flush("it is still referenced")
        return row

    def check_unreferenced(self, row) -> None:
        """Raise Conflict when other rows still need this one."""

    def _check_unique(self, values: dict, row=None) -> None:
        for names in self.unique_together:
            if not any(name in values for name in names):
                continue
            wanted = {name: values[name] if name in values else getattr(row, name) for name in names}
            query = select(self.model.id).where(*(getattr(self.model, n) == v for n, v in wanted.items()))
            if row is not None:
                query = query.where(self.model.id != row.id)
            if self.db.scalar(select(exists(query))):
                described = " and ".join(f"{name} {value!r}" for name, value in wanted.items())
                raise Conflict(f"A {self.model.__tablename__[:-1].replace('_', ' ')} with {described} "
                               "already exists")

    def _flush(self, reason: str = "it conflicts with an existing record") -> None:
        # The unique checks above give the friendly message; this catches a concurrent writer.
        try:
            self.db.flush()
        except IntegrityError:
            raise Conflict(f"The change was refused because {reason}") from None
