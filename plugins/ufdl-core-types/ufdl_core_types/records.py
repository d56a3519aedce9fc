"""What the server keeps (domains, frameworks, licences, datasets, job outputs), references to it by primary key
or name, and trained models."""
from ufdl_pyramid.types import ANY_BOUND, LITERAL_STR, TypeParameter, UFDLType

from .values import BLOB, Args

_PRIMARY_KEY = {"type": "integer", "minimum": 1, "maximum": 2**31 - 1}  # an INTEGER column on PostgreSQL


def _string_const(args: Args, index: int) -> dict:
    schema = {"type": "string"}
    if len(args) > index:
        schema["const"] = args[index].value
    return schema


def _require_server_resident(args: Args, what: str) -> None:
    if args and not args[0].cls.server_resident:
        raise ValueError(f"{args[0]} is not kept on the server, so it has no {what}")


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
