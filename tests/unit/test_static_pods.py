"""Static pods from a manifest directory (sandbox/agent/static.py), as the kubelet's file source:
real temporary directories and real inotify, time driven by an injected clock (the deadlines, never
a wall-clock wait); a select on the source's fd waits for the kernel's events."""

from __future__ import annotations

import os
import select
from collections.abc import Iterator
from pathlib import Path

import pytest

from sandbox.agent.kubeletconfig import AgentConfig
from sandbox.agent.static import (
    CONFIG_HASH,
    CONFIG_SEEN,
    CONFIG_SOURCE,
    Changes,
    StaticPods,
    delete_message,
    is_static,
)

NODE = "node1"


def manifest(name: str = "web", image: str = "busybox", extra: str = "") -> str:
    return (f"apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\n{extra}spec:\n  containers:\n"
            f"  - name: c\n    image: {image}\n")


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Source:
    """A StaticPods over one path, with its clock and what it reported."""

    def __init__(self, path: Path, node: str = NODE, period: float = 20.0) -> None:
        self.path = path
        self.clock = Clock()
        self.reports: list[str] = []
        self.pods = StaticPods(AgentConfig(static_pod_path=str(path), file_check_frequency=period), node,
                               self.reports.append, clock=self.clock)

    def poll(self) -> Changes | None:
        return self.pods.poll()

    def after_event(self) -> Changes | None:
        """Wait (at most 5 s) for the kernel to make the fd readable, then poll."""
        ready, _, _ = select.select([self.pods.fileno()], [], [], 5.0)
        assert ready, "no inotify event arrived"
        return self.pods.poll()

    def at_deadline(self) -> Changes | None:
        deadline = self.pods.next_deadline()
        assert deadline is not None
        self.clock.now = deadline
        return self.pods.poll()

    def key(self, name: str) -> str:
        return str(self.path / name)


@pytest.fixture
def source(tmp_path: Path) -> Iterator[Source]:
    s = Source(tmp_path / "manifests")
    (tmp_path / "manifests").mkdir()
    yield s
    s.pods.close()


def test_a_pod_from_a_file_has_the_kubelets_identity(source: Source) -> None:
    (source.path / "web.yaml").write_text(manifest(extra="  labels: {role: myrole}\n"))
    changes = source.poll()
    assert changes is not None and changes.added == (source.key("web.yaml"),)
    pod = changes.desired[source.key("web.yaml")]
    assert (pod.name, pod.namespace, pod.source) == ("web-node1", "default", "file")
    assert len(pod.uid) == 32 and int(pod.uid, 16) >= 0
    meta = pod.manifest["metadata"]
    assert meta["uid"] == pod.uid and meta["labels"] == {"role": "myrole"}
    assert meta["annotations"][CONFIG_HASH] == pod.uid and meta["annotations"][CONFIG_SOURCE] == "file"
    assert meta["annotations"][CONFIG_SEEN].endswith("Z")
    assert pod.manifest["spec"]["nodeName"] == NODE
    assert {"operator": "Exists", "effect": "NoExecute"} in pod.manifest["spec"]["tolerations"]
    # the validated pod the agent runs carries the same identity
    assert pod.pod.pod.metadata.name == "web-node1" and pod.pod.pod.metadata.uid == pod.uid
    assert is_static(pod.pod.pod.metadata.annotations)
    assert source.poll() is None  # nothing new


def test_add_edit_and_remove_through_inotify(source: Source) -> None:
    assert source.poll() is None  # an empty directory
    (source.path / "web.yaml").write_text(manifest())
    added = source.after_event()
    assert added is not None and added.added == (source.key("web.yaml"),)
    first = added.desired[source.key("web.yaml")].uid

    (source.path / "web.yaml").write_text(manifest(image="busybox:1.36"))
    edited = source.after_event()
    assert edited is not None and edited.updated == (source.key("web.yaml"),)
    assert edited.desired[source.key("web.yaml")].uid != first  # a new UID: the pod is replaced

    (source.path / "web.yaml").unlink()
    removed = source.after_event()
    assert removed is not None and removed.removed == (source.key("web.yaml"),) and removed.desired == {}
    assert source.reports == []


