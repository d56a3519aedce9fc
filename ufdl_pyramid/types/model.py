"""Type classes, their parameters, resolved type instances, and the subtype relation."""
from dataclasses import dataclass
from typing import ClassVar

from .errors import TypeSyntaxError
from .syntax import NAME_PATTERN, Literal, TypeExpression, parse_type

# A parameter bound of ANY_BOUND accepts any type. When a value is needed for an unbound parameter of that kind
# (contract specialisation), the top type ``Any`` (AnyType) stands in for it.
ANY_BOUND = "*"

# Literal bounds carry an '@' (like @true) because "str", "int", ... are also the names of standard *types*:
# bound "str" means "a type that is a subtype of str", bound "@str" means "a string literal".
LITERAL_STR = "@str"
LITERAL_INT = "@int"
LITERAL_FLOAT = "@float"
LITERAL_BOOL = "@bool"
# An int literal is accepted where a float is expected, but a bool is never taken for a number.
_LITERAL_TYPES: dict[str, tuple[type, ...]] = {
    LITERAL_STR: (str,),
    LITERAL_INT: (int,),
    LITERAL_FLOAT: (int, float),
    LITERAL_BOOL: (bool,),
}


@dataclass(frozen=True)
class TypeParameter:
    """A parameter of a type class.

    ``bound`` is ``"*"`` (any type), a literal kind (``"@str"``, ``"@int"``, ``"@float"``, ``"@bool"``) or a
    type string naming the supertype every argument must have. Names in a type bound are looked up when a type
    is resolved, so a bound may name a type registered later.
    """

    name: str
    bound: str

    def __post_init__(self):
        if not isinstance(self.name, str) or not NAME_PATTERN.fullmatch(self.name):
            raise ValueError(f"Type parameter name {self.name!r} is not a valid name")
        if not isinstance(self.bound, str):
            raise TypeError(f"The bound of type parameter {self.name!r} must be a str")
        if self.bound != ANY_BOUND and self.bound not in _LITERAL_TYPES:
            try:
                parse_type(self.bound)
            except TypeSyntaxError as error:
                raise ValueError(f"Type parameter {self.name!r} has an invalid bound: {error}") from None

    @property
    def is_literal(self) -> bool:
        return self.bound in _LITERAL_TYPES

    def accepts_literal(self, literal: Literal) -> bool:
        return self.is_literal and type(literal.value) in _LITERAL_TYPES[self.bound]


class UFDLType:
    """Base of type *classes*: a class describes a family of types; ``TypeInstance`` is one member of it.

    Subclasses set the class attributes below. Parameters are positional and, for subtyping, covariant; a
    subclass that has parameters should keep its base's parameters, in order, at the front of its own.
    """

    name: ClassVar[str]  # the type's name in type strings
    parameters: ClassVar[tuple[TypeParameter, ...]] = ()
    abstract: ClassVar[bool] = False  # abstract types have no values (e.g. the Contract base)
    server_resident: ClassVar[bool] = False  # values live in server tables; the server lists them
    description: ClassVar[str] = ""

    @classmethod
    def json_schema(cls, args: tuple["TypeInstance | Literal", ...]) -> dict:
        """The JSON schema of values of this type, given its (possibly partial) arguments."""
        return {}

    @classmethod
    def check_args(cls, args: tuple["TypeInstance | Literal", ...]) -> None:
        """Raise ValueError with a user-facing reason if the arguments, each within its bound, do not fit together
        or do not fit this type in a way that bounds cannot say."""


class AnyType(UFDLType):
    """The top type: every type is a subtype of it. Every TypeRegistry holds it."""

    name = "Any"
    abstract = True
    description = "Any type; stands in for parameters bound by '*' that were not given."


@dataclass(frozen=True)
class TypeInstance:
    """A resolved type: a type class with arguments checked against its parameters.

    Build them with ``TypeRegistry.resolve``; the constructor trusts its input.
    """

    cls: type[UFDLType]
    args: tuple["TypeInstance | Literal", ...] = ()

    def __post_init__(self):
        object.__setattr__(self, "args", tuple(self.args))

    @property
    def name(self) -> str:
        return self.cls.name

    @property
    def is_abstract(self) -> bool:
        """The type class is abstract: no value has exactly this type."""
        return self.cls.abstract

    @property
    def is_complete(self) -> bool:
        """Every parameter is given, recursively (``Domain`` alone is usable as a bound, not as a value type)."""
        return len(self.args) == len(self.cls.parameters) and all(
            arg.is_complete for arg in self.args if isinstance(arg, TypeInstance))

    @property
    def is_concrete(self) -> bool:
        """Complete and free of abstract types, recursively: values of this type can exist."""
        return len(self.args) == len(self.cls.parameters) and not self.cls.abstract and all(
            arg.is_concrete for arg in self.args if isinstance(arg, TypeInstance))

    def json_schema(self) -> dict:
        return self.cls.json_schema(self.args)

    def to_expression(self) -> TypeExpression:
        return TypeExpression(self.cls.name, tuple(
            arg.to_expression() if isinstance(arg, TypeInstance) else Literal(arg.value) for arg in self.args))

    def __str__(self):
        return str(self.to_expression())

    def __repr__(self):
        return f"TypeInstance({str(self)!r})"


def literals_match(a: Literal, b: Literal) -> bool:
    """Equal literals; an int and a float match when numerically equal, a bool matches only a bool."""
    if (type(a.value) is bool) != (type(b.value) is bool) or (type(a.value) is str) != (type(b.value) is str):
        return False
    return a.value == b.value


def is_subtype(a: TypeInstance, b: TypeInstance) -> bool:
    """Whether ``a`` ≤ ``b``.

    Holds when b is ``Any``, or when a's class is b's class or a subclass of it and, for every argument b gives,
    a gives one too that is ≤ it (types, recursively: all parameters are covariant) or matches it (literals).
    So leaving arguments out gives a supertype: ``Domain<'ic'>`` ≤ ``Domain``.
    """
    if b.cls is AnyType:
        return True
    if not issubclass(a.cls, b.cls) or len(a.args) < len(b.args):
        return False
    for mine, theirs in zip(a.args, b.args):
        if isinstance(mine, TypeInstance) and isinstance(theirs, TypeInstance):
            if not is_subtype(mine, theirs):
                return False
        elif isinstance(mine, Literal) and isinstance(theirs, Literal):
            if not literals_match(mine, theirs):
                return False
        else:
            return False
    return True
