#!/usr/bin/env python3
"""Pull benchmark (issue 12's check): `sandbox image pull` against `skopeo copy`, and a container
start from a cached multi-layer image against one from today's one-layer busybox.

What is timed (as root, every command a fresh process, stdio on /dev/null):

  pull   sandbox image pull   `sandbox --root R image pull REF` into an empty store (a new R each
                              run): manifest, config and layer blobs fetched and verified, every
                              layer unpacked (the container-ready tree)
         skopeo copy          `skopeo copy docker://REF oci:DIR:1` into a new DIR each run: blobs
                              fetched, verified and written; nothing unpacked
         skopeo copy + tar -x the same, then each layer blob unpacked by GNU tar into one tree: the
                              native floor of fetch + unpack (no whiteouts, checks or diff_ids)
         skopeo copy + tar -x per layer  the same fetch, then every layer unpacked at once by its
                              own GNU tar into its own directory below one marked for the Orlov
                              allocator (chattr +T), as the store lays layers out: the native floor
                              without the inode-reuse cost below (still no checks, no diff_ids)
         ... (stored already) `sandbox image pull` into a store holding the image, `skopeo copy`
                              into a layout holding it: each command's fixed cost (start, imports,
                              the manifest round trip) without the layers. A cold row's median less
                              its warm row's is the layers' own time: the "layer work" line sets
                              sandbox's (fetch, verify, unpack) against skopeo's (fetch, verify)
  start  sandbox run (layers) `sandbox --root C run -q POD.yaml`, one container running /bin/true
                              from the benchmark image, stored already (imagePullPolicy IfNotPresent)
         sandbox run (busybox) the same pod from busybox:latest, the one-layer image every test uses

The image is built here, offline, into an OCI layout: busybox's layer at the bottom (so the
container has /bin/true), then LAYERS more of LAYER_MIB MiB each (all gzip), half incompressible
random bytes and half text (seeded: every run of the benchmark builds the same image), ~50 MB of
blobs in all by default. That filler inflates at ~2 GB/s (stored blocks and long repeats), far
faster than real layers; `--content system` fills the layers with this machine's own libraries,
programs and modules instead (SYSTEM_TREES), where the inflater counts. It is pushed with skopeo to Debian's docker-registry on 127.0.0.1 (started
as the tests start it: tests/integration/registry_fixture.py), which both clients pull from over
plain HTTP. The runs are interleaved, the order of the two commands alternating each round, so a
drift of the machine (page cache, CPU frequency) touches both alike; the stores are removed between
runs, outside the timing. `--baseline OLD` adds rows for another `sandbox` (an older tree, cold and
stored already) in the same rounds: before/after figures that one machine's drift cannot skew.

Removing the stores has a cost the next run pays on a journal-less ext4 (this VM's root): for
60-360 s the kernel will not reuse a freed inode, and every inode it allocates first steps over
each such inode of its block group (~0.4 ms a file once a few thousand are freed there). The store
marks its layers/ directory for the Orlov allocator (sandbox/topdir.py), which places each
layer in a group of its own choosing; `tar -x` into one tree pays the full cost, so on such a
filesystem the `skopeo copy + tar -x` row grows over the rounds (see the per-round lines).

Everything lives in one temporary directory, removed at the end, also on Ctrl-C or SIGTERM (with
stray mounts unmounted and the pods' cgroup parent removed); the registry is stopped. Results: a
markdown table on stdout and bench/results/pull.json.

    sudo .venv/bin/python bench/pull.py [--runs N] [--layers N] [--layer-mib N]
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import io
import json
import os
import random
import shlex
import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests" / "integration"))
import pod_cycle  # noqa: E402  (workspace, timing and clean-up helpers: one copy of each)
from registry_fixture import running_registry  # noqa: E402  (the tests' way to start docker-registry)

REPO = pod_cycle.REPO
RESULTS = REPO / "bench" / "results" / "pull.json"
REPOSITORY = "bench/layers"
TAG = "1"
POD = "bench-start"
BASELINE = "sandbox image pull (baseline)"
WARM_BASELINE = "sandbox image pull (baseline, stored already)"
WARM_SANDBOX = "sandbox image pull (stored already)"
WARM_SKOPEO = "skopeo copy (stored already)"
MEDIA_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
MEDIA_CONFIG = "application/vnd.oci.image.config.v1+json"
MEDIA_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
TARGETS = {"sandbox image pull vs skopeo copy": "ratio <= 1 (issue 12: no slower)",
           "sandbox image pull vs skopeo copy + tar -x": "ratio <= 1 (the same work: fetch and unpack)",
           "sandbox run (layers) vs sandbox run (busybox)": "ratio <= 1 (issue 12: no slower than today's)"}


@dataclass
class Row:
    group: str  # "pull" or "start"
    label: str
    argv: list[str]
    times_ms: list[float] = field(default_factory=list)
    ratio: float | None = None  # median over the median of the group's reference row

    def summary(self) -> dict[str, object]:
        return {"group": self.group, "command": self.label, "argv": self.argv, "runs": len(self.times_ms),
                "median_ms": round(statistics.median(self.times_ms), 1),
                "min_ms": round(min(self.times_ms), 1), "max_ms": round(max(self.times_ms), 1),
                "ratio": None if self.ratio is None else round(self.ratio, 2)}


# ---------------------------------------------------------------------------------------------
# The image: an OCI layout built here


def blob(layout: Path, data: bytes, media_type: str) -> dict[str, object]:
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    (layout / "blobs" / "sha256" / digest.partition(":")[2]).write_bytes(data)
    return {"mediaType": media_type, "digest": digest, "size": len(data)}


def filler_layer(index: int, mib: int) -> bytes:
    """An uncompressed tar of `mib` MiB: half seeded random bytes, half repeated text."""
    rng = random.Random(index)
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for i in range(mib * 4):  # 256 KiB files
            body = rng.randbytes(256 << 10) if i % 2 == 0 else \
                (f"layer {index} line of text number {i}\n" * 8000).encode()[:256 << 10]
            info = tarfile.TarInfo(f"data/layer{index}/file{i:04d}")
            info.size, info.mode, info.mtime = len(body), 0o644, 0
            tar.addfile(info, io.BytesIO(body))
    return out.getvalue()


# --content system: the files of these trees, in path order, cut into layers
SYSTEM_TREES = ("/usr/lib/python3", "/usr/share/perl", "/usr/lib/x86_64-linux-gnu", "/usr/bin")


def system_layers(layers: int, mib: int) -> list[bytes]:
    """`layers` uncompressed tars of about `mib` MiB each made of this machine's own files
    (SYSTEM_TREES: libraries, programs, Python and Perl modules): what real layers hold, which
    deflate compresses ~3.5x and inflates far slower than the filler's text and random halves.
    The same machine gives the same image each run; another machine, another image."""
    paths: list[Path] = []
    for tree in SYSTEM_TREES:
        for top, dirs, files in os.walk(tree):
            dirs.sort()
            paths.extend(Path(top) / name for name in sorted(files))
    out: list[bytes] = []
    paths_iter = iter(paths)
    for _ in range(layers):
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
            for path in paths_iter:
                info = tar.gettarinfo(str(path), arcname=str(path).lstrip("/"))
                if info.size > (mib << 20) // 4:  # no one library as big as a layer (libLLVM)
                    continue
                info.mtime, info.uname, info.gname = 0, "", ""
                if info.isreg():
                    with open(path, "rb") as f:
                        tar.addfile(info, f)
                elif info.issym():
                    tar.addfile(info)
                if buf.tell() >= mib << 20:
                    break
        out.append(buf.getvalue())
    return out


def build_layout(layout: Path, busybox_store: Path, layers: int, mib: int,
                 content: str = "filler") -> tuple[int, list[str]]:
    """The benchmark image; returns the size of its blobs (bytes) and its layers' digests."""
    from sandbox.images.store import ImageStore

    (layout / "blobs" / "sha256").mkdir(parents=True)
    store = ImageStore(busybox_store)
    busybox = store.read_json(store.lookup(pod_cycle.IMAGE_REF).digest)["layers"][0]["digest"]
    bottom = store.blob_path(busybox).read_bytes()  # an uncompressed tar: its digest is its diff_id
    # gzipped like the others: skopeo would compress an uncompressed layer on its way to oci:
    descriptors = [blob(layout, gzip.compress(bottom, compresslevel=6, mtime=0), MEDIA_GZIP)]
    diff_ids = [busybox]
    tars = system_layers(layers, mib) if content == "system" else (filler_layer(i, mib) for i in range(layers))
    for tar in tars:
        diff_ids.append("sha256:" + hashlib.sha256(tar).hexdigest())
        descriptors.append(blob(layout, gzip.compress(tar, compresslevel=6, mtime=0), MEDIA_GZIP))
    config = blob(layout, json.dumps({
        "architecture": "amd64" if os.uname().machine == "x86_64" else os.uname().machine, "os": "linux",
        "config": {"Cmd": ["sh"]}, "rootfs": {"type": "layers", "diff_ids": diff_ids}}).encode(), MEDIA_CONFIG)
    manifest = blob(layout, json.dumps({"schemaVersion": 2, "mediaType": MEDIA_MANIFEST, "config": config,
                                        "layers": descriptors}).encode(), MEDIA_MANIFEST)
    layout_index = {"schemaVersion": 2, "manifests": [
        {**manifest, "annotations": {"org.opencontainers.image.ref.name": TAG}}]}
    (layout / "index.json").write_text(json.dumps(layout_index))
    (layout / "oci-layout").write_text('{"imageLayoutVersion": "1.0.0"}')
    return sum(int(str(d["size"])) for d in [manifest, config, *descriptors]), [str(d["digest"]) for d in descriptors]


