"""Helpers shared by the benchmark scripts: machine description, timing, worker processes, result tables."""

from __future__ import annotations

import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

import pandas as pd
import psutil

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
MiB = 1024**2


def cpu_model() -> str:
    """The CPU's ``model name`` from ``/proc/cpuinfo`` (``platform.processor()`` elsewhere)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def set_threads(threads: int | None) -> int:
    """Set torch's intra-op threads when ``threads`` is given; return the number in use."""
    import torch

    if threads:
        torch.set_num_threads(threads)
    return torch.get_num_threads()


def machine(threads: int | None = None) -> dict:
    """Where the figures come from: cores, CPU, memory, torch version and threads, load when starting."""
    import torch

    return {
        "nproc": os.cpu_count(),
        "cpu": cpu_model(),
        "memory_gib": round(psutil.virtual_memory().total / 1024**3, 1),
        "torch": torch.__version__,
        "torch_threads": threads or torch.get_num_threads(),
        "load_avg_1min_at_start": round(os.getloadavg()[0], 2),
        "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY", "unset"),
        "python": platform.python_version(),
    }


def machine_line(info: dict) -> str:
    return (
        f"Machine: {info['nproc']} cores ({info['cpu']}), {info['memory_gib']} GiB, torch {info['torch']} with "
        f"{info['torch_threads']} thread(s), OMP_WAIT_POLICY {info['omp_wait_policy']}; 1-min load average "
        f"{info['load_avg_1min_at_start']} at start (above {info['nproc']}: other jobs competed for the cores)."
    )


def timed(fn, repeats: int, warmup: int = 0) -> list[float]:
    """Wall-clock seconds of ``repeats`` calls of ``fn()`` after ``warmup`` untimed calls."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return times


def median(values) -> float:
    return float(statistics.median(values)) if len(values) else float("nan")


def rss_mib() -> float:
    """Current resident set size of this process, MiB."""
    return psutil.Process().memory_info().rss / MiB


def max_rss_mib() -> float:
    """High-water resident set size of this process so far (``ru_maxrss``), MiB."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / MiB


def run_worker(script: str | Path, config: dict, timeout: float | None = None) -> dict:
    """Run ``script --worker CONFIG_JSON`` in a fresh interpreter; return the JSON it prints last.

    A fresh process per configuration keeps peak-memory figures separate. Failures come back as
    ``{"error": ...}`` instead of raising, so one bad configuration does not stop a table.
    """
    cmd = [sys.executable, str(script), "--worker", json.dumps(config)]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=ROOT)
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {timeout:.0f} s"}
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    if proc.returncode != 0 or not lines:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
        return {"error": f"exit {proc.returncode}: " + " | ".join(tail)}
    return json.loads(lines[-1])


def worker_reply(result: dict) -> None:
    """Print a worker's result as the last line of its stdout (read by :func:`run_worker`)."""
    print(json.dumps(result), flush=True)


class TreeMemoryPoller:
    """Poll the summed RSS of a process and all its descendants in a background thread.

    ``peak_mib`` is the largest sum seen, ``peak_by_name`` the largest RSS seen per process
    command (e.g. the Jupyter kernel). Peaks shorter than ``interval`` seconds can be missed.
    """

    def __init__(self, pid: int, interval: float = 0.05):
        self.pid, self.interval = pid, interval
        self.peak_mib = 0.0
        self.peak_child_mib = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _sample(self) -> None:
        try:
            root = psutil.Process(self.pid)
            procs = [root, *root.children(recursive=True)]
        except psutil.Error:
            return
        total, child_max = 0.0, 0.0
        for proc in procs:
            try:
                rss = proc.memory_info().rss / MiB
            except psutil.Error:
                continue
            total += rss
            if proc.pid != self.pid:
                child_max = max(child_max, rss)
        self.peak_mib = max(self.peak_mib, total)
        self.peak_child_mib = max(self.peak_child_mib, child_max)

    def _run(self) -> None:
        while not self._stop.is_set():
            self._sample()
            self._stop.wait(self.interval)

    def __enter__(self) -> TreeMemoryPoller:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()


def save_table(table: pd.DataFrame, name: str, info: dict, title: str, notes: list[str] = ()) -> Path:
    """Print ``table`` under a title, the machine line and notes; write ``results/<name>.csv`` (+ ``.json``)."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.csv"
    table.to_csv(path, index=False)
    meta = {"title": title, "machine": info, "notes": list(notes), "written": time.strftime("%Y-%m-%d %H:%M:%S")}
    (RESULTS / f"{name}.json").write_text(json.dumps(meta, indent=2) + "\n")
    with pd.option_context("display.width", 250, "display.max_columns", 50, "display.max_colwidth", 60):
        print(f"\n{title}\n{'=' * len(title)}\n{machine_line(info)}\n")
        print(table.to_string(index=False))
    for note in notes:
        print(f"- {note}")
    print(f"\nWritten to {path.relative_to(ROOT)}", flush=True)
    return path
