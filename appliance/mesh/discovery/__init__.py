"""Finding the units of the mesh: mDNS/DNS-SD, BLE, manual peers and their addresses."""
