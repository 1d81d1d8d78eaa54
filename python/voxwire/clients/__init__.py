"""Clients of the dialects beyond OpenAI's (:mod:`voxwire.client` is the OpenAI one)."""
