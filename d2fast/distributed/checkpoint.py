"""The run's manifest in ``workdir``: which stages are finished, and for which inputs.

``manifest.json`` (written atomically) records a fingerprint of the inputs and parameters,
the finished stages in order and the last finished selection round. A stage's files are
written (atomically) before the manifest names it, so a run that is killed at any point
resumes from the last stage the manifest names, and never reads a partial file. A
workdir that holds a run of other inputs or parameters is refused, not mixed in.
"""
from __future__ import annotations

import json
import os

from d2fast.io import atomic_write

STAGES = ("partition", "rows", "graph", "forward", "select")


class Manifest:
    """The checkpoint record of one run in ``workdir``."""

    def __init__(self, workdir: str, fingerprint: dict) -> None:
        self.path = os.path.join(workdir, "manifest.json")
        self.record = {"fingerprint": fingerprint, "done": [], "round": -1}
        if os.path.exists(self.path):
            with open(self.path) as f:
                saved = json.load(f)
            if saved.get("fingerprint") != fingerprint:
                raise ValueError(f"workdir {workdir} holds a run of other inputs or "
                                 "parameters; give a new (or empty) workdir")
            self.record = saved
        else:
            self._save()

    def done(self, stage: str) -> bool:
        return stage in self.record["done"]

    def finish(self, stage: str) -> None:
        """Record ``stage`` as finished (its files must be written already)."""
        if stage not in self.record["done"]:
            self.record["done"].append(stage)
            self._save()

    @property
    def round(self) -> int:
        """The last selection round whose state every shard saved (-1: none)."""
        return int(self.record["round"])

    def finish_round(self, r: int) -> None:
        self.record["round"] = int(r)
        self._save()

    def _save(self) -> None:
        with atomic_write(self.path) as tmp:
            with open(tmp, "w") as f:
                json.dump(self.record, f, indent=1)


def round_slot(r: int) -> str:
    """Extension of round r's state files: rounds alternate between two slots, so the
    last finished round's files survive a crash in the middle of the next one."""
    return f".slot{r % 2}.npz"
