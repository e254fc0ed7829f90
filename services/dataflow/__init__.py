"""The dataflow service: runs Seldon v2 Pipelines and KServe InferenceGraphs over NATS JetStream."""
