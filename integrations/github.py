"""GitHub: issues, pull requests, stars, releases and commits; act as your account."""

from __future__ import annotations

import re
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, quote, urlsplit

from engine import (
    ApiKeySpec,
    AuthError,
    AuthKind,
    Field,
    Item,
    OAuth2Spec,
    Param,
    ParamType,
    PermanentError,
    PollContext,
    PollResult,
    RateLimited,
    ReactionContext,
    Service,
    TransientError,
    iso_time,
)

if TYPE_CHECKING:
    from engine import AccountSession, HttpClient, HttpResponse, OAuthClient

ACCEPT = "application/vnd.github+json"
#: The stargazers list with the time of each star.
STAR_ACCEPT = "application/vnd.github.star+json"
API_VERSION = "2022-11-28"
HEADERS = {"Accept": ACCEPT, "X-GitHub-Api-Version": API_VERSION}
PER_PAGE = 50
STARS_PER_PAGE = 100
BODY_LENGTH = 10_000

_REPO_RE = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9-]{0,38})/[A-Za-z0-9._-]{1,100}$")
_LINK_RE = re.compile(r'<([^>]+)>\s*;\s*rel="([^"]+)"')
_WEBHOOK_NOTE = (
    " Checked every few minutes; for instant delivery use the Webhook service's "
    "“GitHub event” trigger with a repository webhook."
)


async def _whoami(http: HttpClient, token: str) -> str:
    """The login of the account a token belongs to."""
    resp = await http.get(
        _url("/user"), headers={**HEADERS, "Authorization": f"Bearer {token}"}, check=False
    )
    _check(resp, "your user profile")
    return str(resp.json()["login"])


async def _revoke(session: AccountSession, client: OAuthClient) -> bool:
    """Deletes the OAuth app's grant (every token it gave Hookline for this user); the
    app's own id and secret authenticate the call."""
    resp = await session.http.request(
        "DELETE",
        _url(f"/applications/{quote(client.client_id, safe='')}/grant"),
        headers={**HEADERS, **client.basic_auth()},
        json_body={"access_token": await session.token()},
        check=False,
    )
    return resp.ok


service = Service(
    "github",
    "GitHub",
    "Issues, pull requests, stars, releases and commits of repositories; create issues, "
    "comments, gists and labels as your GitHub account.",
    icon="github.svg",
    auth=AuthKind.OAUTH2,
    api_base_url="https://api.github.com",
    oauth=OAuth2Spec(
        authorize_url="https://github.com/login/oauth/authorize",
        token_url="https://github.com/login/oauth/access_token",  # noqa: S106 - an address
        scopes=("repo", "read:user", "gist"),
        revoke=_revoke,
        apps_url="https://github.com/settings/applications",
        client_secret_required=True,
        userinfo=_whoami,
        register_url="https://github.com/settings/applications/new",
        client_id_pattern=r"(Ov23|Iv23)[0-9A-Za-z]{16}|Iv1\.[0-9a-f]{16}|[0-9a-f]{20}",
        client_id_shape="a GitHub client ID is 20 characters, such as Ov23li… or Iv1.…",
        client_help="(GitHub: Settings → Developer settings → OAuth Apps → New OAuth App; "
        "use it as the “Authorization callback URL”; GitHub accepts any port on 127.0.0.1)",
    ),
    api_key=ApiKeySpec(
        "Personal access token",
        "Create one at https://github.com/settings/tokens. A fine-grained token needs, "
        "for the repositories you use: Issues and Pull requests (read and write), "
        "Contents and Metadata (read); and Gists (write) on the account for gists. A "
        "classic token needs the repo and gist scopes.",
        userinfo=_whoami,
    ),
)

_REPO = Param(
    "repo",
    ParamType.TEXT,
    "Repository",
    help="OWNER/NAME as in the repository's address on github.com.",
    example="octocat/hello-world",
)
_NUMBER = Param(
    "number",
    ParamType.INTEGER,
    "Issue or pull request number",
    help="The number after # (a template such as {{ trigger.number }} works too).",
    minimum=1,
    example=17,
    templated=True,
)


