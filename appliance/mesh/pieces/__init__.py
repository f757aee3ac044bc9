"""Model pieces between units: which pieces a unit holds, and installs from several peers at once."""
