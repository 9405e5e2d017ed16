"""Requests a service makes that its provider's description does not have, and why.

Each entry names a service, a method and a path template (`{x}` stands for one path
segment, matched like the description's own templates; `*` is any path) and, optionally, the one
problem it forgives (a piece of the checker's sentence): the rest of that request is
still checked. Keep the list short: each entry is a fact about the provider's
description (or about Hookline) to look at again when the descriptions are refreshed.
"""

from __future__ import annotations

from dataclasses import dataclass

from tests.contracts.description import Request, template_regex


@dataclass(frozen=True)
class Deviation:
    service: str
    method: str
    path: str
    why: str
    problem: str = ""  # empty: the request is not checked at all

    def matches(self, service: str, request: Request) -> bool:
        regex = template_regex(self.path)
        return (
            service == self.service
            and request.method == self.method
            and (self.path == "*" or any(regex.fullmatch(p) for p in request.candidates()))
        )


#: Services whose description lists every argument as a query parameter while the
#: provider takes the same arguments as a JSON body: a body's fields are checked as
#: query parameters.
BODY_AS_QUERY = {
    "trello": "Trello's description lists each argument of POST /cards and "
    "POST /cards/{id}/actions/comments as a query parameter; Trello takes them in a JSON "
    "body too (developer.atlassian.com/cloud/trello/guides/rest-api/api-introduction), "
    "which keeps a card's text out of URLs and logs.",
}

KNOWN: tuple[Deviation, ...] = (
    Deviation(
        "gdrive", "PUT", "/upload/drive/v3/files",
        "The chunks of a resumable upload go to the session address Google answers in "
        "Location; the discovery document describes only the POST that opens the session "
        "(developers.google.com/drive/api/guides/manage-uploads#resumable).",
    ),
    Deviation(
        "trello", "GET", "/1/lists/{id}/cards",
        "Trello takes `fields` on nested card listings (guides/rest-api/nested-resources); "
        "its description lists no query parameter for this path.",
        problem="query parameter 'fields'",
    ),
    Deviation(
        "weather", "GET", "/v1/search",
        "Open-Meteo publishes no description of its geocoding API; the fake follows "
        "open-meteo.com/en/docs/geocoding-api (2026-12-06).",
    ),
    Deviation(
        "x", "GET", "*",
        "X's description (2.167, July 2026) renamed `tweet.fields` to `post.fields`; Hookline "
        "still sends `tweet.fields`, which X's documentation pages still show. Check "
        "whether the API still takes it before X drops it.",
        problem="query parameter 'tweet.fields'",
    ),
    Deviation(
        "discord", "POST", "/api/webhooks/{webhook_id}/{webhook_token}",
        "A webhook's address is the one Discord shows the user (discord.com/api/webhooks/…, "
        "no version); the description has it under /api/v10.",
    ),
    Deviation(
        "twitch", "GET", "/oauth2/validate",
        "id.twitch.tv's token check is not part of Helix, the API the description covers "
        "(dev.twitch.tv/docs/authentication/validate-tokens).",
    ),
    Deviation(
        "twitch", "POST", "/oauth2/revoke",
        "id.twitch.tv's revocation is not part of Helix "
        "(dev.twitch.tv/docs/authentication/revoke-tokens).",
    ),
)


def forgiven(service: str, request: Request, problems: list[str]) -> list[str]:
    """`problems` less those a known deviation covers."""
    entries = [d for d in KNOWN if d.matches(service, request)]
    if any(not d.problem for d in entries):
        return []
    return [p for p in problems if not any(d.problem in p for d in entries)]
