"""The list filter of the v1 API: a JSON body turned into one SQL query, with paging.

Body: ``{expressions: [...], order_by: [{field, ascending, nulls_first}], include_inactive, page, page_size}``.
Expressions are ``exact``, ``contains``, ``isnull``, ``compare`` (each may ``invert``) and ``and``/``or`` of
sub-expressions; all top-level expressions must hold. A field is a column name or a dotted path through
many-to-one relationships (``template.name``); a model's ``subtype_fields`` (upstream's sub-record names, such as
a template's ``workabletemplate``) read as its pk when the row is of that kind, else null. Columns marked
``info={"private": True}`` are never reachable; an ``exact`` value for a column marked
``info={"choices": (...)}`` must be one of those.
Every value is checked against its column's type, so bad input is a 400, never a database error.
"""
from collections.abc import Generator, Iterator
from dataclasses import dataclass, field as dataclass_field
from datetime import datetime
from typing import Any

from jsonschema import Draft202012Validator
from sqlalchemy import (BigInteger, Boolean, DateTime, Float, Integer, Numeric, String, Text, and_, case, false, func,
                        not_, or_, select)
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, aliased
from sqlalchemy.orm.interfaces import MANYTOONE
from sqlalchemy.sql import Select

from ..errors import InvalidInput, NotFound
from ..models.meta import UTCDateTime
from .validation import validate

_FIELD = {"type": "string", "minLength": 1, "maxLength": 200}
_INVERT = {"type": "boolean"}
_SCALAR = {"type": ["string", "number", "boolean"]}
# SQLite refuses a LIKE pattern over 50,000 bytes ("pattern too complex", a 500): this many characters of at
# most four UTF-8 bytes each, escaped or not, stay under it.
MAX_SUB_STRING = 10_000

FILTER_SCHEMA = {
    "$defs": {
        "expression": {
            "type": "object",
            "required": ["type"],
            "properties": {"type": {"enum": ["exact", "contains", "isnull", "compare", "and", "or"]}},
            "allOf": [
                {"if": {"properties": {"type": {"const": "exact"}}},
                 "then": {"required": ["field", "value"], "additionalProperties": False,
                          "properties": {"type": True, "field": _FIELD, "value": _SCALAR, "invert": _INVERT,
                                         "case_insensitive": {"type": "boolean"}}}},
                {"if": {"properties": {"type": {"const": "contains"}}},
                 "then": {"required": ["field", "sub_string"], "additionalProperties": False,
                          "properties": {"type": True, "field": _FIELD, "invert": _INVERT,
                                         "sub_string": {"type": "string", "minLength": 1,
                                                        "maxLength": MAX_SUB_STRING},
                                         "case_insensitive": {"type": "boolean"}}}},
                {"if": {"properties": {"type": {"const": "isnull"}}},
                 "then": {"required": ["field"], "additionalProperties": False,
                          "properties": {"type": True, "field": _FIELD, "invert": _INVERT}}},
                {"if": {"properties": {"type": {"const": "compare"}}},
                 "then": {"required": ["field", "operator", "value"], "additionalProperties": False,
                          "properties": {"type": True, "field": _FIELD, "invert": _INVERT,
                                         "operator": {"enum": ["<", ">", "<=", ">="]},
                                         "value": {"type": ["string", "number"]}}}},
                {"if": {"properties": {"type": {"enum": ["and", "or"]}}},
                 "then": {"required": ["sub_expressions"], "additionalProperties": False,
                          "properties": {"type": True, "invert": _INVERT,
                                         "sub_expressions": {"type": "array", "minItems": 1, "maxItems": 100,
                                                             "items": {"$ref": "#/$defs/expression"}}}}},
            ],
        },
    },
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "expressions": {"type": "array", "maxItems": 100, "items": {"$ref": "#/$defs/expression"}},
        "order_by": {"type": "array", "maxItems": 10, "items": {
            "type": "object", "required": ["field"], "additionalProperties": False,
            "properties": {"field": _FIELD, "ascending": {"type": "boolean"},
                           "nulls_first": {"type": ["boolean", "null"]}}}},
        "include_inactive": {"type": "boolean"},
        "page": {"type": "integer", "minimum": 1},
        "page_size": {"type": "integer", "minimum": 1},
    },
}
_VALIDATOR = Draft202012Validator(FILTER_SCHEMA)

