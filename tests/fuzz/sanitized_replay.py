"""The fuzz harness on a sanitized build: the corpus, then mutants of it.

    tests/fuzz/sanitized.sh DIR PYTHON PYTHON tests/fuzz/sanitized_replay.py RUNS CORPUS...

Run by `make fuzz` after the coverage-guided run (atheris_core.py), on the extension
built with AddressSanitizer and UndefinedBehaviorSanitizer. libFuzzer cannot steer there
(the gcc sanitizer runtime takes over its coverage hooks), so this runs every input of
the corpus that run grew, then RUNS inputs made from them by the usual mutations (a
byte changed, bytes inserted, cut, repeated, or two inputs spliced), seeded, so a
failure can be made again. Any difference between the compiled loops and their twins
raises; a sanitizer report aborts the process.
"""

from __future__ import annotations

import random
import sys
import time
from pathlib import Path

from shardbroker import core
from tests.fuzz.atheris_core import one_input

SEED = 13


def mutate(rng: random.Random, data: bytes, other: bytes) -> bytes:
    out = bytearray(data)
    for _ in range(rng.randint(1, 4)):
        at = rng.randint(0, len(out))
        kind = rng.randint(0, 4)
        if kind == 0 and at < len(out):
            out[at] = rng.randint(0, 255)
        elif kind == 1:
            out[at:at] = bytes(rng.randint(0, 255) for _ in range(rng.randint(1, 8)))
        elif kind == 2:
            del out[at : at + rng.randint(1, 16)]
        elif kind == 3:
            out[at:at] = out[at : at + rng.randint(1, 64)]
        else:
            cut = rng.randint(0, len(other))
            out[at:] = other[cut:]
    return bytes(out)


def main() -> None:
    if core.IMPLEMENTATION != "compiled":
        sys.exit("the compiled core is not built (make install builds it)")
    runs = int(sys.argv[1])
    corpus = [p.read_bytes() for d in sys.argv[2:] for p in sorted(Path(d).iterdir())]
    if not corpus:
        sys.exit("no corpus to start from")
    start = time.monotonic()
    for data in corpus:
        one_input(data)
    rng = random.Random(SEED)
    for i in range(runs):
        data = mutate(rng, rng.choice(corpus), rng.choice(corpus))
        try:
            one_input(data)
        except AssertionError:
            print(f"input {i} (seed {SEED}): {data!r}", file=sys.stderr)
            raise
        if i and not i % 100_000:
            print(f"sanitized: {i} mutants, {time.monotonic() - start:.0f} s", flush=True)
    took = time.monotonic() - start
    print(f"sanitized: {len(corpus)} corpus inputs and {runs} mutants in {took:.0f} s, clean")


if __name__ == "__main__":
    main()
