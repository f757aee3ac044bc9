"""A network lab for multi-unit tests: one network namespace per unit, joined by a bridge in a hub namespace."""
