"""`make bench`'s last word: every benchmark's rows side by side, and its exit code.

Each benchmark keeps the rows it printed in bench-results/<name>.json (print_rows in
bench_pipeline.py); this prints them as one table, in the order given, and exits 1 when a
target was missed, or when a benchmark named left no rows (it failed before measuring).

    .venv/bin/python tests/benchmarks/summary.py bench_burst bench_page bench_load ...
"""

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def main(names):
    rows, missing = [], []
    for name in names:
        path = ROOT / "bench-results" / f"{name}.json"
        if not path.exists():
            missing.append(name)
            continue
        rows += [[name, *row] for row in json.loads(path.read_text())]
    widths = [max([len(str(r[i])) for r in rows] or [0]) for i in range(5)]
    print("\n== make bench: every measure of this run ==")
    for row in rows:
        print("  ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())
    missed = [row for row in rows if row[4] == "MISSED"]
    for name in missing:
        print(f"{name}: no rows (it stopped before measuring)")
    met = not missed and not missing
    print("every target met" if met else f"{len(missed) + len(missing)} target(s) missed")
    return 0 if met else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
