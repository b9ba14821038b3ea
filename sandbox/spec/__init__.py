"""The Pod manifest: loading, API-server validation and defaults, the typed model, the field table.

A regular package (not a namespace one) so that the launcher's bundle serves it like the others:
a namespace package is looked up by the path finder over every entry of its parent's path."""
