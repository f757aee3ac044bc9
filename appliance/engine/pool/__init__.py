"""The engine pool: supervised worker processes behind the one Engine interface (state plus pure transitions)."""
