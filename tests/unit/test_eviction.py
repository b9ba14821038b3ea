"""Ephemeral-storage eviction (supervisor/eviction.py): the limits read from a spec (PodLimits for
the pod's total), the kubelet's order of checks and its messages, quantities printed as the
kubelet prints them, and `du` over a real temporary tree (hard links once, symlinks not followed)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from corpus import corpus_params, require_corpus

from sandbox import events
from sandbox.record import Record
from sandbox.rootfs.layers import ContainerLayer
from sandbox.spec.load import load_pod_text
from sandbox.spec.model import Pod
from sandbox.supervisor import eviction
from sandbox.supervisor.eviction import Limit, StorageLimits, StorageUsage, canonical, disk_usage, verdict

MI = 1024 * 1024


def pod(body: str) -> Pod:
    text = "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec:\n"
    text += "".join(f"  {line}\n" for line in body.strip().splitlines())
    return load_pod_text(text)


def container(name: str, limit: str | None = None, *, sidecar: bool = False) -> str:
    text = f"- name: {name}\n  image: busybox\n"
    if sidecar:
        text += "  restartPolicy: Always\n"
    if limit is not None:
        text += f"  resources: {{limits: {{ephemeral-storage: {limit}}}}}\n"
    return text


def limits_of(body: str) -> StorageLimits:
    return eviction.storage_limits(pod(body))


def indent(text: str) -> str:
    return "".join(f"  {line}\n" for line in text.splitlines())


# --- limits from the spec ----------------------------------------------------------------------------


def test_a_pod_without_limits_is_not_watched() -> None:
    limits = limits_of("containers:\n" + indent(container("a")) + "volumes:\n- {name: v, emptyDir: {}}")
    assert not limits.any
    assert limits.pod is None and limits.pod_volumes == ("v",)


def test_one_container_limit_makes_a_pod_limit_the_others_still_count_in() -> None:
    limits = limits_of("containers:\n" + indent(container("a", "1Mi")) + indent(container("b")))
    assert limits.containers == {"a": Limit(MI * 1000, eviction.BINARY_SI)}
    assert limits.pod == Limit(MI * 1000, eviction.BINARY_SI)


def test_pod_limit_sums_apps_and_sidecars_and_takes_a_larger_init_container_as_floor() -> None:
    body = ("initContainers:\n" + indent(container("side", "1Mi", sidecar=True)) + indent(container("init", "10Mi"))
            + "containers:\n" + indent(container("a", "2Mi")) + indent(container("b", "3Mi")))
    # apps + sidecar = 6Mi; the init container runs beside the sidecar: 10Mi + 1Mi = 11Mi.
    assert str(limits_of(body).pod) == "11Mi"
    small = body.replace("10Mi", "1Mi")
    assert str(limits_of(small).pod) == "6Mi"


def test_init_containers_get_no_check_of_their_own() -> None:
    body = "initContainers:\n" + indent(container("init", "1Mi")) + "containers:\n" + indent(container("a"))
    limits = limits_of(body)
    assert limits.containers == {} and str(limits.pod) == "1Mi"


def test_a_zero_container_limit_is_not_checked_alone_but_makes_a_pod_limit() -> None:
    limits = limits_of("containers:\n" + indent(container("a", "0")))
    assert limits.containers == {}
    assert limits.pod is not None and limits.pod.milli == 0  # as the kubelet: found, so checked


def test_overhead_is_added_to_a_non_zero_pod_limit() -> None:
    body = "overhead: {ephemeral-storage: 1Mi}\ncontainers:\n" + indent(container("a", "1Mi"))
    assert str(limits_of(body).pod) == "2Mi"


def test_empty_dir_size_limits_and_which_volumes_count_in_the_pod_total() -> None:
    body = ("containers:\n" + indent(container("a")) + "volumes:\n"
            "- {name: disk, emptyDir: {sizeLimit: 1Mi}}\n"
            "- {name: mem, emptyDir: {medium: Memory, sizeLimit: 64Mi}}\n"
            "- {name: zero, emptyDir: {sizeLimit: '0'}}\n")
    limits = limits_of(body)
    assert list(limits.empty_dirs) == ["disk", "mem"]  # a zero sizeLimit is no limit (size.Sign() == 1)
    assert limits.pod_volumes == ("disk", "zero")  # memory-backed volumes are not disk usage
    assert limits.any and limits.pod is None


# --- the decision ------------------------------------------------------------------------------------


def limits(containers: dict[str, int] | None = None, pod_limit: int | None = None,
           empty_dirs: dict[str, int] | None = None) -> StorageLimits:
    return StorageLimits({k: Limit(v * 1000, eviction.BINARY_SI) for k, v in (containers or {}).items()},
                         Limit(pod_limit * 1000, eviction.BINARY_SI) if pod_limit is not None else None,
                         {k: Limit(v * 1000, eviction.BINARY_SI) for k, v in (empty_dirs or {}).items()}, ())


def test_within_every_limit_no_eviction() -> None:
    usage = StorageUsage({"a": MI}, {"v": MI}, 2 * MI)
    assert verdict(usage, limits({"a": MI}, 2 * MI, {"v": MI})) is None  # equal is not over


def test_empty_dir_over_its_size_limit() -> None:
    found = verdict(StorageUsage({"a": 0}, {"v": MI + 1}, MI + 1), limits(empty_dirs={"v": MI}))
    assert found is not None
    assert found.reason == "Evicted"
    assert found.message == 'Usage of EmptyDir volume "v" exceeds the limit "1Mi". '


def test_pod_total_over_the_sum_of_limits() -> None:
    found = verdict(StorageUsage({"a": MI, "b": MI}, {}, 2 * MI), limits({"a": MI}, pod_limit=MI))
    assert found is not None
    assert found.message == "Pod ephemeral local storage usage exceeds the total limit of containers 1Mi. "


def test_container_over_its_own_limit() -> None:
    # The pod's total stays within the pod limit: only the container's own check fires.
    found = verdict(StorageUsage({"a": 2 * MI, "b": 0}, {}, 2 * MI),
                    limits({"a": MI, "b": 4 * MI}, pod_limit=5 * MI))
    assert found is not None
    assert found.message == 'Container a exceeded its local ephemeral storage limit "1Mi". '


def test_checks_run_in_the_kubelets_order() -> None:
    usage = StorageUsage({"a": 10 * MI}, {"v": 10 * MI}, 20 * MI)
    assert verdict(usage, limits({"a": MI}, MI, {"v": MI})).signal == "emptydirfs.limit"  # type: ignore[union-attr]
    assert verdict(usage, limits({"a": MI}, MI)).signal == "ephemeralpodfs.limit"  # type: ignore[union-attr]
    assert verdict(usage, limits({"a": MI})).signal == "ephemeralcontainerfs.limit"  # type: ignore[union-attr]


def test_the_event_carries_the_message() -> None:
    assert events.evicted("m. ") == ("Warning", "Evicted", "m. ")


@pytest.mark.parametrize(("text", "expected"), [
    ("1Mi", "1Mi"), ("1024Ki", "1Mi"), ("1.5Gi", "1536Mi"), ("1000Ki", "1000Ki"), ("1023", "1023"),
    ("1M", "1M"), ("1000k", "1M"), ("1500000", "1500k"), ("1048576", "1048576"), ("1e6", "1e6"),
    ("1500e3", "1500e3"), ("1E", "1E"), ("0", "0"),
])
def test_limits_print_as_the_kubelet_prints_quantities(text: str, expected: str) -> None:
    from sandbox.spec.quantity import parse_quantity

    quantity = parse_quantity(text)
    assert quantity is not None
    assert str(Limit.of(quantity)) == expected


def test_a_sum_keeps_the_first_limits_format() -> None:
    body = "containers:\n" + indent(container("a", "1M")) + indent(container("b", "1Mi"))
    assert str(limits_of(body).pod) == "2048576"  # DecimalSI, as resource.Quantity.Add keeps it
    assert canonical(2 * MI * 1000, eviction.BINARY_SI) == "2Mi"


# --- measuring ----------------------------------------------------------------------------------------


def blocks(*paths: Path) -> int:
    return sum(os.lstat(p).st_blocks * 512 for p in paths)


def test_du_counts_allocated_blocks_of_the_whole_tree(tmp_path: Path) -> None:
    (tmp_path / "d" / "e").mkdir(parents=True)
    (tmp_path / "d" / "a").write_bytes(os.urandom(100_000))
    (tmp_path / "d" / "e" / "b").write_bytes(os.urandom(5000))
    sparse = tmp_path / "d" / "sparse"
    with open(sparse, "wb") as f:
        f.truncate(50 * MI)  # apparent size is not usage
    expected = blocks(tmp_path / "d", tmp_path / "d" / "e", tmp_path / "d" / "a", tmp_path / "d" / "e" / "b", sparse)
    assert disk_usage(tmp_path / "d") == expected
    assert disk_usage(sparse) < MI
    assert disk_usage(tmp_path / "missing") == 0


def test_du_counts_a_hard_linked_file_once(tmp_path: Path) -> None:
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "a").write_bytes(os.urandom(200_000))
    os.link(tmp_path / "d" / "a", tmp_path / "d" / "b")
    os.link(tmp_path / "d" / "a", tmp_path / "d" / "c")
    assert disk_usage(tmp_path / "d") == blocks(tmp_path / "d", tmp_path / "d" / "a")


def test_du_does_not_follow_symlinks(tmp_path: Path) -> None:
    (tmp_path / "big").mkdir()
    (tmp_path / "big" / "file").write_bytes(os.urandom(500_000))
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "to-dir").symlink_to(tmp_path / "big")
    (tmp_path / "d" / "to-file").symlink_to(tmp_path / "big" / "file")
    (tmp_path / "d" / "loop").symlink_to(tmp_path / "d")
    usage = disk_usage(tmp_path / "d")
    assert usage == blocks(tmp_path / "d", tmp_path / "d" / "to-dir", tmp_path / "d" / "to-file", tmp_path / "d" / "loop")
    assert usage < 500_000
    assert disk_usage(tmp_path / "d" / "to-dir") == blocks(tmp_path / "d" / "to-dir")  # the link itself


def test_du_walks_a_tree_deeper_than_the_recursion_limit(tmp_path: Path) -> None:
    path = tmp_path / "d"
    path.mkdir()
    deep = path
    try:
        for _ in range(1200):  # beyond Python's default recursion limit of 1000 (os.makedirs recurses too)
            deep = deep / "x"
            deep.mkdir()
        assert disk_usage(path) >= 1200 * 512
    finally:
        # Removed here, bottom up: pytest's own clean-up of old temporary directories (shutil.rmtree)
        # recurses and would fail on this tree in a later session.
        while deep != path:
            if deep.exists():
                deep.rmdir()
            deep = deep.parent


class FakeContainer(Record, frozen=False):
    layer: ContainerLayer | None = None


class FakeSlot(Record, frozen=False):
    name: str
    layer: ContainerLayer | None = None
    process: object | None = None  # any non-None value: running

    @property
    def runtime(self) -> FakeContainer | None:
        """The runtime's record of the instance (sandbox/runtime/service.RuntimeContainer)."""
        return FakeContainer(self.layer) if self.layer is not None else None