# ---------------------------------------------------------------------- the API


def _url(path: str) -> str:
    return service.api_base_url.rstrip("/") + path


def _repo(params: Mapping[str, Any]) -> tuple[str, str]:
    """``OWNER/NAME`` (a github.com address is accepted too), checked."""
    text = str(params["repo"]).strip().removesuffix(".git").strip("/")
    if text.startswith(("https://", "http://")):
        parts = urlsplit(text)
        if parts.hostname in ("github.com", "www.github.com"):
            text = "/".join(parts.path.strip("/").split("/")[:2])
    if not _REPO_RE.match(text):
        raise PermanentError(
            f"{params['repo']!r} is not a repository: write OWNER/NAME, e.g. octocat/hello-world"
        )
    owner, name = text.split("/")
    return owner, name


def _repo_path(owner: str, name: str) -> str:
    return f"/repos/{quote(owner)}/{quote(name)}"


def _message(resp: HttpResponse) -> str:
    """GitHub's own explanation from an error body (``message`` and ``errors``)."""
    try:
        data = resp.json()
    except PermanentError:
        return ""
    if not isinstance(data, dict):
        return ""
    text = str(data.get("message") or "")
    details = []
    for error in data.get("errors") or []:
        if isinstance(error, dict):
            detail = error.get("message") or " ".join(
                str(error[k]) for k in ("field", "code") if error.get(k)
            )
            details.append(str(detail))
        else:
            details.append(str(error))
    if details:
        text += f" ({'; '.join(details)})"
    return text


def _rate_limit_wait(resp: HttpResponse) -> float | None:
    waited = resp.retry_after()
    if waited is not None:
        return waited
    reset = resp.header("X-RateLimit-Reset")
    if reset and reset.isdigit():
        return max(0.0, int(reset) - time.time())
    return None


def _check(resp: HttpResponse, what: str) -> None:
    """Raise the engine error for a GitHub answer that is not a success (or 304)."""
    status = resp.status
    if status < 300 or status == 304:
        return
    message = _message(resp)
    said = f": {message}" if message else ""
    limited = resp.header("X-RateLimit-Remaining") == "0" or resp.header("Retry-After")
    if status == 429 or (status == 403 and limited):
        wait = _rate_limit_wait(resp)
        when = f"; it resets in {wait:.0f} s" if wait is not None else ""
        raise RateLimited(f"GitHub's rate limit for this account is used up{when}", wait)
    if status == 401:
        raise AuthError(
            f"GitHub refused the account's token{said}: reconnect the account in Hookline"
        )
    if status == 403:
        raise AuthError(
            f"GitHub does not let this account reach {what}{said}. Check the account's "
            "access (a token needs the repo scope, or Issues write access for changes)"
        )
    if status == 404:
        raise PermanentError(
            f"GitHub has no {what}, or this account cannot see it (private repositories "
            "need the repo scope): check the name"
        )
    if status == 410:
        raise PermanentError(f"{what} is gone or turned off on GitHub{said}")
    if status == 422:
        raise PermanentError(f"GitHub refused the request for {what}{said}")
    if status >= 500:
        raise TransientError(f"GitHub had a problem answering for {what} (HTTP {status})")
    raise PermanentError(f"GitHub answered {status} for {what}{said}")


async def _get_list(
    ctx: PollContext,
    path: str,
    what: str,
    query: Mapping[str, str],
    state: dict[str, Any] | None = None,
    accept: str = ACCEPT,
) -> HttpResponse:
    """A conditional GET of a list (its ETag kept in ``state``, the trigger's own by
    default)."""
    url = _url(path) + "?" + "&".join(f"{k}={quote(v, safe=',')}" for k, v in query.items())
    resp = await ctx.require_account(service).get_conditional(
        url,
        ctx.state if state is None else state,
        headers={**HEADERS, "Accept": accept},
        check=False,
    )
    _check(resp, what)
    return resp