def test_unchanged_content_keeps_its_uid(source: Source) -> None:
    (source.path / "web.yaml").write_text(manifest())
    changes = source.poll()
    assert changes is not None
    uid = changes.desired[source.key("web.yaml")].uid
    # the same pod written again, with a comment and explicit defaults: same UID, nothing to do
    (source.path / "web.yaml").write_text("# edited\n" + manifest(extra="  namespace: default\n"))
    assert source.after_event() is None
    # a new StaticPods (the agent restarted) computes the same UID for the same file
    again = Source(source.path)
    try:
        first = again.poll()
        assert first is not None and first.desired[source.key("web.yaml")].uid == uid
    finally:
        again.pods.close()


def test_the_uid_depends_on_the_node_and_the_path(source: Source, tmp_path: Path) -> None:
    (source.path / "a.yaml").write_text(manifest("a"))
    (source.path / "b.yaml").write_text(manifest("a").replace("name: a", "name: b"))
    other_node = Source(source.path, node="node2")
    try:
        mine, theirs = source.poll(), other_node.poll()
        assert mine is not None and theirs is not None
        assert mine.desired[source.key("a.yaml")].uid != theirs.desired[source.key("a.yaml")].uid
        assert theirs.desired[source.key("a.yaml")].name == "a-node2"
    finally:
        other_node.pods.close()


def test_metadata_uid_is_kept(source: Source) -> None:
    (source.path / "web.yaml").write_text(manifest(extra="  uid: 1234-fixed\n"))
    changes = source.poll()
    assert changes is not None and changes.desired[source.key("web.yaml")].uid == "1234-fixed"
    (source.path / "web.yaml").write_text(manifest(image="busybox:2", extra="  uid: 1234-fixed\n"))
    edited = source.after_event()
    assert edited is not None and edited.updated == (source.key("web.yaml"),)
    assert edited.desired[source.key("web.yaml")].uid == "1234-fixed"


def test_dotfiles_are_ignored(source: Source) -> None:
    (source.path / ".web.yaml.swp").write_text(manifest("hidden"))
    (source.path / ".hidden.yaml").write_text("not: [yaml")
    assert source.poll() is None
    (source.path / ".another.yaml").write_text(manifest("hidden2"))
    assert source.after_event() is None
    assert source.reports == []


def test_a_broken_file_is_reported_once_and_the_others_are_kept(source: Source) -> None:
    (source.path / "good.yaml").write_text(manifest("good"))
    (source.path / "syntax.yaml").write_text("apiVersion: v1\nkind: Pod\nmetadata: {name: x\n")
    (source.path / "invalid.yaml").write_text(manifest("bad", image='""'))
    changes = source.poll()
    assert changes is not None and changes.added == (source.key("good.yaml"),)
    assert len(source.reports) == 2
    invalid = next(r for r in source.reports if "invalid.yaml" in r)
    assert f"{source.key('invalid.yaml')}: spec.containers[0].image: Required value" in invalid
    syntax = next(r for r in source.reports if "syntax.yaml" in r)
    assert "line 4" in syntax and "YAML syntax error" in syntax
    assert source.at_deadline() is None  # the re-list reads nothing new and reports nothing again
    assert len(source.reports) == 2
    assert set(source.pods.problems()) == {source.key("invalid.yaml"), source.key("syntax.yaml")}
    # fixed: the pod comes, the problem goes
    (source.path / "invalid.yaml").write_text(manifest("bad"))
    fixed = source.after_event()
    assert fixed is not None and fixed.added == (source.key("invalid.yaml"),)
    assert set(source.pods.problems()) == {source.key("syntax.yaml")}


def test_a_file_broken_by_an_edit_loses_its_pod(source: Source) -> None:
    (source.path / "web.yaml").write_text(manifest())
    (source.path / "other.yaml").write_text(manifest("other"))
    assert source.poll() is not None
    (source.path / "web.yaml").write_text("apiVersion: v1\nkind: Pod\nmetadata: {name: web}\n")
    changes = source.after_event()
    # the kubelet's settled state (its next re-list drops a file it cannot read); the other pod stays
    assert changes is not None and changes.removed == (source.key("web.yaml"),)
    assert list(changes.desired) == [source.key("other.yaml")]
    assert source.reports == [f"static pod {source.key('web.yaml')}: spec.containers: Required value"]


