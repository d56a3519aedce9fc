"""The exceptions of the type system.

Everything a user can cause with a bad type string derives from ``InvalidType`` so that the app maps a single
exception to HTTP 400; mistakes in type *definitions* (a server or plugin bug) derive from
``TypeDefinitionError`` instead, so they are not blamed on the user.
"""

# Long type strings are shortened in messages; positions still index the full text.
_SHOWN_CHARS = 100


def _shown(text: str) -> str:
    if len(text) <= _SHOWN_CHARS:
        return repr(text)
    return repr(text[:_SHOWN_CHARS]) + "..."


class InvalidType(ValueError):
    """A type string or type expression a user supplied is not a valid type."""

    def __init__(self, text: str, reason: str, position: int | None = None):
        where = "" if position is None else f" at position {position}"
        super().__init__(f"Invalid type {_shown(text)}: {reason}{where}")
        self.text = text
        self.reason = reason
        self.position = position


class TypeSyntaxError(InvalidType):
    """The text does not follow the type-string grammar; ``position`` is a 0-based index into it."""

    position: int


class UnknownTypeError(InvalidType):
    """A name in the type string is not registered."""

    def __init__(self, text: str, name: str, position: int | None = None):
        super().__init__(text, f"unknown type {name!r}", position)
        self.name = name


class TypeArgumentError(InvalidType):
    """Wrong number or kind of arguments, or an argument outside its parameter's bound."""


class TypeDefinitionError(Exception):
    """A type class, parameter bound or contract is defined wrongly (a server or plugin bug)."""


class DuplicateTypeError(TypeDefinitionError):
    """Two classes claim the same type name in one registry."""


class UnresolvedBoundError(TypeDefinitionError, UnknownTypeError):
    """A parameter's bound names a type the registry does not hold. A definition error in a registry of fixed
    types; but the server's registry is its job-types table, whose rows an admin may delete (or whose plugin may be
    uninstalled): there, ``Dataset<D>`` bounded by ``Domain`` once ``Domain`` is gone is as unknown as a name in
    the text would be (an ``InvalidType``, a 400, not a 500)."""

    def __init__(self, text: str, name: str, cls_name: str, parameter: str, bound: str,
                 position: int | None = None):
        InvalidType.__init__(self, text, f"the bound {bound!r} of parameter {parameter!r} of {cls_name} names the "
                                         f"unknown type {name!r}", position)
        self.name = name
