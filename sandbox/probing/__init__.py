"""Probes and lifecycle hooks as pieces the supervisor's selector loop drives: nothing here blocks,
sleeps or starts a thread.

- `outcome`: `Outcome`, the result of one probe or hook attempt (pure).
- `worker`: `ProbeWorker`, the kubelet's prober worker as a pure state machine with an injected
  clock: when the next probe is due and what a result does (pure).
- `checks`: the `Check` interface (one non-blocking attempt), the `sleep` and `tcpSocket` checks and
  the reference selector driver (`run_check`, `run_checks`, `rewatch`).
- `http`: `httpGet` for probes and hooks; `grpc`: `grpc.health.v1.Health/Check` (needs `h2`).

Exec probes and hooks are not here: they spawn processes in the container's namespaces through
the native core (sandbox/supervisor).

This package's __init__ imports nothing, so importing `sandbox.probing.worker` stays cheap.
"""
