"""The mesh: membership by mesh key, authenticated messages, the unit's own MQTT broker."""
