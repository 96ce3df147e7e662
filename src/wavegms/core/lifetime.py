"""Owners of heavy things (a runtime session, a worker's loaded models, a dock's model): each
frees what it holds when its owner goes, by :meth:`Closable.close` or at the end of a
``with`` block, instead of a module-level cache that keeps it for the process's life.
"""

from __future__ import annotations


class Closable:
    """Base of the objects that own something heavy: ``close()`` frees it (calling it again
    does nothing); ``with owner:`` closes at the block's end, errors included."""

    def close(self) -> None:
        raise NotImplementedError

    def __enter__(self):
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()


def close_if_owned(thing: object) -> None:
    """Close ``thing`` if it owns something (a :class:`Closable`); plain objects (a traced
    module) are left to the garbage collector."""
    if isinstance(thing, Closable):
        thing.close()
