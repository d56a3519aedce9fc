"""The UFDL type system: type strings, type classes, subtyping, JSON schemas of values, and contracts.

Pure Python; knows nothing of Pyramid or the database. The types themselves come from plugins (the standard
ones from the first-party plugin ufdl-core-types).
"""
from .contracts import Contract, ContractSlot, SpecialisedContract
from .errors import (DuplicateTypeError, InvalidType, TypeArgumentError, TypeDefinitionError, TypeSyntaxError,
                     UnknownTypeError, UnresolvedBoundError)
from .model import (ANY_BOUND, LITERAL_BOOL, LITERAL_FLOAT, LITERAL_INT, LITERAL_STR, AnyType, TypeInstance,
                    TypeParameter, UFDLType, is_subtype, literals_match)
from .registry import TypeRegistry, is_subtype_str
from .syntax import (MAX_NESTING_DEPTH, MAX_TYPE_LENGTH, Literal, TypeExpression, parse_type, substitute,
                     type_names)

__all__ = [
    "ANY_BOUND", "LITERAL_BOOL", "LITERAL_FLOAT", "LITERAL_INT", "LITERAL_STR", "MAX_NESTING_DEPTH",
    "MAX_TYPE_LENGTH", "AnyType", "Contract", "ContractSlot", "DuplicateTypeError", "InvalidType", "Literal",
    "SpecialisedContract", "TypeArgumentError", "TypeDefinitionError", "TypeExpression", "TypeInstance",
    "TypeParameter", "TypeRegistry", "TypeSyntaxError", "UFDLType", "UnknownTypeError", "UnresolvedBoundError",
    "is_subtype", "is_subtype_str", "literals_match", "parse_type", "substitute", "type_names",
]
