from . import resources_pb2 as _resources_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ReplicaState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    REPLICA_STATE_UNKNOWN: _ClassVar[ReplicaState]
    LOAD_REQUESTED: _ClassVar[ReplicaState]
    LOADING: _ClassVar[ReplicaState]
    LOADED: _ClassVar[ReplicaState]
    LOAD_FAILED: _ClassVar[ReplicaState]
    UNLOAD_ENVOY_REQUESTED: _ClassVar[ReplicaState]
    UNLOAD_REQUESTED: _ClassVar[ReplicaState]
    UNLOADING: _ClassVar[ReplicaState]
    UNLOADED: _ClassVar[ReplicaState]
    UNLOAD_FAILED: _ClassVar[ReplicaState]
    AVAILABLE: _ClassVar[ReplicaState]
    LOADED_UNAVAILABLE: _ClassVar[ReplicaState]
    DRAINING: _ClassVar[ReplicaState]
REPLICA_STATE_UNKNOWN: ReplicaState
LOAD_REQUESTED: ReplicaState
LOADING: ReplicaState
LOADED: ReplicaState
LOAD_FAILED: ReplicaState
UNLOAD_ENVOY_REQUESTED: ReplicaState
UNLOAD_REQUESTED: ReplicaState
UNLOADING: ReplicaState
UNLOADED: ReplicaState
UNLOAD_FAILED: ReplicaState
AVAILABLE: ReplicaState
LOADED_UNAVAILABLE: ReplicaState
DRAINING: ReplicaState

class ReplicaInfo(_message.Message):
    __slots__ = ("server", "index", "http_endpoint", "grpc_endpoint", "capabilities", "memory_bytes", "overcommit_percent", "incarnation", "loaded_models", "draining", "runtime", "registered_at", "unavailable_reason")
    SERVER_FIELD_NUMBER: _ClassVar[int]
    INDEX_FIELD_NUMBER: _ClassVar[int]
    HTTP_ENDPOINT_FIELD_NUMBER: _ClassVar[int]
    GRPC_ENDPOINT_FIELD_NUMBER: _ClassVar[int]
    CAPABILITIES_FIELD_NUMBER: _ClassVar[int]
    MEMORY_BYTES_FIELD_NUMBER: _ClassVar[int]
    OVERCOMMIT_PERCENT_FIELD_NUMBER: _ClassVar[int]
    INCARNATION_FIELD_NUMBER: _ClassVar[int]
    LOADED_MODELS_FIELD_NUMBER: _ClassVar[int]
    DRAINING_FIELD_NUMBER: _ClassVar[int]
    RUNTIME_FIELD_NUMBER: _ClassVar[int]
    REGISTERED_AT_FIELD_NUMBER: _ClassVar[int]
    UNAVAILABLE_REASON_FIELD_NUMBER: _ClassVar[int]
    server: str
    index: int
    http_endpoint: str
    grpc_endpoint: str
    capabilities: _containers.RepeatedScalarFieldContainer[str]
    memory_bytes: int
    overcommit_percent: int
    incarnation: str
    loaded_models: _containers.RepeatedScalarFieldContainer[str]
    draining: bool
    runtime: str
    registered_at: str
    unavailable_reason: str
    def __init__(self, server: _Optional[str] = ..., index: _Optional[int] = ..., http_endpoint: _Optional[str] = ..., grpc_endpoint: _Optional[str] = ..., capabilities: _Optional[_Iterable[str]] = ..., memory_bytes: _Optional[int] = ..., overcommit_percent: _Optional[int] = ..., incarnation: _Optional[str] = ..., loaded_models: _Optional[_Iterable[str]] = ..., draining: _Optional[bool] = ..., runtime: _Optional[str] = ..., registered_at: _Optional[str] = ..., unavailable_reason: _Optional[str] = ...) -> None: ...

class ReplicaAssignment(_message.Message):
    __slots__ = ("server", "index", "state", "reason", "updated_at")
    SERVER_FIELD_NUMBER: _ClassVar[int]
    INDEX_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    UPDATED_AT_FIELD_NUMBER: _ClassVar[int]
    server: str
    index: int
    state: ReplicaState
    reason: str
    updated_at: str
    def __init__(self, server: _Optional[str] = ..., index: _Optional[int] = ..., state: _Optional[_Union[ReplicaState, str]] = ..., reason: _Optional[str] = ..., updated_at: _Optional[str] = ...) -> None: ...

class ModelVersionPlacement(_message.Message):
    __slots__ = ("version", "spec", "server", "replicas", "reason", "schedule_failed")
    VERSION_FIELD_NUMBER: _ClassVar[int]
    SPEC_FIELD_NUMBER: _ClassVar[int]
    SERVER_FIELD_NUMBER: _ClassVar[int]
    REPLICAS_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    SCHEDULE_FAILED_FIELD_NUMBER: _ClassVar[int]
    version: int
    spec: _resources_pb2.ModelSpec
    server: str
    replicas: _containers.RepeatedCompositeFieldContainer[ReplicaAssignment]
    reason: str
    schedule_failed: bool
    def __init__(self, version: _Optional[int] = ..., spec: _Optional[_Union[_resources_pb2.ModelSpec, _Mapping]] = ..., server: _Optional[str] = ..., replicas: _Optional[_Iterable[_Union[ReplicaAssignment, _Mapping]]] = ..., reason: _Optional[str] = ..., schedule_failed: _Optional[bool] = ...) -> None: ...

