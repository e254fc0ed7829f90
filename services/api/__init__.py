"""The control API: validates, versions and stores desired state; serves status (gRPC + REST)."""
