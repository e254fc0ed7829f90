"""Train a small iris classifier and write it as an MLServer model folder next to this file.

    .venv/bin/python examples/iris/train.py

writes examples/iris/model/ (model.joblib + model-settings.json), the folder model.yaml points at.
"""

from __future__ import annotations

import json
from pathlib import Path

import joblib
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression

HERE = Path(__file__).resolve().parent


def main() -> None:
    X, y = load_iris(return_X_y=True)
    clf = LogisticRegression(max_iter=500).fit(X, y)
    out = HERE / "model"
    out.mkdir(exist_ok=True)
    joblib.dump(clf, out / "model.joblib")
    settings = {
        "name": "iris",
        "implementation": "mlserver_sklearn.SKLearnModel",
        "parameters": {"uri": "./model.joblib"},
    }
    (out / "model-settings.json").write_text(json.dumps(settings, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
