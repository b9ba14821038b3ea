"""`sandbox run NAME --image=IMAGE [-- ARGS...]`: a pod made from flags, as `kubectl run` makes it.

kubectl's pod generator (BasicPod): metadata.name NAME, labels `run=NAME` unless --labels gives
them, one container named NAME with the image, its pull policy (--image-pull-policy), env (--env
K=V), one containerPort (--port), the trailing arguments as the container's args (with
--command: its command), `dnsPolicy: ClusterFirst` and the restart policy (--restart, default
Always). `--dry-run=client -o yaml|json` prints that Pod (to save and edit) instead of running it;
otherwise it runs as a manifest file would, in the foreground or with -d, and its problems are
reported against `pod/NAME`, the only source the user gave.
"""

from __future__ import annotations

import sys

TYPE_CHECKING = False
if TYPE_CHECKING:
    import argparse
    from typing import Any

RESTART_POLICIES = ("Always", "OnFailure", "Never")
DRY_RUN = ("none", "client", "server")


def add_generator_options(p: Any) -> None:
    p.add_argument("--image", help="with a NAME in place of FILE: run a new pod of this image (kubectl run)")
    p.add_argument("--restart", metavar="POLICY", help="the pod's restartPolicy: Always (default), OnFailure, Never")
    p.add_argument("--env", action="append", metavar="KEY=VALUE", help="an environment variable (repeatable)")
    p.add_argument("--port", metavar="PORT", help="the container's containerPort")
    p.add_argument("--labels", metavar="K=V,...", help="the pod's labels (default run=NAME)")
    p.add_argument("--annotations", action="append", metavar="K=V", help="an annotation (repeatable)")
    p.add_argument("--command", action="store_true",
                   help="the arguments after -- are the container's command, not its args")
    p.add_argument("--image-pull-policy", metavar="POLICY", help="Always, IfNotPresent or Never")
    p.add_argument("--dry-run", metavar="MODE", help="client: print the pod (-o yaml|json) instead of running it")
    p.add_argument("-o", "--output", metavar="FORMAT", help="with --dry-run=client: yaml or json")


GENERATOR_DESTS = ("restart", "env", "port", "labels", "annotations", "command", "image_pull_policy", "dry_run",
                   "output")


def pairs(items: list[str], flag: str, *, split_commas: bool = False) -> dict[str, str]:
    from sandbox.errors import UsageError

    found: dict[str, str] = {}
    for item in items:
        for part in item.split(",") if split_commas else [item]:
            key, eq, value = part.partition("=")
            if not eq or not key:
                raise UsageError(f"{flag}: invalid value {part!r}: expected KEY=VALUE")
            found[key] = value
    return found


def pod_manifest(args: argparse.Namespace) -> dict[str, Any]:
    """The Pod kubectl run would create from these flags (not yet validated: accept does that)."""
    from sandbox.errors import UsageError

    name = args.file
    restart = args.restart or "Always"
    if restart not in RESTART_POLICIES:
        raise UsageError(f"--restart: invalid restart policy: {restart}")
    container: dict[str, Any] = {"name": name, "image": args.image}
    if args.image_pull_policy:
        container["imagePullPolicy"] = args.image_pull_policy
    if args.trailing:
        container["command" if args.command else "args"] = list(args.trailing)
    elif args.command:
        raise UsageError("--command: give the command after --")
    if args.env:
        container["env"] = [{"name": k, "value": v} for k, v in pairs(args.env, "--env").items()]
    if args.port is not None:
        try:
            container["ports"] = [{"containerPort": int(args.port)}]
        except ValueError:
            raise UsageError(f"--port: invalid port {args.port!r}") from None
    container["resources"] = {}
    metadata: dict[str, Any] = {"labels": pairs([args.labels], "--labels", split_commas=True) if args.labels
                                else {"run": name}, "name": name}
    if args.annotations:
        metadata["annotations"] = pairs(args.annotations, "--annotations")
    if args.namespace:
        metadata["namespace"] = args.namespace
    return {"apiVersion": "v1", "kind": "Pod", "metadata": metadata,
            "spec": {"containers": [container], "dnsPolicy": "ClusterFirst", "restartPolicy": restart},
            "status": {}}


def check_generator_flags(args: argparse.Namespace) -> None:
    """A generator flag without --image: kubectl run's required flag (a FILE takes none of them)."""
    from sandbox.errors import UsageError

    given = [d for d in GENERATOR_DESTS if getattr(args, d, None) not in (None, False, [])]
    if given:
        raise UsageError(f"--{given[0].replace('_', '-')}: only with --image (sandbox run NAME --image=IMAGE)")


def run_generated(args: argparse.Namespace, run_file: Any) -> int:
    """Dry run: print the pod. Otherwise: write it where prepare reads manifests and run it with
    `run_file(args)` (the FILE path of `sandbox run`), the file removed after."""
    import json
    import os
    import tempfile

    from sandbox.errors import SandboxError, SpecError, UsageError

    if args.dry_run not in (None, *DRY_RUN):
        raise UsageError(f'--dry-run: invalid value "{args.dry_run}": must be "none", "server", or "client"')
    if args.output not in (None, "yaml", "json"):
        raise UsageError(f"--output: unable to match a printer suitable for the output format {args.output!r}")
    manifest = pod_manifest(args)
    name = manifest["metadata"]["name"]
    if args.dry_run in ("client", "server"):
        if args.output == "json":
            sys.stdout.write(json.dumps(manifest, indent=4) + "\n")
        elif args.output == "yaml":
            from sandbox.cli.yamlout import to_yaml

            sys.stdout.write(to_yaml(manifest))
        else:
            print(f"pod/{name} created (dry run)")
        return 0
    if args.output is not None:
        raise UsageError("--output: only with --dry-run=client (a running pod prints its output)")
    directory = tempfile.mkdtemp(prefix="sandbox-run-")
    path = os.path.join(directory, "pod.json")
    try:
        with open(path, "w", encoding="utf-8") as f:
            json.dump(manifest, f)
        args.file, args.shown = path, f"pod/{name}"
        return int(run_file(args))
    except SpecError as e:
        raise SpecError(e.errors, f"pod/{name}") from None
    except SandboxError as e:  # worded for a file ("<path>: pod ... is already running"): the user gave none
        if path in str(e) and len(e.args) == 1:
            e.args = (str(e).replace(path, f"pod/{name}"),)
        raise
    finally:
        os.unlink(path)
        os.rmdir(directory)
