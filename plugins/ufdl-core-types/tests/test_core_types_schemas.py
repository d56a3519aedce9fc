"""The JSON schemas of the standard types' values."""
import jsonschema
import pytest

from ufdl_core_types import standard_registry
from ufdl_pyramid.types import UFDLType

REGISTRY = standard_registry()

# type string, values its schema accepts, values it refuses
CASES = [
    ("str", ["", "abc"], [1, None, [], {}]),
    ("int", [0, -3, 10 ** 20], [1.5, "1", None, True]),
    ("float", [0, 1.5, -2], ["1.5", None, True]),
    ("bool", [True, False], [0, 1, "true", None]),
    ("JSON", [None, 1, "x", [1, "a"], {"a": {"b": []}}], []),
    ("Nothing", [None], [0, "", False, []]),
    ("BLOB", ["aGVsbG8="], [1, None, [104, 105]]),
    ("Array<str>", [[], ["a", "b"]], [["a", 1], "ab", {"0": "a"}]),
    ("Array", [[], [1, "a", None]], ["ab", {}]),
    ("Array<Array<int>>", [[[1], [], [2, 3]]], [[1, 2], [["a"]]]),
    ("Map<str, Array<int>>", [{}, {"a": [1], "b": []}], [{"a": 1}, {"a": ["x"]}, [1], "a"]),
    ("Map", [{}, {"a": 1, "b": "x"}], [[], "a"]),
    ("PK<Dataset<Domain<'ic'>>>", [1, 42], [0, -1, 1.5, "1", None]),
    ("Name<Dataset>", ["cats"], ["", 1, None]),
    ("Domain", ["ic", "od"], [1, None]),
    ("Domain<'ic'>", ["ic"], ["od", "IC", 1]),
    ("Framework<'tf', '1.14'>", [{"name": "tf", "version": "1.14"}],
     [{"name": "tf", "version": "2.0"}, {"name": "tf"}, {"name": "tf", "version": "1.14", "x": 1}, "tf"]),
    ("Framework", [{"name": "pytorch", "version": "2.1"}], [{"name": 1, "version": "2"}, {}]),
    ("Framework<'tf'>", [{"name": "tf", "version": "9"}], [{"name": "pytorch", "version": "9"}]),
    ("Licence", [3], [0, "MIT"]),
    ("Model<Domain<'ic'>, Framework<'tf', '1.14'>>", ["AAEC"], [1, None]),
    ("Dataset<Domain<'ic'>>", [7], [0, "cats"]),
    ("JobOutput<Model<Domain<'ic'>, Framework<'tf', '1.14'>>>", [5], [0, "5", None]),
]


@pytest.mark.parametrize("text, valid, invalid", CASES)
def test_value_schemas(text, valid, invalid):
    schema = REGISTRY.resolve(text).json_schema()
    validator_class = jsonschema.validators.validator_for(schema, default=jsonschema.Draft202012Validator)
    validator_class.check_schema(schema)
    validator = validator_class(schema)
    for value in valid:
        assert validator.is_valid(value), (text, value)
    for value in invalid:
        assert not validator.is_valid(value), (text, value)


def test_exact_schemas_of_the_documented_cases():
    assert REGISTRY.resolve("str").json_schema() == {"type": "string"}
    assert REGISTRY.resolve("JSON").json_schema() == {}
    assert REGISTRY.resolve("BLOB").json_schema() == {"type": "string", "contentEncoding": "base64"}
    assert REGISTRY.resolve("Array").json_schema() == {"type": "array", "items": {}}
    assert REGISTRY.resolve("PK<Licence>").json_schema() == {"type": "integer", "minimum": 1, "maximum": 2**31 - 1}
    assert REGISTRY.resolve("Domain<'ic'>").json_schema() == {"type": "string", "const": "ic"}


def test_schemas_are_fresh_dicts():
    first = REGISTRY.resolve("PK<Licence>").json_schema()
    first["minimum"] = 100
    assert REGISTRY.resolve("PK<Licence>").json_schema()["minimum"] == 1


def test_the_default_schema_accepts_anything():
    class Opaque(UFDLType):
        name = "Opaque"

    assert Opaque.json_schema(()) == {}