def _links(resp: HttpResponse) -> dict[str, str]:
    """The ``Link`` header's URLs by relation (next, last, prev, first)."""
    return {rel: url for url, rel in _LINK_RE.findall(resp.header("Link") or "")}


def _page_of(url: str) -> int | None:
    values = parse_qs(urlsplit(url).query).get("page")
    return int(values[0]) if values and values[0].isdigit() else None


def _login(user: Any) -> str:
    return str(user.get("login") or "") if isinstance(user, dict) else ""



def _cut(text: Any) -> str:
    value = str(text or "")
    return value if len(value) <= BODY_LENGTH else value[:BODY_LENGTH] + "…"


def _list(resp: HttpResponse, what: str) -> list[dict[str, Any]]:
    data = resp.json()
    if not isinstance(data, list):
        raise PermanentError(f"GitHub answered {what} with something that is not a list")
    return [d for d in data if isinstance(d, dict)]


# ---------------------------------------------------------------------- triggers


@service.poll_trigger(
    "new_issue",
    "New issue",
    "Fires for each new issue in a repository (pull requests are left out)." + _WEBHOOK_NOTE,
    params=[
        _REPO,
        Param(
            "labels",
            ParamType.LIST,
            "Only with labels",
            help="Fire only for issues that have all of these labels, separated by commas. "
            "Empty: every new issue.",
            required=False,
            example="bug, help wanted",
        ),
    ],
    fields=[
        Field("number", "Number", 17),
        Field("title", "Title", "Soil moisture reads 0% after firmware 1.4"),
        Field("body", "Text", "Since updating, every sensor reports 0%."),
        Field("url", "Address on github.com", "https://github.com/octocat/hello-world/issues/17"),
        Field("author", "Opened by (login)", "jonas-eberle"),
        Field("labels", "Labels", ["bug"]),
        Field("created_at", "Opened at (UTC, ISO 8601)", "2025-03-14T09:26:53Z"),
        Field("repo", "Repository", "octocat/hello-world"),
    ],
    default_interval=300,
    min_interval=60,
)
async def new_issue(ctx: PollContext) -> PollResult:
    owner, name = _repo(ctx.params)
    query = {"state": "all", "sort": "created", "direction": "desc", "per_page": str(PER_PAGE)}
    if ctx.params.get("labels"):
        query["labels"] = ",".join(ctx.params["labels"])
    what = f"repository {owner}/{name}"
    resp = await _get_list(ctx, _repo_path(owner, name) + "/issues", what, query)
    if resp.status == 304:
        return PollResult(not_modified=True)
    items = []
    for issue in _list(resp, "the issues"):
        if "pull_request" in issue:
            continue
        items.append(
            Item(
                str(issue["id"]),
                {
                    "number": issue.get("number"),
                    "title": issue.get("title") or "",
                    "body": _cut(issue.get("body")),
                    "url": issue.get("html_url"),
                    "author": _login(issue.get("user")),
                    "labels": [
                        lbl.get("name")
                        for lbl in issue.get("labels") or []
                        if isinstance(lbl, dict)
                    ],
                    "created_at": issue.get("created_at"),
                    "repo": f"{owner}/{name}",
                },
                at=iso_time(issue.get("created_at")),
            )
        )
    return PollResult(items)


