"""YAML 1.2 reading for `*.schema.yml`: ruamel.yaml composes the node tree, this module
resolves plain scalars by the YAML 1.2 core schema (as upstream's serde_yaml does) and
keeps 1-based line/column marks. Tags are ignored; duplicate keys are errors.
"""

from __future__ import annotations

import re
import warnings
from dataclasses import dataclass
from decimal import Decimal

from ruamel.yaml import YAML
from ruamel.yaml.error import MarkedYAMLError, ReusedAnchorWarning, YAMLError
from ruamel.yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from flusso.domain.config.model import Value
from flusso.domain.errors import ConfigError

_I64_MIN = -(2**63)
_I64_MAX = 2**63 - 1
_U64_MAX = 2**64 - 1
_NODE_BUDGET = 100_000  # bounds alias expansion ("billion laughs")
_MAX_FLOW_DEPTH = 100  # ruamel's scanner slows down quadratically with flow nesting

_NULLS = frozenset({"", "~", "null", "Null", "NULL"})
_TRUES = frozenset({"true", "True", "TRUE"})
_FALSES = frozenset({"false", "False", "FALSE"})
_DECIMAL_INT = re.compile(r"[+-]?[0-9]+")
_FLOAT = re.compile(r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
_SURROGATE = re.compile("[\ud800-\udfff]")
_RADIX = {"0x": (16, re.compile(r"[0-9a-fA-F]+")), "0o": (8, re.compile(r"[0-7]+")),
          "0b": (2, re.compile(r"[01]+"))}

Scalar = None | bool | int | float | str


class YamlSyntaxError(ConfigError):
    """The text is not one well-formed YAML document (1-based `line`/`column`)."""

    def __init__(self, message: str, *, line: int, column: int) -> None:
        super().__init__(message)
        self.line = line
        self.column = column


@dataclass(eq=False)
class YScalar:
    value: Scalar
    text: str
    line: int
    column: int


@dataclass(eq=False)
class YSeq:
    items: list[YNode]
    line: int
    column: int


@dataclass(eq=False)
class YMap:
    entries: list[tuple[YNode, YNode]]
    line: int
    column: int


YNode = YScalar | YSeq | YMap


def describe(node: YNode) -> str:
    """A short name of a node's YAML kind, for "expected X, found Y" messages."""
    if isinstance(node, YMap):
        return "a mapping"
    if isinstance(node, YSeq):
        return "a list"
    value = node.value
    if value is None:
        return "null"
    if isinstance(value, bool):
        return f"the boolean `{node.text}`"
    if isinstance(value, int | float):
        return f"the number `{node.text}`"
    return f"the string {node.text!r}"


def parse_yaml12(text: str) -> YNode | None:
    """Parse one YAML document; None when it is empty. Raises YamlSyntaxError."""
    too_deep = _flow_too_deep(text)
    if too_deep is not None:
        line, column = _position_to_mark(text, too_deep)
        raise YamlSyntaxError(
            f"invalid YAML: `[`/`{{` nested more than {_MAX_FLOW_DEPTH} levels deep",
            line=line, column=column,
        )
    loader = YAML(typ="safe", pure=True)
    try:
        with warnings.catch_warnings():
            # YAML 1.2 allows redefining an anchor; ruamel only warns about it.
            warnings.simplefilter("ignore", ReusedAnchorWarning)
            root = loader.compose(text)
    except MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        detail = " ".join(str(p) for p in (exc.context, exc.problem) if p)
        line, column = (mark.line + 1, mark.column + 1) if mark is not None else (1, 1)
        raise YamlSyntaxError(f"invalid YAML: {detail or 'syntax error'}",
                              line=line, column=column) from None
    except YAMLError as exc:
        position = getattr(exc, "position", None)
        line, column = _position_to_mark(text, position if isinstance(position, int) else 0)
        reason = getattr(exc, "reason", None) or "unreadable character"
        raise YamlSyntaxError(f"invalid YAML: {reason}", line=line, column=column) from None
    except RecursionError:
        raise YamlSyntaxError("invalid YAML: the document is nested too deeply",
                              line=1, column=1) from None
    if root is None:
        return None
    return _Builder().build(root)


def _flow_too_deep(text: str) -> int | None:
    """Where flow brackets first nest too deep (quotes ignored: a cheap upper bound)."""
    depth = 0
    for position, char in enumerate(text):
        if char in "[{":
            depth += 1
            if depth > _MAX_FLOW_DEPTH:
                return position
        elif char in "]}" and depth:
            depth -= 1
    return None


def _position_to_mark(text: str, position: int) -> tuple[int, int]:
    before = text[:position]
    line = before.count("\n") + 1
    column = position - (before.rfind("\n") + 1) + 1
    return line, column


class _Builder:
    def __init__(self) -> None:
        self._active: set[int] = set()
        self._count = 0

    def build(self, node: Node) -> YNode:
        self._count += 1
        line, column = node.start_mark.line + 1, node.start_mark.column + 1
        if self._count > _NODE_BUDGET:
            raise YamlSyntaxError("invalid YAML: too many nodes once aliases are expanded",
                                  line=line, column=column)
        if isinstance(node, ScalarNode):
            text = str(node.value)
            if _SURROGATE.search(text):
                text = _join_surrogates(text, line, column)
            value = resolve_plain(text) if node.style is None else text
            return YScalar(value, text, line, column)
        if id(node) in self._active:
            raise YamlSyntaxError("invalid YAML: an alias refers to a node that contains it",
                                  line=line, column=column)
        self._active.add(id(node))
        try:
            if isinstance(node, SequenceNode):
                return YSeq([self.build(item) for item in node.value], line, column)
            if isinstance(node, MappingNode):
                return self._mapping(node, line, column)
        finally:
            self._active.discard(id(node))
        raise YamlSyntaxError("invalid YAML: unsupported node", line=line, column=column)

    def _mapping(self, node: MappingNode, line: int, column: int) -> YMap:
        entries: list[tuple[YNode, YNode]] = []
        seen: dict[tuple[str, object], YScalar] = {}
        for key_node, value_node in node.value:
            key = self.build(key_node)
            if isinstance(key, YScalar):
                identity = (type(key.value).__name__, _key_identity(key.value))
                first = seen.get(identity)
                if first is not None:
                    raise YamlSyntaxError(
                        f"duplicate key `{key.text}` (first defined on line {first.line})",
                        line=key.line, column=key.column,
                    )
                seen[identity] = key
            entries.append((key, self.build(value_node)))
        return YMap(entries, line, column)


def _join_surrogates(text: str, line: int, column: int) -> str:
    # YAML 1.2 is a JSON superset, so `"\ud83d\ude00"` is one character; ruamel leaves
    # the halves apart, and a lone half cannot be hashed or written as UTF-8.
    try:
        return text.encode("utf-16-le", "surrogatepass").decode("utf-16-le")
    except UnicodeDecodeError:
        raise YamlSyntaxError(
            "invalid YAML: a `\\u` escape leaves an unpaired UTF-16 surrogate",
            line=line, column=column,
        ) from None


def _key_identity(value: Scalar) -> object:
    if isinstance(value, float) and value != value:
        return "nan"
    return value


def resolve_plain(text: str) -> Scalar:
    """Resolve an untagged plain scalar the way serde_yaml's YAML 1.2 core schema does."""
    if text in _NULLS:
        return None
    if text in _TRUES:
        return True
    if text in _FALSES:
        return False
    integer = _parse_int(text)
    if integer is not None:
        return integer
    if _digits_with_leading_zero(text):
        return text
    number = _parse_float(text)
    return text if number is None else number


def _digits_with_leading_zero(text: str) -> bool:
    # YAML 1.2: `010` is neither octal nor decimal, it is a string.
    digits = text[1:] if text[:1] in "+-" and text else text
    return len(digits) > 1 and digits.startswith("0") and digits.isascii() and digits.isdigit()


def _parse_int(text: str) -> int | None:
    negative = text.startswith("-")
    body = text[1:] if text[:1] in "+-" else text
    for prefix, (radix, pattern) in _RADIX.items():
        if body.startswith(prefix):
            digits = body[len(prefix):]
            if not pattern.fullmatch(digits):
                return None
            magnitude = int(digits, radix)
            value = -magnitude if negative else magnitude
            return value if _I64_MIN <= value <= _U64_MAX else None
    if _digits_with_leading_zero(text) or not _DECIMAL_INT.fullmatch(text):
        return None
    value = int(text)
    # Beyond u64/i64 serde_yaml falls back to a float.
    return value if _I64_MIN <= value <= _U64_MAX else None


def _parse_float(text: str) -> float | None:
    body = text[1:] if text.startswith("+") else text
    if body in (".inf", ".Inf", ".INF"):
        return float("inf")
    if text in ("-.inf", "-.Inf", "-.INF"):
        return float("-inf")
    if text in (".nan", ".NaN", ".NAN"):
        return float("nan")
    if not _FLOAT.fullmatch(text):
        return None
    number = float(text)
    return number if number not in (float("inf"), float("-inf")) else None


def number_text(number: int | float) -> str:
    """A number as upstream prints it: integers in decimal, floats in ryu's shortest form."""
    if isinstance(number, int):
        return str(number)
    if number != number:
        return ".nan"
    if number in (float("inf"), float("-inf")):
        return ".inf" if number > 0 else "-.inf"
    sign = "-" if str(number).startswith("-") else ""
    if number == 0:
        return f"{sign}0.0"
    _, digit_tuple, exponent = Decimal(repr(abs(number))).as_tuple()
    digits = "".join(str(d) for d in digit_tuple).rstrip("0") or "0"
    exponent = int(exponent) + (len(digit_tuple) - len(digits))
    length = len(digits)
    kk = length + exponent  # 10^(kk-1) <= |number| < 10^kk
    if exponent >= 0 and kk <= 16:
        return f"{sign}{digits}{'0' * exponent}.0"
    if 0 < kk <= 16:
        return f"{sign}{digits[:kk]}.{digits[kk:]}"
    if -5 < kk <= 0:
        return f"{sign}0.{'0' * -kk}{digits}"
    mantissa = digits if length == 1 else f"{digits[0]}.{digits[1:]}"
    return f"{sign}{mantissa}e{kk - 1}"


def to_value(node: YNode) -> Value:
    """A YAML value as the model keeps it: i64 → int, other numbers → Decimal, and a number
    written with an exponent, nan or inf → its text (a Decimal would not round-trip it)."""
    if isinstance(node, YMap):
        return {
            key.value: to_value(value)
            for key, value in node.entries
            if isinstance(key, YScalar) and isinstance(key.value, str)
        }
    if isinstance(node, YSeq):
        return [to_value(item) for item in node.items]
    return scalar_value(node.value)


def scalar_value(value: Scalar) -> Value:
    if value is None or isinstance(value, bool | str):
        return value
    if isinstance(value, int) and _I64_MIN <= value <= _I64_MAX:
        return value
    text = number_text(value)
    if "e" in text or text.endswith(("nan", "inf")):
        return text
    return Decimal(text)


def scalar_text(value: Scalar) -> str:
    """A scalar as a filter operand string: bound as a parameter and cast by Postgres."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return number_text(value)
    return value
