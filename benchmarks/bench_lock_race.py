"""The cell lock under a race: several processes try to take the same locks at the same moment, once on
fresh locks and once over locks left by a dead process (the state after kill -9). A correct lock has
exactly one winner per lock; the figure is the number of locks with two or more.

    python benchmarks/bench_lock_race.py [--racers 6] [--rounds 500]

Each racer is a fresh interpreter that waits for a common start time, then tries every lock in turn and
holds what it wins until it has tried them all (tests/test_cell_lock.py runs the same race, smaller).
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from test_cell_lock import race  # noqa: E402 - the race the test runs, at a larger size


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--racers", type=int, default=6)
    parser.add_argument("--rounds", type=int, default=500)
    args = parser.parse_args()
    results = {"date": time.strftime("%Y-%m-%d"), "machine": platform.processor() or platform.machine(),
               "racers": args.racers, "rounds": args.rounds}
    for over_dead in (False, True):
        with tempfile.TemporaryDirectory() as folder:
            started = time.perf_counter()
            winners = race(Path(folder), args.racers, args.rounds, over_dead)
            seconds = time.perf_counter() - started
        case = "over a dead holder's lock" if over_dead else "fresh locks"
        results[case] = {"acquisitions": args.racers * args.rounds, "double_holders": sum(w > 1 for w in winners),
                         "no_holder": winners.count(0), "seconds": round(seconds, 1)}
        print(f"{case}: {args.racers} racers x {args.rounds} locks = {args.racers * args.rounds:,} acquisitions, "
              f"{sum(w > 1 for w in winners)} locks with two or more holders, {winners.count(0)} with none "
              f"({seconds:.1f} s)")
    print(json.dumps(results))


if __name__ == "__main__":
    main()