@service.poll_trigger(
    "new_pull_request",
    "New pull request",
    "Fires for each new pull request in a repository." + _WEBHOOK_NOTE,
    params=[_REPO],
    fields=[
        Field("number", "Number", 18),
        Field("title", "Title", "Calibrate moisture against firmware 1.4"),
        Field("body", "Description", "Fixes #17."),
        Field("url", "Address on github.com", "https://github.com/octocat/hello-world/pull/18"),
        Field("author", "Opened by (login)", "marta-kowal"),
        Field("head", "From branch", "fix-moisture"),
        Field("base", "Into branch", "main"),
        Field("draft", "Draft", False),
        Field("created_at", "Opened at (UTC, ISO 8601)", "2025-03-14T10:02:11Z"),
        Field("repo", "Repository", "octocat/hello-world"),
    ],
    default_interval=300,
    min_interval=60,
)
async def new_pull_request(ctx: PollContext) -> PollResult:
    owner, name = _repo(ctx.params)
    query = {"state": "all", "sort": "created", "direction": "desc", "per_page": str(PER_PAGE)}
    what = f"repository {owner}/{name}"
    resp = await _get_list(ctx, _repo_path(owner, name) + "/pulls", what, query)
    if resp.status == 304:
        return PollResult(not_modified=True)
    items = []
    for pull in _list(resp, "the pull requests"):
        head, base = pull.get("head") or {}, pull.get("base") or {}
        items.append(
            Item(
                str(pull["id"]),
                {
                    "number": pull.get("number"),
                    "title": pull.get("title") or "",
                    "body": _cut(pull.get("body")),
                    "url": pull.get("html_url"),
                    "author": _login(pull.get("user")),
                    "head": head.get("ref") if isinstance(head, dict) else None,
                    "base": base.get("ref") if isinstance(base, dict) else None,
                    "draft": bool(pull.get("draft")),
                    "created_at": pull.get("created_at"),
                    "repo": f"{owner}/{name}",
                },
                at=iso_time(pull.get("created_at")),
            )
        )
    return PollResult(items)


@service.poll_trigger(
    "new_star",
    "New star",
    "Fires when someone stars a repository." + _WEBHOOK_NOTE,
    params=[_REPO],
    fields=[
        Field("user", "Starred by (login)", "hubot"),
        Field("user_url", "Their profile", "https://github.com/hubot"),
        Field("starred_at", "Starred at (UTC, ISO 8601)", "2025-03-14T11:45:00Z"),
        Field("repo", "Repository", "octocat/hello-world"),
    ],
    default_interval=600,
    min_interval=60,
)
async def new_star(ctx: PollContext) -> PollResult:
    """GitHub lists stargazers oldest first, so new stars land on the last page: the
    trigger remembers that page (with its ETag) and looks at the next one when it is
    full, or when GitHub's ``Link: rel="last"`` points further."""
    owner, name = _repo(ctx.params)
    what = f"repository {owner}/{name}"
    path = _repo_path(owner, name) + "/stargazers"

    async def fetch(number: int, state: dict[str, Any]) -> HttpResponse:
        query = {"per_page": str(STARS_PER_PAGE), "page": str(number)}
        return await _get_list(ctx, path, what, query, state, accept=STAR_ACCEPT)

    page = max(1, int(ctx.state.get("stars_page") or 1))
    resp = await fetch(page, ctx.state)
    if resp.status != 304 and page > 1 and not _list(resp, "the stargazers"):
        page = 1  # stars were taken back and the remembered page is gone: start over
        resp = await fetch(page, ctx.state)
    if resp.status == 304:
        if not ctx.state.get("stars_page_full"):
            return PollResult(not_modified=True)
        stars: list[dict[str, Any]] = []
        further: int | None = page + 1
    else:
        stars = _list(resp, "the stargazers")
        ctx.state["stars_page_full"] = len(stars) >= STARS_PER_PAGE
        last = _page_of(_links(resp).get("last", "")) or page
        further = last if last > page else None
    if further is not None:
        probe = ctx.state.setdefault("further", {})
        more_resp = await fetch(further, probe)
        more = [] if more_resp.status == 304 else _list(more_resp, "the stargazers")
        if more:
            stars += more
            page = further
            ctx.state["stars_page_full"] = len(more) >= STARS_PER_PAGE
            del ctx.state["further"]
        elif resp.status == 304:
            return PollResult(not_modified=True)
    ctx.state["stars_page"] = page
    items = []
    for star in reversed(stars):  # newest first, as the engine expects
        user = star.get("user") if "starred_at" in star else star
        login = _login(user)
        if not login or not isinstance(user, dict):
            continue
        starred_at = star.get("starred_at")
        items.append(
            Item(
                f"{login}@{starred_at}",
                {
                    "user": login,
                    "user_url": user.get("html_url"),
                    "starred_at": starred_at,
                    "repo": f"{owner}/{name}",
                },
                at=iso_time(starred_at),
            )
        )
    return PollResult(items)


