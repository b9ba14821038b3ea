"""Pod and container cgroups: layout detection (detect), pure kubelet translation (resources), the
driver interface (driver) and its cgroupfs drivers for v1/hybrid (v1) and v2 (v2); paths and file
access in one place (fs). Not wired into pod start yet."""

from sandbox.cgroups.detect import Layout, detect
from sandbox.cgroups.driver import PARENT, PAUSE, Cgroup, CgroupDriver, Stats, driver_for
from sandbox.cgroups.fs import CgroupError

__all__ = ["PARENT", "PAUSE", "Cgroup", "CgroupDriver", "CgroupError", "Layout", "Stats", "detect", "driver_for"]
