"""JSON values and binary data: scalars, containers, and BLOB."""
from ufdl_pyramid.types import ANY_BOUND, Literal, TypeInstance, TypeParameter, UFDLType

Args = tuple[TypeInstance | Literal, ...]

# Binary data is not a JSON value: it travels as raw upload/download bodies. When it must appear inside JSON
# it is base64 text, which is what this schema describes (contentEncoding is an annotation, not checked).
_BINARY = {"type": "string", "contentEncoding": "base64"}


def _schema_of(args: Args, index: int) -> dict:
    """The value schema of type argument ``index``, or "anything" when it was left out."""
    return args[index].json_schema() if len(args) > index else {}


class String(UFDLType):
    name = "str"
    description = "A string."

    @classmethod
    def json_schema(cls, args):
        return {"type": "string"}


class Float(UFDLType):
    name = "float"
    description = "A number."

    @classmethod
    def json_schema(cls, args):
        return {"type": "number"}


class Integer(Float):
    """A subclass of Float because every integer is a number: int ≤ float."""

    name = "int"
    description = "An integer."

    @classmethod
    def json_schema(cls, args):
        return {"type": "integer"}


class Boolean(UFDLType):
    name = "bool"
    description = "True or false."

    @classmethod
    def json_schema(cls, args):
        return {"type": "boolean"}


class JSON(UFDLType):
    """Any JSON value. Not a supertype of the other types: Array<BLOB>, say, is not JSON."""

    name = "JSON"
    description = "Any JSON value."


class Nothing(UFDLType):
    name = "Nothing"
    description = "No value (null)."

    @classmethod
    def json_schema(cls, args):
        return {"type": "null"}


class BLOB(UFDLType):
    name = "BLOB"
    description = "Binary data; base64 text when it has to appear inside JSON."

    @classmethod
    def json_schema(cls, args):
        return dict(_BINARY)


class Array(UFDLType):
    name = "Array"
    parameters = (TypeParameter("T", ANY_BOUND),)
    description = "A list of values of type T."

    @classmethod
    def json_schema(cls, args):
        return {"type": "array", "items": _schema_of(args, 0)}


class Map(UFDLType):
    name = "Map"
    parameters = (TypeParameter("K", "str"), TypeParameter("V", ANY_BOUND))
    description = "An object whose keys have type K (a str type) and whose values have type V."

    @classmethod
    def json_schema(cls, args):
        schema = {"type": "object", "additionalProperties": _schema_of(args, 1)}
        if args:
            schema["propertyNames"] = args[0].json_schema()
        return schema
