"""The pod sandbox: pause, the namespaces it holds, and the per-pod files every container sees."""
