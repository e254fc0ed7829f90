from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ObjectMeta(_message.Message):
    __slots__ = ("name", "generation", "labels", "annotations", "created_at", "imported_from")
    class LabelsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    class AnnotationsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    NAME_FIELD_NUMBER: _ClassVar[int]
    GENERATION_FIELD_NUMBER: _ClassVar[int]
    LABELS_FIELD_NUMBER: _ClassVar[int]
    ANNOTATIONS_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    IMPORTED_FROM_FIELD_NUMBER: _ClassVar[int]
    name: str
    generation: int
    labels: _containers.ScalarMap[str, str]
    annotations: _containers.ScalarMap[str, str]
    created_at: str
    imported_from: str
    def __init__(self, name: _Optional[str] = ..., generation: _Optional[int] = ..., labels: _Optional[_Mapping[str, str]] = ..., annotations: _Optional[_Mapping[str, str]] = ..., created_at: _Optional[str] = ..., imported_from: _Optional[str] = ...) -> None: ...

class ModelSpec(_message.Message):
    __slots__ = ("storage_uri", "artifact_version", "requirements", "memory_bytes", "replicas", "min_replicas", "max_replicas", "server", "parameters", "secret_name", "explainer_for", "parallel_workers")
    class ParametersEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    STORAGE_URI_FIELD_NUMBER: _ClassVar[int]
    ARTIFACT_VERSION_FIELD_NUMBER: _ClassVar[int]
    REQUIREMENTS_FIELD_NUMBER: _ClassVar[int]
    MEMORY_BYTES_FIELD_NUMBER: _ClassVar[int]
    REPLICAS_FIELD_NUMBER: _ClassVar[int]
    MIN_REPLICAS_FIELD_NUMBER: _ClassVar[int]
    MAX_REPLICAS_FIELD_NUMBER: _ClassVar[int]
    SERVER_FIELD_NUMBER: _ClassVar[int]
    PARAMETERS_FIELD_NUMBER: _ClassVar[int]
    SECRET_NAME_FIELD_NUMBER: _ClassVar[int]
    EXPLAINER_FOR_FIELD_NUMBER: _ClassVar[int]
    PARALLEL_WORKERS_FIELD_NUMBER: _ClassVar[int]
    storage_uri: str
    artifact_version: str
    requirements: _containers.RepeatedScalarFieldContainer[str]
    memory_bytes: int
    replicas: int
    min_replicas: int
    max_replicas: int
    server: str
    parameters: _containers.ScalarMap[str, str]
    secret_name: str
    explainer_for: str
    parallel_workers: int
    def __init__(self, storage_uri: _Optional[str] = ..., artifact_version: _Optional[str] = ..., requirements: _Optional[_Iterable[str]] = ..., memory_bytes: _Optional[int] = ..., replicas: _Optional[int] = ..., min_replicas: _Optional[int] = ..., max_replicas: _Optional[int] = ..., server: _Optional[str] = ..., parameters: _Optional[_Mapping[str, str]] = ..., secret_name: _Optional[str] = ..., explainer_for: _Optional[str] = ..., parallel_workers: _Optional[int] = ...) -> None: ...

class Model(_message.Message):
    __slots__ = ("meta", "spec")
    META_FIELD_NUMBER: _ClassVar[int]
    SPEC_FIELD_NUMBER: _ClassVar[int]
    meta: ObjectMeta
    spec: ModelSpec
    def __init__(self, meta: _Optional[_Union[ObjectMeta, _Mapping]] = ..., spec: _Optional[_Union[ModelSpec, _Mapping]] = ...) -> None: ...

