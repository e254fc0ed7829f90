"""The autoscaler: model replicas follow load (KubeAI semantics), server replicas follow the
scheduler's requests (Seldon semantics)."""