def test_the_kubelets_rules_for_what_a_file_holds(source: Source) -> None:
    (source.path / "nameless.yaml").write_text(manifest().replace("  name: web\n", "  labels: {a: b}\n"))
    (source.path / "service.yaml").write_text("apiVersion: v1\nkind: Service\nmetadata: {name: s}\n")
    (source.path / "configmap.yaml").write_text(manifest() + "  volumes:\n  - name: v\n    configMap: {name: cm}\n")
    (source.path / "two.yaml").write_text(manifest("first") + "---\n" + manifest("second"))
    (source.path / "README").write_text("Static pods for this node.\n")
    changes = source.poll()
    assert changes is not None and list(changes.desired) == [source.key("two.yaml")]
    assert changes.desired[source.key("two.yaml")].name == "first-node1"  # only the first document
    problems = source.pods.problems()
    assert "metadata.name: Required value: a static pod needs a name" in problems[source.key("nameless.yaml")]
    assert 'kind: Unsupported value: "Service"' in problems[source.key("service.yaml")]
    assert ("spec.volumes[0].configMap: Forbidden: static pods may not reference configmaps"
            in problems[source.key("configmap.yaml")])
    assert "only the first of 2 YAML documents" in problems[source.key("two.yaml")]
    assert source.key("README") in problems  # not a manifest: reported, as the kubelet logs it


def test_subdirectories_are_not_recursed_into(source: Source) -> None:
    (source.path / "sub").mkdir()
    (source.path / "sub" / "web.yaml").write_text(manifest())
    assert source.poll() is None
    assert source.reports == [f"{source.key('sub')}: a directory in the static pod path is not recursed into"]
    (source.path / "sub" / "web.yaml").unlink()
    (source.path / "sub").rmdir()
    source.after_event()
    assert source.pods.problems() == {}


def test_a_symlink_to_a_manifest_is_read(source: Source, tmp_path: Path) -> None:
    (tmp_path / "elsewhere.yaml").write_text(manifest("linked"))
    (source.path / "linked.yaml").symlink_to(tmp_path / "elsewhere.yaml")
    changes = source.poll()
    assert changes is not None and changes.desired[source.key("linked.yaml")].name == "linked-node1"


def test_the_relist_catches_a_change_inotify_missed(source: Source) -> None:
    (source.path / "web.yaml").write_text(manifest())
    first = source.poll()
    assert first is not None
    (source.path / "web.yaml").write_text(manifest(image="busybox:1.36"))
    source.pods._path.inotify.read()  # type: ignore[union-attr]  # the events are lost
    assert source.pods.poll() is None  # before the deadline nothing is known
    assert source.pods.next_deadline() == source.clock.now + 20.0
    changes = source.at_deadline()  # the re-list sees the file's new size/mtime
    assert changes is not None and changes.updated == (source.key("web.yaml"),)


def test_the_source_is_ready_after_its_first_listing_even_an_empty_one(source: Source, tmp_path: Path) -> None:
    """The agent checks the pods it re-adopted against the sources once they are ready: an empty
    directory (its manifest removed while no agent ran) or a missing path is a whole, empty set."""
    assert not source.pods.ready()  # nothing listed yet: an empty set means nothing
    assert source.poll() is None and source.pods.desired() == {}
    assert source.pods.ready()
    missing = Source(tmp_path / "missing")
    try:
        assert missing.poll() is None and missing.pods.ready()  # file.go sends an empty SET for it
    finally:
        missing.pods.close()


def test_a_directory_created_later_is_found(tmp_path: Path) -> None:
    s = Source(tmp_path / "later")
    try:
        assert s.poll() is None
        assert s.reports == [f"{tmp_path / 'later'}: the static pod path does not exist; looking for it every 1s"]
        assert s.pods.next_deadline() == s.clock.now + 1.0  # the kubelet's watch retry, not the 20 s re-list
        assert s.at_deadline() is None and len(s.reports) == 1  # reported once
        (tmp_path / "later").mkdir()
        (tmp_path / "later" / "web.yaml").write_text(manifest())
        changes = s.at_deadline()
        assert changes is not None and changes.added == (s.key("web.yaml"),)
        assert s.pods.problems() == {}
        (s.path / "second.yaml").write_text(manifest("second"))  # and it is watched from then on
        second = s.after_event()
        assert second is not None and second.added == (s.key("second.yaml"),)
    finally:
        s.pods.close()


