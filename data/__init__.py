"""The presets of real systems, as JSON files citing their sources (see README.md here).

This folder is installed as the package ``sim.presets`` (``package-dir`` in pyproject.toml), so
``sim.data`` reads it with importlib.resources wherever the package is installed."""
