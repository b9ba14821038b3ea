"""Container logs: the CRI log file format and the streams that write it."""
