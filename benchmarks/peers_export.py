"""Run by benchmarks/peers.py in the peers venv: a bake's exported scikit-learn model (an MLflow
folder holding a skops file) dumped as the joblib file MLServer's scikit-learn runtime and the
BentoML service load.

    python peers_export.py BAKE/build/model OUT/model.joblib

Only the types the bake's MLmodel lists as trusted are trusted, as the bake's own loader does.
"""

from __future__ import annotations

import sys
from pathlib import Path

import joblib
import skops.io
import yaml


def export(model_dir: Path, target: Path) -> None:
    flavor = yaml.safe_load((model_dir / "MLmodel").read_text())["flavors"]["sklearn"]
    trusted = flavor.get("skops_trusted_types") or []
    model = skops.io.load(model_dir / flavor["pickled_model"], trusted=trusted)
    target.parent.mkdir(parents=True, exist_ok=True)
    joblib.dump(model, target)


if __name__ == "__main__":
    export(Path(sys.argv[1]), Path(sys.argv[2]))
