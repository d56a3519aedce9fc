import pytest

from ufdl_core_types import Array, Domain, Framework, Integer, Model, String, standard_registry
from ufdl_pyramid.types import (AnyType, DuplicateTypeError, InvalidType, Literal, TypeArgumentError,
                                TypeDefinitionError, TypeExpression, TypeInstance, TypeParameter, TypeRegistry,
                                TypeSyntaxError, UFDLType, UnknownTypeError, parse_type)

REGISTRY = standard_registry()


def test_resolve_builds_checked_instances():
    instance = REGISTRY.resolve("Model<Domain<'ic'>, Framework<'tf', '1.14'>>")
    assert instance.cls is Model
    assert instance.args == (TypeInstance(Domain, (Literal("ic"),)),
                             TypeInstance(Framework, (Literal("tf"), Literal("1.14"))))
    assert str(instance) == "Model<Domain<'ic'>, Framework<'tf', '1.14'>>"
    assert repr(instance) == "TypeInstance(\"Model<Domain<'ic'>, Framework<'tf', '1.14'>>\")"


def test_resolve_canonicalises():
    assert str(REGISTRY.resolve(" Map <str,Array< int >> ")) == "Map<str, Array<int>>"


def test_resolve_accepts_an_expression():
    assert REGISTRY.resolve(parse_type("Array<str>")) == REGISTRY.resolve("Array<str>")


def test_get_of_an_unknown_name():
    with pytest.raises(UnknownTypeError) as caught:
        REGISTRY.get("Nope")
    assert caught.value.name == "Nope"


@pytest.mark.parametrize("text, name, position", [
    ("Nope", "Nope", 0),
    ("Array<Nope>", "Nope", 6),
    ("Map<str, Array<Nope>>", "Nope", 15),
    ("array<Nope>", "array", 0),
])
def test_unknown_names_are_reported_with_their_position(text, name, position):
    with pytest.raises(UnknownTypeError) as caught:
        REGISTRY.resolve(text)
    assert caught.value.name == name
    assert caught.value.position == position
    assert str(caught.value) == f"Invalid type {text!r}: unknown type {name!r} at position {position}"


@pytest.mark.parametrize("text, position, reason", [
    ("str<int>", 4, "str takes no arguments, got 1"),
    ("Array<str, int>", 11, "Array takes at most 1 argument (T), got 2"),
    ("Framework<'a', 'b', 'c'>", 20, "Framework takes at most 2 arguments (name, version), got 3"),
    ("Array<'x'>", 6, "argument 'T' of Array must be a type, got the literal 'x'"),
    ("Map<str, 5>", 9, "argument 'V' of Map must be a type, got the literal 5"),
    ("Domain<str>", 7, "argument 'name' of Domain must be a str literal, got the type str"),
    ("Domain<1>", 7, "argument 'name' of Domain must be a str literal, got 1"),
    ("Framework<'tf', @true>", 16, "argument 'version' of Framework must be a str literal, got @true"),
    ("Model<Framework<'tf', '1'>>", 6, "argument 'D' of Model must be a subtype of Domain, got Framework<'tf', '1'>"),
    ("Model<Domain<'ic'>, Domain<'ic'>>", 20, "argument 'F' of Model must be a subtype of Framework, got Domain<'ic'>"),
    ("Map<int, str>", 4, "argument 'K' of Map must be a subtype of str, got int"),
    ("Array<Model<str>>", 12, "argument 'D' of Model must be a subtype of Domain, got str"),
    ("PK<str>", 0, "str is not kept on the server, so it has no primary key"),
    ("Name<Array<int>>", 0, "Array<int> is not kept on the server, so it has no name"),
])
def test_argument_errors_name_the_parameter(text, position, reason):
    with pytest.raises(TypeArgumentError) as caught:
        REGISTRY.resolve(text)
    assert caught.value.position == position
    assert str(caught.value) == f"Invalid type {text!r}: {reason} at position {position}"


def test_syntax_errors_come_through_resolve():
    with pytest.raises(TypeSyntaxError):
        REGISTRY.resolve("Array<str")


@pytest.mark.parametrize("text", ["Array<", "Nope", "Array<1>", "Domain<str>", "Map<int, int>", "PK<int>"])
def test_every_user_error_is_an_invalid_type(text):
    with pytest.raises(InvalidType):
        REGISTRY.resolve(text)


def test_errors_for_expressions_carry_no_position():
    # Positions of a hand-built or substituted expression do not index any text the user sent.
    with pytest.raises(UnknownTypeError) as caught:
        REGISTRY.resolve(TypeExpression("Array", (TypeExpression("Nope"),)))
    assert caught.value.position is None
    assert str(caught.value) == "Invalid type 'Array<Nope>': unknown type 'Nope'"


