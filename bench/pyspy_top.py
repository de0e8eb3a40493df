"""Top lines of a py-spy raw profile of the stream worker: where the consume thread's time goes.

    py-spy record --pid WORKER --format raw --threads -o profile.txt   # during a replay
    .venv/bin/python bench/pyspy_top.py profile.txt [--match _loop] [--top 25]

py-spy's raw format is one collapsed stack per line with its sample count. Only stacks through
``--match`` (default: the batch engine's consume loop, i.e. the hot path, not start-up) count.
Prints, per function, *self* samples (the leaf frame: where the interpreter was) and *total*
samples (anywhere in the stack), as shares of the matched samples.
"""

from __future__ import annotations

import argparse
import re
from collections import Counter
from pathlib import Path

_FRAME = re.compile(r"^(?P<func>.+?) \((?P<file>[^:()]+)(?::\d+)?\)$")


def _name(frame: str) -> str:
    m = _FRAME.match(frame.strip())
    if not m:
        return frame.strip()
    path = m["file"].split("site-packages/")[-1]
    return f"{m['func']} ({path})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("profile", type=Path)
    parser.add_argument("--match", default="_loop (stream_app/engines/batch.py")
    parser.add_argument("--top", type=int, default=25)
    args = parser.parse_args()
    own: Counter[str] = Counter()
    total: Counter[str] = Counter()
    matched = 0
    for line in args.profile.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if args.match not in stack or not count_text.isdigit():
            continue
        count = int(count_text)
        matched += count
        frames = [_name(f) for f in stack.split(";")[1:]]  # the first is the thread
        if frames:
            own[frames[-1]] += count
        for name in set(frames):
            total[name] += count
    print(f"{matched} samples through {args.match!r}\n")
    print(f"{'self %':>7} {'total %':>8}  function")
    for name, count in own.most_common(args.top):
        print(f"{100 * count / matched:7.1f} {100 * total[name] / matched:8.1f}  {name}")
    print(f"\n{'total %':>8}  function (inclusive, top {args.top})")
    for name, count in total.most_common(args.top):
        print(f"{100 * count / matched:8.1f}  {name}")


if __name__ == "__main__":
    main()
