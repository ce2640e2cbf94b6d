"""Book: wall time and peak memory of executing each chapter, and of building the whole book.

Chapters are the notebooks listed in ``_toc.yml`` (``.py`` jupytext percent files, ``.ipynb``, or
``.md`` MyST notebooks with a kernelspec). Each is executed in a fresh process by the book's own
executor: myst-nb (``execute_notebooks: force``) reads the ``.py`` with ``jupytext.reads(fmt=
"py:percent")`` and runs ``jupyter_cache.executors.utils.single_nb_execution`` in the notebook's
folder with the timeout and ``allow_errors`` of ``_config.yml``; this script calls the same function.
Peak memory is the largest summed RSS of the process tree (the executing process plus its Jupyter
kernel), polled every 50 ms; the kernel's own peak is listed too.

The whole book is ``jupyter-book build . --all`` (what ``make book`` runs once installed), written
to a temporary ``--path-output`` so that ``_build/`` is left alone. Missing or failing chapters are
reported in the table, not raised.

Run: ``.venv/bin/python benchmarks/book.py`` (``--chapters-only`` skips the whole-book build).
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import _common as common
import pandas as pd
import yaml

ROOT = common.ROOT
SUFFIXES = (".py", ".ipynb", ".md")  # pages that may be notebooks
PAGES = (*SUFFIXES, ".rst")  # every kind of page (reST pages are text)


def _toc_files(node) -> list[str]:
    """Every ``file``/``root`` entry of a ``_toc.yml`` tree, in order."""
    found = []
    if isinstance(node, dict):
        for key in ("root", "file"):
            if isinstance(node.get(key), str):
                found.append(node[key])
        for value in node.values():
            if isinstance(value, (list, dict)):
                found.extend(_toc_files(value))
    elif isinstance(node, list):
        for item in node:
            found.extend(_toc_files(item))
    return found


def _is_myst_notebook(path: Path) -> bool:
    text = path.read_text(encoding="utf-8")
    return text.startswith("---") and "kernelspec" in text.split("---", 2)[1]


def chapters(root: Path = ROOT) -> list[tuple[str, Path | None, str]]:
    """``(toc entry, source file or None, status)`` for every page in ``_toc.yml`` that is or may be a notebook.

    Status is ``"run"`` for a notebook to execute, ``"missing"`` when no source file exists; text
    pages (``.rst``, ``.md`` without a kernelspec) are left out.
    """
    toc = yaml.safe_load((root / "_toc.yml").read_text())
    out = []
    for entry in _toc_files(toc):
        stem = root / entry
        candidates = [stem] if stem.suffix in PAGES else [stem.with_name(stem.name + s) for s in PAGES]
        source = next((p for p in candidates if p.exists()), None)
        if source is None:
            out.append((entry, None, "missing"))
        elif source.suffix in SUFFIXES and (source.suffix != ".md" or _is_myst_notebook(source)):
            out.append((entry, source, "run"))
    return out


def read_notebook(path: Path):
    """The notebook as myst-nb reads it (``nb_custom_formats`` for ``.py``; MyST for ``.md``)."""
    import jupytext
    import nbformat

    if path.suffix == ".py":
        return jupytext.reads(path.read_text(encoding="utf-8"), fmt="py:percent")
    if path.suffix == ".md":
        return jupytext.reads(path.read_text(encoding="utf-8"), fmt="md:myst")
    return nbformat.read(path, as_version=4)


def worker(path: str, source: Path = ROOT) -> dict:
    """Execute one notebook with myst-nb's executor and the book's settings; report success."""
    from jupyter_cache.executors.utils import single_nb_execution

    execute = yaml.safe_load((source / "_config.yml").read_text()).get("execute", {})
    path = Path(path)
    nb = read_notebook(path)
    result = single_nb_execution(
        nb,
        cwd=str(path.parent.resolve()),
        timeout=execute.get("timeout", 30),
        allow_errors=execute.get("allow_errors", False),
        meta_override=True,
    )
    error = None
    if result.err is not None:
        lines = [line for line in (result.exc_string or "").strip().splitlines() if line.strip()]
        error = f"{result.err.__class__.__name__}: {lines[-1] if lines else ''}"[:300]
    n_code = sum(cell.cell_type == "code" for cell in nb.cells)
    return {"ok": result.err is None, "exec_s": result.time, "error": error, "code_cells": n_code}


def measure(cmd: list[str], timeout: float, log: Path | None = None) -> dict:
    """Run ``cmd`` from the repository root, polling the process tree's RSS; wall time, peaks, output."""
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    with common.TreeMemoryPoller(proc.pid) as poller:
        try:
            output, _ = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            output, _ = proc.communicate()
            output += f"\nKilled after {timeout:.0f} s."
    wall = time.perf_counter() - start
    if log is not None:
        log.parent.mkdir(parents=True, exist_ok=True)
        log.write_text(output)
    return {
        "rc": proc.returncode,
        "wall_s": wall,
        "peak_mib": poller.peak_mib,
        "child_peak_mib": poller.peak_child_mib,
        "output": output,
    }


