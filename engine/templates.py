"""Templates in reaction parameters: sandboxed Jinja2, checked before save, bounded output."""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping, Sequence
from typing import Any

import jinja2
from jinja2 import nodes
from jinja2.exceptions import SecurityError
from jinja2.sandbox import SandboxedEnvironment

from engine.errors import TemplateError

MAX_OUTPUT = 64 * 1024
#: Names a template may use at the top level.
ROOT_NAMES = ("trigger", "reactions", "area", "event", "now")


class _BoundedEnvironment(SandboxedEnvironment):
    """The sandbox, plus limits on ``*`` and ``**`` that could build huge values."""

    intercepted_binops = frozenset({"*", "**"})

    def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
        if operator == "*":
            for seq, count in ((left, right), (right, left)):
                if (isinstance(seq, str | list | tuple) and isinstance(count, int)
                        and len(seq) * count > MAX_OUTPUT):
                    raise SecurityError(f"result would be larger than {MAX_OUTPUT // 1024} KiB")
        if operator == "**" and isinstance(right, int | float) and abs(right) > 1000:
            raise SecurityError("exponent too large")
        return super().call_binop(context, operator, left, right)


_ENV = _BoundedEnvironment(
    undefined=jinja2.StrictUndefined,
    autoescape=False,
    keep_trailing_newline=True,
)
#: The same, for templates whose output is HTML: inserted values are escaped.
_HTML_ENV = _BoundedEnvironment(
    undefined=jinja2.StrictUndefined,
    autoescape=True,
    keep_trailing_newline=True,
)


def _matching(value: Any, pattern: str) -> bool:
    """The ``matching`` test (``trigger.title is matching('^re(lease)?')``): the regular
    expression is found in the value as text, case ignored (the condition builder's
    "matches pattern")."""
    try:
        return re.search(pattern, str(value), re.IGNORECASE) is not None
    except re.error as exc:
        raise ValueError(f"{pattern!r} is not a regular expression: {exc}") from None


for _env in (_ENV, _HTML_ENV):
    _env.tests["matching"] = _matching


#: Half of a UTF-16 pair on its own, as JSON may spell one ("\\ud83c"): no encoder can
#: write it. U+DC80..U+DCFF are left alone: they carry the bytes of a file name that is
#: not UTF-8 (Python's surrogateescape), which the files reactions write back as bytes.
_STRAY_SURROGATE = re.compile("[\ud800-\udc7f\udd00-\udfff]")


def _no_stray_surrogates(text: str) -> str:
    return _STRAY_SURROGATE.sub("\ufffd", text) if _STRAY_SURROGATE.search(text) else text


def is_template(text: str) -> bool:
    return "{{" in text or "{%" in text or "{#" in text


