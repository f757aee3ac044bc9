"""iplm: an offline LLM appliance. The architecture: docs/architecture.md."""
