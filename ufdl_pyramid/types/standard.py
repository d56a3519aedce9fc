"""The standard types every UFDL server knows: JSON scalars and containers, server-resident records, and the
standard contracts."""
from .contracts import Contract, ContractSlot
from .model import ANY_BOUND, LITERAL_STR, TypeInstance, TypeParameter, UFDLType
from .registry import TypeRegistry
from .syntax import Literal

Args = tuple[TypeInstance | Literal, ...]

_PRIMARY_KEY = {"type": "integer", "minimum": 1}
# Binary data is not a JSON value: it travels as raw upload/download bodies. When it must appear inside JSON
# it is base64 text, which is what this schema describes (contentEncoding is an annotation, not checked).
_BINARY = {"type": "string", "contentEncoding": "base64"}


def _schema_of(args: Args, index: int) -> dict:
    """The value schema of type argument ``index``, or "anything" when it was left out."""
    return args[index].json_schema() if len(args) > index else {}


def _string_const(args: Args, index: int) -> dict:
    schema = {"type": "string"}
    if len(args) > index:
        schema["const"] = args[index].value
    return schema


def _require_server_resident(args: Args, what: str) -> None:
    if args and not args[0].cls.server_resident:
        raise ValueError(f"{args[0]} is not kept on the server, so it has no {what}")


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


class PK(UFDLType):
    name = "PK"
    parameters = (TypeParameter("T", ANY_BOUND),)
    description = "The primary key of a server-resident value of type T."

    @classmethod
    def json_schema(cls, args):
        return dict(_PRIMARY_KEY)

    @classmethod
    def check_args(cls, args):
        _require_server_resident(args, "primary key")


class Name(UFDLType):
    name = "Name"
    parameters = (TypeParameter("T", ANY_BOUND),)
    description = "The name of a server-resident value of type T."

    @classmethod
    def json_schema(cls, args):
        return {"type": "string", "minLength": 1}

    @classmethod
    def check_args(cls, args):
        _require_server_resident(args, "name")


class Domain(UFDLType):
    """Values are domain codes such as 'ic'; the argument, when given, pins the value to that one code."""

    name = "Domain"
    parameters = (TypeParameter("name", LITERAL_STR),)
    server_resident = True
    description = "A data domain, such as image classification."

    @classmethod
    def json_schema(cls, args):
        return _string_const(args, 0)


class Framework(UFDLType):
    name = "Framework"
    parameters = (TypeParameter("name", LITERAL_STR), TypeParameter("version", LITERAL_STR))
    server_resident = True
    description = "A machine-learning framework at one version."

    @classmethod
    def json_schema(cls, args):
        return {"type": "object",
                "properties": {"name": _string_const(args, 0), "version": _string_const(args, 1)},
                "required": ["name", "version"],
                "additionalProperties": False}


class Licence(UFDLType):
    name = "Licence"
    server_resident = True
    description = "A data licence, referred to by its primary key."

    @classmethod
    def json_schema(cls, args):
        return dict(_PRIMARY_KEY)


class Model(BLOB):
    """A subclass of BLOB: a trained model is binary data (the framework's own file format)."""

    name = "Model"
    parameters = (TypeParameter("D", "Domain"), TypeParameter("F", "Framework"))
    description = "A model for domain D trained with framework F."


class Dataset(UFDLType):
    """Server-resident: datasets are rows on the server, so PK<Dataset<D>> is valid and the server lists them."""

    name = "Dataset"
    parameters = (TypeParameter("D", "Domain"),)
    server_resident = True
    description = "A dataset of domain D, referred to by its primary key."

    @classmethod
    def json_schema(cls, args):
        return dict(_PRIMARY_KEY)


class JobOutput(UFDLType):
    name = "JobOutput"
    parameters = (TypeParameter("T", ANY_BOUND),)
    server_resident = True
    description = "An output of type T of a finished job, referred to by its primary key."

    @classmethod
    def json_schema(cls, args):
        return dict(_PRIMARY_KEY)


class Train(Contract):
    name = "Train"
    parameters = (TypeParameter("D", "Domain"), TypeParameter("F", "Framework"))
    description = "Trains a model with framework F on a dataset of domain D."
    inputs = {"dataset": ContractSlot(("PK<Dataset<D>>",), "The dataset to train on.")}
    outputs = {"model": ContractSlot(("Model<D, F>",), "The trained model.")}


class Predict(Contract):
    """The predictions are BLOB: annotation files in the domain's own format, which the server stores as is."""

    name = "Predict"
    parameters = (TypeParameter("D", "Domain"), TypeParameter("F", "Framework"))
    description = "Makes predictions with a trained model on a dataset of domain D."
    inputs = {"model": ContractSlot(("JobOutput<Model<D, F>>",), "The model (the output of a training job)."),
              "dataset": ContractSlot(("PK<Dataset<D>>",), "The dataset to predict on.")}
    outputs = {"predictions": ContractSlot(("BLOB",), "The predictions, in the domain's annotation format.")}


class Process(Contract):
    name = "Process"
    parameters = (TypeParameter("I", ANY_BOUND), TypeParameter("O", ANY_BOUND))
    description = "Turns an input of type I into an output of type O."
    inputs = {"input": ContractSlot(("I",), "The value to process.")}
    outputs = {"output": ContractSlot(("O",), "The result.")}


def standard_types() -> list[type[UFDLType]]:
    """The standard type classes (``Any`` excluded: every registry already holds it)."""
    return [String, Float, Integer, Boolean, JSON, Nothing, BLOB, Array, Map, PK, Name, Domain, Framework,
            Licence, Model, Dataset, JobOutput, Contract, Train, Predict, Process]


def standard_registry() -> TypeRegistry:
    """A new registry holding the standard types."""
    registry = TypeRegistry()
    for cls in standard_types():
        registry.register(cls)
    return registry
