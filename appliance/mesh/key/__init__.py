"""The mesh key: created, parsed, stored, and the secrets derived from it."""