def test_measure_adds_layers_logs_and_disk_empty_dirs(tmp_path: Path) -> None:
    layer = ContainerLayer.create(tmp_path / "containers", "c1")
    (layer.upper / "file").write_bytes(os.urandom(300_000))
    logs = tmp_path / "logs"
    (logs / "a").mkdir(parents=True)
    (logs / "a" / "0.log").write_bytes(os.urandom(100_000))
    (logs / "init").mkdir()
    (logs / "init" / "0.log").write_bytes(os.urandom(40_000))
    disk, mem = tmp_path / "v" / "disk", tmp_path / "v" / "mem"
    disk.mkdir(parents=True)
    mem.mkdir()
    (disk / "f").write_bytes(os.urandom(70_000))
    (mem / "f").write_bytes(os.urandom(90_000))
    hosts = tmp_path / "etc-hosts"
    hosts.write_text("127.0.0.1 localhost\n")
    lim = StorageLimits({}, None, {}, ("disk",))
    usage = eviction.measure([FakeSlot("init"), FakeSlot("a", layer, "running")], logs, {"disk": disk, "mem": mem}, lim,  # type: ignore[list-item]
                             hosts)
    assert usage.containers["a"] == disk_usage(layer.upper) + disk_usage(logs / "a")
    assert "init" not in usage.containers  # not running: the kubelet's stats leave it out, logs too
    # only the emptyDirs a check reads are walked (a hostPath may be the host's `/`)
    assert usage.empty_dirs == {"disk": disk_usage(disk)}
    assert usage.pod == usage.containers["a"] + usage.empty_dirs["disk"] + disk_usage(hosts)


