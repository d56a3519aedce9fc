import pytest

from ufdl_pyramid.types import (MAX_NESTING_DEPTH, MAX_TYPE_LENGTH, InvalidType, Literal, TypeExpression,
                                TypeSyntaxError, parse_type, substitute)

CANONICAL = [
    "str",
    "Array<str>",
    "PK<Dataset<Domain<'ic'>>>",
    "Train<Domain<'Image Classification'>, Framework<'tensorflow', '1.14'>>",
    "JobOutput<Model<Domain<'ic'>, Framework<'tf', '1.14'>>>",
    "Map<str, Array<int>>",
    "Foo<1, 2.5, @true, 'x'>",
    "Foo<@false>",
    "Foo<-3, -0.25, 0>",
    "Foo<'it\\'s'>",
    "Foo<'back\\\\slash'>",
    "Foo<''>",
    "Foo<'<not, a, type>'>",
    "Foo<'ünïcödé ✓'>",
    "_private<A_1, b2>",
    "Foo<1e+20>",
    "Foo<1e-07>",
]


@pytest.mark.parametrize("text", CANONICAL)
def test_canonical_strings_print_as_themselves(text):
    assert str(parse_type(text)) == text


@pytest.mark.parametrize("text", CANONICAL)
def test_round_trip_gives_an_equal_expression(text):
    expression = parse_type(text)
    assert parse_type(str(expression)) == expression
    assert hash(parse_type(str(expression))) == hash(expression)


@pytest.mark.parametrize("text, canonical", [
    ("  Array < str >  ", "Array<str>"),
    ("Map<str,Array<int>>", "Map<str, Array<int>>"),
    ("Foo<\n\t1 ,\r\n2.5 >", "Foo<1, 2.5>"),
    ("Foo<1.0>", "Foo<1.0>"),
    ("Foo<1e-3>", "Foo<0.001>"),
    ("Foo<2.5E+4>", "Foo<25000.0>"),
    ("Foo<1E2>", "Foo<100.0>"),
    ("Foo<-0.0>", "Foo<0.0>"),
    ("Foo<-0>", "Foo<0>"),
    ("Foo<0.10>", "Foo<0.1>"),
])
def test_spacing_and_numbers_are_canonicalised(text, canonical):
    assert str(parse_type(text)) == canonical
    assert parse_type(canonical) == parse_type(text)


def test_ast_structure():
    expression = parse_type("Train<Domain<'Image Classification'>, Framework<'tensorflow', '1.14'>>")
    assert expression == TypeExpression("Train", (
        TypeExpression("Domain", (Literal("Image Classification"),)),
        TypeExpression("Framework", (Literal("tensorflow"), Literal("1.14"))),
    ))


def test_literal_values_and_kinds():
    args = parse_type(r"Foo<1, 2.5, @true, @false, 'it\'s', 'a\\b', -3, 1e-3>").args
    values = [arg.value for arg in args]
    assert values == [1, 2.5, True, False, "it's", "a\\b", -3, 0.001]
    assert [type(value) for value in values] == [int, float, bool, bool, str, str, int, float]


def test_literals_are_distinguished_by_kind():
    # Python says True == 1 == 1.0; type arguments must not.
    assert Literal(1) != Literal(True)
    assert Literal(1) != Literal(1.0)
    assert Literal("1") != Literal(1)
    assert Literal(2.0) == Literal(2.0)
    assert len({Literal(1), Literal(True), Literal(1.0)}) == 3
    assert parse_type("Foo<1>") != parse_type("Foo<1.0>")
    assert parse_type("Foo<1>") != parse_type("Foo<@true>")


def test_positions_do_not_affect_equality():
    assert parse_type("  Foo<  'a'>") == TypeExpression("Foo", (Literal("a"),))
    expression = parse_type("Foo< Bar, 'a'>")
    assert expression.position == 0
    assert [arg.position for arg in expression.args] == [5, 10]


def test_invalid_literals_and_names_are_refused():
    with pytest.raises(ValueError):
        Literal(float("inf"))
    with pytest.raises(TypeError):
        Literal(None)
    with pytest.raises(ValueError):
        TypeExpression("not a name")
    with pytest.raises(TypeError):
        TypeExpression("Foo", ("str",))


