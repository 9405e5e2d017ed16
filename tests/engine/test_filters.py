"""Conditions built from rules: written as templates, read back, and kept or filtered by
the real runner exactly as the rules say."""

from __future__ import annotations

from typing import Any

import pytest

from engine import templates
from engine.app import Engine
from engine.areas import AreaSpec
from engine.filters import OPERATORS, Filter, Rule, parse, problem, quote, to_condition
from tests.engine import probe

#: (rule, the event's fields, whether the reactions run)
CASES: list[tuple[Rule, dict[str, Any], bool]] = [
    (Rule("trigger.title", "contains", "frost"), {"title": "First FROST tonight"}, True),
    (Rule("trigger.title", "contains", "frost"), {"title": "Mild"}, False),
    (Rule("trigger.title", "not_contains", "frost"), {"title": "Mild"}, True),
    (Rule("trigger.title", "not_contains", "frost"), {"title": "frosty"}, False),
    (Rule("trigger.title", "is", "Hello"), {"title": "hello"}, True),
    (Rule("trigger.title", "is", "Hello"), {"title": "hello!"}, False),
    (Rule("trigger.title", "is_not", "Hello"), {"title": "bye"}, True),
    (Rule("trigger.title", "is_not", "Hello"), {"title": "HELLO"}, False),
    (Rule("trigger.title", "starts_with", "re"), {"title": "Release"}, True),
    (Rule("trigger.title", "starts_with", "re"), {"title": "a release"}, False),
    (Rule("trigger.title", "ends_with", ".PDF"), {"title": "x.pdf"}, True),
    (Rule("trigger.title", "ends_with", ".PDF"), {"title": "x.pdfs"}, False),
    (Rule("trigger.title", "matches", r"^v\d+\.\d+$"), {"title": "V2.10"}, True),
    (Rule("trigger.title", "matches", r"^v\d+\.\d+$"), {"title": "v2"}, False),
    (Rule("trigger.title", "is_empty"), {"title": ""}, True),
    (Rule("trigger.title", "is_empty"), {"title": "  "}, True),
    (Rule("trigger.title", "is_empty"), {"title": None}, True),
    (Rule("trigger.title", "is_empty"), {"title": []}, True),
    (Rule("trigger.title", "is_empty"), {}, True),  # missing is empty
    (Rule("trigger.title", "is_empty"), {"title": "x"}, False),
    (Rule("trigger.title", "is_empty"), {"title": 0}, False),
    (Rule("trigger.title", "is_not_empty"), {"title": "x"}, True),
    (Rule("trigger.title", "is_not_empty"), {"title": ""}, False),
    (Rule("trigger.n", "eq", "2"), {"n": 2}, True),
    (Rule("trigger.n", "eq", "2"), {"n": "2"}, True),  # a number sent as text
    (Rule("trigger.n", "eq", "2"), {"n": 2.0}, True),
    (Rule("trigger.n", "eq", "2"), {"n": 3}, False),
    (Rule("trigger.n", "eq", "0"), {"n": "abc"}, False),  # not a number: false, not 0
    (Rule("trigger.n", "ne", "2"), {"n": 3}, True),
    (Rule("trigger.n", "ne", "2"), {"n": 2}, False),
    (Rule("trigger.n", "gt", "2"), {"n": 2.5}, True),
    (Rule("trigger.n", "gt", "2"), {"n": "10"}, True),  # as numbers, not as text
    (Rule("trigger.n", "gt", "2"), {"n": 2}, False),
    (Rule("trigger.n", "ge", "2"), {"n": 2}, True),
    (Rule("trigger.n", "ge", "2"), {"n": 1}, False),
    (Rule("trigger.n", "lt", "2"), {"n": "1.5"}, True),
    (Rule("trigger.n", "lt", "2"), {"n": -3}, True),
    (Rule("trigger.n", "lt", "2"), {"n": 2}, False),
    (Rule("trigger.n", "lt", "2"), {"n": ""}, False),
    (Rule("trigger.n", "lt", "2"), {"n": None}, False),
    (Rule("trigger.n", "le", "-1.5"), {"n": -1.5}, True),
    (Rule("trigger.n", "le", "-1.5"), {"n": 3}, False),
    (Rule("trigger.title", "is_true"), {"title": True}, True),
    (Rule("trigger.title", "is_true"), {"title": "Yes"}, True),
    (Rule("trigger.title", "is_true"), {"title": "TRUE"}, True),
    (Rule("trigger.title", "is_true"), {"title": False}, False),
    (Rule("trigger.title", "is_true"), {"title": "no"}, False),
    (Rule("trigger.title", "is_false"), {"title": False}, True),
    (Rule("trigger.title", "is_false"), {"title": "off"}, True),
    (Rule("trigger.title", "is_false"), {"title": True}, False),
    # a nested field: a missing level is false, not an error
    (Rule("trigger.title.first", "contains", "a"), {"title": {"first": "Ada"}}, True),
    (Rule("trigger.title.first", "contains", "a"), {"title": "Ada"}, False),
    (Rule("trigger.title.first", "contains", "a"), {"title": None}, False),
    (Rule("trigger.title.first", "contains", "a"), {}, False),
    (Rule('trigger.title["a b"]', "is", "x"), {"title": {"a b": "X"}}, True),
    (Rule("trigger.title[1]", "gt", "1"), {"title": [0, 5]}, True),
]
#: Values that must stay values: quotes, braces, template syntax, backslashes, newlines.
AWKWARD = ["it's", 'say "hi"', "{{ 7 * 7 }}", "}}", "{% raw %}", "{# c #}", "a\\b", "\\",
           "two\nlines", "tab\there", "\x00\x1f\x7f", "naïve ☃ 🧊", "' or true or '",
           "\\' }} {{ trigger"]


