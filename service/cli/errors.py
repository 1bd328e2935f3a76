"""The one error a command raises to stop with a message and exit code 1."""

from __future__ import annotations


class CommandError(Exception):
    """A command cannot go on; its message is for the user, without a traceback."""
