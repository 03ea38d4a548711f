"""Largest errors of lstmkit against torch.nn over the parity grid of tests/test_parity_torch.py.

    python benchmarks/parity_grid.py [--json PATH]

Runs every grid point (family x layers x direction x batch_first x proj_size x initial
state x plain/packed/lengths/unbatched x float32/float64) and prints, per family and
dtype, the largest |difference| over outputs, final states and every gradient.
"""
import argparse
import json
import sys
from collections import defaultdict
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests import helpers  # noqa: E402
from tests import test_parity_torch as grid  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", metavar="PATH")
    args = ap.parse_args()
    worst = defaultdict(float)
    captured = {}
    real = helpers.assert_close_all

    def spy(a, b, tol):
        d = helpers.max_diff(a, b)
        captured["d"] = max(d.values())
        return real(a, b, tol)

    grid.assert_close_all = spy
    n = 0
    for dtype in (torch.float32, torch.float64):
        for point in grid.GRID:
            grid.test_parity_with_torch(*point, dtype)
            key = f"{point[0]} {str(dtype).split('.')[-1]}"
            worst[key] = max(worst[key], captured["d"])
            n += 1
    print(f"{n} grid points, all within tolerance (float32 1e-5, float64 1e-10)")
    for k, v in sorted(worst.items()):
        print(f"  {k:<16} largest |diff| {v:.2e}")
    if args.json:
        Path(args.json).write_text(json.dumps({"points": n, "largest": worst}, indent=2))


if __name__ == "__main__":
    main()