@service.poll_trigger(
    "new_release",
    "New release",
    "Fires when a repository publishes a release (drafts are left out until published)."
    + _WEBHOOK_NOTE,
    params=[
        _REPO,
        Param(
            "prereleases",
            ParamType.BOOL,
            "Include pre-releases",
            help="Also fire for releases marked as pre-release (betas, release candidates).",
            required=False,
            default=True,
            example=False,
        ),
    ],
    fields=[
        Field("tag", "Tag", "v1.4.1"),
        Field("name", "Name", "Firmware 1.4.1"),
        Field("body", "Release notes", "Fixes the moisture reading."),
        Field(
            "url",
            "Address on github.com",
            "https://github.com/octocat/hello-world/releases/tag/v1.4.1",
        ),
        Field("author", "Published by (login)", "marta-kowal"),
        Field("prerelease", "Pre-release", False),
        Field("published_at", "Published at (UTC, ISO 8601)", "2025-03-15T08:00:00Z"),
        Field("repo", "Repository", "octocat/hello-world"),
    ],
    default_interval=900,
    min_interval=60,
)
async def new_release(ctx: PollContext) -> PollResult:
    owner, name = _repo(ctx.params)
    what = f"repository {owner}/{name}"
    query = {"per_page": str(PER_PAGE)}
    resp = await _get_list(ctx, _repo_path(owner, name) + "/releases", what, query)
    if resp.status == 304:
        return PollResult(not_modified=True)
    items = []
    for release in _list(resp, "the releases"):
        if release.get("draft"):
            continue  # its id fires once it is published
        if release.get("prerelease") and not ctx.params.get("prereleases", True):
            continue
        items.append(
            Item(
                str(release["id"]),
                {
                    "tag": release.get("tag_name"),
                    "name": release.get("name") or release.get("tag_name"),
                    "body": _cut(release.get("body")),
                    "url": release.get("html_url"),
                    "author": _login(release.get("author")),
                    "prerelease": bool(release.get("prerelease")),
                    "published_at": release.get("published_at"),
                    "repo": f"{owner}/{name}",
                },
                at=iso_time(release.get("published_at")),  # GitHub lists them by creation
            )
        )
    return PollResult(items)