def check(
    source: str,
    *,
    trigger_fields: Sequence[str] | None,
    reaction_fields: Sequence[Sequence[str]] = (),
    where: str = "",
) -> None:
    """Refuse a template that will not work: bad syntax, unknown names or fields,
    or reaching for Python internals.

    Args:
        trigger_fields: the trigger's declared output fields (``None``: any).
        reaction_fields: output fields of the reactions before this one, in order.
    """
    try:
        tree = _ENV.parse(source)
    except jinja2.TemplateSyntaxError as exc:
        raise TemplateError(where, _syntax_problem(exc)) from None
    for attr in tree.find_all(nodes.Getattr):
        if attr.attr.startswith("_"):
            raise TemplateError(where, f"templates cannot use {attr.attr!r}: names that start "
                                       "with '_' are Python internals")
    for item in tree.find_all(nodes.Getitem):
        if isinstance(item.arg, nodes.Const) and str(item.arg.value).startswith("_"):
            raise TemplateError(where, "templates cannot use names that start with '_'")
    assigned = {n.name for n in tree.find_all(nodes.Name) if n.ctx in ("store", "param")}
    for name in tree.find_all(nodes.Name):
        if (name.ctx == "load" and name.name not in ROOT_NAMES and name.name not in assigned
                and name.name not in _ENV.globals):
            known = ", ".join(ROOT_NAMES)
            raise TemplateError(where, f"there is no value {name.name!r} here: a value starts "
                                       f"with one of {known} (e.g. {{{{ trigger.title }}}}). "
                                       "Use Insert field to pick one.")
    for node in tree.find_all(nodes.Getattr):
        target = node.node
        if (isinstance(target, nodes.Name) and target.name == "trigger" and trigger_fields
                and node.attr not in trigger_fields):
            raise TemplateError(where, _unknown_field("trigger", node.attr, trigger_fields))
        if (isinstance(target, nodes.Getitem) and isinstance(target.node, nodes.Name)
                and target.node.name == "reactions" and isinstance(target.arg, nodes.Const)):
            index = target.arg.value
            if not isinstance(index, int) or not 0 <= index < len(reaction_fields):
                raise TemplateError(where, f"reactions[{index}] is not an earlier reaction: "
                                           f"this one can use the results of reactions 1 to "
                                           f"{len(reaction_fields)} (reactions[0] to "
                                           f"reactions[{len(reaction_fields) - 1}])"
                                    if reaction_fields else
                                    f"reactions[{index}] does not exist yet: only a later "
                                    "reaction can use an earlier one's result")
            fields = reaction_fields[index]
            if fields and node.attr not in fields:
                raise TemplateError(where, _unknown_field(f"reactions[{index}]", node.attr,
                                                          fields))


def _unknown_field(owner: str, name: str, fields: Sequence[str]) -> str:
    import difflib

    close = difflib.get_close_matches(name, fields, n=1)
    hint = f" Did you mean {owner}.{close[0]}?" if close else ""
    return (f"{_owner_words(owner)} has no value {name!r}.{hint} It has: "
            f"{', '.join(fields)}. Use Insert field to pick one.")


def _owner_words(path: str) -> str:
    """A value's place in the user's words: ``trigger`` is "this event",
    ``reactions[0]`` "reaction 1's result"."""
    if path == "trigger":
        return "this event"
    if path.startswith("trigger."):
        return f"this event's {path[len('trigger.'):]!r}"
    step = re.fullmatch(r"reactions\[(\d+)\](.*)", path)
    if step:
        owner = f"reaction {int(step[1]) + 1}'s result"
        return f"{owner} {step[2].lstrip('.')!r}" if step[2] else owner
    return repr(path)


#: Jinja's syntax complaints, and what they mean for someone writing a template
#: (``<line>`` is the line's number, ``<0>`` what the pattern caught).
_SYNTAX = (
    (re.compile(r"unexpected '\}'"),
     "the template is not finished: a '}}' closes nothing on line <line> (a lone '}' "
     "stands where '}}' should close a '{{'). Write {{ and }} in pairs."),
    (re.compile(r"unexpected end of template, expected 'end of print statement'"),
     "the template is not finished: a '{{' on line <line> is never closed. Write {{ and "
     "}} in pairs."),
    (re.compile(r"innermost block that needs to be closed is '(\w+)'"),
     "the template is not finished: '{% <0> %}' has no '{% end<0> %}'. Add it after the "
     "text it covers."),
    (re.compile(r"No filter named '(.+?)'"),
     "'| <0>' is not a filter Hookline knows: check its spelling, or remove it."),
    (re.compile(r"Expected an expression, got 'end of print statement'"),
     "'{{ }}' on line <line> is empty: put a value between them (Insert field)."),
    (re.compile(r"(?:unexpected|got) ('.+')"),
     "<0> on line <line> does not belong there. Write {{ and }} in pairs, with one value "
     "between them (Insert field)."),
)


def _syntax_problem(exc: jinja2.TemplateSyntaxError) -> str:
    message = exc.message or ""
    for pattern, words in _SYNTAX:
        found = pattern.search(message)
        if found:
            if found.groups():
                words = words.replace("<0>", found[1])
            return words.replace("<line>", str(exc.lineno))
    return (f"the template cannot be read on line {exc.lineno} ({message.rstrip('.')}). "
            "Write {{ and }} in pairs, with one value between them (Insert field).")


