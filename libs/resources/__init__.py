"""Desired-state resources: domain types, manifest parsing/rendering, protobuf conversion."""
