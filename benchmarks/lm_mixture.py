"""The model + n-gram mixture on kept runs: each run's weights chosen on its validation text
(``fit_mixture``, as ``lstmkit train`` does at its end), then the run scored by ``lstmkit
evaluate``'s ``evaluate`` on its held-out text: the model, its 5-gram, the two mixed.

    python benchmarks/lm_mixture.py --out results.json NAME=RUN[:HELDOUT] ...

HELDOUT: a file, folder or corpus:NAME:heldout; none: the run's own validation split.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from lstmkit.cli.env import environment
from lstmkit.tasks.runs import load_run
from lstmkit.tasks.text.run import evaluate, fit_mixture


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("runs", nargs="+", metavar="NAME=RUN[:HELDOUT]")
    p.add_argument("--out", required=True)
    a = p.parse_args()
    res = {"machine": environment(), "runs": {}}
    for spec in a.runs:
        name, _, rest = spec.partition("=")
        run_dir, _, held = rest.partition(":")
        model, info = load_run(run_dir)
        fit = fit_mixture(model, info)
        r = evaluate(model, info, held or None)
        key = "bits_per_char" if "bits_per_char" in r else "perplexity"
        res["runs"][name] = {"run": run_dir, "text": r["text"], "tokens": r["tokens"], "model": r[key],
                             "ngram": r["ngram"][key], "ngram_fit_on": r["ngram"]["fit_on"],
                             "mixture": r["mixture"][key], "weights": fit["weights"], "validation": fit["bits"]}
        print(f"{name}: model {r[key]:.4f}, {r['ngram']['order']}-gram {r['ngram'][key]:.4f}, "
              f"mixed {r['mixture'][key]:.4f}", flush=True)
        Path(a.out).write_text(json.dumps(res, indent=1) + "\n")


if __name__ == "__main__":
    main()