def _missing(source: str, context: Mapping[str, Any]) -> str | None:
    """For a template that used a value the event lacks: which one, and what the event
    has instead (None when it cannot be told)."""
    try:
        tree = _ENV.parse(source)
    except jinja2.TemplateSyntaxError:
        return None
    for node in tree.find_all((nodes.Getattr, nodes.Getitem)):
        path = _path(node, context)
        if path is not None:
            owner, name, keys = path
            has = f" It has: {', '.join(keys)}." if keys else ""
            return (f"{_owner_words(owner)} has no value {name!r}.{has} Use Insert field "
                    "to pick one.")
    return None


def _path(node: nodes.Node, context: Mapping[str, Any]
          ) -> tuple[str, str, list[str]] | None:
    """Where the chain of ``.name``/``[key]`` ending at ``node`` first fails in
    ``context``: the owner's path, the missing name, the owner's keys. None when every
    step is there (or the chain is not one of plain names and constants)."""
    chain: list[Any] = []
    while isinstance(node, nodes.Getattr | nodes.Getitem):
        if isinstance(node, nodes.Getattr):
            chain.append(node.attr)
        elif isinstance(node.arg, nodes.Const):
            chain.append(node.arg.value)
        else:
            return None
        node = node.node
    if not isinstance(node, nodes.Name) or node.name not in context:
        return None
    value: Any = context[node.name]
    owner = node.name
    for key in reversed(chain):
        present = (key in value if isinstance(value, Mapping) else
                   isinstance(value, list | tuple) and isinstance(key, int)
                   and -len(value) <= key < len(value))
        if present:
            value = value[key]
        else:
            keys = [str(k) for k in value] if isinstance(value, Mapping) else []
            return owner, str(key), keys
        owner += f"[{key}]" if isinstance(key, int) else f".{key}"
    return None


@functools.lru_cache(maxsize=2048)
def _compiled(source: str, html: bool = False) -> jinja2.Template:
    """Compiling costs far more than rendering: each distinct template compiles once."""
    return (_HTML_ENV if html else _ENV).from_string(source)


def render(source: str, context: Mapping[str, Any], *, where: str = "",
           limit: int = MAX_OUTPUT, html: bool = False) -> str:
    """Render ``source``; a missing value, an escape attempt or output over ``limit``
    characters is a TemplateError that names ``where``. With ``html`` the output is
    HTML: inserted values are escaped (``| safe`` marks a value as markup)."""
    if not is_template(source):
        return source
    try:
        template = _compiled(source, html)
        size = 0
        parts: list[str] = []
        for chunk in template.generate(**context):
            size += len(chunk)
            if size > limit:
                raise TemplateError(where, f"template output is larger than {limit // 1024} KiB;"
                                           " shorten it (e.g. {{ text | truncate(1000) }})")
            parts.append(chunk)
        return _no_stray_surrogates("".join(parts))
    except TemplateError:
        raise
    except jinja2.UndefinedError as exc:
        raise TemplateError(where, _missing(source, context) or (
            f"this event has no such value ({exc.message}). Use Insert field to pick one."
        )) from None
    except SecurityError as exc:
        raise TemplateError(where, f"the template tried something unsafe ({exc}): use only "
                                   "the event's values and filters") from None
    except jinja2.TemplateSyntaxError as exc:  # also an unknown filter, found compiling
        raise TemplateError(where, _syntax_problem(exc)) from None
    except jinja2.TemplateError as exc:
        raise TemplateError(where, f"the template cannot be used: {exc}") from None
    except (ArithmeticError, TypeError, ValueError, OverflowError, MemoryError) as exc:
        raise TemplateError(where, f"the template could not be worked out: {exc}") from None


def truthy(rendered: str, *, where: str = "condition") -> bool:
    """A rendered condition as a yes/no; anything else is an error that says so."""
    text = rendered.strip().lower()
    if text in ("true", "yes", "1", "on"):
        return True
    if text in ("false", "no", "0", "off", "", "none"):
        return False
    raise TemplateError(where, f"the condition must come out true or false, but gave "
                               f"{rendered.strip()[:80]!r}")