@pytest.mark.parametrize("text, position, reason", [
    ("", 0, "the type string is empty"),
    ("   ", 3, "the type string is empty"),
    ("Array<str", 9, "expected ',' or '>'"),
    ("Array<Array<str>", 16, "expected ',' or '>'"),
    ("Array<str int>", 10, "expected ',' or '>'"),
    ("Array<str>x", 10, "unexpected 'x' after the end of the type"),
    ("Array<str>>", 10, "unexpected '>' after the end of the type"),
    ("str str", 4, "unexpected 's' after the end of the type"),
    ("Array<>", 6, "empty argument list"),
    ("Array< >", 7, "empty argument list"),
    ("Foo<a,>", 6, "expected a type or literal, found '>'"),
    ("Foo<,a>", 4, "expected a type or literal, found ','"),
    ("Foo<a,", 6, "expected a type or literal, found the end of the text"),
    ("'x'", 0, "expected a type name, found a string literal"),
    ("42", 0, "expected a type name, found a number literal"),
    ("@true", 0, "expected a type name, found a boolean literal"),
    ("<str>", 0, "expected a type name, found '<'"),
    ("Foo<'abc>", 4, "unterminated string literal"),
    ("Foo<'abc\\'>", 4, "unterminated string literal"),
    ("Foo<'abc\\", 4, "unterminated string literal"),
    ("Foo<'a\\nb'>", 6, "invalid escape '\\\\n'"),
    ("Foo<1.>", 4, "invalid number '1.'"),
    ("Foo<.5>", 4, "expected a type or literal, found '.'"),
    ("Foo<01>", 4, "invalid number '01'"),
    ("Foo<1e>", 4, "invalid number '1e'"),
    ("Foo<-, 1>", 4, "invalid number '-'"),
    ("Foo<12abc>", 4, "invalid number '12abc'"),
    ("Foo<1-2>", 4, "invalid number '1-2'"),
    ("Foo<+1>", 4, "expected a type or literal, found '+'"),
    ("Foo<1e999>", 4, "number '1e999' is out of range"),
    ("Foo<@yes>", 4, "unknown literal '@yes'"),
    ("Foo<@TRUE>", 4, "unknown literal '@TRUE'"),
    ("Foo<@>", 4, "unknown literal '@'"),
    ("9Lives", 0, "expected a type name, found a number literal"),
    ("Foo-Bar", 3, "unexpected '-' after the end of the type"),
])
def test_syntax_errors_name_the_problem_and_its_position(text, position, reason):
    with pytest.raises(TypeSyntaxError) as caught:
        parse_type(text)
    error = caught.value
    assert error.position == position
    assert reason in str(error)
    assert str(error).startswith(f"Invalid type {text!r}: ")
    assert str(error).endswith(f" at position {position}")
    assert isinstance(error, InvalidType) and isinstance(error, ValueError)


def test_message_format_matches_the_documented_example():
    with pytest.raises(TypeSyntaxError) as caught:
        parse_type("Array<str")
    assert str(caught.value) == "Invalid type 'Array<str': expected ',' or '>' at position 9"


def test_nesting_up_to_the_limit_parses():
    depth = MAX_NESTING_DEPTH
    text = "A<" * depth + "B" + ">" * depth
    assert str(parse_type(text)) == text


def test_nesting_beyond_the_limit_is_refused_without_recursing_deeper():
    depth = MAX_NESTING_DEPTH + 1
    text = "A<" * depth + "B" + ">" * depth
    with pytest.raises(TypeSyntaxError) as caught:
        parse_type(text)
    assert "nested more than" in str(caught.value)
    assert caught.value.position == 2 * MAX_NESTING_DEPTH + 1


def test_hostile_nesting_within_the_length_limit_is_refused():
    text = "A<" * 499 + "B"
    assert len(text) <= MAX_TYPE_LENGTH
    with pytest.raises(TypeSyntaxError):
        parse_type(text)


def test_over_long_strings_are_refused_with_a_short_message():
    text = "Array<" + "x" * MAX_TYPE_LENGTH + ">"
    with pytest.raises(TypeSyntaxError) as caught:
        parse_type(text)
    assert caught.value.position == MAX_TYPE_LENGTH
    assert "limit of 1000" in str(caught.value)
    assert len(str(caught.value)) < 300


def test_non_strings_are_a_programming_error():
    with pytest.raises(TypeError):
        parse_type(None)


def test_substitute_replaces_bare_names_only():
    template = parse_type("Pair<D, Box<D>, X<'D'>>")
    result = substitute(template, {"D": parse_type("Domain<'ic'>")})
    assert str(result) == "Pair<Domain<'ic'>, Box<Domain<'ic'>>, X<'D'>>"


def test_substitute_with_a_missing_binding_drops_the_trailing_arguments():
    template = parse_type("Framework<N, V>")
    assert str(substitute(template, {"N": Literal("tf"), "V": None})) == "Framework<'tf'>"
    assert str(substitute(template, {"N": None, "V": Literal("1.0")})) == "Framework"


def test_substitute_does_not_substitute_inside_bindings():
    result = substitute(parse_type("Array<T>"), {"T": parse_type("Box<T>")})
    assert str(result) == "Array<Box<T>>"


def test_substitute_refuses_to_produce_a_literal_at_top_level():
    with pytest.raises(ValueError):
        substitute(parse_type("N"), {"N": Literal(3)})


def test_a_type_string_of_a_hundred_characters_is_quoted_whole_in_messages():
    whole = "Nope<" + "x" * 94 + "<"  # 100 characters: the limit of what a message quotes
    with pytest.raises(InvalidType) as caught:
        parse_type(whole)
    assert str(caught.value) == f"Invalid type {whole!r}: expected a type or literal, found the end of the text " \
                                "at position 100"
    with pytest.raises(InvalidType) as caught:
        parse_type(whole + "<")
    assert str(caught.value).startswith(f"Invalid type {whole!r}...: ")