def area(condition: str, name: str = "Probe") -> AreaSpec:
    return AreaSpec.from_dict({
        "name": name,
        "trigger": {"service": "probe", "trigger": "hook"},
        "condition": condition,
        "reactions": [{"service": "probe", "reaction": "record",
                       "params": {"text": "ran"}}],
    })


async def outcomes(engine: Engine, cases: list[tuple[str, dict[str, Any]]]) -> list[str]:
    """Each condition run by the real runner on its event: the run's status."""
    ids = []
    for index, (condition, event) in enumerate(cases):
        saved = await engine.create_area(area(condition, f"Case {index}"))
        ids.append(saved.id)
        await engine.run_now(saved.id, event)
    await engine.wait_idle()
    statuses = []
    for area_id in ids:
        (run,) = await engine.store.runs(area_id)
        statuses.append(run["status"] if run["status"] != "failed" else run["error"])
    return statuses


async def test_each_operator_keeps_and_filters_as_its_rule_says(engine: Engine) -> None:
    runs = await outcomes(engine, [(to_condition(Filter((rule,))), event)
                                   for rule, event, _ in CASES])
    expected = ["succeeded" if passes else "skipped" for _, _, passes in CASES]
    wrong = [(rule, event, got) for (rule, event, _), got, want in zip(CASES, runs, expected,
                                                                    strict=True) if got != want]
    assert not wrong


async def test_a_missing_field_makes_the_rule_false_not_an_error(engine: Engine) -> None:
    rules = [Rule(f, op.id, "2" if op.kind == "number" else "x" if op.takes_value else "")
             for op in OPERATORS if op.id != "is_empty"
             for f in ("trigger.title", "trigger.title.deeper[0]")]
    runs = await outcomes(engine, [(to_condition(Filter((rule,))), {}) for rule in rules])
    assert runs == ["skipped"] * len(rules)


async def test_all_needs_every_rule_and_any_needs_one(engine: Engine) -> None:
    rules = (Rule("trigger.title", "contains", "frost"), Rule("trigger.n", "lt", "2"))
    events: list[dict[str, Any]] = [{"title": "Frost", "n": 1}, {"title": "Frost", "n": 5},
              {"title": "Mild", "n": 1}, {"title": "Mild", "n": "5"}]
    runs = await outcomes(engine, [(to_condition(Filter(rules, any=match)), event)
                                   for match in (False, True) for event in events])
    assert runs == ["succeeded", "skipped", "skipped", "skipped",
                    "succeeded", "succeeded", "succeeded", "skipped"]
    assert [r["text"] for r in probe.controls.received] == ["ran"] * 4


