"""The mutation score of each module after ``mutmut run`` (``make mutation``), as the Markdown table of
``tests/README.md``, and the surviving mutants not yet argued equivalent.

mutmut writes one ``mutants/<file>.meta`` (JSON) per mutated file: every mutant's name and the exit code of its
tests (1: killed, −11: the tests crashed, 0: survived, 33: no test calls the function, 36: timeout, …). A crash
and a timeout count as killed (the suite would not pass); a mutant whose function no test calls counts as
survived. Mutants argued equivalent (they cannot change any result) are listed with a one-line reason in
``tests/equivalent_mutants.csv`` and leave the denominator; ``--surviving FILE`` writes the others' changes.
"""

from __future__ import annotations

import argparse
import ast
import difflib
import json
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
KILLED, SURVIVED, NO_TESTS, TIMEOUT = {1, 3, -11}, {0}, {5, 33}, {24, -24, 36, 152, 255}


def outcomes(mutants: Path) -> pd.DataFrame:
    """One row per mutant: ``module``, ``mutant`` (mutmut's name), ``outcome``."""
    rows = []
    for meta in sorted(mutants.rglob("*.py.meta")):
        module = meta.name.removesuffix(".py.meta")
        for name, code in json.loads(meta.read_text())["exit_code_by_key"].items():
            outcome = (
                "killed" if code in KILLED else "timeout" if code in TIMEOUT else "survived" if code in SURVIVED
                else "no tests" if code in NO_TESTS else "not run" if code is None else f"exit {code}"
            )  # fmt: skip
            rows.append({"module": module, "mutant": name, "outcome": outcome})
    return pd.DataFrame(rows, columns=["module", "mutant", "outcome"])


def changes(mutants: Path, names: list[str]) -> pd.DataFrame:
    """The line(s) each named mutant changes: ``mutant``, ``original``, ``mutated`` (read from mutmut's sources)."""
    rows = []
    for module in sorted({name.split(".")[1] for name in names}):
        lines = (mutants / "bilinear_core" / f"{module}.py").read_text().splitlines()
        tree = ast.parse("\n".join(lines))
        functions = {
            node.name: lines[node.lineno - 1 : node.end_lineno]
            for node in ast.walk(tree)
            if isinstance(node, ast.FunctionDef) and "__mutmut_" in node.name
        }
        for name in (n for n in names if n.split(".")[1] == module):
            mutant = name.rsplit(".", 1)[1]
            base = mutant.rsplit("__mutmut_", 1)[0]
            before = [line.replace(base + "__mutmut_orig", "F") for line in functions[base + "__mutmut_orig"]]
            after = [line.replace(mutant, "F") for line in functions[mutant]]
            diff = list(difflib.ndiff(before, after))
            rows.append(
                {
                    "mutant": name,
                    "original": " | ".join(line[2:].strip() for line in diff if line.startswith("- ")),
                    "mutated": " | ".join(line[2:].strip() for line in diff if line.startswith("+ ")),
                }
            )
    return pd.DataFrame(rows, columns=["mutant", "original", "mutated"])


def classify(table: pd.DataFrame, equivalent: set[str]) -> pd.DataFrame:
    """``table`` with boolean columns ``unrun``, ``equivalent``, ``detected`` (killed, crashed or timed out),
    ``timeout`` and ``open`` (surviving, not argued equivalent). A mutant argued equivalent counts as such unless a
    test failed on it: a timeout is no evidence against it."""
    unrun = table["outcome"] == "not run"
    argued = table["mutant"].isin(equivalent) & (table["outcome"] != "killed") & ~unrun
    detected = table["outcome"].isin(["killed", "timeout"]) & ~argued
    return table.assign(
        unrun=unrun,
        equivalent=argued,
        detected=detected,
        timeout=detected & (table["outcome"] == "timeout"),
        open=~detected & ~unrun & ~argued,
    )


def score_table(table: pd.DataFrame) -> pd.DataFrame:
    """Per module of a :func:`classify`'d table: mutants, not yet run, killed (timeouts included, also counted
    apart), equivalent, surviving; score = killed / (run − equivalent)."""
    grouped = table.groupby("module")
    scores = pd.DataFrame(
        {
            "mutants": grouped.size(),
            "not run": grouped["unrun"].sum(),
            "killed": grouped["detected"].sum(),
            "of which timeouts": grouped["timeout"].sum(),
            "equivalent": grouped["equivalent"].sum(),
            "surviving": grouped["open"].sum(),
        }
    )
    scores.loc["all"] = scores.sum()
    scores["score"] = scores["killed"] / (scores["mutants"] - scores["not run"] - scores["equivalent"])
    return scores


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mutants", type=Path, default=ROOT / "mutants")
    parser.add_argument("--equivalent", type=Path, default=ROOT / "tests" / "equivalent_mutants.csv")
    parser.add_argument("--surviving", type=Path, help="write the surviving mutants' changes to this CSV")
    args = parser.parse_args()
    equivalent = set(pd.read_csv(args.equivalent)["mutant"]) if args.equivalent.is_file() else set()
    table = classify(outcomes(args.mutants), equivalent)
    scores = score_table(table)
    print(
        scores.astype({c: int for c in scores.columns[:-1]})
        .assign(score=scores["score"].map("{:.1%}".format))
        .to_markdown()
    )
    open_ = table[table["open"]]
    print(f"\n{len(open_)} surviving mutants not argued equivalent (mutmut show NAME):")
    for row in open_.itertuples():
        print(f"  {row.mutant}  ({row.outcome})")
    if args.surviving:
        changes(args.mutants, open_["mutant"].tolist()).to_csv(args.surviving, index=False)


if __name__ == "__main__":
    main()
