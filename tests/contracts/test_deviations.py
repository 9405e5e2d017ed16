"""Each known deviation is still one: its service has a description, and that
description still lacks the request (else the entry should go)."""

from __future__ import annotations

import re

import pytest

from tests.contracts import plugin
from tests.contracts.description import Request
from tests.contracts.deviations import BODY_AS_QUERY, KNOWN, Deviation


@pytest.mark.parametrize("deviation", KNOWN, ids=lambda d: f"{d.service} {d.method} {d.path}")
def test_a_deviation_names_a_request_its_description_lacks(deviation: Deviation) -> None:
    description = plugin.description(deviation.service)
    assert description is not None, f"{deviation.service} has no description to deviate from"
    assert deviation.why
    if deviation.problem or deviation.path == "*":
        return  # forgives one problem of requests the description does have
    path = re.sub(r"\{[^}/]+\}", "x", deviation.path)
    request = Request(deviation.method, path, {}, {}, b"")
    assert description.find(request) is None, (
        f"{description.path} now has {deviation.method} {deviation.path}: remove the entry"
    )


def test_body_as_query_names_services_with_descriptions() -> None:
    assert all(plugin.description(service) is not None for service in BODY_AS_QUERY)
