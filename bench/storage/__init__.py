"""Storage benchmark: S3 download throughput of the storage service vs boto3, and cache hits."""
