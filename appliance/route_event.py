"""Send an event to the transition written for its type: the one dispatch every service's apply_* uses."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, TypeVar

Result = TypeVar("Result")


def route_event(
    transitions: Mapping[type, Callable[[Any, Any], Result]], state: object, event: object, service: str
) -> Result:
    """transitions[type(event)](state, event); TypeError naming `service` for an event it has no transition for."""
    transition = transitions.get(type(event))
    if transition is None:
        raise TypeError(f"not an event of the {service}: {event!r}")
    return transition(state, event)
