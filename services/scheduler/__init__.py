"""The scheduler: places model versions on server replicas and owns the replica state machine."""
