"""Mesh messages: sealed and opened (HMAC, counters, freshness), signed peer requests, HKDF."""
