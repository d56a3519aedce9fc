"""Type strings: the AST, the parser and the canonical printer.

Grammar::

    type    := NAME | NAME '<' arg (',' arg)* '>'
    arg     := type | literal
    literal := 'single-quoted string' | int | float | @true | @false

Strings escape only ``\\'`` and ``\\\\``. Numbers follow JSON's rules (no leading zeros, no ``+`` sign, digits on
both sides of a ``.``); a number with a ``.`` or an exponent is a float. Whitespace may surround any token.
"""
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from .errors import TypeSyntaxError

# Type strings come from HTTP requests; these bounds keep hostile input from exhausting time or the stack.
MAX_TYPE_LENGTH = 1000
MAX_NESTING_DEPTH = 32

NAME_PATTERN = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_NUMBER_TOKEN = re.compile(r"[-+.\w]+")
_NUMBER = re.compile(r"-?(?:0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?")
_AT_WORD = re.compile(r"@\w*")
_WHITESPACE = " \t\r\n"


@dataclass(frozen=True, eq=False)
class Literal:
    """A literal argument; ``position`` (where it was parsed) plays no part in equality."""

    value: str | int | float | bool
    position: int | None = field(default=None, repr=False)

    def __post_init__(self):
        if type(self.value) not in (str, int, float, bool):
            raise TypeError(f"A literal holds a str, int, float or bool, not {type(self.value).__name__}")
        if type(self.value) is float:
            if not math.isfinite(self.value):
                raise ValueError(f"A float literal must be finite, not {self.value!r}")
            if self.value == 0.0:
                object.__setattr__(self, "value", 0.0)  # -0.0 == 0.0 must also print the same

    # Equality is by Python type as well as value: True == 1 == 1.0 in Python, but @true, 1 and 1.0 are distinct
    # literals with distinct canonical forms (subtyping compares numbers numerically on its own terms).
    def __eq__(self, other):
        if not isinstance(other, Literal):
            return NotImplemented
        return type(self.value) is type(other.value) and self.value == other.value

    def __hash__(self):
        return hash((type(self.value), self.value))

    def __str__(self):
        value = self.value
        if type(value) is bool:
            return "@true" if value else "@false"
        if type(value) is str:
            return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"
        return repr(value)


@dataclass(frozen=True)
class TypeExpression:
    """A parsed type: a name and its arguments; ``position`` plays no part in equality."""

    name: str
    args: tuple["TypeExpression | Literal", ...] = ()
    position: int | None = field(default=None, compare=False, repr=False)

    def __post_init__(self):
        if not isinstance(self.name, str) or not NAME_PATTERN.fullmatch(self.name):
            raise ValueError(f"{self.name!r} is not a valid type name")
        object.__setattr__(self, "args", tuple(self.args))
        for arg in self.args:
            if not isinstance(arg, (TypeExpression, Literal)):
                raise TypeError(f"A type argument is a TypeExpression or a Literal, not {type(arg).__name__}")

    def __str__(self):
        if not self.args:
            return self.name
        return f"{self.name}<{', '.join(str(arg) for arg in self.args)}>"


def parse_type(text: str) -> TypeExpression:
    """Parse a type string; raises ``TypeSyntaxError`` with the position of the first problem."""
    if not isinstance(text, str):
        raise TypeError(f"A type string must be a str, not {type(text).__name__}")
    if len(text) > MAX_TYPE_LENGTH:
        raise TypeSyntaxError(text, f"the type string is {len(text)} characters long; the limit of "
                                    f"{MAX_TYPE_LENGTH} is exceeded", MAX_TYPE_LENGTH)
    return _Parser(text).parse()


def type_names(text: str) -> set[str]:
    """Every type name a (valid) type string mentions."""
    names, stack = set(), [parse_type(text)]
    while stack:
        node = stack.pop()
        if isinstance(node, TypeExpression):
            names.add(node.name)
            stack.extend(node.args)
    return names


def substitute(expression: TypeExpression, bindings: Mapping[str, "TypeExpression | Literal | None"]
               ) -> TypeExpression:
    """Replace every bare name (no arguments) that ``bindings`` maps with its binding.

    A binding of ``None`` stands for an argument that was not given: it drops that argument and the ones after it,
    because arguments are positional and a type with fewer arguments is their common supertype. The result carries
    no positions, since it no longer corresponds to any one text.
    """
    result = _substitute(expression, bindings)
    if not isinstance(result, TypeExpression):
        raise ValueError(f"Substituting into {expression} does not give a type but {result}")
    return result


