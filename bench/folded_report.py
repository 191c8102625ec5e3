"""Summarise a py-spy `--format raw` (folded stacks) profile: self and inclusive time.

    bench/.venvs/tools/bin/py-spy record -p PID -d 10 -r 250 -f raw -o prof.folded
    python3 bench/folded_report.py prof.folded [--only run_forever] [--top 30]

`--only SUBSTRING` keeps the stacks that contain a frame matching it (for
example the event loop's thread: `run_forever`, or `_run_once`), so threads
that only wait (a thread pool's idle workers) do not dilute the percentages.
Percentages are of the samples kept.
"""

from __future__ import annotations

import argparse
from collections import Counter


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("path")
    parser.add_argument("--only", default=None)
    parser.add_argument("--top", type=int, default=30)
    args = parser.parse_args()
    total = 0
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    with open(args.path) as f:
        for line in f:
            stack, _, count = line.rstrip("\n").rpartition(" ")
            frames = stack.split(";")
            if args.only and not any(args.only in fr for fr in frames):
                continue
            n = int(count)
            total += n
            own[frames[-1]] += n
            for frame in set(frames):
                inclusive[frame] += n
    print(f"{total} samples")
    print("\nself time")
    for frame, n in own.most_common(args.top):
        print(f"{100 * n / total:5.1f}%  {frame[:140]}")
    print("\ninclusive time")
    for frame, n in inclusive.most_common(args.top * 2):
        print(f"{100 * n / total:5.1f}%  {frame[:140]}")


if __name__ == "__main__":
    main()
