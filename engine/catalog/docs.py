"""The services reference page, generated from the catalog (never written by hand)."""

from __future__ import annotations

from collections.abc import Iterable

from engine.catalog.params import Param
from engine.catalog.service import AuthKind, Service

HEADER = """# Services

Generated from the catalog by `hookline services --markdown > docs/services.md`;
a test fails when it is out of date. Every parameter, default and output field below is
what the engine validates and what the desktop app's forms show.
"""

AUTH_TEXT = {
    AuthKind.NONE: "No account needed.",
    AuthKind.API_KEY: "Needs an API key or personal token.",
    AuthKind.OAUTH2: "Needs a connected account (OAuth2).",
}


def _cell(text: str) -> str:
    return " ".join(str(text).split()).replace("|", "\\|")


def _params(params: Iterable[Param]) -> list[str]:
    rows = [p for p in params]
    if not rows:
        return ["No parameters.", ""]
    out = ["| parameter | type | required | default | help |", "|---|---|---|---|---|"]
    for p in rows:
        required = "yes" if p.required and p.default is None else "no"
        default = "" if p.default in (None, "") else f"`{p.default}`"
        kind = p.type.value
        if p.choices:
            kind += ": " + ", ".join(f"`{value}`" for value, _ in p.choices)
        out.append(f"| `{p.name}` | {kind} | {required} | {default} | {_cell(p.help)} |")
    return [*out, ""]


def markdown(services: Iterable[Service]) -> str:
    """The whole reference page for ``services``."""
    lines = [HEADER]
    ordered = sorted(services, key=lambda s: s.name.lower())
    lines.append("| service | triggers | reactions | account |")
    lines.append("|---|---|---|---|")
    for s in ordered:
        lines.append(f"| [{s.name}](#{s.id}) | {len(s.triggers)} | {len(s.reactions)} | "
                     f"{AUTH_TEXT[s.auth]} |")
    lines.append("")
    for s in ordered:
        lines += [f'<a id="{s.id}"></a>', f"## {s.name} (`{s.id}`)", "",
                  _cell(s.description), "", AUTH_TEXT[s.auth], ""]
        if s.access_note:
            lines += [f"**Cost and access:** {_cell(s.access_note)}", ""]
        for kind, specs in (("Trigger", s.triggers.values()),
                            ("Reaction", s.reactions.values())):
            for spec in specs:
                lines += [f"### {kind}: {spec.name} (`{s.id}.{spec.id}`)", "",
                          _cell(spec.description), ""]
                lines += _params(spec.params)
                if spec.fields:
                    label = "Fields" if kind == "Trigger" else "Output"
                    lines.append(f"{label}: " + ", ".join(
                        f"`{f.name}` ({_cell(f.label)})" for f in spec.fields) + ".")
                    lines.append("")
    return "\n".join(lines).rstrip() + "\n"
