"""Conditions as rules (field, operator, value; all or any), written as the template the
runner already evaluates, and read back from it.

What a rule means, decided here once for the app and the CLI alike:

- Text comparisons ignore case (both sides go through ``lower``); "matches pattern" is a
  regular expression searched anywhere in the text, case ignored (the ``matching`` test).
- Number comparisons read the field as a number: a number, or text that reads as one
  (``"1.5"`` from a webhook body compares as 1.5). A value that is not a number makes
  the rule false, never an error.
- "is true" / "is false" take true/false and the texts ``true yes 1 on`` /
  ``false no 0 off`` (any case), as a condition's own result is read.
- A field the event does not have (or has as null) makes the rule false, never an
  error; but for "is empty", for which a missing value is empty.
"""

from __future__ import annotations

import ast
import math
import re
from dataclasses import dataclass
from typing import Any, Literal

Kind = Literal["text", "number", "boolean"]


@dataclass(frozen=True)
class Operator:
    """One way to compare a field.

    Attributes:
        id: how rules name it.
        label: what the builder shows.
        kind: the type of field it is for.
        takes_value: whether the rule has a value to compare with.
    """

    id: str
    label: str
    kind: Kind
    takes_value: bool = True


OPERATORS: tuple[Operator, ...] = (
    Operator("contains", "contains", "text"),
    Operator("not_contains", "does not contain", "text"),
    Operator("is", "is", "text"),
    Operator("is_not", "is not", "text"),
    Operator("starts_with", "starts with", "text"),
    Operator("ends_with", "ends with", "text"),
    Operator("matches", "matches pattern", "text"),
    Operator("is_empty", "is empty", "text", takes_value=False),
    Operator("is_not_empty", "is not empty", "text", takes_value=False),
    Operator("eq", "=", "number"),
    Operator("ne", "≠", "number"),
    Operator("gt", ">", "number"),
    Operator("ge", "≥", "number"),
    Operator("lt", "<", "number"),
    Operator("le", "≤", "number"),
    Operator("is_true", "is true", "boolean", takes_value=False),
    Operator("is_false", "is false", "boolean", takes_value=False),
)
BY_ID = {op.id: op for op in OPERATORS}
KINDS: tuple[Kind, ...] = ("text", "number", "boolean")

#: A field a rule can name: ``trigger`` and its keys, as "Insert field" writes them.
_FIELD = (r"trigger(?:\.[A-Za-z][A-Za-z0-9_]*|\[\d+\]"
          r"|\[\"(?:[^\"\\\n]|\\.)*\"\]|\['(?:[^'\\\n]|\\.)*'\])+")
_FIELD_RE = re.compile(_FIELD + r"\Z")
_STEP = re.compile(r"\.[A-Za-z][A-Za-z0-9_]*|\[\d+\]|\[\"(?:[^\"\\\n]|\\.)*\"\]"
                   r"|\['(?:[^'\\\n]|\\.)*'\]")
_GUARD_END = re.compile(rf"(?P<f>{_FIELD}) is not none")
_STRING = r"'(?:[^'\\]|\\.)*'"
_NUMBER = r"-?\d+(?:\.\d+)?(?:e[+-]?\d+)?"
_VALUE_MARK = "VALUEMARK"
_NUMBER_OPS = {"eq": "==", "ne": "!=", "gt": ">", "ge": ">=", "lt": "<", "le": "<="}
_TEXT_TRUE = "['true', 'yes', '1', 'on']"
_TEXT_FALSE = "['false', 'no', '0', 'off']"


@dataclass(frozen=True)
class Rule:
    """``field`` (a template expression such as ``trigger.title``) compared by ``op``
    (an Operator id) with ``value`` (as typed; '' for operators without one)."""

    field: str
    op: str
    value: str = ""


@dataclass(frozen=True)
class Filter:
    """Rules that must all hold (``any``: at least one)."""

    rules: tuple[Rule, ...] = ()
    any: bool = False


def kind_of(example: Any) -> Kind:
    """The kind of field an example value suggests (text that reads as a number is a
    number: webhook bodies often send numbers as text)."""
    if isinstance(example, bool):
        return "boolean"
    if isinstance(example, int | float):
        return "number"
    if isinstance(example, str) and number_text(example) is not None:
        return "number"
    return "text"


def number_text(value: str) -> str | None:
    """``value`` as the number a rule writes (``2``, ``2.5``, ``-1e+20``), or None when
    it is not a finite number."""
    try:
        number = float(value.strip().replace(",", "."))
    except ValueError:
        return None
    if not math.isfinite(number):
        return None
    if number.is_integer() and abs(number) < 1e15:
        return str(int(number))
    return repr(number)


def problem(rule: Rule) -> str | None:
    """What keeps ``rule`` from being written, in words, or None."""
    if not rule.field:
        return "choose a field"
    if not _FIELD_RE.match(rule.field) or any(
            step.startswith(("._", "['_", '["_')) for step in _STEP.findall(rule.field)):
        return f"{rule.field!r} is not a field a rule can use"
    op = BY_ID.get(rule.op)
    if op is None:
        return f"unknown comparison {rule.op!r}"
    if not op.takes_value:
        return None
    if op.kind == "number":
        return None if number_text(rule.value) is not None else (
            f"{op.label} compares numbers: enter a number, e.g. 2 or 1.5")
    if rule.value == "":
        return "enter the text to compare with"
    if op.id == "matches":
        try:
            re.compile(rule.value)
        except re.error as exc:
            return f"the pattern is not a regular expression: {exc}"
    return None


