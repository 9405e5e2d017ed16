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
        raise TemplateError(where, f"template error on line {exc.lineno}: {exc.message}"
                            ) from None
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
            raise TemplateError(where, f"unknown name {name.name!r} in template; use one of: "
                                       f"{known} (e.g. {{{{ trigger.title }}}})")
    for node in tree.find_all(nodes.Getattr):
        target = node.node
        if (isinstance(target, nodes.Name) and target.name == "trigger" and trigger_fields
                and node.attr not in trigger_fields):
            raise TemplateError(where, _unknown_field("trigger", node.attr, trigger_fields))
        if (isinstance(target, nodes.Getitem) and isinstance(target.node, nodes.Name)
                and target.node.name == "reactions" and isinstance(target.arg, nodes.Const)):
            index = target.arg.value
            if not isinstance(index, int) or not 0 <= index < len(reaction_fields):
                raise TemplateError(where, f"reactions[{index}] is not an earlier reaction: a "
                                           f"reaction can use reactions[0] to "
                                           f"reactions[{len(reaction_fields) - 1}]"
                                    if reaction_fields else
                                    f"reactions[{index}] does not exist yet: only later "
                                    "reactions can use an earlier one's output")
            fields = reaction_fields[index]
            if fields and node.attr not in fields:
                raise TemplateError(where, _unknown_field(f"reactions[{index}]", node.attr,
                                                          fields))


def _unknown_field(owner: str, name: str, fields: Sequence[str]) -> str:
    import difflib

    close = difflib.get_close_matches(name, fields, n=1)
    hint = f" Did you mean {owner}.{close[0]}?" if close else ""
    return f"{owner} has no field {name!r}.{hint} Fields: {', '.join(fields)}."


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
        raise TemplateError(where, f"template uses a value this event does not have: "
                                   f"{exc.message}") from None
    except SecurityError as exc:
        raise TemplateError(where, f"template tried something unsafe: {exc}") from None
    except jinja2.TemplateError as exc:
        raise TemplateError(where, f"template error: {exc}") from None
    except (ArithmeticError, TypeError, ValueError, OverflowError, MemoryError) as exc:
        raise TemplateError(where, f"template failed: {exc}") from None


def truthy(rendered: str, *, where: str = "condition") -> bool:
    """A rendered condition as a yes/no; anything else is an error that says so."""
    text = rendered.strip().lower()
    if text in ("true", "yes", "1", "on"):
        return True
    if text in ("false", "no", "0", "off", "", "none"):
        return False
    raise TemplateError(where, f"the condition must come out true or false, but gave "
                               f"{rendered.strip()[:80]!r}")
