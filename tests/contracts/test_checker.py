"""The contract check catches what a provider's description lacks, and only that."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from types import SimpleNamespace

import aiohttp
import pytest

from engine.http import HttpClient
from tests.contracts import plugin
from tests.contracts.description import Request
from tests.integrations.provider import FakeProvider, Reply, serve


def request(method: str, path: str, body: object = None, **query: str) -> Request:
    raw = json.dumps(body).encode() if body is not None else b""
    headers = {"Content-Type": "application/json"} if body is not None else {}
    return Request(method, path, query, headers, raw)


def test_a_request_the_description_has_passes() -> None:
    issue = request("POST", "/repos/octocat/hello/issues", {"title": "Leak", "labels": ["bug"]})
    assert plugin.check(issue, "github") == []
    assert plugin.check(request("GET", "/repos/octocat/hello/issues", state="all"), "github") == []


def test_a_path_the_description_lacks_is_caught() -> None:
    [problem] = plugin.check(request("GET", "/repos/octocat/hello/tickets"), "github")
    assert problem == "GET /repos/octocat/hello/tickets: no operation has this method and path"


def test_a_method_the_path_does_not_take_is_caught() -> None:
    [problem] = plugin.check(request("DELETE", "/gists"), "github")
    assert "DELETE is not a method of this path (it has POST)" in problem


def test_a_body_field_the_description_lacks_is_caught() -> None:
    problems = plugin.check(
        request("POST", "/repos/octocat/hello/issues", {"title": "Leak", "colour": "red"}),
        "github",
    )
    assert problems == [
        "POST /repos/octocat/hello/issues: POST /repos/{owner}/{repo}/issues body: "
        "field 'colour' is not in the description"
    ]


def test_a_missing_required_field_and_query_parameter_are_caught() -> None:
    problems = plugin.check(request("POST", "/repos/octocat/hello/issues", {"body": "x"}), "github")
    assert any("required field 'title' is missing" in p for p in problems)
    problems = plugin.check(request("GET", "/v1/forecast", latitude="52.5"), "weather")
    assert any("required query parameter 'longitude' is missing" in p for p in problems)


def test_a_field_of_dropboxs_api_arg_header_is_checked() -> None:
    arg = {"path": "/a.txt", "mode": "add", "color": "blue"}
    upload = Request(
        "POST",
        "/2/files/upload",
        {},
        {"Content-Type": "application/octet-stream", "Dropbox-API-Arg": json.dumps(arg)},
        b"data",
    )
    [problem] = plugin.check(upload, "dropbox")
    assert "Dropbox-API-Arg: field 'color' is not in the description" in problem


def test_trellos_body_is_checked_as_its_query_parameters() -> None:
    good = request("POST", "/cards", {"idList": "5abb", "name": "Water", "pos": "top"})
    good.base_paths = ("", "/1")
    assert plugin.check(good, "trello") == []
    bad = request("POST", "/cards", {"idList": "5abb", "title": "Water"})
    bad.base_paths = ("", "/1")
    [problem] = plugin.check(bad, "trello")
    assert "query parameter 'title' is not in the description" in problem


def test_a_known_deviation_forgives_only_its_own_problem() -> None:
    listing = request("GET", "/2/users/123/mentions", **{"tweet.fields": "x", "colour": "y"})
    listing.base_paths = ("", "/2")
    [problem] = plugin.check(listing, "x")
    assert "query parameter 'colour'" in problem


def test_a_service_without_a_description_is_not_checked() -> None:
    assert plugin.check(request("GET", "/anything/at/all"), "unsplash") == []


@pytest.fixture
async def github_api() -> AsyncIterator[tuple[FakeProvider, str]]:
    fake = FakeProvider(not_found=Reply({"message": "Not Found"}, status=404))
    async with serve(fake.handle) as base:
        yield fake, base


async def test_a_wrong_request_fails_the_test_that_sent_it(
    github_api: tuple[FakeProvider, str], http: HttpClient
) -> None:
    fake, base = github_api
    with plugin.checking("github", ("",)) as current:
        await http.request("POST", f"{base}/repos/octocat/hello/issue", json_body={"title": "x"},
                           check=False)
        await http.request("GET", f"{base}/user", check=False)  # the description has it
        assert current.problems == [
            "POST /repos/octocat/hello/issue: no operation has this method and path"
        ]
        with pytest.raises(pytest.fail.Exception, match="POST /repos/octocat/hello/issue"):
            plugin.fail_on_problems()
    assert [seen.path for seen in fake.seen] == ["/repos/octocat/hello/issue", "/user"]


async def test_an_error_reply_is_not_the_requests_fault(http: HttpClient) -> None:
    fake = FakeProvider()
    fake.on("GET", "/user", Reply({"message": "Bad credentials"}, status=401))
    async with serve(fake.handle) as base:
        with plugin.checking("github", ("",)) as current:
            await http.request("GET", f"{base}/user", check=False)
    assert current.problems == []


async def test_a_tests_own_request_is_not_checked() -> None:
    fake = FakeProvider()
    async with serve(fake.handle) as base, aiohttp.ClientSession() as session:
        with plugin.checking("github", ("",)) as current:
            async with session.get(f"{base}/no/such/path"):
                pass
    assert current.problems == []
    assert [seen.path for seen in fake.seen] == ["/no/such/path"]


async def test_the_hooks_fail_the_service_test_that_sent_the_request(http: HttpClient) -> None:
    item = SimpleNamespace(module=SimpleNamespace(__name__="tests.integrations.test_github"))
    fake = FakeProvider()
    async with serve(fake.handle) as base:
        protocol = plugin.pytest_runtest_protocol(item)  # type: ignore[arg-type]
        next(protocol)  # the test starts
        call = plugin.pytest_runtest_call(item)  # type: ignore[arg-type]
        next(call)
        await http.request("PATCH", f"{base}/user", json_body={"nickname": "m"}, check=False)
        with pytest.raises(pytest.fail.Exception) as failed:
            call.send(None)  # the test's body has returned
        with pytest.raises(StopIteration):
            protocol.send(None)
    assert "tests/contracts/github.json does not have" in str(failed.value)
    assert "PATCH /user: PATCH is not a method of this path (it has GET)" in str(failed.value)
