"""Clients of the dialects beyond the OpenAI one (which is :mod:`voxwire.client`)."""
