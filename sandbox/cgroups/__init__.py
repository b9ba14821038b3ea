"""Pod and container cgroups: layout detection (detect), pure kubelet translation (resources), the
driver interface (driver) and its cgroupfs drivers for v1/hybrid (v1) and v2 (v2); paths and file
access in one place (fs); killing and removing a recorded cgroup after a crash (reclaim); device
allow-lists (devices). Import the submodules: this package imports nothing (start-up time)."""
