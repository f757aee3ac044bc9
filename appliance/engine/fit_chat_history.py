"""Choose which messages of a long conversation go to the model: the system prompt and the newest that fit."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from appliance.engine.engine_types import EngineError


def fit_chat_history(
    messages: Sequence[dict], count_tokens: Callable[[list[dict]], int], budget: int
) -> tuple[list[dict], int]:
    """(the messages to send, how many were left out) such that count_tokens(messages) <= budget.

    Leading system messages stay; older messages go from the front, two at a time (a question and its
    answer, so that roles keep alternating); the newest message always stays. Measured, not guessed: a
    binary search over how many to leave out, so a conversation is fitted in one go however long it is.
    EngineError "context_length_exceeded" when even the system prompt and the newest message do not fit.
    """
    first_other = next((i for i, m in enumerate(messages) if m["role"] != "system"), len(messages))
    head, body = list(messages[:first_other]), list(messages[first_other:])
    pairs = max(0, (len(body) - 1) // 2)  # what can go: whole pairs before the newest message

    def fits(dropped_pairs: int) -> bool:
        return count_tokens(head + body[2 * dropped_pairs :]) <= budget

    if fits(0):
        return list(messages), 0
    if not fits(pairs):
        raise EngineError(
            "context_length_exceeded",
            f"The newest message (with the system prompt) does not fit the {budget} tokens this model's context "
            f"leaves for a prompt; send a shorter one.",
        )
    low, high = 1, pairs  # fits(high) holds; find the fewest pairs to leave out
    while low < high:
        middle = (low + high) // 2
        if fits(middle):
            high = middle
        else:
            low = middle + 1
    return head + body[2 * low :], 2 * low