def _substitute(node, bindings):
    if isinstance(node, Literal):
        return Literal(node.value)
    if not node.args and node.name in bindings:
        return bindings[node.name]
    args = []
    for arg in node.args:
        replaced = _substitute(arg, bindings)
        if replaced is None:
            break
        args.append(replaced)
    return TypeExpression(node.name, tuple(args))


class _Parser:
    """Recursive descent over one text; recursion is bounded by MAX_NESTING_DEPTH."""

    def __init__(self, text: str):
        self.text = text
        self.pos = 0

    def parse(self) -> TypeExpression:
        self.skip_whitespace()
        if self.at_end():
            raise self.error("the type string is empty")
        expression = self.parse_type(depth=0)
        self.skip_whitespace()
        if not self.at_end():
            raise self.error(f"unexpected {self.found()} after the end of the type")
        return expression

    def parse_type(self, depth: int) -> TypeExpression:
        start = self.pos
        match = NAME_PATTERN.match(self.text, self.pos)
        if match is None:
            kind = self.literal_kind()
            found = f"a {kind} literal" if kind else self.found()
            raise self.error(f"expected a type name, found {found}")
        self.pos = match.end()
        self.skip_whitespace()
        if self.peek() != "<":
            return TypeExpression(match.group(), (), start)
        if depth >= MAX_NESTING_DEPTH:
            raise self.error(f"types are nested more than {MAX_NESTING_DEPTH} levels deep")
        self.pos += 1
        self.skip_whitespace()
        if self.peek() == ">":
            raise self.error("empty argument list; expected a type or literal")
        args = []
        while True:
            self.skip_whitespace()
            args.append(self.parse_argument(depth + 1))
            self.skip_whitespace()
            if self.peek() == ",":
                self.pos += 1
            elif self.peek() == ">":
                self.pos += 1
                return TypeExpression(match.group(), tuple(args), start)
            else:
                raise self.error("expected ',' or '>'")

    def parse_argument(self, depth: int) -> TypeExpression | Literal:
        kind = self.literal_kind()
        if kind == "string":
            return self.parse_string()
        if kind == "number":
            return self.parse_number()
        if kind == "boolean":
            return self.parse_boolean()
        if NAME_PATTERN.match(self.text, self.pos):
            return self.parse_type(depth)
        raise self.error(f"expected a type or literal, found {self.found()}")

    def parse_string(self) -> Literal:
        start = self.pos
        self.pos += 1
        chars = []
        while True:
            if self.at_end():
                raise self.error("unterminated string literal", start)
            char = self.text[self.pos]
            if char == "'":
                self.pos += 1
                return Literal("".join(chars), start)
            if char == "\\":
                escaped = self.text[self.pos + 1:self.pos + 2]
                if escaped == "":
                    raise self.error("unterminated string literal", start)
                if escaped not in ("'", "\\"):
                    raise self.error(f"invalid escape {char + escaped!r} in a string literal "
                                     "(only \\' and \\\\ are allowed)")
                chars.append(escaped)
                self.pos += 2
            else:
                chars.append(char)
                self.pos += 1

    def parse_number(self) -> Literal:
        start = self.pos
        text = _NUMBER_TOKEN.match(self.text, self.pos).group()  # the caller saw a '-' or a digit
        number = _NUMBER.fullmatch(text)
        if number is None:
            raise self.error(f"invalid number {text!r}")
        if number.group(1) is None and number.group(2) is None:
            value: int | float = int(text)
        else:
            value = float(text)
            if not math.isfinite(value):
                raise self.error(f"number {text!r} is out of range")
        self.pos += len(text)
        return Literal(value, start)

    def parse_boolean(self) -> Literal:
        start = self.pos
        word = _AT_WORD.match(self.text, self.pos).group()
        if word not in ("@true", "@false"):
            raise self.error(f"unknown literal {word!r} (only @true and @false exist)")
        self.pos += len(word)
        return Literal(word == "@true", start)

    def literal_kind(self) -> str | None:
        char = self.peek()
        if char == "'":
            return "string"
        if char and char in "-0123456789":
            return "number"
        if char == "@":
            return "boolean"
        return None

    def skip_whitespace(self):
        while self.pos < len(self.text) and self.text[self.pos] in _WHITESPACE:
            self.pos += 1

    def at_end(self) -> bool:
        return self.pos >= len(self.text)

    def peek(self) -> str:
        return self.text[self.pos:self.pos + 1]

    def found(self) -> str:
        return "the end of the text" if self.at_end() else repr(self.peek())

    def error(self, reason: str, position: int | None = None) -> TypeSyntaxError:
        return TypeSyntaxError(self.text, reason, self.pos if position is None else position)