class ModelPlacement(_message.Message):
    __slots__ = ("model", "generation", "deleted", "versions")
    MODEL_FIELD_NUMBER: _ClassVar[int]
    GENERATION_FIELD_NUMBER: _ClassVar[int]
    DELETED_FIELD_NUMBER: _ClassVar[int]
    VERSIONS_FIELD_NUMBER: _ClassVar[int]
    model: str
    generation: int
    deleted: bool
    versions: _containers.RepeatedCompositeFieldContainer[ModelVersionPlacement]
    def __init__(self, model: _Optional[str] = ..., generation: _Optional[int] = ..., deleted: _Optional[bool] = ..., versions: _Optional[_Iterable[_Union[ModelVersionPlacement, _Mapping]]] = ...) -> None: ...

class RouteEndpoint(_message.Message):
    __slots__ = ("server", "index", "http_endpoint", "grpc_endpoint")
    SERVER_FIELD_NUMBER: _ClassVar[int]
    INDEX_FIELD_NUMBER: _ClassVar[int]
    HTTP_ENDPOINT_FIELD_NUMBER: _ClassVar[int]
    GRPC_ENDPOINT_FIELD_NUMBER: _ClassVar[int]
    server: str
    index: int
    http_endpoint: str
    grpc_endpoint: str
    def __init__(self, server: _Optional[str] = ..., index: _Optional[int] = ..., http_endpoint: _Optional[str] = ..., grpc_endpoint: _Optional[str] = ...) -> None: ...

class RouteVersion(_message.Message):
    __slots__ = ("version", "server_model_name", "endpoints")
    VERSION_FIELD_NUMBER: _ClassVar[int]
    SERVER_MODEL_NAME_FIELD_NUMBER: _ClassVar[int]
    ENDPOINTS_FIELD_NUMBER: _ClassVar[int]
    version: int
    server_model_name: str
    endpoints: _containers.RepeatedCompositeFieldContainer[RouteEndpoint]
    def __init__(self, version: _Optional[int] = ..., server_model_name: _Optional[str] = ..., endpoints: _Optional[_Iterable[_Union[RouteEndpoint, _Mapping]]] = ...) -> None: ...

class ModelRoute(_message.Message):
    __slots__ = ("model", "versions")
    MODEL_FIELD_NUMBER: _ClassVar[int]
    VERSIONS_FIELD_NUMBER: _ClassVar[int]
    model: str
    versions: _containers.RepeatedCompositeFieldContainer[RouteVersion]
    def __init__(self, model: _Optional[str] = ..., versions: _Optional[_Iterable[_Union[RouteVersion, _Mapping]]] = ...) -> None: ...

class ReplicaStatus(_message.Message):
    __slots__ = ("server", "index", "state", "reason", "updated_at")
    SERVER_FIELD_NUMBER: _ClassVar[int]
    INDEX_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    UPDATED_AT_FIELD_NUMBER: _ClassVar[int]
    server: str
    index: int
    state: str
    reason: str
    updated_at: str
    def __init__(self, server: _Optional[str] = ..., index: _Optional[int] = ..., state: _Optional[str] = ..., reason: _Optional[str] = ..., updated_at: _Optional[str] = ...) -> None: ...

class ResourceStatus(_message.Message):
    __slots__ = ("kind", "name", "state", "reason", "available_replicas", "total_replicas", "version", "generation", "replicas", "last_change", "unavailable_replicas")
    KIND_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    AVAILABLE_REPLICAS_FIELD_NUMBER: _ClassVar[int]
    TOTAL_REPLICAS_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    GENERATION_FIELD_NUMBER: _ClassVar[int]
    REPLICAS_FIELD_NUMBER: _ClassVar[int]
    LAST_CHANGE_FIELD_NUMBER: _ClassVar[int]
    UNAVAILABLE_REPLICAS_FIELD_NUMBER: _ClassVar[int]
    kind: str
    name: str
    state: str
    reason: str
    available_replicas: int
    total_replicas: int
    version: int
    generation: int
    replicas: _containers.RepeatedCompositeFieldContainer[ReplicaStatus]
    last_change: str
    unavailable_replicas: int
    def __init__(self, kind: _Optional[str] = ..., name: _Optional[str] = ..., state: _Optional[str] = ..., reason: _Optional[str] = ..., available_replicas: _Optional[int] = ..., total_replicas: _Optional[int] = ..., version: _Optional[int] = ..., generation: _Optional[int] = ..., replicas: _Optional[_Iterable[_Union[ReplicaStatus, _Mapping]]] = ..., last_change: _Optional[str] = ..., unavailable_replicas: _Optional[int] = ...) -> None: ...
