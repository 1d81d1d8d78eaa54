"""The browser page's static files (served by :mod:`voxwire.webui`): no Python here."""