class ServerConfigSpec(_message.Message):
    __slots__ = ("runtime", "capabilities", "memory_bytes", "overcommit_percent", "env", "args", "command", "parallel_workers")
    class EnvEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    RUNTIME_FIELD_NUMBER: _ClassVar[int]
    CAPABILITIES_FIELD_NUMBER: _ClassVar[int]
    MEMORY_BYTES_FIELD_NUMBER: _ClassVar[int]
    OVERCOMMIT_PERCENT_FIELD_NUMBER: _ClassVar[int]
    ENV_FIELD_NUMBER: _ClassVar[int]
    ARGS_FIELD_NUMBER: _ClassVar[int]
    COMMAND_FIELD_NUMBER: _ClassVar[int]
    PARALLEL_WORKERS_FIELD_NUMBER: _ClassVar[int]
    runtime: str
    capabilities: _containers.RepeatedScalarFieldContainer[str]
    memory_bytes: int
    overcommit_percent: int
    env: _containers.ScalarMap[str, str]
    args: _containers.RepeatedScalarFieldContainer[str]
    command: _containers.RepeatedScalarFieldContainer[str]
    parallel_workers: int
    def __init__(self, runtime: _Optional[str] = ..., capabilities: _Optional[_Iterable[str]] = ..., memory_bytes: _Optional[int] = ..., overcommit_percent: _Optional[int] = ..., env: _Optional[_Mapping[str, str]] = ..., args: _Optional[_Iterable[str]] = ..., command: _Optional[_Iterable[str]] = ..., parallel_workers: _Optional[int] = ...) -> None: ...

class ServerConfig(_message.Message):
    __slots__ = ("meta", "spec")
    META_FIELD_NUMBER: _ClassVar[int]
    SPEC_FIELD_NUMBER: _ClassVar[int]
    meta: ObjectMeta
    spec: ServerConfigSpec
    def __init__(self, meta: _Optional[_Union[ObjectMeta, _Mapping]] = ..., spec: _Optional[_Union[ServerConfigSpec, _Mapping]] = ...) -> None: ...

class ServerSpec(_message.Message):
    __slots__ = ("server_config", "capabilities", "extra_capabilities", "replicas", "min_replicas", "max_replicas", "disable_auto_update", "memory_bytes", "env")
    class EnvEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    SERVER_CONFIG_FIELD_NUMBER: _ClassVar[int]
    CAPABILITIES_FIELD_NUMBER: _ClassVar[int]
    EXTRA_CAPABILITIES_FIELD_NUMBER: _ClassVar[int]
    REPLICAS_FIELD_NUMBER: _ClassVar[int]
    MIN_REPLICAS_FIELD_NUMBER: _ClassVar[int]
    MAX_REPLICAS_FIELD_NUMBER: _ClassVar[int]
    DISABLE_AUTO_UPDATE_FIELD_NUMBER: _ClassVar[int]
    MEMORY_BYTES_FIELD_NUMBER: _ClassVar[int]
    ENV_FIELD_NUMBER: _ClassVar[int]
    server_config: str
    capabilities: _containers.RepeatedScalarFieldContainer[str]
    extra_capabilities: _containers.RepeatedScalarFieldContainer[str]
    replicas: int
    min_replicas: int
    max_replicas: int
    disable_auto_update: bool
    memory_bytes: int
    env: _containers.ScalarMap[str, str]
    def __init__(self, server_config: _Optional[str] = ..., capabilities: _Optional[_Iterable[str]] = ..., extra_capabilities: _Optional[_Iterable[str]] = ..., replicas: _Optional[int] = ..., min_replicas: _Optional[int] = ..., max_replicas: _Optional[int] = ..., disable_auto_update: _Optional[bool] = ..., memory_bytes: _Optional[int] = ..., env: _Optional[_Mapping[str, str]] = ...) -> None: ...

class Server(_message.Message):
    __slots__ = ("meta", "spec")
    META_FIELD_NUMBER: _ClassVar[int]
    SPEC_FIELD_NUMBER: _ClassVar[int]
    meta: ObjectMeta
    spec: ServerSpec
    def __init__(self, meta: _Optional[_Union[ObjectMeta, _Mapping]] = ..., spec: _Optional[_Union[ServerSpec, _Mapping]] = ...) -> None: ...
