"""The runtime role, split from the kubelet role (the supervisor): what a CRI runtime does for a
kubelet, with the CRI's names and meanings (service.py: RuntimeService; images.py: ImageService).

The supervisor (sandbox/supervisor/: restart policy, probes, hooks, init order, status, volumes,
the pod's files) drives pods only through these two services; a CRI gRPC server is then a thin
adapter over them. The deliberate differences from the gRPC API: calls are made on the pod's
loop thread and never block on a container (StopContainer signals and returns; the caller's
timer sends the SIGKILL, the exit arrives as the pidfd StartContainer returned turns readable:
the role of GetContainerEvents), and objects are passed by handle rather than looked up by ID
(the IDs are kept: a sandbox's is the pod UID, a container's the 64-hex instance ID).
"""
