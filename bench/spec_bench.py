"""Benchmark: parse + default + validate of a 200-container Pod and of 1,000 small manifests.

Run: .venv/bin/python bench/spec_bench.py [--repeat N]
Prints medians (stdlib `time.perf_counter`) plus the import cost of `sandbox.spec.load`.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sandbox.spec.load import load_pod_file, load_pod_text


def big_pod(containers: int = 200) -> str:
    header = ("apiVersion: v1\nkind: Pod\nmetadata:\n  name: big\n  labels: {app: big}\nspec:\n  volumes:\n"
              "  - {name: data, emptyDir: {}}\n  containers:\n")
    parts = [header]
    for i in range(containers):
        parts.append(f"""  - name: c{i}
    image: registry.example/app:{i}
    command: [/bin/app, --port, "{8000 + i}"]
    env:
    - {{name: A, value: "1"}}
    - {{name: B, value: "$(A)-{i}"}}
    - name: POD
      valueFrom: {{fieldRef: {{fieldPath: metadata.name}}}}
    ports: [{{name: p{i}, containerPort: {8000 + i}}}]
    resources:
      requests: {{cpu: 10m, memory: 16Mi}}
      limits: {{cpu: 100m, memory: 64Mi}}
    volumeMounts: [{{name: data, mountPath: /data, subPath: c{i}}}]
    readinessProbe:
      httpGet: {{path: /ready, port: {8000 + i}}}
      periodSeconds: 5
""")
    return "".join(parts)


SMALL = """apiVersion: v1
kind: Pod
metadata:
  name: small-{n}
spec:
  containers:
  - name: app
    image: busybox:1.36
    command: [sh, -c, "sleep 3600"]
    ports: [{{containerPort: 80}}]
"""


def timed(fn, repeat: int) -> list[float]:  # type: ignore[no-untyped-def]
    samples = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - start)
    return samples


def import_cost(repeat: int) -> tuple[float, float]:
    """Median wall time of `import yaml` and of `import sandbox.spec.load`, in fresh interpreters."""
    def run(stmt: str) -> float:
        code = f"import time; t = time.perf_counter(); {stmt}; print(time.perf_counter() - t)"
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                             cwd=Path(__file__).resolve().parents[1])
        return float(out.stdout)
    yaml_t = statistics.median(run("import yaml") for _ in range(repeat))
    spec_t = statistics.median(run("import sandbox.spec.load") for _ in range(repeat))
    return yaml_t, spec_t


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=15)
    opts = parser.parse_args()
    text = big_pod()
    load_pod_text(text)  # warm up
    big = timed(lambda: load_pod_text(text), opts.repeat)
    with tempfile.TemporaryDirectory() as tmp:
        paths = []
        for n in range(1000):
            path = os.path.join(tmp, f"pod-{n}.yaml")
            Path(path).write_text(SMALL.format(n=n))
            paths.append(path)
        small = timed(lambda: [load_pod_file(p) for p in paths], max(3, opts.repeat // 3))
    yaml_t, spec_t = import_cost(max(5, opts.repeat // 2))
    print(f"200-container pod ({len(text) // 1024} KiB): median {statistics.median(big) * 1e3:.1f} ms")
    print(f"1,000 small manifests: median {statistics.median(small) * 1e3:.0f} ms total, "
          f"{statistics.median(small):.3f} ms each")
    print(f"import yaml: median {yaml_t * 1e3:.1f} ms; import sandbox.spec.load (incl. yaml): "
          f"median {spec_t * 1e3:.1f} ms")


if __name__ == "__main__":
    main()
