"""iplm: an offline LLM appliance. See ../shared/DESIGN.md for the architecture."""
