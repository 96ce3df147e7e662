"""What a review can do next: the review dock's state machine, without Qt.

The dock renders :class:`ReviewFlow` (which buttons are enabled, what the status says) and
forwards clicks to it; a click the state does not allow is refused with a one-line reason
instead of starting work over work (an Accept during a fine-tune's comparison, a second
Fine-tune, segmenting again before the user has decided about a model). No step replaces
masks the user has not asked to replace: even a model found better waits for the user.
"""

from __future__ import annotations

import enum

from wavegms.core.errors import InputError


class Step(enum.Enum):
    CLOSED = "no results folder open"
    OPENING = "opening the results"
    SHOWING = "reviewing"  # an image (or none left) is shown: Accept, Skip, Fine-tune
    FINETUNING = "fine-tuning"
    COMPARING = "comparing the new model with the current one"
    DECIDING = "waiting for your choice of model"
    RESEGMENTING = "segmenting the images not yet reviewed again"


class Event(enum.Enum):
    OPEN = "open"
    OPENED = "opened"
    FAILED = "failed"  # the running step failed or was cancelled
    FINETUNE = "finetune"
    TRAINED = "trained"  # a model was made: compare it
    NO_MODEL = "no model"  # stopped before an epoch ended
    BETTER = "better"  # recommended: the user adopts it (and segments again) or not
    UNDECIDED = "undecided"  # not better, or too few pairs: the user decides
    ADOPT = "adopt"
    DECLINE = "decline"
    RESEGMENTED = "resegmented"


#: (step, event) -> next step; anything else is refused.
MOVES: dict[tuple[Step, Event], Step] = {
    (Step.CLOSED, Event.OPEN): Step.OPENING,
    (Step.SHOWING, Event.OPEN): Step.OPENING,
    (Step.DECIDING, Event.OPEN): Step.OPENING,
    (Step.OPENING, Event.OPENED): Step.SHOWING,
    (Step.OPENING, Event.FAILED): Step.CLOSED,
    (Step.SHOWING, Event.FINETUNE): Step.FINETUNING,
    (Step.SHOWING, Event.TRAINED): Step.COMPARING,  # one that ended while napari was closed
    (Step.FINETUNING, Event.TRAINED): Step.COMPARING,
    (Step.FINETUNING, Event.NO_MODEL): Step.SHOWING,
    (Step.FINETUNING, Event.FAILED): Step.SHOWING,
    # Better on a few held-out pairs is a recommendation, not proof: those pairs are the
    # hardest images (reviewed first), and a model better there replaced the easier images'
    # masks with worse ones (issue 25 replay: mean DSC 94.51 -> 93.47). So the user decides.
    (Step.COMPARING, Event.BETTER): Step.DECIDING,
    (Step.COMPARING, Event.UNDECIDED): Step.DECIDING,
    (Step.COMPARING, Event.FAILED): Step.DECIDING,
    (Step.DECIDING, Event.ADOPT): Step.RESEGMENTING,
    (Step.DECIDING, Event.DECLINE): Step.SHOWING,
    (Step.RESEGMENTING, Event.RESEGMENTED): Step.SHOWING,
    (Step.RESEGMENTING, Event.FAILED): Step.SHOWING,
}

#: What the user may click in each step.
ACTIONS: dict[Step, frozenset[str]] = {
    Step.CLOSED: frozenset({"open"}),
    Step.OPENING: frozenset(),
    Step.SHOWING: frozenset({"open", "accept", "skip", "finetune", "restore", "undo"}),
    Step.FINETUNING: frozenset({"accept", "skip", "stop"}),  # trains on a snapshot
    Step.COMPARING: frozenset({"accept", "skip"}),
    Step.DECIDING: frozenset({"open", "accept", "skip", "adopt", "decline", "restore"}),
    Step.RESEGMENTING: frozenset({"stop"}),
}


class ReviewFlow:
    """The review's step; :meth:`fire` moves it, :meth:`allows` tells the buttons."""

    def __init__(self, step: Step = Step.CLOSED) -> None:
        self.step = step

    @property
    def running(self) -> str:
        """The step that runs in the background ("finetuning", ...), or "" when none does."""
        idle = (Step.CLOSED, Step.SHOWING, Step.DECIDING)
        return "" if self.step in idle else self.step.name.lower()

    def allows(self, action: str) -> bool:
        return action in ACTIONS[self.step]

    def check(self, action: str) -> None:
        """Refuse ``action`` with a one-line reason when the step does not allow it."""
        if not self.allows(action):
            raise InputError(f"not now: {self.step.value}")

    def fire(self, event: Event) -> Step:
        try:
            self.step = MOVES[(self.step, event)]
        except KeyError:
            raise InputError(f"{event.value!r} cannot happen while {self.step.value}") from None
        return self.step