# ---------------------------------------------------------------------------------------------
# The runs


def pod_manifest(image: str) -> str:
    return (f"apiVersion: v1\nkind: Pod\nmetadata: {{name: {POD}}}\nspec:\n  restartPolicy: Never\n"
            f"  containers:\n  - name: main\n    image: {image}\n    imagePullPolicy: IfNotPresent\n"
            f"    command: [\"/bin/true\"]\n")


def interleaved(rows: list[Row], runs: int, before: dict[str, list[str]], env: dict[str, str]) -> None:
    """`runs` rounds; each round runs every row once, the order rotating; `before[label]` is a
    command run untimed before that row's command (emptying its store)."""
    for round_ in range(runs):
        order = rows[round_ % len(rows):] + rows[:round_ % len(rows)]
        for row in order:
            if before.get(row.label):
                subprocess.run(before[row.label], check=True)
            row.times_ms.append(pod_cycle.run_once(row.argv, env))
        print(f"  round {round_ + 1}/{runs}: " + ", ".join(f"{r.label} {r.times_ms[-1]:.0f} ms" for r in rows),
              file=sys.stderr, flush=True)


def pull_rows(sandbox: Path, base: Path, reference: str, layer_digests: list[str],
              baseline: Path | None = None) -> tuple[list[Row], dict[str, list[str]]]:
    cold_root, oci_dir, tree = base / "cold-sandbox", base / "cold-oci", base / "cold-tree"

    def skopeo(target: Path) -> list[str]:
        return ["skopeo", "--insecure-policy", "copy", "--quiet", "--src-tls-verify=false",
                f"docker://{reference}", f"oci:{target}:{TAG}"]

    sandbox_row = Row("pull", "sandbox image pull", [str(sandbox), "--root", str(cold_root), "image", "pull",
                                                      reference])
    skopeo_row = Row("pull", "skopeo copy", skopeo(oci_dir))
    # the same fetch, then every layer unpacked by GNU tar into one tree: the native floor of what
    # `sandbox image pull` does (no whiteouts applied, no per-entry checks, no diff_id)
    blobs = " ".join(shlex.quote(str(oci_dir / "blobs" / "sha256" / d.partition(":")[2])) for d in layer_digests)
    untar = f"{shlex.join(skopeo(oci_dir))} && mkdir {shlex.quote(str(tree))} && " \
            f"for b in {blobs}; do tar -xf \"$b\" -C {shlex.quote(str(tree))} || exit; done"
    tar_row = Row("pull", "skopeo copy + tar -x", ["sh", "-c", untar])
    # the same with the store's layout: a directory per layer below a top directory, every tar at
    # once (the store unpacks on threads), the first failure failing the command
    per_layer = base / "cold-layers"
    layers = f"{shlex.join(skopeo(oci_dir))} && mkdir {shlex.quote(str(per_layer))} && " \
             f"chattr +T {shlex.quote(str(per_layer))} && i=0 && pids= && " \
             f"for b in {blobs}; do i=$((i+1)); d={shlex.quote(str(per_layer))}/$i; " \
             "mkdir \"$d\" && { tar -xf \"$b\" -C \"$d\" & pids=\"$pids $!\"; } || exit; done; " \
             "for p in $pids; do wait $p || exit; done"
    layers_row = Row("pull", "skopeo copy + tar -x per layer", ["sh", "-c", layers])
    # the fixed costs: the same commands where everything is stored already (filled in main)
    warm_rows = [Row("pull", WARM_SANDBOX, [str(sandbox), "--root", str(base / "cached"), "image", "pull", reference]),
                 Row("pull", WARM_SKOPEO, skopeo(base / "warm-oci"))]
    emptied = {sandbox_row.label: ["rm", "-rf", str(cold_root)], skopeo_row.label: ["rm", "-rf", str(oci_dir)],
               tar_row.label: ["rm", "-rf", str(oci_dir), str(tree)],
               layers_row.label: ["rm", "-rf", str(oci_dir), str(per_layer)]}
    rows = [sandbox_row, skopeo_row, tar_row, layers_row, *warm_rows]
    if baseline is not None:  # before/after figures from the same rounds
        old_root = base / "cold-baseline"
        rows.append(Row("pull", BASELINE, [str(baseline), "--root", str(old_root), "image", "pull", reference]))
        emptied[BASELINE] = ["rm", "-rf", str(old_root)]
        rows.append(Row("pull", WARM_BASELINE, [str(baseline), "--root", str(base / "cached"), "image", "pull",
                                                 reference]))
    return rows, emptied


