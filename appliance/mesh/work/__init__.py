"""Spreading work across the mesh: where a whole chat runs (and, to come, the pieces of a split prompt)."""