def test_a_removed_directory_removes_its_pods_and_comes_back(source: Source) -> None:
    (source.path / "web.yaml").write_text(manifest())
    assert source.poll() is not None
    (source.path / "web.yaml").unlink()
    source.path.rmdir()
    gone = source.after_event()
    assert gone is not None and gone.removed == (source.key("web.yaml"),)
    source.poll()  # the watch's end (IN_IGNORED) may come in a second read
    assert any("does not exist" in r for r in source.reports)
    source.path.mkdir()
    (source.path / "web.yaml").write_text(manifest())
    back = source.at_deadline()
    assert back is not None and back.added == (source.key("web.yaml"),)


def test_a_single_manifest_file_as_the_path(tmp_path: Path) -> None:
    path = tmp_path / "pod.yaml"
    path.write_text(manifest())
    s = Source(path)
    try:
        changes = s.poll()
        assert changes is not None and list(changes.desired) == [str(path)]
        path.write_text(manifest(image="busybox:2"))
        edited = s.after_event()
        assert edited is not None and edited.updated == (str(path),)
    finally:
        s.pods.close()


def test_two_files_with_one_pod_name(source: Source) -> None:
    (source.path / "a.yaml").write_text(manifest("web"))
    (source.path / "b.yaml").write_text(manifest("web", image="busybox:2"))
    changes = source.poll()
    assert changes is not None and list(changes.desired) == [source.key("a.yaml")]
    assert source.reports == [f"{source.key('b.yaml')}: pod default/web-node1 is already defined by "
                              f"{source.key('a.yaml')}: ignored"]
    (source.path / "a.yaml").unlink()
    changes = source.after_event()
    assert changes is not None and list(changes.desired) == [source.key("b.yaml")]
    assert source.pods.problems() == {}


def test_no_source_configured() -> None:
    pods = StaticPods(AgentConfig(), NODE, print)
    try:
        assert pods.fileno() == -1 and pods.next_deadline() is None and pods.poll() is None
    finally:
        pods.close()


def test_the_deadline_is_the_periodic_relist(source: Source) -> None:
    assert source.pods.next_deadline() == source.clock.now  # the first listing: at once
    source.poll()
    assert source.pods.next_deadline() == source.clock.now + 20.0


def test_mirror_pod_rules() -> None:
    assert is_static({CONFIG_SOURCE: "file"}) and is_static({CONFIG_SOURCE: "http"})
    assert not is_static({CONFIG_SOURCE: "api"}) and not is_static({})
    out, err = delete_message("static-web-node1", "/etc/kubelet.d/static-web.yaml")
    assert out == 'pod "static-web-node1" deleted'  # what kubectl prints for the mirror pod
    assert "/etc/kubelet.d/static-web.yaml" in err and "remove its manifest" in err


def test_the_fd_is_closed(tmp_path: Path) -> None:
    before = set(os.listdir("/proc/self/fd"))
    s = Source(tmp_path)
    s.poll()
    s.pods.close()
    assert set(os.listdir("/proc/self/fd")) == before


def test_without_a_watch_the_relist_still_finds_everything(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import errno

    from sandbox.agent import manifest_dir

    def no_watch_left(self: object, path: str) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), path)  # fs.inotify.max_user_watches reached

    monkeypatch.setattr(manifest_dir._Inotify, "watch", no_watch_left)
    (tmp_path / "web.yaml").write_text(manifest())
    s = Source(tmp_path)
    try:
        changes = s.poll()
        assert changes is not None and changes.added == (s.key("web.yaml"),)
        assert s.reports == [f"{tmp_path}: cannot watch with inotify (No space left on device): changes are "
                             "found by the re-list every 20s"]
        (tmp_path / "second.yaml").write_text(manifest("second"))
        changes = s.at_deadline()
        assert changes is not None and changes.added == (s.key("second.yaml"),)
        assert len(s.reports) == 1
    finally:
        s.pods.close()
