import pytest

from ufdl_core_types import standard_registry
from ufdl_pyramid.types import (Literal, TypeInstance, TypeParameter, UFDLType, is_subtype, is_subtype_str,
                                literals_match)

REGISTRY = standard_registry()

TF = "Framework<'tf', '1.14'>"
IC = "Domain<'ic'>"

SUBTYPING = [
    # reflexivity
    ("str", "str", True),
    (f"Model<{IC}, {TF}>", f"Model<{IC}, {TF}>", True),
    # fewer arguments is a supertype, never the other way round
    ("Domain<'Image Classification'>", "Domain", True),
    ("Domain", "Domain<'Image Classification'>", False),
    (TF, "Framework<'tf'>", True),
    ("Framework<'tf'>", TF, False),
    (f"Model<{IC}, {TF}>", f"Model<{IC}>", True),
    (f"Model<{IC}, {TF}>", "Model", True),
    # arguments are compared pairwise
    (f"Model<{IC}, {TF}>", f"Model<Domain<'od'>, {TF}>", False),
    (f"Model<{IC}, {TF}>", f"Model<{IC}, Framework<'tf', '2.0'>>", False),
    (f"Model<{IC}, {TF}>", "Model<Domain, Framework<'tf'>>", True),
    (f"Model<{IC}, {TF}>", "Model<Domain, Framework<'pytorch'>>", False),
    # covariance
    ("Array<str>", "Array", True),
    ("Array", "Array<str>", False),
    ("Array<Domain<'ic'>>", "Array<Domain>", True),
    ("Array<Domain>", "Array<Domain<'ic'>>", False),
    ("Array<Array<int>>", "Array<Array<float>>", True),
    ("Array<Array<float>>", "Array<Array<int>>", False),
    ("Map<str, int>", "Map<str, float>", True),
    (f"JobOutput<Model<{IC}, {TF}>>", "JobOutput<Model>", True),
    (f"PK<Dataset<{IC}>>", "PK<Dataset<Domain<'od'>>>", False),
    # literal mismatch
    ("Domain<'ic'>", "Domain<'od'>", False),
    ("Domain<'ic'>", "Domain<'IC'>", False),
    # subclass relationships
    ("int", "float", True),
    ("float", "int", False),
    ("bool", "int", False),
    ("str", "int", False),
    (f"Model<{IC}, {TF}>", "BLOB", True),
    ("BLOB", "Model", False),
    (f"Train<{IC}, {TF}>", "Contract", True),
    (f"Train<{IC}, {TF}>", "Train", True),
    (f"Train<{IC}, {TF}>", "Predict", False),
    ("Contract", "Train", False),
    # the top type
    ("Array<str>", "Any", True),
    ("Contract", "Any", True),
    ("Any", "Any", True),
    ("Any", "str", False),
    ("Array<str>", "Array<Any>", True),
    # JSON is any JSON value, deliberately not a supertype
    ("str", "JSON", False),
]


@pytest.mark.parametrize("a, b, expected", SUBTYPING)
def test_subtyping_table(a, b, expected):
    assert is_subtype(REGISTRY.resolve(a), REGISTRY.resolve(b)) is expected
    assert is_subtype_str(REGISTRY, a, b) is expected


def test_numeric_literals_match_numerically_but_not_bools():
    assert literals_match(Literal(1), Literal(1.0))
    assert literals_match(Literal(2.5), Literal(2.5))
    assert not literals_match(Literal(1), Literal(2))
    assert not literals_match(Literal(1), Literal(True))
    assert not literals_match(Literal(0), Literal(False))
    assert not literals_match(Literal("1"), Literal(1))
    assert literals_match(Literal(True), Literal(True))


def test_literal_arguments_compare_numerically_in_subtyping():
    class Sized(UFDLType):
        name = "Sized"
        parameters = (TypeParameter("size", "@float"),)

    registry = standard_registry()
    registry.register(Sized)
    assert is_subtype_str(registry, "Sized<1>", "Sized<1.0>")
    assert is_subtype_str(registry, "Sized<1.0>", "Sized<1>")
    assert not is_subtype_str(registry, "Sized<1>", "Sized<1.5>")
    assert is_subtype_str(registry, "Sized<1>", "Sized")


def test_a_literal_never_matches_a_type_argument():
    class Open(UFDLType):
        name = "Open"
        parameters = (TypeParameter("X", "*"),)

    # Only hand-built instances can mix kinds in one position; the relation must still refuse them.
    with_type = TypeInstance(Open, (REGISTRY.resolve("str"),))
    with_literal = TypeInstance(Open, (Literal("str"),))
    assert not is_subtype(with_type, with_literal)
    assert not is_subtype(with_literal, with_type)
