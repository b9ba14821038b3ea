"""`sandbox image import DIR NAME`, `sandbox image tag SOURCE TARGET` and `sandbox image ls`: the local
image store. Every reference is parsed with the one grammar (images/reference.py) before the store is
touched: one outside it is a usage error (exit 2), never a path."""

from __future__ import annotations

import argparse

TYPE_CHECKING = False  # typing costs ~3 ms to import; annotations need it only for checkers
if TYPE_CHECKING:
    from typing import Any


def add_parser(verbs: Any) -> None:
    p = verbs.add_parser("image", help="manage local images")
    sub = p.add_subparsers(dest="image_verb", required=True)
    imp = sub.add_parser("import", help="import a root filesystem directory as an image")
    imp.add_argument("directory")
    imp.add_argument("reference", help="e.g. busybox:latest")
    imp.add_argument("--entrypoint", default="", help="image ENTRYPOINT (a shell-quoted list)")
    imp.add_argument("--cmd", default="", help="image CMD (a shell-quoted list)")
    imp.add_argument("--env", action="append", default=[], help="NAME=value (repeatable)")
    imp.add_argument("--workdir", default="", help="image WorkingDir")
    imp.add_argument("--user", default="", help="image User (uid, name, uid:gid or name:group)")
    imp.set_defaults(handler=handle_import)
    tag = sub.add_parser("tag", help="give a stored image another name")
    tag.add_argument("source")
    tag.add_argument("target")
    tag.set_defaults(handler=handle_tag)
    ls = sub.add_parser("ls", help="list images")
    ls.set_defaults(handler=handle_ls)


def handle_import(args: argparse.Namespace) -> int:
    import shlex
    from pathlib import Path

    from sandbox.cli.common import image_name, layout
    from sandbox.images.store import ImageConfig, ImageStore

    image_name(args.reference, "image name", digest=False)
    config = ImageConfig(entrypoint=tuple(shlex.split(args.entrypoint)), cmd=tuple(shlex.split(args.cmd)),
                         env=tuple(args.env), working_dir=args.workdir, user=args.user)
    image = ImageStore(layout(args).images).import_directory(Path(args.directory), args.reference, config)
    print(f"{image.name} {image.digest}")
    return 0


def handle_tag(args: argparse.Namespace) -> int:
    from sandbox.cli.common import image_name, layout
    from sandbox.images.store import ImageStore

    image_name(args.source, "source image")
    target = image_name(args.target, "target image name", digest=False)
    store = ImageStore(layout(args).images)
    image = store.lookup(args.source)
    store.tag(image.digest, target)
    return 0


def handle_ls(args: argparse.Namespace) -> int:
    from sandbox.cli.common import layout
    from sandbox.images.store import ImageStore

    for name, digest in sorted(ImageStore(layout(args).images).refs().items()):
        print(f"{name}\t{digest[:19]}")
    return 0