_ORDERABLE = (Boolean, Integer, Float, Numeric, DateTime, UTCDateTime, String, Text)
# Past this offset no table has rows: a larger one would overflow the database's integers.
_MAX_OFFSET = 2**62
_OPERATORS = {"<": "__lt__", ">": "__gt__", "<=": "__le__", ">=": "__ge__"}


# Rows are fetched (and answered) this many at a time, so that a long list never holds all its rows as
# objects at once.
LIST_BATCH_SIZE = 500


@dataclass
class ListResult:
    query: Select  # the rows asked for (a page's, or all), in order: `read_rows` or `stream_rows` reads them
    total: int
    page: int | None
    page_size: int | None

    @property
    def last_page(self) -> int:
        return max(1, -(-self.total // self.page_size)) if self.page_size else 1


@dataclass(frozen=True)
class _DerivedColumn:
    """What the checks read of a table column (its type and ``info``), for a field no column holds."""
    type: Any
    info: dict


_SUBTYPE_COLUMN = _DerivedColumn(Integer(), {})


@dataclass
class _Resolver:
    """Turns dotted field names into columns, adding the outer joins the path needs (once per path)."""

    model: type
    # Who lists (an object with ``user_id`` and ``is_admin``): a relation into a table whose rows are not all
    # visible (``visible_condition``, e.g. user-scope templates) joins only the rows the caller may see, so a
    # filter on a job's ``template.description`` cannot read a template hidden from them.
    caller: Any = None
    joins: dict[str, Any] = dataclass_field(default_factory=dict)
    join_order: list = dataclass_field(default_factory=list)

    def column(self, path: str):
        """The attribute to filter on (of the path's alias) and its table column (type, ``info``)."""
        *relations, column_name = path.split(".")
        entity, mapper, prefix = self.model, self.model.__mapper__, ""
        for name in relations:
            prefix = f"{prefix}.{name}" if prefix else name
            relationship = mapper.relationships.get(name)
            if relationship is None or relationship.direction is not MANYTOONE:
                raise InvalidInput(f"Unknown field '{path}': '{name}' is not a relation that can be followed")
            if prefix not in self.joins:
                target_class = relationship.mapper.class_
                target = aliased(target_class)
                self.joins[prefix] = target
                join = getattr(entity, name).of_type(target)
                if hasattr(target_class, "visible_condition") and self.caller is not None:
                    join = join.and_(target_class.visible_condition(self.caller.user_id, self.caller.is_admin,
                                                                    target))
                self.join_order.append(join)
            entity, mapper = self.joins[prefix], relationship.mapper
        subtype = getattr(mapper.class_, "subtype_fields", {}).get(column_name)
        if subtype is not None:
            # The pk when the row is of that kind, else null (see ``JobTemplate.subtype_fields``).
            primary_key = getattr(entity, mapper.get_property_by_column(mapper.primary_key[0]).key)
            return case((entity.kind == subtype, primary_key), else_=None), _SUBTYPE_COLUMN
        key = self._attribute_key(mapper, column_name)
        if key is None:
            raise InvalidInput(f"Unknown field '{path}'")
        return getattr(entity, key), mapper.columns[key]


    @staticmethod
    def _attribute_key(mapper, name: str) -> str | None:
        """The mapped column behind an API field name: ``pk`` is the primary key, and a relation's name
        (``creator``) or an id field's API name (``current_job``) stand for their ``*_id`` column, and a column
        answered under another name (a template's ``type``) is found by that name too."""
        if name == "pk":
            return mapper.get_property_by_column(mapper.primary_key[0]).key
        for key in (name, f"{name}_id"):
            column = mapper.columns.get(key)
            if column is not None and not column.info.get("private"):
                return key
        return next((key for key, column in mapper.columns.items() if column.info.get("api_name") == name), None)


def _check_value(path: str, column_type, value, *, ordering: bool = False):
    """The value converted for comparison with a column of this type; InvalidInput if it cannot be."""
    if isinstance(column_type, Boolean):
        if not isinstance(value, bool) or ordering:
            raise InvalidInput(f"Field '{path}' is a boolean: compare it with exact and true/false")
        return value
    if isinstance(column_type, Integer):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value != int(value):
            raise InvalidInput(f"Field '{path}' is an integer: {value!r} is not one")
        # What the column can hold (ids are 32-bit on PostgreSQL); beyond, the database would refuse the query.
        bound = 2**63 if isinstance(column_type, BigInteger) else 2**31
        if not -bound <= int(value) < bound:
            raise InvalidInput(f"Field '{path}' is an integer: {value!r} is out of its range")
        return int(value)
    if isinstance(column_type, (Float, Numeric)):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise InvalidInput(f"Field '{path}' is a number: {value!r} is not one")
        try:
            return float(value)  # as the column holds it: a driver cannot bind an integer past 64 bits
        except OverflowError:
            raise InvalidInput(f"Field '{path}' is a number: {value!r} is out of its range") from None
    if isinstance(column_type, (DateTime, UTCDateTime)):
        try:
            parsed = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
        except ValueError:
            raise InvalidInput(f"Field '{path}' is a timestamp: {value!r} is not ISO 8601") from None
        if parsed.tzinfo is None:
            raise InvalidInput(f"Field '{path}' is a timestamp: give {value!r} a time zone (e.g. Z)")
        return parsed
    if isinstance(column_type, (String, Text)):
        if not isinstance(value, str):
            raise InvalidInput(f"Field '{path}' is a string: {value!r} is not one")
        return value
    raise InvalidInput(f"Field '{path}' cannot be filtered on")


def _check_choice(path: str, choices, value, case_insensitive: bool) -> None:
    """A column of a fixed set of values (``info={"choices": ...}``) matches nothing else: a typo such as
    ``FINSHED`` is refused rather than answered with an empty list."""
    if choices is None:
        return
    fold = str.lower if case_insensitive else str
    if fold(value) not in map(fold, choices):
        raise InvalidInput(f"Field '{path}' is one of {', '.join(choices)}: {value!r} is not one")


def _condition(resolver: _Resolver, expression: dict):
    kind = expression["type"]
    if kind in ("and", "or"):
        parts = [_condition(resolver, sub) for sub in expression["sub_expressions"]]
        condition = and_(*parts) if kind == "and" else or_(*parts)
    else:
        path = expression["field"]
        column, table_column = resolver.column(path)
        column_type = table_column.type
        if kind == "isnull":
            condition = column.is_(None)
        elif kind == "contains":
            if not isinstance(column_type, (String, Text)):
                raise InvalidInput(f"Field '{path}' is not text: 'contains' needs a text field")
            if expression.get("case_insensitive"):
                condition = func.lower(column).contains(expression["sub_string"].lower(), autoescape=True)
            else:
                condition = column.contains(expression["sub_string"], autoescape=True)
        elif kind == "exact":
            value = _check_value(path, column_type, expression["value"])
            _check_choice(path, table_column.info.get("choices"), value, expression.get("case_insensitive"))
            if expression.get("case_insensitive") and isinstance(value, str):
                condition = func.lower(column) == value.lower()
            else:
                condition = column == value
        else:  # compare
            value = _check_value(path, column_type, expression["value"], ordering=True)
            condition = getattr(column, _OPERATORS[expression["operator"]])(value)
    if not expression.get("invert"):
        return condition
    # NOT over a NULL comparison is NULL, which would drop the row: an inverted filter keeps every row the
    # filter does not match, as upstream's exclude() does.
    return not_(func.coalesce(condition, false()))


def parse_paging(body: dict, query_params, max_page_size: int) -> tuple[int | None, int | None]:
    """Paging from the body, or from ?page=&page_size= (so that a Link header can carry it)."""
    values = {}
    for name in ("page", "page_size"):
        value = body.get(name)
        if name in query_params:
            text = query_params[name]
            if not (text.isascii() and text.isdigit()):
                raise InvalidInput(f"{name} must be a positive integer")
            digits = text.lstrip("0") or "0"
            value = int(digits) if len(digits) <= 18 else 10**18  # beyond any table (int() refuses 4,300 digits)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
            raise InvalidInput(f"{name} must be a positive integer")
        values[name] = value
    page, page_size = values["page"], values["page_size"]
    if page is not None and page_size is None:
        page_size = min(100, max_page_size)
    if page_size is not None:
        if page_size > max_page_size:
            raise InvalidInput(f"page_size must be at most {max_page_size}")
        page = page or 1
    return page, page_size


def run_list(db: Session, query: Select, model: type, body: dict | None, *, page: int | None = None,
             page_size: int | None = None, default_order=None, caller=None) -> ListResult:
    """Apply a filter body to a base query and return the rows of the asked-for page (``caller``: see
    `_Resolver`)."""
    body = body or {}
    validate(_VALIDATOR, body)
    resolver = _Resolver(model, caller)
    conditions = [_condition(resolver, expression) for expression in body.get("expressions", [])]
    orderings = []
    for order in body.get("order_by", []):
        column, table_column = resolver.column(order["field"])
        if not isinstance(table_column.type, _ORDERABLE):
            raise InvalidInput(f"Field '{order['field']}' cannot be ordered by")
        ascending = order.get("ascending", True)
        ordering = column.asc() if ascending else column.desc()
        # Not given, nulls sort as PostgreSQL (upstream's database) sorts them, above every value, on SQLite too
        # (which sorts them below): one order whatever the database.
        nulls_first = order.get("nulls_first")
        nulls_first = not ascending if nulls_first is None else nulls_first
        orderings.append(ordering.nulls_first() if nulls_first else ordering.nulls_last())
    # A final order on the primary key keeps pages stable when the asked-for order has ties.
    orderings.extend(default_order if default_order is not None else model.__mapper__.primary_key)

    if not body.get("include_inactive") and hasattr(model, "deletion_time"):
        conditions.append(model.deletion_time.is_(None))
    for join in resolver.join_order:
        query = query.outerjoin(join)
    query = query.where(*conditions)

    total = db.scalar(select(func.count()).select_from(query.order_by(None).subquery()))
    query = query.order_by(*orderings)
    if page_size is not None:
        query = query.limit(page_size).offset(min((page - 1) * page_size, _MAX_OFFSET))
        if page > 1 and (page - 1) * page_size >= total:  # as upstream: only page 1 may be empty
            raise NotFound("Invalid page.")
    return ListResult(query=query, total=total, page=page, page_size=page_size)


def read_rows(db: Session, query: Select) -> Iterator:
    """The query's rows, fetched LIST_BATCH_SIZE at a time (so no eager load of a collection may join: each
    row comes once)."""
    return db.scalars(query.execution_options(yield_per=LIST_BATCH_SIZE))


def stream_rows(engine: Engine, query: Select) -> Generator:
    """`read_rows` in a transaction of their own (it only reads), for an answer sent while its rows are read,
    after the request's transaction has ended. A plain session: one of the request's factory would join the
    thread's transaction manager, which nobody would end. Closing the generator (the answer was sent or
    abandoned) ends the transaction."""
    with Session(engine) as db, db.begin():
        yield from read_rows(db, query)
