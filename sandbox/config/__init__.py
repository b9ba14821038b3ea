"""ConfigMaps and Secrets a pod reads: the objects of its own manifest file and the per-namespace
store that `sandbox apply/create` fill (store.py)."""
