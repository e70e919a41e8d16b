"""The root of flusso's error tree and the domain's own errors."""

from __future__ import annotations


class FlussoError(Exception):
    """Anything flusso reports to a user: a message, and optionally a hint on how to fix it."""

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message


class ConfigError(FlussoError):
    """flusso.toml, a *.schema.yml or the lock is wrong.

    `problems` holds every problem found when several were collected; the first
    one is also the error's own message.
    """

    def __init__(
        self,
        message: str,
        *,
        hint: str | None = None,
        problems: list[ConfigError] | None = None,
    ) -> None:
        super().__init__(message, hint=hint)
        self.problems: list[ConfigError] = problems if problems else [self]

    @classmethod
    def collect(cls, problems: list[ConfigError]) -> ConfigError:
        """One error standing for several, reported together."""
        first = problems[0]
        return cls(first.message, hint=first.hint, problems=list(problems))


class LifecycleError(FlussoError):
    """A lifecycle transition the state machine forbids."""
