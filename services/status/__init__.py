"""The status service: folds desired and observed state into per-resource status."""