@service.poll_trigger(
    "new_commit",
    "New commit on a branch",
    "Fires for each commit that appears on a branch (a push)." + _WEBHOOK_NOTE,
    params=[
        _REPO,
        Param(
            "branch",
            ParamType.TEXT,
            "Branch",
            help="The branch to watch. Empty: the repository's default branch.",
            required=False,
            example="main",
        ),
    ],
    fields=[
        Field("sha", "Commit id", "6dcb09b5b57875f334f61aebed695e2e4193db5e"),
        Field("short_sha", "Short commit id", "6dcb09b"),
        Field("title", "First line of the message", "Fix moisture calibration"),
        Field("message", "Whole message", "Fix moisture calibration\n\nCloses #17."),
        Field("author", "Author's name", "Marta Kowal"),
        Field("author_login", "Author's login (if known to GitHub)", "marta-kowal"),
        Field(
            "url", "Address on github.com", "https://github.com/octocat/hello-world/commit/6dcb09b"
        ),
        Field("committed_at", "Committed at (UTC, ISO 8601)", "2025-03-14T12:00:00Z"),
        Field("branch", "Branch", "main"),
        Field("repo", "Repository", "octocat/hello-world"),
    ],
    default_interval=300,
    min_interval=60,
)
async def new_commit(ctx: PollContext) -> PollResult:
    owner, name = _repo(ctx.params)
    branch = str(ctx.params.get("branch") or "").strip()
    query = {"per_page": str(PER_PAGE)}
    what = f"repository {owner}/{name}"
    if branch:
        query["sha"] = branch
        what = f"branch {branch!r} in repository {owner}/{name}"
    resp = await _get_list(ctx, _repo_path(owner, name) + "/commits", what, query)
    if resp.status == 304:
        return PollResult(not_modified=True)
    items = []
    # No time of their own here: GitHub lists commits newest first in the branch's
    # history, which is their order; commit dates may say otherwise (a rebase gives
    # several commits one date, a wrong clock any date).
    for entry in _list(resp, "the commits"):
        commit = entry.get("commit") or {}
        author = commit.get("author") or {}
        committer = commit.get("committer") or {}
        message = str(commit.get("message") or "")
        sha = str(entry["sha"])
        items.append(
            Item(
                sha,
                {
                    "sha": sha,
                    "short_sha": sha[:7],
                    "title": message.split("\n", 1)[0],
                    "message": _cut(message),
                    "author": author.get("name"),
                    "author_login": _login(entry.get("author")),
                    "url": entry.get("html_url"),
                    "committed_at": committer.get("date") or author.get("date"),
                    "branch": branch or None,
                    "repo": f"{owner}/{name}",
                },
            )
        )
    return PollResult(items)


# ---------------------------------------------------------------------- reactions


async def _send(
    ctx: ReactionContext, method: str, path: str, what: str, body: Mapping[str, Any]
) -> dict[str, Any]:
    resp = await ctx.require_account(service).request(
        method, _url(path), headers=HEADERS, json_body=body, check=False
    )
    _check(resp, what)
    data = resp.json()
    if not isinstance(data, dict):
        raise PermanentError(f"GitHub answered {what} with something unexpected")
    return data


@service.reaction(
    "create_issue",
    "Create an issue",
    "Opens an issue in a repository as your account.",
    params=[
        _REPO,
        Param(
            "title",
            ParamType.TEXT,
            "Title",
            help="The issue's title.",
            example="Sensor {{ trigger.title }} is offline",
        ),
        Param(
            "body",
            ParamType.MULTILINE,
            "Text",
            help="The issue's description, in Markdown.",
            required=False,
            example="Seen at {{ now }}.",
        ),
        Param(
            "labels",
            ParamType.LIST,
            "Labels",
            help="Label names separated by commas. GitHub sets labels only when the account "
            "can push to the repository (it drops them otherwise).",
            required=False,
            example="bug, from-hookline",
        ),
        Param(
            "assignees",
            ParamType.LIST,
            "Assignees",
            help="Logins to assign, separated by commas (they need access to the repository).",
            required=False,
            example="octocat",
        ),
    ],
    fields=[
        Field("number", "Number", 42),
        Field("url", "Address on github.com", "https://github.com/octocat/hello-world/issues/42"),
        Field("title", "Title", "Sensor 3 is offline"),
    ],
    retry=False,
)
async def create_issue(ctx: ReactionContext) -> Mapping[str, Any]:
    owner, name = _repo(ctx.params)
    body: dict[str, Any] = {"title": ctx.params["title"]}
    if ctx.params.get("body"):
        body["body"] = ctx.params["body"]
    if ctx.params.get("labels"):
        body["labels"] = list(ctx.params["labels"])
    if ctx.params.get("assignees"):
        body["assignees"] = list(ctx.params["assignees"])
    data = await _send(
        ctx, "POST", _repo_path(owner, name) + "/issues", f"repository {owner}/{name}", body
    )
    return {"number": data.get("number"), "url": data.get("html_url"), "title": data.get("title")}


