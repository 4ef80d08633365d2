"""Errors a user causes: they exit with code 2 and name what and where."""

from __future__ import annotations


class UserError(Exception):
    """A problem with the user's input (file, flag, setting). Exit code 2, no traceback."""

    exit_code = 2

    def __init__(self, message: str, *, file: str | None = None, line: int | None = None, field: str | None = None):
        self.message = message
        self.file = file
        self.line = line
        self.field = field
        super().__init__(self.__str__())

    def __str__(self) -> str:
        where = []
        if self.file:
            where.append(f"{self.file}:{self.line}" if self.line else str(self.file))
        elif self.line:
            where.append(f"line {self.line}")
        if self.field:
            where.append(f"field '{self.field}'")
        return f"{', '.join(where)}: {self.message}" if where else self.message


class BudgetExceeded(UserError):
    """Posting or extending would spend past a budget or the account balance."""


class TargetMismatch(UserError):
    """A command was pointed at a target other than the one a batch was posted to."""
