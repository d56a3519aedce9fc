"""The standard types every UFDL server knows: JSON values, server-resident records and the standard contracts,
registered with ufdl-pyramid as the plugin ``core_types``."""
from ufdl_pyramid.types import Contract, TypeRegistry, UFDLType

from .contracts import Predict, Process, Train
from .records import PK, Dataset, Domain, Framework, JobOutput, Licence, Model, Name
from .values import BLOB, JSON, Array, Boolean, Float, Integer, Map, Nothing, String

__all__ = ["BLOB", "JSON", "PK", "Array", "Boolean", "Dataset", "Domain", "Float", "Framework", "Integer",
           "JobOutput", "Licence", "Map", "Model", "Name", "Nothing", "Predict", "Process", "String", "Train",
           "standard_registry", "standard_types"]


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
