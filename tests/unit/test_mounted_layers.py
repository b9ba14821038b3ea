"""rootfs/mounted.py: the image layers a mountinfo's container roots and image volumes hold, which
`image prune` keeps."""

from __future__ import annotations

from sandbox.rootfs.mounted import layers_in

A, B, C = "a" * 64, "b" * 64, "c" * 64
LINKS = {"AAAAAA": A, "BBBBBB": B}
PREFIX = "/var/lib/sandbox/images/l/"


def _overlay(lower: str) -> str:
    return (f"74 46 0:43 / / rw,relatime - overlay overlay rw,lowerdir={lower},"
            "upperdir=/var/lib/sandbox/containers/x/upper,workdir=/var/lib/sandbox/containers/x/work\n")


def test_an_overlay_holds_the_layers_its_lowerdirs_link_to() -> None:
    assert layers_in(_overlay(f"{PREFIX}AAAAAA"), LINKS, PREFIX) == {A}
    assert layers_in(_overlay("l/AAAAAA:l/BBBBBB"), LINKS, PREFIX) == {A, B}
    # a root of several layers: bare link names, relative to images/l/ (plan.fit_overlays)
    assert layers_in(_overlay("BBBBBB:AAAAAA"), LINKS, PREFIX) == {A, B}


def test_links_of_another_directory_or_unknown_names_hold_nothing() -> None:
    assert layers_in(_overlay("/var/lib/docker/overlay2/l/AAAAAA"), LINKS, PREFIX) == set()
    assert layers_in(_overlay(f"{PREFIX}ZZZZZZ"), LINKS, PREFIX) == set()


def test_a_bind_of_a_layers_directory_holds_it() -> None:
    line = f"80 74 8:1 /var/lib/sandbox/images/layers/sha256/{C} /v ro,relatime - ext4 /dev/sda1 rw\n"
    assert layers_in(line, LINKS, PREFIX) == {C}
    assert layers_in(line.replace(C, C + "0"), LINKS, PREFIX) == set()  # not a layer's name
