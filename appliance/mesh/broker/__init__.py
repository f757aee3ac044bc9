"""The unit's own MQTT broker (mosquitto): its config, credentials, and the supervised process."""