def start_rows(sandbox: Path, root: Path, base: Path, reference: str) -> list[Row]:
    rows = []
    for label, image in (("sandbox run (layers)", reference), ("sandbox run (busybox)", "busybox")):
        manifest = base / f"{label.split('(')[1].rstrip(')')}.yaml"
        manifest.write_text(pod_manifest(image))
        rows.append(Row("start", label, [str(sandbox), "--root", str(root), "run", "-q", str(manifest)]))
    return rows


def add_ratios(rows: list[Row]) -> None:
    reference = {"pull": "skopeo copy", "start": "sandbox run (busybox)"}
    medians = {row.label: statistics.median(row.times_ms) for row in rows}
    for row in rows:
        row.ratio = medians[row.label] / medians[reference[row.group]]


def markdown(rows: list[Row], image_bytes: int, layers: int) -> str:
    lines = [f"image: {layers + 1} layers, {image_bytes / 1e6:.1f} MB of blobs", "",
             "| command | median ms | min | max | runs | ratio |", "|---|---:|---:|---:|---:|---:|"]
    for row in rows:
        lines.append(f"| {row.label} | {statistics.median(row.times_ms):.0f} | {min(row.times_ms):.0f} | "
                     f"{max(row.times_ms):.0f} | {len(row.times_ms)} | {row.ratio:.2f}x |")
    lines += ["", "Ratio: median over the median of `skopeo copy` (pull rows), `sandbox run (busybox)` "
                  "(start rows)."]
    lines += [f"- {verdict}" for verdict in verdicts(rows)]
    lines += layer_work(rows)
    return "\n".join(lines)


