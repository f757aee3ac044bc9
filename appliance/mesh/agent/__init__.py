"""The mesh agent: presence on the unit's own broker, the peers' presence on theirs, the peer table."""
