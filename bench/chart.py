"""The latency chart of `make bench`: one box plot per timed command, every sample drawn over it.

gnuplot (Debian's gnuplot-nox, installed by `make bench`) draws it: the venv has no plotting library
and the chart is not worth one. The y axis is logarithmic because the commands span three orders of
magnitude (`nsenter -a` ~2 ms, `podman kube play` ~250 ms) and a linear axis would flatten the
fast ones into a line. This module only turns series into gnuplot's input; bench/all.py calls it.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

Series = tuple[str, list[float]]  # (command label, samples in ms)


def data_blocks(series: list[Series]) -> str:
    """gnuplot data: one block per series (blocks are separated by two blank lines, so `index i`
    picks series i), one sample per line."""
    return "\n\n\n".join("\n".join(f"{t:.3f}" for t in times) for _, times in series) + "\n"


def quote(text: str) -> str:
    """A gnuplot double-quoted string (backslash and quote escaped)."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def script(series: list[Series], data: Path, png: Path, title: str) -> str:
    """The gnuplot program that draws `series` (read from `data`) into `png`."""
    n = len(series)
    tics = ", ".join(f"{quote(label)} {i + 1}" for i, (label, _) in enumerate(series))
    width = max(900, 90 * n + 200)
    return "\n".join([
        f"set terminal pngcairo size {width},720 font 'sans,10'",
        f"set output {quote(str(png))}",
        f"set title {quote(title)}",
        "set ylabel 'ms (log scale)'",
        "set logscale y",
        "set grid ytics mytics",
        f"set xrange [0.3:{n + 0.7}]",
        f"set xtics ({tics}) rotate by -35 left",
        "set bmargin 10",
        "set style boxplot nooutliers",
        "set style data boxplot",
        "set boxwidth 0.5",
        "unset key",
        "set style fill solid 0.25 border -1",
        # the box, then each sample with a deterministic jitter (its line number), so runs are visible
        f"plot for [i=0:{n - 1}] {quote(str(data))} index i using (i+1):1 with boxplot lc i+1, \\",
        f"     for [i=0:{n - 1}] {quote(str(data))} index i using "
        "(i+1+0.18*(($0*0.618034)-floor($0*0.618034)-0.5)):1 with points pt 7 ps 0.4 lc i+1",
        "",
    ])


def render(series: list[Series], png: Path, title: str) -> str | None:
    """Draw the chart; None when drawn, else why not (the caller writes that into results.md)."""
    series = [(label, times) for label, times in series if times and min(times) > 0]
    if not series:
        return "no latency series to draw"
    gnuplot = shutil.which("gnuplot")
    if gnuplot is None:
        return "gnuplot not installed (Debian gnuplot-nox)"
    png.parent.mkdir(parents=True, exist_ok=True)
    data = png.with_suffix(".dat")
    data.write_text(data_blocks(series))
    try:
        done = subprocess.run([gnuplot], input=script(series, data, png, title), text=True,
                              capture_output=True, check=False)
    finally:
        data.unlink(missing_ok=True)
    if done.returncode != 0:
        return f"gnuplot exited {done.returncode}: {done.stderr.strip()[-300:]}"
    return None
