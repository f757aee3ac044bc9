"""The model library: whitelist, manifests, verified pieces, installs from sources (and, later, peers)."""