STORAGE_PODS = [
    "spec: {containers: [{name: a, image: x}]}",
    "spec: {containers: [{name: a, image: x, resources: {limits: {ephemeral-storage: 1Gi}}}]}",
    "spec: {containers: [{name: a, image: x, resources: {limits: {memory: 1Gi}}}]}",
    "spec: {initContainers: [{name: i, image: x, resources: {limits: {ephemeral-storage: 1Mi}}}], "
    "containers: [{name: a, image: x}]}",
    "spec: {initContainers: [{name: i, image: x, restartPolicy: Always, "
    "resources: {limits: {ephemeral-storage: 1Mi}}}], containers: [{name: a, image: x}]}",
    "spec: {containers: [{name: a, image: x}], volumes: [{name: v, emptyDir: {sizeLimit: 1Mi}}]}",
    "spec: {containers: [{name: a, image: x}], volumes: [{name: v, emptyDir: {}}]}",
    "spec: {containers: [{name: a, image: x}], volumes: [{name: v, emptyDir: {medium: Memory, sizeLimit: 1Mi}}]}",
]


@pytest.mark.parametrize("text", STORAGE_PODS)
def test_the_loops_cheap_check_never_skips_a_pod_the_eviction_manager_measures(text: str) -> None:
    """supervisor/loop.py's storage_limited decides whether eviction.py is imported at all."""
    from sandbox.supervisor.loop import storage_limited

    pod = load_pod_text("apiVersion: v1\nkind: Pod\nmetadata: {name: p}\n" + text)
    assert storage_limited(pod) or not eviction.storage_limits(pod).any
    assert storage_limited(pod) == eviction.storage_limits(pod).any  # and exact for these


@pytest.mark.parametrize("path", corpus_params())
def test_the_cheap_check_on_the_documentation_pods(path: Path) -> None:
    from sandbox.spec.load import load_manifests_text
    from sandbox.supervisor.loop import storage_limited

    require_corpus()
    from sandbox.errors import SpecError

    try:
        pods = load_manifests_text(path.read_bytes(), str(path)).pods
    except SpecError:
        return  # a file sandbox refuses (another kind, a placeholder image) starts no pod
    for pod in pods:
        assert storage_limited(pod) or not eviction.storage_limits(pod).any, path.name
