"""Errors meant for people: `qp` prints them as one line and exits non-zero, never with a traceback."""


class UserError(Exception):
    """Bad input or a state the user can fix (unknown customer, bad date, nothing materialized yet)."""

    exit_code = 2