def layer_work(rows: list[Row]) -> list[str]:
    """The layers' own time (a cold pull's median less the same command's with everything stored
    already): what is left of the ratio once each command's fixed cost is set aside."""
    medians = {row.label: statistics.median(row.times_ms) for row in rows}
    ours = medians["sandbox image pull"] - medians[WARM_SANDBOX]
    theirs = medians["skopeo copy"] - medians[WARM_SKOPEO]
    return [f"- layer work: sandbox {ours:.0f} ms (fetch, verify, unpack) vs skopeo {theirs:.0f} ms (fetch, "
            f"verify): {ours / theirs:.2f}x; fixed costs {medians[WARM_SANDBOX]:.0f} ms vs "
            f"{medians[WARM_SKOPEO]:.0f} ms (start, imports, manifest)"]


def verdicts(rows: list[Row]) -> list[str]:
    medians = {row.label: statistics.median(row.times_ms) for row in rows}
    out = []
    for what, target in TARGETS.items():
        a, b = what.split(" vs ")
        ratio = medians[a] / medians[b]
        out.append(f"{what}: {ratio:.2f}x, {'met' if ratio <= 1 else 'MISSED'} ({target})")
    return out


# ---------------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--runs", type=int, default=7, help="rounds of each command (default 7)")
    p.add_argument("--layers", type=int, default=5, help="gzip layers above busybox's (default 5)")
    p.add_argument("--layer-mib", type=int, default=16, help="uncompressed MiB per layer (default 16: "
                   "~8.5 MB gzipped, ~45 MB of blobs with 5 layers)")
    p.add_argument("--content", choices=["filler", "system"], default="filler",
                   help="what the layers hold: filler (default: seeded, half random bytes and half repeated "
                   "text, the same everywhere) or system (this machine's libraries, programs and modules: "
                   "real data for inflate; use --layer-mib 30 for ~45 MB of blobs)")
    p.add_argument("--sandbox", type=Path, default=REPO / ".venv" / "bin" / "sandbox")
    p.add_argument("--json", type=Path, default=RESULTS, help=f"where to write results (default {RESULTS})")
    p.add_argument("--baseline", type=Path, help="another `sandbox` executable (an older tree, e.g. a script "
                   "running it with its own PYTHONPATH) timed in the same rounds, cold and with the image "
                   "stored already")
    return p.parse_args(argv)


