"""A re-adopted pod's statuses come back from its record: container_status_json's inverse."""

from __future__ import annotations

import pytest

from sandbox import status as st

T0, T1 = 1_790_000_000.0, 1_790_000_042.0


@pytest.mark.parametrize("cs", [
    st.ContainerStatus("a", "busybox:1.36", st.Waiting("CrashLoopBackOff", "back-off 10s"), restart_count=2,
                       last_state=st.Terminated(3, "Error", T0, T1, "bye", container_id="sandbox://ab"),
                       container_id="sandbox://ab", image_id="sha256:00"),
    st.ContainerStatus("b", "img", st.Running(T0), ready=True, started=True, container_id="sandbox://cd",
                       user=st.LinuxUser(1000, 3000, (3000, 4000, 50000))),
    st.ContainerStatus("e", "img", st.Running(T0), container_id="sandbox://ef", user=st.LinuxUser(0, 0)),
    st.ContainerStatus("c", "img", st.Terminated(137, "OOMKilled", T0, T1, signal=0), sidecar=True),
    st.ContainerStatus("d", "img", None),
    st.ContainerStatus("f", "img", st.Running(T0), volume_mounts=(
        st.VolumeMountStatus("data", "/data"), st.VolumeMountStatus("conf", "/etc/conf", True, "Enabled"))),
])
def test_a_status_survives_its_json(cs: st.ContainerStatus) -> None:
    assert st.container_status_from_json(st.container_status_json(cs), sidecar=cs.sidecar) == cs


def test_conditions_survive_their_json() -> None:
    cond = st.PodCondition("Ready", "False", "ContainersNotReady", "containers with unready status: [a]", T1)
    assert st.condition_from_json(st.condition_json(cond)) == cond


def test_a_malformed_status_is_a_value_error() -> None:
    with pytest.raises(ValueError):
        st.container_status_from_json({"state": {}})