def quote(text: str) -> str:
    """``text`` as a template string literal: quotes, backslashes, newlines and other
    control characters escaped, so no value can end the literal or the template."""
    out = []
    for char in text:
        if char in "\\'":
            out.append("\\" + char)
        elif char == "\n":
            out.append("\\n")
        elif char == "\r":
            out.append("\\r")
        elif char == "\t":
            out.append("\\t")
        elif ord(char) < 0x20 or ord(char) == 0x7F:
            out.append(f"\\x{ord(char):02x}")
        else:
            out.append(char)
    return "'" + "".join(out) + "'"


def _guard(field: str) -> str:
    """The field is there and not null (each level of a nested one checked first, so a
    missing level is false, not an error)."""
    parts = []
    end = len("trigger")
    for step in _STEP.finditer(field, end):
        if step.end() < len(field):
            parts.append(f"{field[:step.end()]} is defined")
    parts.append(f"{field} is defined")
    parts.append(f"{field} is not none")
    return " and ".join(parts)


def _render(field: str, op: str, literal: str) -> str:
    f, v, guard = field, literal, _guard(field)
    text = f"({f} | string | lower)"
    empty = f"(({f} | string | trim) == '' or {f} == [] or {f} == {{}})"
    body = {
        "contains": f"({v} | lower) in {text}",
        "not_contains": f"({v} | lower) not in {text}",
        "is": f"{text} == ({v} | lower)",
        "is_not": f"{text} != ({v} | lower)",
        "starts_with": f"{text}.startswith({v} | lower)",
        "ends_with": f"{text}.endswith({v} | lower)",
        "matches": f"{f} is matching({v})",
        "is_not_empty": f"not {empty}",
        "is_true": f"{text} in {_TEXT_TRUE}",
        "is_false": f"{text} in {_TEXT_FALSE}",
    }
    if op == "is_empty":
        return f"(not ({guard}) or {empty})"
    if op in _NUMBER_OPS:
        number = f"({f} | float(none))"
        return f"({guard} and {number} is not none and {number} {_NUMBER_OPS[op]} {v})"
    return f"({guard} and {body[op]})"


def rule_text(rule: Rule) -> str:
    """One rule as a template expression; a ValueError says what is wrong with it."""
    wrong = problem(rule)
    if wrong:
        raise ValueError(wrong)
    op = BY_ID[rule.op]
    if not op.takes_value:
        literal = "''"
    elif op.kind == "number":
        literal = number_text(rule.value) or ""
    else:
        literal = quote(rule.value)
    return _render(rule.field, rule.op, literal)


def to_condition(rules: Filter) -> str:
    """The condition the runner evaluates ('' for no rules)."""
    if not rules.rules:
        return ""
    joiner = " or " if rules.any else " and "
    return "{{ " + joiner.join(rule_text(rule) for rule in rules.rules) + " }}"


def _split(inner: str) -> tuple[list[str], set[str]] | None:
    """The top-level parts of ``inner`` and the words between them (outside brackets
    and string literals)."""
    parts, joiners = [], set()
    depth, start, index = 0, 0, 0
    while index < len(inner):
        char = inner[index]
        if char == "'":
            match = re.compile(_STRING).match(inner, index)
            if not match:
                return None
            index = match.end()
            continue
        if char in "([{":
            depth += 1
        elif char in ")]}":
            depth -= 1
        elif depth == 0:
            for word in (" and ", " or "):
                if inner.startswith(word, index):
                    parts.append(inner[start:index])
                    joiners.add(word.strip())
                    index += len(word)
                    start = index
                    break
            else:
                index += 1
            continue
        index += 1
    parts.append(inner[start:])
    return parts, joiners


def _parse_rule(text: str) -> Rule | None:
    found = _GUARD_END.search(text)
    if not found:
        return None
    field = found["f"]
    for op in OPERATORS:
        shape = re.escape(_render(field, op.id, _VALUE_MARK))
        literal = _NUMBER if op.kind == "number" else _STRING
        match = re.fullmatch(shape.replace(_VALUE_MARK, f"(?P<v>{literal})"), text)
        if not match:
            continue
        value = ""
        if op.takes_value:
            raw = match["v"]
            try:
                value = str(ast.literal_eval(raw)) if op.kind != "number" else raw
            except (ValueError, SyntaxError):
                return None
        return Rule(field, op.id, value)
    return None


def parse(condition: str | None) -> Filter | None:
    """The rules ``condition`` was written from, or None when it is not a condition
    ``to_condition`` writes (a template written by hand)."""
    text = (condition or "").strip()
    if not text:
        return Filter()
    if not (text.startswith("{{ ") and text.endswith(" }}")):
        return None
    split = _split(text[3:-3])
    if split is None or len(split[1]) > 1:
        return None
    parts, joiners = split
    rules = []
    for part in parts:
        rule = _parse_rule(part)
        if rule is None:
            return None
        rules.append(rule)
    parsed = Filter(tuple(rules), any=joiners == {"or"})
    try:
        same = to_condition(parsed) == text
    except ValueError:
        return None
    return parsed if same else None
