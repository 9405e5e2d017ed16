"""The engine's error hierarchy: every error a user can see says what to do.

    HooklineError
     ├── ConfigError            settings, data folder, database
     │    └── EngineLocked      another engine already runs on this data folder
     ├── CatalogError           unknown service / trigger / reaction
     ├── ValidationError        an area or a parameter is wrong (names which one)
     │    ├── TemplateError     a template does not compile, escapes, or is too big
     │    └── SeveralProblems   more than one of them, each said at once
     ├── LifecycleError         a state change the lifecycle does not allow
     ├── ImportRefused          an import in which some areas are wrong: none was made
     ├── SecretError            the OS keyring is missing or refused
     ├── StorageError           a write could not be made durable
     ├── StopRun                a reaction says the rest of the run should not happen
     ├── WaitUntil              a reaction asks the run to pause until a moment
     └── ServiceError           a service call failed
          ├── TransientError    worth retrying (network, 5xx, timeout)
          │    └── RateLimited  the far side asked us to wait (retry_after seconds)
          ├── AuthError         credentials refused: reconnect the account
          ├── PermanentError    retrying will not help (4xx, bad answer)
          └── Rejected          a push delivery is refused with an HTTP status
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Sequence
from datetime import datetime


class HooklineError(Exception):
    """Base of every error the engine raises on purpose."""


class ConfigError(HooklineError):
    """The settings, data folder or database are not usable."""


class EngineLocked(ConfigError):
    """Another engine already runs on this data folder."""


class CatalogError(HooklineError):
    """A service, trigger or reaction name that the catalog does not know."""

    @classmethod
    def unknown(cls, kind: str, name: str, known: Iterable[str]) -> CatalogError:
        known = sorted(known)
        close = difflib.get_close_matches(name, known, n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        listing = ", ".join(known) if known else "none"
        return cls(f"Unknown {kind} {name!r}.{hint} Known: {listing}.")


class ValidationError(HooklineError):
    """Something the user entered is wrong.

    Attributes:
        where: the path of the offending value, e.g. ``reactions[0].params.url``.
        problem: what is wrong with it and what to do.
    """

    def __init__(self, where: str, problem: str) -> None:
        self.where = where
        self.problem = problem
        super().__init__(f"{where}: {problem}" if where else problem)

    def at(self, prefix: str) -> ValidationError:
        """The same error, located under ``prefix``."""
        where = f"{prefix}.{self.where}" if self.where else prefix
        return type(self)(where, self.problem)

    @property
    def problems(self) -> list[ValidationError]:
        """Each problem this error reports (one, but for SeveralProblems)."""
        return [self]

    @staticmethod
    def of(problems: Sequence[ValidationError]) -> ValidationError:
        """One error that reports ``problems`` (at least one): the problem itself when
        there is only one, so its message reads as before."""
        if len(problems) == 1:
            return problems[0]
        return SeveralProblems(problems)


class TemplateError(ValidationError):
    """A template that does not compile, uses unknown names, escapes, or is too big."""


class SeveralProblems(ValidationError):
    """Several things entered are wrong: every one is said at once, so a user fixes
    them all in one go. ``where`` and ``problem`` are the first one's (for callers
    that show one); ``problems`` holds each."""

    def __init__(self, problems: Sequence[ValidationError]) -> None:
        first = problems[0]
        super().__init__(first.where, first.problem)
        self._problems = [p for each in problems for p in each.problems]
        self.args = ("; ".join(str(p) for p in self._problems),)

    @property
    def problems(self) -> list[ValidationError]:
        return list(self._problems)

    def at(self, prefix: str) -> ValidationError:
        return SeveralProblems([p.at(prefix) for p in self._problems])


class LifecycleError(HooklineError):
    """An area cannot go from its state to the one asked for (engine/lifecycle.py), or
    a snooze or window that cannot be (a moment already past)."""


class ImportRefused(HooklineError):
    """An import where some areas are wrong: none was imported (all or nothing).

    Attributes:
        failures: (which area, what is wrong) for each area refused.
        total: how many areas the import held.
    """

    def __init__(self, failures: list[tuple[str, str]], total: int) -> None:
        self.failures = failures
        self.total = total
        noun = "area" if total == 1 else "areas"
        verb = "has" if len(failures) == 1 else "have"
        lines = [f"nothing imported: {len(failures)} of {total} {noun} {verb} a problem "
                 "(fix them and import the file again):"]
        lines += [f"  {which}: {why}" for which, why in failures]
        super().__init__("\n".join(lines))


class SecretError(HooklineError):
    """The OS keyring is unavailable or refused an operation."""


class StorageError(HooklineError):
    """A write could not be made durable (disk full, database locked, broken file)."""


class StopRun(HooklineError):
    """Raised by a reaction to end its run here, as planned (not a failure): the
    reactions after it are skipped."""


class WaitUntil(HooklineError):
    """Raised by a reaction to pause its run until ``until`` (an aware datetime). The
    engine records the moment, so the wait survives a restart."""

    def __init__(self, until: datetime) -> None:
        super().__init__(f"waiting until {until.isoformat()}")
        self.until = until


class ServiceError(HooklineError):
    """A call to a service failed."""


class TransientError(ServiceError):
    """A failure that is worth retrying: network trouble, a timeout, a 5xx."""


class RateLimited(TransientError):
    """The far side asked us to slow down.

    Attributes:
        retry_after: seconds to wait before the next call, if the far side said.
    """

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class AuthError(ServiceError):
    """The service refused the credentials: the account needs reconnecting."""


class PermanentError(ServiceError):
    """A failure that retrying will not fix."""


class Rejected(ServiceError):
    """A push delivery that is refused, with the HTTP status to answer."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason
