"""Autoscaler benchmark: scale-up time under load, and cold-start latency at zero replicas split
into control-plane time and MLServer's own load-and-answer time (issue 7)."""
