"""Clients of the dialects voxwire serves, one module each (``voxwire.clients.atoms``...)."""
