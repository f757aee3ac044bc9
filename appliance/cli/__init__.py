"""The `iplm` command line."""
