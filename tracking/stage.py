"""The interface of a pipeline stage (see STYLE.md, "Stages and data").

A stage receives items in presentation order with :meth:`Stage.push` and returns the items it
has ready, which may lag the input by at most :attr:`Stage.latency` items. :meth:`Stage.flush`
returns everything still held at the end of the stream, and :meth:`Stage.reset` forgets temporal
state (at a shot cut). A stateless stage has ``latency == 0`` and returns exactly one item per push.
"""

from __future__ import annotations

from typing import Generic, Protocol, TypeVar

In = TypeVar("In", contravariant=True)
Out = TypeVar("Out", covariant=True)


class Stage(Protocol, Generic[In, Out]):
    """A streaming stage: ``push`` items in order, ``flush`` at the end."""

    #: How many items the stage may hold back before returning them.
    latency: int

    def push(self, item: In) -> list[Out]:
        """Take the next item; return the items now ready, oldest first."""
        ...

    def flush(self) -> list[Out]:
        """Return every item still held; the stage is then empty."""
        ...

    def reset(self) -> None:
        """Forget temporal state (called at a shot cut); held items are not dropped."""
        ...
