"""The review dock's state machine, without Qt."""

from __future__ import annotations

import pytest

from wavegms.core.errors import InputError
from wavegms.inference.review_flow import ACTIONS, MOVES, Event, ReviewFlow, Step


def test_a_better_model_waits_for_the_user_before_anything_is_segmented_again():
    flow = ReviewFlow()
    for event, step in [
        (Event.OPEN, Step.OPENING), (Event.OPENED, Step.SHOWING),
        (Event.FINETUNE, Step.FINETUNING), (Event.TRAINED, Step.COMPARING),
        (Event.BETTER, Step.DECIDING), (Event.ADOPT, Step.RESEGMENTING),
        (Event.RESEGMENTED, Step.SHOWING),
    ]:  # fmt: skip
        assert flow.fire(event) is step
    assert not any(step is Step.RESEGMENTING for (_, e), step in MOVES.items() if e is Event.BETTER)


def test_a_model_not_better_waits_for_the_user_and_nothing_is_segmented_meanwhile():
    flow = ReviewFlow(Step.COMPARING)
    assert flow.fire(Event.UNDECIDED) is Step.DECIDING
    assert flow.allows("adopt") and flow.allows("decline") and not flow.allows("finetune")
    with pytest.raises(InputError, match="cannot happen"):
        flow.fire(Event.RESEGMENTED)
    assert flow.fire(Event.DECLINE) is Step.SHOWING
    assert not flow.allows("adopt")


def test_clicks_the_step_does_not_allow_are_refused_with_a_reason():
    flow = ReviewFlow(Step.RESEGMENTING)
    with pytest.raises(InputError, match="not now: segmenting"):
        flow.check("accept")  # the masks are being replaced: no Accept over them
    flow = ReviewFlow(Step.FINETUNING)
    flow.check("accept")  # the fine-tune trains on a snapshot: accepting goes on
    with pytest.raises(InputError):
        flow.check("finetune")  # one fine-tune at a time


def test_every_step_is_reachable_and_every_move_lands_on_a_known_step():
    reached, frontier = {Step.CLOSED}, [Step.CLOSED]
    while frontier:
        step = frontier.pop()
        for (origin, _), target in MOVES.items():
            if origin is step and target not in reached:
                reached.add(target)
                frontier.append(target)
    assert reached == set(Step) == set(ACTIONS)
