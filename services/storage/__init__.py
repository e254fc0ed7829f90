"""The storage service: turns a model's storageUri into a local path the agents can copy from."""