def check_prerequisites(args: argparse.Namespace) -> None:
    if os.geteuid() != 0:
        sys.exit("pull: needs root (layers unpacked with their owners, namespaces for the start rows)")
    missing = [tool for tool in ("skopeo", "docker-registry") if not shutil.which(tool)]
    if not args.sandbox.exists():
        missing.append(str(args.sandbox))
    if missing:
        sys.exit(f"pull: missing {', '.join(missing)}")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    check_prerequisites(args)
    pod_cycle.install_stop_handlers()
    sandbox = args.sandbox.absolute()
    with ExitStack() as stack:
        base = Path(tempfile.mkdtemp(prefix="pull-bench-"))
        stack.callback(pod_cycle.remove_workspace, base)
        env = pod_cycle.child_env(base, pycache=True)
        env["SANDBOX_CGROUP_PARENT"] = pod_cycle.CGROUP_PARENT
        stack.callback(pod_cycle.remove_cgroup_parent)
        cached = base / "cached"
        print(f"building busybox and the benchmark image in {base}", file=sys.stderr, flush=True)
        pod_cycle.build_image(sandbox, cached, env)
        image_bytes, layer_digests = build_layout(base / "layout", cached / "lib" / "images", args.layers, args.layer_mib,
                                                  args.content)
        registry = stack.enter_context(running_registry(base / "registry"))
        reference = f"{registry.netloc}/{REPOSITORY}:{TAG}"
        registry.push(base / "layout", TAG, REPOSITORY)
        subprocess.run([str(sandbox), "--root", str(cached), "image", "pull", reference], env=env,
                       check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        subprocess.run(["skopeo", "--insecure-policy", "copy", "--quiet", "--src-tls-verify=false",
                        f"docker://{reference}", f"oci:{base / 'warm-oci'}:{TAG}"], check=True)
        pulls, emptied = pull_rows(sandbox, base, reference, layer_digests, args.baseline)
        starts = start_rows(sandbox, cached, base, reference)
        print(f"timing {args.runs} interleaved rounds (stdlib timer)", file=sys.stderr, flush=True)
        for row in (*pulls, *starts):  # one untimed warm-up each: byte-code, page cache
            subprocess.run(emptied.get(row.label, ["true"]), check=True)
            pod_cycle.run_once(row.argv, env)
        interleaved(pulls, args.runs, emptied, env)
        interleaved(starts, args.runs, {}, env)
        rows = [*pulls, *starts]
    check = {"mounts": pod_cycle.mounts_under(base), "pod_cgroups": pod_cycle.pod_cgroups(),
             "workspace_exists": base.exists()}
    add_ratios(rows)
    print(markdown(rows, image_bytes, args.layers))
    report = {"environment": {"date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                              "kernel": os.uname().release, "cpus": os.cpu_count(),
                              "skopeo": subprocess.run(["skopeo", "--version"], capture_output=True,
                                                       text=True).stdout.strip(),
                              "image_layers": args.layers + 1, "image_bytes": image_bytes,
                              "content": args.content,
                              "runs": args.runs},
              "rows": [row.summary() for row in rows], "targets": TARGETS, "verdicts": verdicts(rows),
              "layer_work": layer_work(rows)}
    return pod_cycle.finish(check, report, args.json)


if __name__ == "__main__":
    pod_cycle.run_main(main, "pull")
