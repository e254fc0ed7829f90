"""Tiny gradient-boosted iris models saved the way MLServer's runtimes and KServe's docs expect.

No model-settings.json: the agent derives it from the model's requirement (xgboost, lightgbm),
and MLServer finds the file by its well-known name in the folder (xgboost: model.bst,
model.json or model.ubj; lightgbm: model.bst).
"""

from __future__ import annotations

import warnings
from pathlib import Path

import lightgbm as lgb
import numpy as np
import xgboost as xgb
from sklearn.datasets import load_iris

from tests.helpers.iris import IrisModel


def build_xgboost_model(folder: Path, file_name: str = "model.json") -> IrisModel:
    """An XGBClassifier saved as ``folder/file_name``; ``expected`` holds its predicted classes."""
    X, y = load_iris(return_X_y=True)
    clf = xgb.XGBClassifier(n_estimators=5, max_depth=2).fit(X, y)
    folder.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings():
        # model.bst (KServe's docs) is no format name xgboost knows: it notes it writes UBJSON.
        warnings.filterwarnings("ignore", message=".*UBJSON.*", category=UserWarning)
        clf.save_model(folder / file_name)
    return IrisModel(path=folder, X=X, expected=clf.predict(X))


def build_lightgbm_model(folder: Path) -> IrisModel:
    """A multiclass LightGBM booster saved as ``folder/model.bst``; ``expected`` holds its class
    probabilities (what MLServer's runtime answers: ``Booster.predict``)."""
    X, y = load_iris(return_X_y=True)
    params = {"objective": "multiclass", "num_class": 3, "num_leaves": 4, "verbose": -1}
    booster = lgb.train(params, lgb.Dataset(X, y), num_boost_round=5)
    folder.mkdir(parents=True, exist_ok=True)
    booster.save_model(str(folder / "model.bst"))
    return IrisModel(path=folder, X=X, expected=np.asarray(booster.predict(X)))