def run_chapter(entry: str, path: Path, repeats: int, timeout: float, source: Path = ROOT) -> dict:
    """Median wall time and largest peaks over ``repeats`` fresh executions of one chapter."""
    runs = []
    for _ in range(repeats):
        run = measure([sys.executable, __file__, "--source", str(source), "--worker", str(path)], timeout)
        replies = [line for line in run["output"].splitlines() if line.startswith("{")]
        reply = json.loads(replies[-1]) if replies else {"ok": False, "error": run["output"].strip()[-300:]}
        runs.append({**run, **reply})
        if not reply["ok"]:
            break
    ok = all(r["ok"] for r in runs)
    return {
        "chapter": entry,
        "status": "ok" if ok else "FAILED: " + str(next(r["error"] for r in runs if not r["ok"])),
        "runs": len(runs),
        "wall_s": common.median([r["wall_s"] for r in runs]),
        "exec_s": common.median([r.get("exec_s", float("nan")) for r in runs]),
        "peak_rss_mib": max(r["peak_mib"] for r in runs),
        "kernel_peak_rss_mib": max(r["child_peak_mib"] for r in runs),
        "code_cells": runs[-1].get("code_cells"),
    }


def run_whole_book(timeout: float, output_dir: str | None, source: Path = ROOT) -> tuple[dict, list[str]]:
    """Time ``jupyter-book build SOURCE --all`` into a temporary output folder (kept with ``output_dir``)."""
    target = Path(output_dir) if output_dir else Path(tempfile.mkdtemp(prefix="bench-book-"))
    jb = str(Path(sys.executable).with_name("jupyter-book"))
    cmd = [jb, "build", str(source), "--all", "--path-output", str(target)]
    log = common.RESULTS / "book_build.log"
    run = measure(cmd, timeout, log)
    if output_dir is None:
        shutil.rmtree(target, ignore_errors=True)
    executed = re.findall(r"(\S+): Executed notebook in ([\d.]+) seconds", run["output"])
    failed = re.findall(r"(\S+): Executing notebook failed", run["output"]) or re.findall(
        r"ExecutionError: (\S+)", run["output"]
    )
    status = "ok" if run["rc"] == 0 else f"FAILED (exit {run['rc']}; see {log.relative_to(ROOT)})"
    if failed:
        status += "; failed: " + ", ".join(sorted(set(failed)))
    row = {
        "chapter": "whole book: jupyter-book build --all",
        "status": status,
        "runs": 1,
        "wall_s": run["wall_s"],
        "exec_s": sum(float(s) for _, s in executed) if executed else float("nan"),
        "peak_rss_mib": run["peak_mib"],
        "kernel_peak_rss_mib": run["child_peak_mib"],
        "code_cells": None,
    }
    notes = [
        f"in the whole build, {Path(name).name} executed in {float(t):.1f} s (myst-nb log)" for name, t in executed
    ]
    return row, notes


def main(argv=None) -> pd.DataFrame:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=1, help="executions per chapter (median time, max peak)")
    parser.add_argument("--chapters-only", action="store_true", help="skip the whole-book build")
    parser.add_argument("--only", default=None, help="comma-separated substrings: run matching chapters only")
    parser.add_argument("--timeout", type=float, default=3600, help="seconds per chapter / whole build")
    parser.add_argument("--book-output", default=None, help="keep the whole build here (default: temp, deleted)")
    parser.add_argument("--source", type=Path, default=ROOT, help="book source folder (default: the repository)")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    source = args.source.resolve()
    if args.worker:
        common.worker_reply(worker(args.worker, source))
        return None

    info = common.machine()
    rows, notes = [], []
    for entry, path, status in chapters(source):
        if args.only and not any(part in entry for part in args.only.split(",")):
            continue
        if status == "missing":
            print(f"{entry}: no source file; skipped.", flush=True)
            rows.append({"chapter": entry, "status": "missing (skipped)", "runs": 0})
            continue
        print(f"{entry}: executing ({args.repeats} run(s)) ...", flush=True)
        rows.append(run_chapter(entry, path, args.repeats, args.timeout, source))
        print(f"  {rows[-1]['status']}: {rows[-1]['wall_s']:.1f} s, {rows[-1]['peak_rss_mib']:.0f} MiB", flush=True)
    ran = [r for r in rows if r["runs"]]
    if ran:
        rows.append(
            {
                "chapter": "all chapters (sum of times, max of peaks)",
                "status": "ok" if all(r["status"] == "ok" for r in ran) else "some failed",
                "runs": None,
                "wall_s": sum(r["wall_s"] for r in ran),
                "exec_s": sum(r["exec_s"] for r in ran),
                "peak_rss_mib": max(r["peak_rss_mib"] for r in ran),
                "kernel_peak_rss_mib": max(r["kernel_peak_rss_mib"] for r in ran),
            }
        )
    if not args.chapters_only:
        print("whole book: jupyter-book build . --all (temporary output folder) ...", flush=True)
        row, build_notes = run_whole_book(args.timeout, args.book_output, source)
        rows.append(row)
        notes += build_notes
    table = pd.DataFrame(rows).astype({"runs": "Int64", "code_cells": "Int64"}, errors="ignore")
    notes = [
        "wall_s: fresh process start to exit (imports, kernel start-up, execution); exec_s: myst-nb's own timer "
        "of the execution alone. Medians over `runs`.",
        "peak_rss_mib: largest summed RSS of the process tree (executor + kernel; for the whole book, Sphinx + "
        "kernel), polled every 50 ms; kernel_peak_rss_mib: the largest single child process (the kernel).",
        "Targets (issue): whole book ≤ 10 minutes and ≤ 6 GB (6,144 MiB).",
        *notes,
    ]
    common.save_table(table, "book", info, "Book: executing each chapter and the whole book", notes)
    return table


if __name__ == "__main__":
    main()
