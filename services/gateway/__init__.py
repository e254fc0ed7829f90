"""The gateway: Open Inference Protocol v2 REST and gRPC data plane routing to model replicas."""
