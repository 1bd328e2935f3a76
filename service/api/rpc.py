"""Calling an object's methods through its stub (RPC): which names may be called, how
arguments and results travel, and how the callee's exception is raised again at the caller.

Arguments and results are what storage values are (what JSON can hold, plus bytes), encoded
the same way (``service.events.values``): they are copied when the call is made, recorded in
the callee's log as they are, and could cross between nodes as they are. A call is refused at
the caller when a name is private or a handler's, and at the callee when its class has no
such method (the callee's code decides, as it may be newer than the caller's).
"""

from __future__ import annotations

import builtins
import inspect
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from service.api.errors import DurableObjectError, InvalidAccessError
from service.events import values

#: The object's handlers: the runtime calls them, a stub never does (``stub.fetch`` sends a
#: request, which is the way to reach ``fetch``).
HANDLERS = frozenset({"fetch", "alarm", "websocket_message", "websocket_close", "websocket_error"})

#: Exceptions of this API raised again at the caller as themselves (builtins are too).
_OWN_ERRORS: dict[str, type[Exception]] = {
    "DurableObjectError": DurableObjectError,
    "InvalidAccessError": InvalidAccessError,
}


class RemoteError(DurableObjectError):
    """An exception the called method raised, of a type the caller does not rebuild (the
    callee's own classes): its type name and message, as the callee's log recorded them."""

    def __init__(self, type_name: str, message: str) -> None:
        super().__init__(f"{type_name}: {message}" if message else type_name)
        #: The name of the exception's class in the callee (``ValueError``, ``RoomFull``).
        self.type_name = type_name
        self.message = message


@dataclass(frozen=True, slots=True)
class Call:
    """One call of a method, as the callee gets it: arguments encoded, and who called."""

    #: Unique per call (32 hex digits): what a reply between nodes is matched by.
    call_id: str
    method: str
    args: list[Any]
    kwargs: dict[str, Any]
    #: The calling object's id and ``BINDING/name``; None when the caller is no object (the
    #: application's router).
    caller: str | None = None
    caller_label: str | None = None
    #: Objects waiting, each in a turn of its own, for this call to return (the caller
    #: last): calling any of them from inside this call would wait for itself.
    waiting: tuple[str, ...] = field(default_factory=tuple)


@dataclass(frozen=True, slots=True)
class Outcome:
    """What a call came to: its encoded result, or the name and message of what it raised."""

    result: Any = None
    error_type: str | None = None
    error_message: str = ""

    def unwrap(self, method: str) -> Any:
        """The result, decoded (a fresh copy); or raise the callee's exception again."""
        if self.error_type is None:
            return values.decode(self.result)
        raise rebuild(self.error_type, self.error_message, method)


def refusal(name: str) -> str | None:
    """Why ``name`` cannot be called through a stub, or None if it may be."""
    if name.startswith("_"):
        return (
            f'"{name}" is private: methods whose names start with an underscore cannot be '
            "called through a stub."
        )
    if name in HANDLERS:
        return (
            f'"{name}" is a handler, not an RPC method: handlers cannot be called through a '
            "stub (stub.fetch() sends a request to fetch)."
        )
    return None


def not_implemented(name: str) -> str:
    """The reference's text for a call of a method the callee's class does not have."""
    return f'The RPC receiver does not implement the method "{name}".'


def method_of(instance: object, name: str) -> Callable[..., Any]:
    """The callee's bound method ``name``; TypeError if it may not be called or is no method
    of its class (an attribute, a property, a nested class)."""
    reason = refusal(name)
    if reason is not None:
        raise TypeError(reason)
    if not name.isidentifier():
        raise TypeError(not_implemented(name))
    if inspect.getattr_static(type(instance), name, None) is None:
        raise TypeError(not_implemented(name))
    method = getattr(instance, name, None)
    if not (inspect.ismethod(method) or inspect.isfunction(method)):
        raise TypeError(not_implemented(name))
    return method


def encode_arguments(
    method: str, args: tuple[Any, ...], kwargs: dict[str, Any], max_bytes: int
) -> tuple[list[Any], dict[str, Any]]:
    """Arguments in their encoded form (copied now); TypeError for a value that cannot be
    sent, ValueError past ``max_bytes`` serialized."""
    try:
        encoded_args = [values.encode(value) for value in args]
        encoded_kwargs = values.encode(kwargs)
    except TypeError as error:
        raise TypeError(f"The arguments of {method}() cannot be sent: {error}") from None
    size = values.size_of([encoded_args, encoded_kwargs])
    if size > max_bytes:
        raise ValueError(
            f"RPC arguments cannot be larger than {max_bytes} bytes. "
            f"Arguments of size {size} were provided."
        )
    return encoded_args, encoded_kwargs


def encode_result(method: str, result: Any, max_bytes: int) -> Any:
    """A method's result in its encoded form; TypeError or ValueError as for arguments."""
    try:
        encoded = values.encode(result)
    except TypeError as error:
        raise TypeError(f"The result of {method}() cannot be sent: {error}") from None
    size = values.size_of(encoded)
    if size > max_bytes:
        raise ValueError(
            f"RPC results cannot be larger than {max_bytes} bytes. "
            f"A result of size {size} was returned."
        )
    return encoded


def failure(error: BaseException) -> Outcome:
    """The outcome of a call that raised ``error``: its type name and message."""
    if isinstance(error, RemoteError):  # raised on from a call further on: keep its origin
        return Outcome(error_type=error.type_name, error_message=error.message)
    if isinstance(error, KeyError) and len(error.args) == 1:
        message = str(error.args[0])  # str(KeyError) quotes it; rebuilding quotes it again
    else:
        message = str(error)
    return Outcome(error_type=type(error).__name__, error_message=message)


def rebuild(type_name: str, message: str, method: str) -> Exception:
    """The callee's exception, for the caller: the builtin or API class of that name with
    its message, or else a RemoteError carrying both."""
    cls = _OWN_ERRORS.get(type_name) or getattr(builtins, type_name, None)
    error: Exception | None = None
    if isinstance(cls, type) and issubclass(cls, Exception):
        try:
            error = cls(message)
        except Exception:  # a builtin that wants other arguments (UnicodeDecodeError)
            error = None
    if error is None:
        error = RemoteError(type_name, message)
    error.add_note(f"Raised by {method}() of the called object, over RPC.")
    return error
