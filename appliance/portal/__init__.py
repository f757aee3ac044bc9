"""The unit's web face: Flask app (OpenAI-compatible API, conversation API, web app, health)."""
