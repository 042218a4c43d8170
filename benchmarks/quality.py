"""The paper-style coreset table on your own data: methods x pruning rates x seeds, mean ± std.

    python benchmarks/quality.py EMB.npy SCORES.npy --train-eval my_training.py:train_eval \\
        [--labels LABELS.npy] [--rates 0.3,0.5,0.7,0.9] [--seeds 0,1,2] \\
        [--methods d2,d2 pure,random,hardest,easiest,ccs] [--json rows.json]

EMB (n, d) and SCORES (n,) (higher = harder, e.g. ``Recorder.difficulty("aum")``) are .npy
files; ``--train-eval`` names a function ``train_eval(keep, seed) -> float`` (a module
``pkg.mod:func`` or a file ``path.py:func``) that trains your model on rows ``keep`` and
returns its test accuracy. "d2" is ``d2fast.prune`` with its defaults (hard_prune="auto"),
"d2 pure" the same with ``hard_prune=0``; the baselines are :mod:`d2fast.baselines`. The
table ends with d2 minus random and d2 minus the best baseline per rate. The same from
Python: :func:`d2fast.quality.compare` and :func:`d2fast.quality.format_table`.
"""
from __future__ import annotations

import argparse
import importlib
import importlib.util
import json
import os

import numpy as np

from d2fast import quality


def load_function(spec: str):
    """``module:function`` or ``path/to/file.py:function`` -> the function."""
    where, _, name = spec.rpartition(":")
    if not where or not name:
        raise SystemExit(f"--train-eval {spec!r}: expected module:function or file.py:function")
    if where.endswith(".py"):
        module_spec = importlib.util.spec_from_file_location(
            os.path.splitext(os.path.basename(where))[0], where)
        module = importlib.util.module_from_spec(module_spec)
        module_spec.loader.exec_module(module)
    else:
        module = importlib.import_module(where)
    return getattr(module, name)


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("emb")
    p.add_argument("scores")
    p.add_argument("--train-eval", required=True, metavar="MODULE:FUNCTION")
    p.add_argument("--labels", help="training labels (n,): d2's label check; random / hardest / "
                   "easiest per class")
    p.add_argument("--rates", default="0.3,0.5,0.7,0.9")
    p.add_argument("--seeds", default="0,1,2")
    p.add_argument("--methods", default=",".join(quality.METHODS),
                   help=f"comma-separated, of: {', '.join(quality.SELECTORS)}")
    p.add_argument("--json", help="also write the per-run rows here")
    args = p.parse_args(argv)
    rows = quality.compare(np.load(args.emb, mmap_mode="r"), np.load(args.scores),
                           load_function(args.train_eval),
                           labels=None if args.labels is None else np.load(args.labels),
                           rates=tuple(float(r) for r in args.rates.split(",")),
                           seeds=tuple(int(s) for s in args.seeds.split(",")),
                           methods=args.methods.split(","), progress=True)
    print(quality.format_table(rows))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=1)


if __name__ == "__main__":
    main()
