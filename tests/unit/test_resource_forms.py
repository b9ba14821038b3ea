"""kubectl's TYPE/NAME form on the verbs (cli/common.py): `get pod/web`, `logs pod/web`,
`exec pod/web -- ...`, `delete pod/a pod/b`."""

from __future__ import annotations

import argparse

import pytest

from sandbox.cli.common import check_arguments, pod_of_resource, split_resource
from sandbox.errors import UsageError


@pytest.mark.parametrize(("word", "name"), [("pod/web", "web"), ("pods/web", "web"), ("po/web", "web"),
                                            ("Pod/web", "web")])
def test_pod_forms(word: str, name: str) -> None:
    assert pod_of_resource(word) == name


def test_another_type_is_not_here() -> None:
    with pytest.raises(UsageError, match='the server doesn\'t have a resource type "deployment"'):
        pod_of_resource("deployment/web")


def test_a_name_argument_in_type_name_form_is_the_name() -> None:
    args = argparse.Namespace(namespace=None, name="pod/web", container=None)
    check_arguments(args)
    assert args.name == "web"
    with pytest.raises(UsageError, match="invalid pod name '../etc'"):  # a path, not TYPE/NAME
        check_arguments(argparse.Namespace(namespace=None, name="../etc", container=None))
    with pytest.raises(UsageError, match="invalid pod name 'Bad_'"):
        check_arguments(argparse.Namespace(namespace=None, name="pod/Bad_", container=None))


def test_a_kind_argument_in_type_name_form_splits() -> None:
    args = argparse.Namespace(kind="pod/web", name=None)
    split_resource(args, ("pod", "pods", "po", "configmap"))
    assert (args.kind, args.name) == ("pod", "web")
    plain = argparse.Namespace(kind="PODS", name="web")
    split_resource(plain, ("pod", "pods", "po"))
    assert (plain.kind, plain.name) == ("pods", "web")
    with pytest.raises(UsageError, match="there is no need to specify a resource type as a separate argument"):
        split_resource(argparse.Namespace(kind="pod/web", name="db"), ("pod",))
    with pytest.raises(UsageError, match='resource type "svc"'):
        split_resource(argparse.Namespace(kind="svc", name=None), ("pod",))
