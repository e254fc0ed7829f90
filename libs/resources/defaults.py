"""Built-in ServerConfigs and the default Server that `modelplane up` creates."""

from __future__ import annotations

from modelplane.libs.resources.types import Meta, Server, ServerConfig, ServerConfigSpec, ServerSpec

# Seldon Core v2's default capability lists for its two runtimes.
MLSERVER_CAPABILITIES = (
    "mlserver", "alibi-detect", "alibi-explain", "huggingface", "lightgbm",
    "mlflow", "python", "sklearn", "spark-mlib", "xgboost",
)  # fmt: skip
TRITON_CAPABILITIES = (
    "triton", "dali", "fil", "onnx", "openvino", "python", "pytorch", "tensorflow", "tensorrt",
)  # fmt: skip

DEFAULT_REPLICA_MEMORY = 1 << 30  # 1Gi: what a replica advertises when its config says nothing


def builtin_server_configs() -> list[ServerConfig]:
    return [
        ServerConfig(
            meta=Meta(name="mlserver"),
            spec=ServerConfigSpec(
                runtime="mlserver", capabilities=MLSERVER_CAPABILITIES, memory_bytes=DEFAULT_REPLICA_MEMORY
            ),
        ),
        ServerConfig(
            meta=Meta(name="triton"),
            spec=ServerConfigSpec(
                runtime="triton", capabilities=TRITON_CAPABILITIES, memory_bytes=DEFAULT_REPLICA_MEMORY
            ),
        ),
    ]


def default_server() -> Server:
    return Server(meta=Meta(name="mlserver"), spec=ServerSpec(server_config="mlserver", replicas=1))