def test_int_literal_accepted_for_float_parameters_but_not_bool():
    registry = TypeRegistry()

    class Scaled(UFDLType):
        name = "Scaled"
        parameters = (TypeParameter("factor", "@float"), TypeParameter("count", "@int"),
                      TypeParameter("on", "@bool"))

    registry.register(Scaled)
    assert registry.resolve("Scaled<2, 3, @true>").args == (Literal(2), Literal(3), Literal(True))
    assert registry.resolve("Scaled<2.5>").args == (Literal(2.5),)
    for bad in ["Scaled<@true>", "Scaled<'2'>", "Scaled<1, 2.0>", "Scaled<1, @false>", "Scaled<1, 2, 1>"]:
        with pytest.raises(TypeArgumentError):
            registry.resolve(bad)


def test_subclass_arguments_satisfy_a_bound():
    assert str(REGISTRY.resolve("Map<str, int>")) == "Map<str, int>"

    class Identifier(String):
        name = "Identifier"

    registry = standard_registry()
    registry.register(Identifier)
    assert registry.resolve("Map<Identifier, int>").args[0].cls is Identifier


def test_register_returns_the_class_and_works_as_a_decorator():
    registry = TypeRegistry()

    @registry.register
    class Thing(UFDLType):
        name = "Thing"

    assert registry.get("Thing") is Thing
    assert registry.names() == ["Any", "Thing"]


def test_duplicate_names_name_both_classes():
    registry = standard_registry()

    class OtherString(UFDLType):
        name = "str"

    with pytest.raises(DuplicateTypeError) as caught:
        registry.register(OtherString)
    message = str(caught.value)
    assert "ufdl_core_types.values.String" in message
    assert "OtherString" in message and "'str'" in message
    assert not isinstance(caught.value, InvalidType)


def test_a_subclass_must_define_its_own_name():
    class Inherits(Integer):
        pass

    with pytest.raises(TypeDefinitionError, match="must define its own 'name'"):
        TypeRegistry().register(Inherits)


@pytest.mark.parametrize("bad", [int, object(), "str"])
def test_only_type_classes_register(bad):
    with pytest.raises(TypeDefinitionError):
        TypeRegistry().register(bad)


def test_bad_parameter_definitions():
    with pytest.raises(ValueError, match="invalid bound"):
        TypeParameter("T", "Array<")
    with pytest.raises(ValueError, match="not a valid name"):
        TypeParameter("not valid", "*")

    class Repeated(UFDLType):
        name = "Repeated"
        parameters = (TypeParameter("T", "*"), TypeParameter("T", "*"))

    with pytest.raises(TypeDefinitionError, match="repeated parameter names"):
        TypeRegistry().register(Repeated)

    class NotATuple(UFDLType):
        name = "NotATuple"
        parameters = [TypeParameter("T", "*")]

    with pytest.raises(TypeDefinitionError, match="tuple of TypeParameter"):
        TypeRegistry().register(NotATuple)


def test_a_bound_naming_an_unregistered_type_is_a_definition_error_not_a_user_error():
    registry = TypeRegistry()

    class Box(UFDLType):
        name = "Box"
        parameters = (TypeParameter("T", "Missing"),)

    class Thing(UFDLType):
        name = "Thing"

    registry.register(Box)
    registry.register(Thing)
    assert str(registry.resolve("Box")) == "Box"  # the bound is only needed once an argument is given
    with pytest.raises(TypeDefinitionError, match="'Missing'"):
        registry.resolve("Box<Thing>")

    class Missing(UFDLType):
        name = "Missing"

    registry.register(Missing)  # registering the bound's type later makes it work
    assert str(registry.resolve("Box<Missing>")) == "Box<Missing>"


def test_a_bound_that_depends_on_itself_is_detected():
    registry = TypeRegistry()

    class Loop(UFDLType):
        name = "Loop"
        parameters = (TypeParameter("T", "Loop<Leaf>"),)

    class Leaf(UFDLType):
        name = "Leaf"

    registry.register(Loop)
    registry.register(Leaf)
    with pytest.raises(TypeDefinitionError, match="depends on itself"):
        registry.resolve("Loop<Leaf>")


def test_bound_of():
    assert REGISTRY.bound_of(Model, Model.parameters[0]) == REGISTRY.resolve("Domain")
    assert REGISTRY.bound_of(Array, Array.parameters[0]) == TypeInstance(AnyType)
    with pytest.raises(ValueError):
        REGISTRY.bound_of(Domain, Domain.parameters[0])


@pytest.mark.parametrize("text, complete, concrete", [
    ("str", True, True),
    ("Domain", False, False),
    ("Domain<'ic'>", True, True),
    ("Array", False, False),
    ("Array<Domain>", False, False),
    ("Array<Domain<'ic'>>", True, True),
    ("Array<Any>", True, False),
    ("Contract", True, False),
    ("Train<Domain<'ic'>, Framework<'tf', '1'>>", True, False),
    ("PK<Dataset<Domain<'ic'>>>", True, True),
])
def test_completeness_and_concreteness(text, complete, concrete):
    instance = REGISTRY.resolve(text)
    assert instance.is_complete is complete
    assert instance.is_concrete is concrete


def test_abstractness_is_the_class_flag():
    assert REGISTRY.resolve("Contract").is_abstract
    assert REGISTRY.resolve("Any").is_abstract
    assert not REGISTRY.resolve("Domain").is_abstract
    assert not REGISTRY.resolve("Array<Any>").is_abstract
