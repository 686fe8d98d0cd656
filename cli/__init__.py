"""The composition root: the `newstore-connector` command line and the container entry point.

The only package that imports both apps. `connector/` (the shared core) imports neither,
and the apps import only the core.
"""
