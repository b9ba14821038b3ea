"""Supervision: restart policy, crash-loop back-off and the event loop that runs a pod."""
