"""The registry of type classes by name, and resolution of type strings into checked TypeInstances."""
from .errors import (DuplicateTypeError, InvalidType, TypeArgumentError, TypeDefinitionError,
                     UnknownTypeError, UnresolvedBoundError)
from .model import ANY_BOUND, AnyType, TypeInstance, TypeParameter, UFDLType, is_subtype
from .syntax import NAME_PATTERN, Literal, TypeExpression, parse_type


class TypeRegistry:
    """Type classes by name. Every registry starts with the top type ``Any``."""

    def __init__(self):
        self._types: dict[str, type[UFDLType]] = {}
        # Resolved bounds by (class, parameter); a bound never changes meaning once it resolves, because a
        # registered name cannot be registered again.
        self._bounds: dict[tuple[type[UFDLType], str], TypeInstance] = {}
        self._resolving_bounds: set[tuple[type[UFDLType], str]] = set()
        self.register(AnyType)

    def register(self, cls: type[UFDLType]) -> type[UFDLType]:
        """Add a type class under its ``name``; returns the class, so it also works as a decorator."""
        _check_definition(cls)
        existing = self._types.get(cls.name)
        if existing is not None:
            raise DuplicateTypeError(f"Type name {cls.name!r} is claimed by both {_qualified(existing)} and "
                                     f"{_qualified(cls)}")
        self._types[cls.name] = cls
        return cls

    def get(self, name: str) -> type[UFDLType]:
        try:
            return self._types[name]
        except KeyError:
            raise UnknownTypeError(name, name) from None

    def __contains__(self, name: str) -> bool:
        return name in self._types

    def names(self) -> list[str]:
        return sorted(self._types)

    def resolve(self, type_: str | TypeExpression) -> TypeInstance:
        """Parse (if given a string), look up and check a type; raises InvalidType subclasses for user errors.

        Error positions index the string given; for an expression given directly, messages carry no position.
        """
        if isinstance(type_, str):
            return _Resolution(self, type_, with_positions=True).resolve(parse_type(type_))
        if isinstance(type_, TypeExpression):
            return _Resolution(self, str(type_), with_positions=False).resolve(type_)
        raise TypeError(f"Can only resolve a type string or TypeExpression, not {type(type_).__name__}")

    def bound_of(self, cls: type[UFDLType], parameter: TypeParameter) -> TypeInstance:
        """The resolved bound of a type parameter (``Any`` for ``*``); not for literal parameters."""
        if parameter.is_literal:
            raise ValueError(f"Parameter {parameter.name!r} of {cls.name} is a literal; it has no bound type")
        if parameter.bound == ANY_BOUND:
            return TypeInstance(AnyType)
        key = (cls, parameter.name)
        bound = self._bounds.get(key)
        if bound is not None:
            return bound
        # A bound mentioning its own type with arguments would check those arguments against itself forever.
        if key in self._resolving_bounds:
            raise TypeDefinitionError(f"The bound {parameter.bound!r} of parameter {parameter.name!r} of "
                                      f"{cls.name} depends on itself")
        self._resolving_bounds.add(key)
        try:
            bound = self.resolve(parameter.bound)
        except UnknownTypeError as error:
            raise UnresolvedBoundError(parameter.bound, error.name, cls.name, parameter.name,
                                       parameter.bound) from None
        except InvalidType as error:
            raise TypeDefinitionError(f"The bound {parameter.bound!r} of parameter {parameter.name!r} of "
                                      f"{cls.name} does not resolve: {error}") from None
        finally:
            self._resolving_bounds.discard(key)
        self._bounds[key] = bound
        return bound


def is_subtype_str(registry: TypeRegistry, a: str | TypeExpression, b: str | TypeExpression) -> bool:
    """``is_subtype`` on type strings, resolved through ``registry``."""
    return is_subtype(registry.resolve(a), registry.resolve(b))


class _Resolution:
    """Resolving one type; holds the text every error message quotes."""

    def __init__(self, registry: TypeRegistry, text: str, with_positions: bool):
        self.registry = registry
        self.text = text
        self.with_positions = with_positions

    def resolve(self, expression: TypeExpression) -> TypeInstance:
        cls = self.registry._types.get(expression.name)
        if cls is None:
            raise UnknownTypeError(self.text, expression.name, self.position(expression))
        parameters = cls.parameters
        if len(expression.args) > len(parameters):
            extra = expression.args[len(parameters)]
            names = ", ".join(parameter.name for parameter in parameters)
            takes = "takes no arguments" if not parameters else \
                f"takes at most {len(parameters)} argument{'s' if len(parameters) > 1 else ''} ({names})"
            raise TypeArgumentError(self.text, f"{cls.name} {takes}, got {len(expression.args)}",
                                    self.position(extra))
        args = tuple(self.argument(cls, parameter, arg) for parameter, arg in zip(parameters, expression.args))
        try:
            cls.check_args(args)
        except ValueError as error:
            raise TypeArgumentError(self.text, str(error), self.position(expression)) from None
        return TypeInstance(cls, args)

    def argument(self, cls: type[UFDLType], parameter: TypeParameter,
                 arg: TypeExpression | Literal) -> TypeInstance | Literal:
        label = f"argument {parameter.name!r} of {cls.name}"
        if parameter.is_literal:
            kind = parameter.bound[1:]
            if isinstance(arg, TypeExpression):
                raise TypeArgumentError(self.text, f"{label} must be a {kind} literal, got the type {arg}",
                                        self.position(arg))
            if not parameter.accepts_literal(arg):
                raise TypeArgumentError(self.text, f"{label} must be a {kind} literal, got {arg}",
                                        self.position(arg))
            return Literal(arg.value)
        if isinstance(arg, Literal):
            raise TypeArgumentError(self.text, f"{label} must be a type, got the literal {arg}", self.position(arg))
        instance = self.resolve(arg)
        try:
            bound = self.registry.bound_of(cls, parameter)
        except UnresolvedBoundError as error:  # quoting the text resolved, not the bound
            raise UnresolvedBoundError(self.text, error.name, cls.name, parameter.name, parameter.bound,
                                       self.position(arg)) from None
        if not is_subtype(instance, bound):
            raise TypeArgumentError(self.text, f"{label} must be a subtype of {bound}, got {instance}",
                                    self.position(arg))
        return instance

    def position(self, node: TypeExpression | Literal) -> int | None:
        return node.position if self.with_positions else None


def _check_definition(cls) -> None:
    if not (isinstance(cls, type) and issubclass(cls, UFDLType)):
        raise TypeDefinitionError(f"{cls!r} is not a UFDLType subclass")
    # An inherited name would silently register the subclass under its base's name.
    name = cls.__dict__.get("name")
    if not isinstance(name, str) or not NAME_PATTERN.fullmatch(name):
        raise TypeDefinitionError(f"{_qualified(cls)} must define its own 'name', a valid type name (got {name!r})")
    parameters = cls.parameters
    if not isinstance(parameters, tuple) or not all(isinstance(p, TypeParameter) for p in parameters):
        raise TypeDefinitionError(f"{_qualified(cls)}.parameters must be a tuple of TypeParameter")
    names = [parameter.name for parameter in parameters]
    if len(set(names)) != len(names):
        raise TypeDefinitionError(f"{_qualified(cls)} has repeated parameter names: {names}")


def _qualified(cls) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"