@service.reaction(
    "comment",
    "Comment on an issue or pull request",
    "Adds a comment to an issue or a pull request as your account.",
    params=[
        _REPO,
        _NUMBER,
        Param(
            "body",
            ParamType.MULTILINE,
            "Comment",
            help="The comment's text, in Markdown.",
            example="Thanks, {{ trigger.author }}!",
        ),
    ],
    fields=[
        Field("id", "Comment id", 1146825),
        Field(
            "url",
            "Address on github.com",
            "https://github.com/octocat/hello-world/issues/17#issuecomment-1146825",
        ),
    ],
    retry=False,
)
async def comment(ctx: ReactionContext) -> Mapping[str, Any]:
    owner, name = _repo(ctx.params)
    number = int(ctx.params["number"])
    path = f"{_repo_path(owner, name)}/issues/{number}/comments"
    data = await _send(
        ctx,
        "POST",
        path,
        f"issue #{number} in repository {owner}/{name}",
        {"body": ctx.params["body"]},
    )
    return {"id": data.get("id"), "url": data.get("html_url")}


@service.reaction(
    "create_gist",
    "Create a gist",
    "Saves text as a new gist of your account.",
    params=[
        Param(
            "filename",
            ParamType.TEXT,
            "File name",
            help="Its extension picks the highlighting, e.g. notes.md or log.txt.",
            required=False,
            default="note.md",
            example="sensor-log.md",
        ),
        Param(
            "content",
            ParamType.MULTILINE,
            "Content",
            help="The text saved in the gist's file.",
            example="{{ trigger.body }}",
        ),
        Param(
            "description",
            ParamType.TEXT,
            "Description",
            help="Shown above the file on gist.github.com.",
            required=False,
            example="Saved by Hookline on {{ now[:10] }}",
        ),
        Param(
            "public",
            ParamType.BOOL,
            "Public",
            help="Public gists are listed on your profile; secret ones only by address.",
            required=False,
            default=False,
            example=False,
        ),
    ],
    fields=[
        Field("id", "Gist id", "aa5a315d61ae9438b18d"),
        Field("url", "Address", "https://gist.github.com/aa5a315d61ae9438b18d"),
    ],
    retry=False,
)
async def create_gist(ctx: ReactionContext) -> Mapping[str, Any]:
    filename = str(ctx.params.get("filename") or "note.md").strip()
    if "/" in filename or "\\" in filename:
        raise PermanentError(f"{filename!r}: a gist file name cannot contain / or \\")
    body: dict[str, Any] = {
        "files": {filename: {"content": ctx.params["content"]}},
        "public": bool(ctx.params.get("public")),
    }
    if ctx.params.get("description"):
        body["description"] = ctx.params["description"]
    data = await _send(ctx, "POST", "/gists", "gists (the account needs the gist scope)", body)
    return {"id": data.get("id"), "url": data.get("html_url")}


@service.reaction(
    "add_labels",
    "Add labels",
    "Adds labels to an issue or a pull request (the ones it has stay).",
    params=[
        _REPO,
        _NUMBER,
        Param(
            "labels",
            ParamType.LIST,
            "Labels",
            help="Label names separated by commas.",
            example="triage, from-hookline",
        ),
    ],
    fields=[Field("labels", "All its labels now", ["bug", "triage"])],
)
async def add_labels(ctx: ReactionContext) -> Mapping[str, Any]:
    owner, name = _repo(ctx.params)
    number = int(ctx.params["number"])
    labels = list(ctx.params.get("labels") or [])
    if not labels:
        raise PermanentError("give at least one label")
    path = f"{_repo_path(owner, name)}/issues/{number}/labels"
    resp = await ctx.require_account(service).request(
        "POST", _url(path), headers=HEADERS, json_body={"labels": labels}, check=False
    )
    _check(resp, f"issue #{number} in repository {owner}/{name}")
    data = resp.json()
    names = (
        [lbl.get("name") for lbl in data if isinstance(lbl, dict)] if isinstance(data, list) else []
    )
    return {"labels": names}
