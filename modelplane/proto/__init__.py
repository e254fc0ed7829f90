"""Generated protobuf and gRPC stubs; the contracts are in proto/."""
