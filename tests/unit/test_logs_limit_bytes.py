"""`logs --limit-bytes=N`: the kubelet's logWriter counts the bytes it sends for each container
(after --tail and --since chose the lines, timestamps included, kubectl's --prefix not), cuts the
line that reaches the limit there and stops reading, a follow too."""

from __future__ import annotations

from tests.unit.test_cli_kubectl import Root, pod_state, root, stamp  # noqa: F401 - root is a fixture


def test_limit_bytes_cuts_the_output(root: Root) -> None:  # noqa: F811 - the fixture
    root.write(pod_state("web", containers=("app", "side")))
    root.log("web", "app", 1, [f"{stamp(30)} stdout F one", f"{stamp(20)} stderr F two",
                               "2026-11-30T05:00:03.5+01:00 stdout P thr", "2026-11-30T05:00:03.6+01:00 stdout F ee"])
    root.log("web", "app", 0, [f"{stamp(100)} stdout F previous-one", f"{stamp(90)} stdout F previous-two"])
    root.log("web", "side", 0, [f"{stamp(25)} stdout F side-one", f"{stamp(24)} stdout F side-two"])
    app = ("logs", "web", "-c", "app")
    assert root.run(*app, "--limit-bytes", "6").stdout == "one\ntw"
    assert root.run(*app, "--limit-bytes=8").stdout == "one\ntwo\n"  # exactly the limit: nothing cut
    assert root.run(*app, "--limit-bytes", "100").stdout == "one\ntwo\nthree\n"
    assert root.run(*app, "--limit-bytes", "0").stdout == "one\ntwo\nthree\n"  # kubectl leaves 0 out
    # --tail and --since choose the lines first; the limit counts from the first one they leave
    assert root.run(*app, "--tail", "2", "--limit-bytes", "6").stdout == "two\nth"
    assert root.run(*app, "--since", "25s", "--limit-bytes", "2").stdout == "tw"
    # the timestamp is part of what the kubelet sends, so it is counted (and may be cut)
    stamped = root.run(*app, "--timestamps", "--tail", "1", "--limit-bytes", "40").stdout
    assert stamped == "2026-11-30T05:00:03.500000000+01:00 thre"
    assert root.run(*app, "--timestamps", "--tail", "1", "--limit-bytes", "10").stdout == "2026-11-30"
    assert root.run(*app, "-p", "--limit-bytes", "15").stdout == "previous-one\npr"
    # one request per container, each with the limit; kubectl's prefix is not counted
    every = root.run("logs", "web", "--all-containers", "--prefix", "--limit-bytes", "5").stdout
    assert every == "[pod/web/app] one\n[pod/web/app] t[pod/web/side] side-"


def test_bad_limit_bytes_is_refused(root: Root) -> None:  # noqa: F811 - the fixture
    root.write(pod_state("web"))
    root.log("web", "app", 0, [f"{stamp(30)} stdout F one"])
    refused = root.run("logs", "web", "--limit-bytes", "-3")
    assert refused.returncode == 2 and refused.stdout == ""
    assert refused.stderr == "error: limitBytes: Invalid value: -3: must be greater than 0\n"


def test_a_follow_ends_at_the_limit(root: Root) -> None:  # noqa: F811 - the fixture
    root.hold("web")
    root.write(pod_state("web", ended=False))
    log = root.path / "log" / "pods" / "default_web_uid-web" / "app" / "0.log"
    root.log("web", "app", 0, [f"{stamp(3)} stdout F {i}" for i in range(3)])
    proc = root.start("logs", "web", "-f", "--tail", "1", "--limit-bytes", "6")
    assert proc.until(1) == ["2"]
    with open(log, "a") as f:
        f.write(f"{stamp(0)} stdout F first-new\n")
    code, err = proc.finish()  # it ends by itself at the limit, though the container runs on
    assert code == 0, err
    assert proc.lines == ["2", "firs"]
