"""Build a real iris sklearn model folder the way users ship one to MLServer."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import joblib
import numpy as np
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression


@dataclass(frozen=True)
class IrisModel:
    path: Path
    X: np.ndarray
    expected: np.ndarray

    def v2_request(self, rows: int = 3) -> dict[str, object]:
        data = self.X[:rows]
        return {
            "inputs": [
                {
                    "name": "predict",
                    "shape": list(data.shape),
                    "datatype": "FP64",
                    "data": data.flatten().tolist(),
                }
            ]
        }


def build_iris_model(folder: Path, name: str = "iris") -> IrisModel:
    """Train a small classifier and write model.joblib + model-settings.json into ``folder``."""
    X, y = load_iris(return_X_y=True)
    clf = LogisticRegression(max_iter=500).fit(X, y)
    folder.mkdir(parents=True, exist_ok=True)
    joblib.dump(clf, folder / "model.joblib")
    (folder / "model-settings.json").write_text(
        json.dumps(
            {
                "name": name,
                "implementation": "mlserver_sklearn.SKLearnModel",
                "parameters": {"uri": "./model.joblib", "version": "v0.1.0"},
            }
        )
    )
    return IrisModel(path=folder, X=X, expected=clf.predict(X))
