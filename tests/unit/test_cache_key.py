"""The parsed-manifest cache key covers every input of the parse: sandbox/spec, the sandbox modules
it imports (names.py, errors.py, record.py), the yaml package with its C extension, and finding
that package does not import it (a hit exists to skip that import)."""

from __future__ import annotations

import ast
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import sandbox
from sandbox.spec import cache
from sandbox.spec.load import load_pod_text

SANDBOX_DIR = Path(sandbox.__file__).resolve().parent
POD = "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec:\n  containers: [{name: c, image: busybox}]\n"


def _sandbox_imports(path: Path) -> set[str]:
    """The `sandbox.*` modules a file imports anywhere (top level, inside functions, relative)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "sandbox":
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.split(".")[0] == "sandbox")
    return found


def _module_file(module: str) -> Path | None:
    parts = module.split(".")[1:]
    for candidate in (SANDBOX_DIR.joinpath(*parts).with_suffix(".py"), SANDBOX_DIR.joinpath(*parts, "__init__.py")):
        if parts and candidate.is_file():
            return candidate
    return None


def test_the_key_names_every_sandbox_module_the_parse_imports() -> None:
    """The transitive closure of sandbox imports from the parse (cache.py, and load.py its miss
    path), outside spec itself, is exactly PARSE_MODULES: a new import of, say, sandbox.quantities
    from the parse fails here until it is added. (What runs after the cache, like spec/accept.py,
    is not an input of the cached result.)"""
    todo = [SANDBOX_DIR / "spec" / "cache.py", SANDBOX_DIR / "spec" / "load.py"]
    seen: set[Path] = set()
    while todo:
        path = todo.pop()
        if path in seen:
            continue
        seen.add(path)
        todo += [f for f in map(_module_file, _sandbox_imports(path)) if f is not None]
    outside = {p.relative_to(SANDBOX_DIR).as_posix() for p in seen if p.parent != SANDBOX_DIR / "spec"}
    assert outside == set(cache.PARSE_MODULES)


@pytest.fixture
def sandbox_copy(tmp_path: Path) -> Path:
    """The files the fingerprint reads, copied (mtimes kept) so they can be changed."""
    root = tmp_path / "sandbox"
    shutil.copytree(SANDBOX_DIR / "spec", root / "spec", copy_function=shutil.copy2,
                    ignore=shutil.ignore_patterns("__pycache__"))
    for name in cache.PARSE_MODULES:
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(SANDBOX_DIR / name, root / name)
    return root


@pytest.fixture
def yaml_copy(tmp_path: Path) -> Path:
    real = cache._yaml_dir()
    assert real and os.path.isfile(os.path.join(real, "__init__.py")), real
    copy = tmp_path / "site" / "yaml"
    shutil.copytree(real, copy, copy_function=shutil.copy2, ignore=shutil.ignore_patterns("__pycache__"))
    return copy


def _edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new, 1))


@pytest.mark.parametrize("name", ["names.py", "errors.py", "record.py", "spec/validate.py"])
def test_the_key_changes_when_a_parse_module_changes(sandbox_copy: Path, yaml_copy: Path, name: str) -> None:
    before = cache.fingerprint(str(sandbox_copy), str(yaml_copy))
    assert cache.fingerprint(str(sandbox_copy), str(yaml_copy)) == before  # stable while nothing changes
    with open(sandbox_copy / name, "a") as f:
        f.write("\n# changed\n")
    assert cache.fingerprint(str(sandbox_copy), str(yaml_copy)) != before


def test_the_key_ignores_modules_the_parse_does_not_use(sandbox_copy: Path, yaml_copy: Path) -> None:
    before = cache.fingerprint(str(sandbox_copy), str(yaml_copy))
    (sandbox_copy / "status.py").write_text("# not an input of the parse\n")
    (sandbox_copy / "spec" / "notes.txt").write_text("not a module\n")
    assert cache.fingerprint(str(sandbox_copy), str(yaml_copy)) == before


def test_the_key_changes_with_the_yaml_version(sandbox_copy: Path, yaml_copy: Path) -> None:
    """Another PyYAML release: a same-size edit of __version__, as 6.0.3 -> 6.0.4 would be."""
    before = cache.fingerprint(str(sandbox_copy), str(yaml_copy))
    init = yaml_copy / "__init__.py"
    text = init.read_text()
    version = text.split("__version__ = ", 1)[1].split("\n", 1)[0]
    bumped = version[:-2] + ("9" if version[-2] != "9" else "8") + version[-1]
    stat = init.stat()
    init.write_text(text.replace(version, bumped, 1))
    os.utime(init, ns=(stat.st_atime_ns, stat.st_mtime_ns))  # even with the old mtime kept
    assert init.stat().st_size == stat.st_size
    assert cache.fingerprint(str(sandbox_copy), str(yaml_copy)) != before


def test_the_key_changes_with_the_libyaml_extension(sandbox_copy: Path, yaml_copy: Path) -> None:
    extensions = sorted(yaml_copy.glob("_yaml*.so"))
    if not extensions:
        pytest.skip("this PyYAML has no libyaml extension")  # the pure-Python build
    before = cache.fingerprint(str(sandbox_copy), str(yaml_copy))
    so = extensions[0]
    rebuilt = so.read_bytes() + b"\0"  # another build of the extension
    so.unlink()
    assert cache.fingerprint(str(sandbox_copy), str(yaml_copy)) != before  # CSafeLoader gone
    so.write_bytes(rebuilt)
    assert cache.fingerprint(str(sandbox_copy), str(yaml_copy)) != before


def test_a_changed_names_py_makes_a_cached_manifest_miss(tmp_path: Path, sandbox_copy: Path, yaml_copy: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """End to end through load_pod_cached: hit while nothing changes, miss once names.py does."""
    monkeypatch.setattr(cache, "_SANDBOX_DIR", str(sandbox_copy))
    monkeypatch.setattr(cache, "_yaml_dir", lambda: str(yaml_copy))
    parses: list[str] = []

    def counting_load(raw: bytes, source: str) -> object:
        parses.append(source)
        return load_pod_text(raw, source), ()

    monkeypatch.setattr(cache, "_load_uncached", counting_load)
    manifest, cache_dir = tmp_path / "pod.yaml", tmp_path / "cache"
    manifest.write_text(POD)
    for _ in range(2):
        cache.load_pod_cached(str(manifest), cache_dir)
    assert len(parses) == 1
    _edit(sandbox_copy / "names.py", "DNS_LABEL_MAX = 63", "DNS_LABEL_MAX = 63  # another rule")
    cache.load_pod_cached(str(manifest), cache_dir)
    assert len(parses) == 2
    cache.load_pod_cached(str(manifest), cache_dir)
    assert len(parses) == 2


def test_the_yaml_package_is_found_without_importing_it() -> None:
    code = ("import os, sys; from sandbox.spec import cache; where = cache._yaml_dir(); "
            "key = cache.fingerprint(); assert 'yaml' not in sys.modules, 'yaml imported'; "
            "import yaml; assert where == os.path.dirname(yaml.__file__), (where, yaml.__file__)")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_a_full_cache_drops_its_oldest_entries_and_keeps_the_newest(tmp_path: Path) -> None:
    cache_dir = tmp_path / "cache"
    for i in range(cache.MAX_ENTRIES + 5):
        manifest = tmp_path / f"p{i}.yaml"
        manifest.write_text(POD.replace("name: p}", f"name: p{i}}}"))
        cache.load_pod_cached(str(manifest), cache_dir)
        newest = max(cache_dir.iterdir(), key=lambda p: p.stat().st_mtime_ns)
        os.utime(newest, ns=(i * 10**9, i * 10**9))  # a distinct age each, whatever the clock's grain
    left = sorted(cache_dir.iterdir(), key=lambda p: p.stat().st_mtime_ns)
    assert len(left) <= cache.MAX_ENTRIES
    assert cache.load_pod_cached(str(tmp_path / f"p{cache.MAX_ENTRIES + 4}.yaml"), cache_dir).metadata.name \
        == f"p{cache.MAX_ENTRIES + 4}"
    assert left[-1].stat().st_mtime_ns == (cache.MAX_ENTRIES + 4) * 10**9  # the newest entry survived
