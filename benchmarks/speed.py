"""The speed table of docs/fused.md: every variant at S, M and L against torch.nn.

    PYTHONPATH=src python benchmarks/speed.py --json benchmarks/speed.json

A thin wrapper over ``lstmkit bench`` (src/lstmkit/benchmark.py) with the full-table defaults.
"""
import sys

from lstmkit.cli import main

if __name__ == "__main__":
    sys.exit(main(["bench", "--sizes", "S,M,L", *sys.argv[1:]]))
