"""``python -m bench`` runs every benchmark with its defaults: append, then roundtrip."""

from __future__ import annotations

import sys

from bench import append, roundtrip


def main() -> int:
    """Run both benchmarks; the exit code is the worst of theirs."""
    if len(sys.argv) > 1:
        print("usage: python -m bench  (options: python -m bench.append|bench.roundtrip --help)")
        return 2
    codes = [append.main([])]
    print()
    codes.append(roundtrip.main([]))
    return max(codes)


if __name__ == "__main__":
    sys.exit(main())
