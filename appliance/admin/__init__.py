"""What the unit's owner does: the admin PIN, model installs running in the background, the default model."""
