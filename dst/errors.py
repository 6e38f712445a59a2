"""The exceptions of vector-dst.

Two families matter to the harness:

* ``InvalidInput``: the backend refused bad input and changed nothing. This
  is an *answer*, recorded as ``ok`` with an error output, and the model
  checks that the input really was invalid.
* ``BackendError``: anything else went wrong; the outcome is unknown
  (``info``) unless the subclass says the operation was not applied
  (``applied = False``), in which case the history records ``fail``.

``UsageError`` is for the command line: one sentence, exit code 2.
"""

from __future__ import annotations


class DstError(Exception):
    """Base class for every error vector-dst raises on purpose."""


class InvalidInput(DstError, ValueError):
    """The input breaks DESIGN's rules (bad id, bad vector, limit < 1, ...).

    Raised before anything is changed: the store is exactly as before.
    """


class BackendError(DstError):
    """A backend call failed. ``applied`` says what is known of its effect.

    ``None`` (the default): unknown, the op may or may not have taken effect.
    ``False``: the op certainly did not take effect.
    """

    applied: bool | None = None


class NotApplied(BackendError):
    """The call failed before reaching the store; nothing was applied."""

    applied = False


class InjectedError(NotApplied):
    """The fault wrapper's `error` fault: raised before dispatch."""


class LostAck(BackendError):
    """The fault wrapper's `lost ack`: applied, but the reply was lost."""


class PartialWrite(BackendError):
    """The fault wrapper's `partial write`: some of a batch was applied."""


class Timeout(BackendError):
    """The client gave up waiting; the call may still happen later."""


class Crashed(BackendError):
    """The backend crashed while the call was in flight."""


class UsageError(DstError):
    """Bad command-line usage or setup. The CLI prints it and exits 2."""
