"""Contracts: abstract types that say which inputs a job takes and which outputs it produces.

A contract's slot types are type strings that may mention the contract's parameter names (``"Dataset<D>"``);
``Contract.specialise`` substitutes the arguments of one contract type into them.
"""
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import ClassVar

from .errors import InvalidType, TypeDefinitionError, TypeSyntaxError
from .model import ANY_BOUND, AnyType, TypeInstance, UFDLType
from .registry import TypeRegistry
from .syntax import Literal, TypeExpression, parse_type, substitute


@dataclass(frozen=True)
class ContractSlot:
    """One input or output of a contract: the types it accepts (an output has exactly one) and a help text."""

    types: tuple[str, ...]
    help: str = ""
    expressions: tuple[TypeExpression, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self):
        types = (self.types,) if isinstance(self.types, str) else tuple(self.types)
        if not types:
            raise TypeDefinitionError("A contract slot needs at least one type")
        try:
            expressions = tuple(parse_type(text) for text in types)
        except TypeSyntaxError as error:
            raise TypeDefinitionError(f"Contract slot type is not valid: {error}") from None
        object.__setattr__(self, "types", types)
        object.__setattr__(self, "expressions", expressions)


@dataclass(frozen=True)
class SpecialisedContract:
    """A contract type's slots with its arguments substituted: each input accepts any of its types."""

    contract: TypeInstance
    inputs: Mapping[str, tuple[TypeInstance, ...]]
    outputs: Mapping[str, TypeInstance]


class Contract(UFDLType):
    """Base of all contracts; every contract type is a subtype of ``Contract``."""

    name = "Contract"
    abstract = True
    description = "The contract a job fulfils: the inputs it takes and the outputs it produces."
    inputs: ClassVar[Mapping[str, ContractSlot]] = {}
    outputs: ClassVar[Mapping[str, ContractSlot]] = {}

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        _check_slots(cls)

    @classmethod
    def specialise(cls, contract: TypeInstance, registry: TypeRegistry) -> SpecialisedContract:
        """Resolve the slot types of ``contract`` (a type of this class or a subclass) through ``registry``.

        A parameter ``contract`` leaves out stands for its bound (``Any`` for ``*``); a literal parameter left out
        drops the argument it fills and those after it, which is the supertype of all its possible values.
        """
        if not issubclass(contract.cls, cls):
            what = "a contract" if cls is Contract else f"a {cls.name} contract"
            raise InvalidType(str(contract), f"{contract.name} is not {what}")
        target = contract.cls
        bindings: dict[str, TypeExpression | Literal | None] = {}
        for index, parameter in enumerate(target.parameters):
            if index < len(contract.args):
                arg = contract.args[index]
                bindings[parameter.name] = arg.to_expression() if isinstance(arg, TypeInstance) else arg
            elif parameter.is_literal:
                bindings[parameter.name] = None
            elif parameter.bound == ANY_BOUND:
                bindings[parameter.name] = TypeExpression(AnyType.name)
            else:
                bindings[parameter.name] = parse_type(parameter.bound)

        def resolve(expression: TypeExpression) -> TypeInstance:
            return registry.resolve(substitute(expression, bindings))

        return SpecialisedContract(
            contract=contract,
            inputs={name: tuple(resolve(e) for e in slot.expressions) for name, slot in target.inputs.items()},
            outputs={name: resolve(slot.expressions[0]) for name, slot in target.outputs.items()},
        )


def _check_slots(cls: type[Contract]) -> None:
    """Catch badly defined contracts when their class is created, not when a user first specialises them."""
    parameters = {parameter.name: parameter for parameter in cls.parameters}
    for kind in ("inputs", "outputs"):
        slots = getattr(cls, kind)
        if not isinstance(slots, Mapping):
            raise TypeDefinitionError(f"{cls.__qualname__}.{kind} must be a mapping of names to ContractSlot")
        for name, slot in slots.items():
            where = f"{cls.__qualname__}.{kind}[{name!r}]"
            if not isinstance(name, str) or not name or not isinstance(slot, ContractSlot):
                raise TypeDefinitionError(f"{where} must map a non-empty name to a ContractSlot")
            if kind == "outputs" and len(slot.expressions) != 1:
                raise TypeDefinitionError(f"{where}: an output has exactly one type")
            for expression in slot.expressions:
                top = parameters.get(expression.name)
                if top is not None and top.is_literal and not expression.args:
                    raise TypeDefinitionError(f"{where}: literal parameter {top.name!r} cannot stand for a type")
                for node in _nodes(expression):
                    if node.name in parameters and node.args:
                        raise TypeDefinitionError(f"{where}: parameter {node.name!r} cannot take arguments")


def _nodes(expression: TypeExpression):
    yield expression
    for arg in expression.args:
        if isinstance(arg, TypeExpression):
            yield from _nodes(arg)
