"""Build the unit's Debian package and bootable images (see the README, "Flash a unit")."""
