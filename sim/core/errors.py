"""Errors a user can cause with a bad parameter or name; the CLI turns them into one line."""


class UserError(Exception):
    """A mistake in what the user asked for (not a bug): reported in one line, exit status 2."""


class ParameterError(UserError, ValueError):
    """A parameter with a value outside what is allowed."""

    def __init__(self, parameter: str, message: str) -> None:
        self.parameter = parameter
        self.message = message
        super().__init__(f"{parameter}: {message}")


class UnknownScenarioError(UserError, KeyError):
    """A scenario name that is not registered."""

    def __init__(self, name: str, known: list[str]) -> None:
        self.name = name
        self.known = known
        super().__init__(name)

    def __str__(self) -> str:
        return f"unknown scenario {self.name!r}; choose one of: {', '.join(self.known)}"
