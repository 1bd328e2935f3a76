"""``python -m bench`` runs every benchmark with its defaults, one after the other.

``python -m bench append wake`` runs only those named. Each prints its table and writes
bench/results/<name>.json (and .png where it draws a chart); the exit code is the worst
of theirs.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Sequence

#: Every workload, in the order ``python -m bench`` runs them.
WORKLOADS = (
    "append",
    "fanout",
    "wake",
    "connections",
    "roundtrip",
    "history",
    "rerun",
    "recovery",
    "crossnode",
    "failover",
    "dashboard",
)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the named workloads (all when none is named)."""
    names = list(sys.argv[1:] if argv is None else argv) or list(WORKLOADS)
    unknown = [name for name in names if name not in WORKLOADS]
    if unknown:
        print(
            f"usage: python -m bench [{' '.join(WORKLOADS)}]  (unknown: {' '.join(unknown)}); "
            "options of one: python -m bench.<name> --help",
            file=sys.stderr,
        )
        return 2
    codes = []
    for index, name in enumerate(names):
        if index:
            print()
        print(f"== {name} ==", flush=True)
        module = importlib.import_module(f"bench.{name}")
        codes.append(int(module.main([])))
    return max(codes)


if __name__ == "__main__":
    sys.exit(main())
