"""A provider's published API description (OpenAPI 3) and the check of one request against it.

The copies in tests/contracts/ are OpenAPI 3 documents (JSON, or YAML) trimmed by
scripts/refresh-contracts to the operations Hookline calls. A request is checked for:
its method and path matching an operation (a path template under one of the
description's servers), the operation's required query parameters being sent, every
query parameter sent being one the operation lists (or an API key the description's
security schemes put in the query), and, for a JSON or form body (or a header parameter
that carries JSON, like Dropbox-API-Arg), every field sent being one the schema names,
at every level where the schema names its fields, and its required fields being sent.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

METHODS = ("get", "put", "post", "delete", "patch", "head", "options")
JSON_TYPES = ("application/json",)
FORM_TYPE = "application/x-www-form-urlencoded"


def load_document(path: Path) -> dict[str, Any]:
    text = path.read_text(encoding="utf-8")
    if path.suffix in (".yaml", ".yml"):
        import yaml

        return dict(yaml.safe_load(text))
    return dict(json.loads(text))


def template_regex(template: str) -> re.Pattern[str]:
    """`/repos/{owner}/{repo}` as a regex: each `{name}` is one path segment."""
    parts = re.split(r"(\{[^}/]+\})", template.rstrip("/") or "/")
    body = "".join("[^/]+" if p.startswith("{") else re.escape(p) for p in parts)
    return re.compile(body + "/?")


@dataclass
class Operation:
    method: str
    template: str
    regexes: list[re.Pattern[str]]
    spec: dict[str, Any]


@dataclass
class Request:
    """What a provider received: the path as the fake saw it, and the real base paths it
    may sit under (the service's base URL the test replaced with the fake's)."""

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes
    base_paths: tuple[str, ...] = ("",)

    @property
    def content_type(self) -> str:
        return self.headers.get("Content-Type", "").split(";")[0].strip().lower()

    def candidates(self) -> list[str]:
        return [base.rstrip("/") + self.path for base in self.base_paths]

    def describe(self) -> str:
        query = "&".join(sorted(self.query))
        return f"{self.method} {self.path}" + (f"?{query}" if query else "")


@dataclass
class Description:
    """One provider's description, loaded once; `check` answers what a request breaks."""

    path: Path
    doc: dict[str, Any]
    operations: list[Operation] = field(default_factory=list)

    @classmethod
    def load(cls, path: Path) -> Description:
        doc = load_document(path)
        self = cls(path, doc)
        for template, item in (doc.get("paths") or {}).items():
            item = self.resolve(item)
            servers = item.get("servers") or doc.get("servers") or []
            bases = [urlsplit(s.get("url", "")).path.rstrip("/") for s in servers]
            shared = item.get("parameters") or []
            for method in METHODS:
                if method not in item:
                    continue
                spec = dict(self.resolve(item[method]))
                spec["parameters"] = self._merge(shared, spec.get("parameters") or [])
                regexes = [template_regex(b + template) for b in dict.fromkeys([*bases, ""])]
                self.operations.append(Operation(method.upper(), template, regexes, spec))
        return self

    # ------------------------------------------------------------------ references
    def resolve(self, node: Any, depth: int = 0) -> Any:
        """Follow a local `$ref` (#/components/...) to what it names."""
        while isinstance(node, dict) and "$ref" in node and depth < 50:
            ref = str(node["$ref"])
            if not ref.startswith("#/"):
                return {}
            target: Any = self.doc
            for part in ref[2:].split("/"):
                part = part.replace("~1", "/").replace("~0", "~")
                target = target.get(part, {}) if isinstance(target, dict) else {}
            node, depth = target, depth + 1
        return node

    def _merge(self, shared: list[Any], own: list[Any]) -> list[dict[str, Any]]:
        params: dict[tuple[str, str], dict[str, Any]] = {}
        for raw in [*shared, *own]:
            param = self.resolve(raw)
            if isinstance(param, dict) and "name" in param:
                params[(param["name"], param.get("in", ""))] = param
        return list(params.values())

    def _query_keys(self) -> set[str]:
        schemes = (self.doc.get("components") or {}).get("securitySchemes") or {}
        return {
            s["name"]
            for s in map(self.resolve, schemes.values())
            if isinstance(s, dict) and s.get("type") == "apiKey" and s.get("in") == "query"
        }

    # ------------------------------------------------------------------ the check
    def find(self, request: Request) -> Operation | None:
        paths = request.candidates()
        for op in self.operations:
            if op.method == request.method and any(
                rx.fullmatch(p) for rx in op.regexes for p in paths
            ):
                return op
        return None

    def check(self, request: Request) -> list[str]:
        """What in `request` the description does not have (empty when it fits)."""
        op = self.find(request)
        if op is None:
            same_path = {
                o.method
                for o in self.operations
                if any(rx.fullmatch(p) for rx in o.regexes for p in request.candidates())
            }
            if same_path:
                return [f"{request.method} is not a method of this path (it has "
                        f"{', '.join(sorted(same_path))})"]
            return ["no operation has this method and path"]
        where = f"{op.method} {op.template}"
        problems: list[str] = []
        params = op.spec["parameters"]
        query_params = {p["name"] for p in params if p.get("in") == "query"}
        for name in sorted(query_params):
            param = next(p for p in params if p["name"] == name and p.get("in") == "query")
            if param.get("required") and name not in request.query:
                problems.append(f"{where}: required query parameter {name!r} is missing")
        allowed = query_params | self._query_keys()
        for name in sorted(request.query):
            if name not in allowed and name.split("[")[0] not in allowed:
                problems.append(f"{where}: query parameter {name!r} is not in the description")
        for param in params:
            if param.get("in") == "header" and "content" in param:
                raw = _header(request.headers, param["name"])
                schema = (param["content"].get("application/json") or {}).get("schema")
                if raw is not None and schema is not None:
                    problems += self._fields(json.loads(raw), schema, f"{where} {param['name']}")
        problems += self._body(op, where, request)
        return problems

    def _body(self, op: Operation, where: str, request: Request) -> list[str]:
        body_spec = self.resolve(op.spec.get("requestBody"))
        if not request.body:
            if isinstance(body_spec, dict) and body_spec.get("required"):
                return [f"{where}: the description requires a request body; none was sent"]
            return []
        if not isinstance(body_spec, dict) or not body_spec.get("content"):
            if request.content_type in (*JSON_TYPES, FORM_TYPE):
                return [f"{where}: sends a {request.content_type} body; the description "
                        "takes none"]
            return []
        content: dict[str, Any] = body_spec["content"]
        media = _media(content, request.content_type)
        if media is None:
            return [f"{where}: sends Content-Type {request.content_type or '(none)'}; the "
                    f"description takes {', '.join(sorted(content))}"]
        schema = (content[media] or {}).get("schema")
        if schema is None:
            return []
        if request.content_type in JSON_TYPES or request.content_type.endswith("+json"):
            return self._fields(json.loads(request.body), schema, where + " body")
        if request.content_type == FORM_TYPE:
            form = dict(parse_qsl(request.body.decode(), keep_blank_values=True))
            return self._fields(form, schema, where + " form")
        return []

    def _fields(self, value: Any, schema: Any, where: str, depth: int = 0) -> list[str]:
        """Every field of `value` named by `schema` (where it names its fields)."""
        schema = self.resolve(schema)
        if depth > 8 or not isinstance(schema, dict):
            return []
        if isinstance(value, list):
            items = schema.get("items")
            return [p for v in value for p in self._fields(v, items, where + "[]", depth + 1)]
        if not isinstance(value, dict):
            return []
        branches = [self.resolve(b) for b in schema.get("oneOf") or schema.get("anyOf") or []]
        if branches:
            # The value must fit one branch; say what the closest branch lacks.
            found = [self._fields(value, {**schema, "oneOf": [], "anyOf": [], **b}, where,
                                  depth + 1) for b in branches if isinstance(b, dict)]
            return min(found, key=len) if found and all(found) else []
        props, required, closed = self._object(schema)
        if props is None:
            return []
        problems = [f"{where}: field {name!r} is not in the description"
                    for name in value if name not in props and closed]
        problems += [f"{where}: required field {name!r} is missing"
                     for name in required if name not in value]
        for name, sub in value.items():
            if name in props:
                problems += self._fields(sub, props[name], f"{where}.{name}", depth + 1)
        return problems

    def _object(self, schema: dict[str, Any]) -> tuple[dict[str, Any] | None, list[str], bool]:
        """The properties, required names and closedness of an object schema (allOf merged)."""
        props: dict[str, Any] | None = None
        required: list[str] = []
        closed = True
        for part in [schema, *(self.resolve(s) for s in schema.get("allOf") or [])]:
            if not isinstance(part, dict):
                continue
            if "properties" in part:
                props = {**(props or {}), **part["properties"]}
            required += part.get("required") or []
            extra = part.get("additionalProperties")
            if extra not in (None, False):
                closed = False
        return props, required, closed


def _header(headers: dict[str, str], name: str) -> str | None:
    for key, value in headers.items():
        if key.lower() == name.lower():
            return value
    return None


def _media(content: dict[str, Any], sent: str) -> str | None:
    if sent in content:
        return sent
    for media in content:
        kind = media.split(";")[0].strip().lower()
        if kind == sent or kind == "*/*" or (kind.endswith("/*") and sent.startswith(kind[:-1])):
            return media
    if not sent and len(content) == 1:
        return next(iter(content))
    return None