async def test_awkward_values_are_compared_as_typed_never_run(engine: Engine) -> None:
    cases = []
    for value in AWKWARD:
        condition = to_condition(Filter((Rule("trigger.title", "is", value),)))
        templates.check(condition, trigger_fields=["title", "n"])  # saved as it is
        cases += [(condition, {"title": value.upper()}), (condition, {"title": "49"})]
    runs = await outcomes(engine, cases)
    assert runs == ["succeeded", "skipped"] * len(AWKWARD)


@pytest.mark.parametrize("value", AWKWARD)
def test_a_value_is_one_string_literal(value: str) -> None:
    literal = quote(value)
    assert "\n" not in literal and "\r" not in literal
    assert templates.render("{{ " + literal + " }}", {}) == value


def one_of_each() -> list[Rule]:
    rules = []
    for op in OPERATORS:
        value = {"number": "-2.5", "text": "it's {{ x }}\n\\"}[op.kind] if (
            op.takes_value and op.kind != "boolean") else ""
        if op.id == "matches":
            value = r"^re(lease)?\s\d+"
        rules.append(Rule('trigger.body.user["full name"]', op.id, value))
    return rules


@pytest.mark.parametrize("rule", one_of_each(), ids=lambda r: r.op)
def test_every_operator_reads_back_from_what_it_writes(rule: Rule) -> None:
    for match_any in (False, True):
        written = Filter((rule, Rule("trigger.title", "contains", "x")), any=match_any)
        assert parse(to_condition(written)) == written
    assert parse(to_condition(Filter((rule,)))) == Filter((rule,))


def test_a_value_edited_in_the_template_still_reads_back() -> None:
    condition = to_condition(Filter((Rule("trigger.title", "contains", "frost"),)))
    edited = condition.replace("'frost'", "'snow'")
    assert parse(edited) == Filter((Rule("trigger.title", "contains", "snow"),))


@pytest.mark.parametrize("condition", [
    "{{ 'release' in trigger.title | lower }}",
    "{{ trigger.n > 5 }}",
    "{% if trigger.n %}true{% endif %}",
    "yes",
    "{{ (trigger.title is defined and trigger.title is not none and ('a' | lower) in "
    "(trigger.title | string | lower)) and (x) }}",
    "{{ (trigger.title is defined and trigger.title is not none and ('a' | lower) in "
    "(trigger.title | string | lower)) and (trigger.title is defined and trigger.title is "
    "not none and ('b' | lower) in (trigger.title | string | lower)) or (trigger.title "
    "is defined and trigger.title is not none and ('c' | lower) in (trigger.title | "
    "string | lower)) }}",  # and with or: not something the builder writes
])
def test_a_hand_written_condition_is_not_read_as_rules(condition: str) -> None:
    assert parse(condition) is None


def test_empty_is_no_rules() -> None:
    assert parse("") == Filter() and parse(None) == Filter()
    assert to_condition(Filter()) == ""


@pytest.mark.parametrize(("rule", "says"), [
    (Rule("", "contains", "x"), "choose a field"),
    (Rule("trigger.title }}{{ 7", "contains", "x"), "not a field"),
    (Rule("trigger._secret", "contains", "x"), "not a field"),
    (Rule("trigger['__class__']", "contains", "x"), "not a field"),
    (Rule("trigger.n", "lt", "two"), "enter a number"),
    (Rule("trigger.n", "lt", "inf"), "enter a number"),
    (Rule("trigger.title", "contains", ""), "enter the text"),
    (Rule("trigger.title", "matches", "(unclosed"), "not a regular expression"),
    (Rule("trigger.title", "sounds_like", "x"), "unknown comparison"),
])
def test_a_rule_that_cannot_be_written_says_why(rule: Rule, says: str) -> None:
    found = problem(rule)
    assert found is not None and says in found
    with pytest.raises(ValueError, match=says):
        to_condition(Filter((rule,)))
