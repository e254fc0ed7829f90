from . import resources_pb2 as _resources_pb2
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ModelReplicaOutcome(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    OUTCOME_UNKNOWN: _ClassVar[ModelReplicaOutcome]
    OUTCOME_LOADING: _ClassVar[ModelReplicaOutcome]
    OUTCOME_LOADED: _ClassVar[ModelReplicaOutcome]
    OUTCOME_LOAD_FAILED: _ClassVar[ModelReplicaOutcome]
    OUTCOME_UNLOADED: _ClassVar[ModelReplicaOutcome]
    OUTCOME_UNLOAD_FAILED: _ClassVar[ModelReplicaOutcome]
OUTCOME_UNKNOWN: ModelReplicaOutcome
OUTCOME_LOADING: ModelReplicaOutcome
OUTCOME_LOADED: ModelReplicaOutcome
OUTCOME_LOAD_FAILED: ModelReplicaOutcome
OUTCOME_UNLOADED: ModelReplicaOutcome
OUTCOME_UNLOAD_FAILED: ModelReplicaOutcome

class LoadModelCommand(_message.Message):
    __slots__ = ("model", "version", "spec")
    MODEL_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    SPEC_FIELD_NUMBER: _ClassVar[int]
    model: str
    version: int
    spec: _resources_pb2.ModelSpec
    def __init__(self, model: _Optional[str] = ..., version: _Optional[int] = ..., spec: _Optional[_Union[_resources_pb2.ModelSpec, _Mapping]] = ...) -> None: ...

class UnloadModelCommand(_message.Message):
    __slots__ = ("model", "version")
    MODEL_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    model: str
    version: int
    def __init__(self, model: _Optional[str] = ..., version: _Optional[int] = ...) -> None: ...

class CommandReply(_message.Message):
    __slots__ = ("accepted", "reason")
    ACCEPTED_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    accepted: bool
    reason: str
    def __init__(self, accepted: _Optional[bool] = ..., reason: _Optional[str] = ...) -> None: ...

class ModelReplicaReport(_message.Message):
    __slots__ = ("server", "index", "incarnation", "model", "version", "outcome", "message")
    SERVER_FIELD_NUMBER: _ClassVar[int]
    INDEX_FIELD_NUMBER: _ClassVar[int]
    INCARNATION_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    OUTCOME_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    server: str
    index: int
    incarnation: str
    model: str
    version: int
    outcome: ModelReplicaOutcome
    message: str
    def __init__(self, server: _Optional[str] = ..., index: _Optional[int] = ..., incarnation: _Optional[str] = ..., model: _Optional[str] = ..., version: _Optional[int] = ..., outcome: _Optional[_Union[ModelReplicaOutcome, str]] = ..., message: _Optional[str] = ...) -> None: ...

class Heartbeat(_message.Message):
    __slots__ = ("server", "index", "incarnation")
    SERVER_FIELD_NUMBER: _ClassVar[int]
    INDEX_FIELD_NUMBER: _ClassVar[int]
    INCARNATION_FIELD_NUMBER: _ClassVar[int]
    server: str
    index: int
    incarnation: str
    def __init__(self, server: _Optional[str] = ..., index: _Optional[int] = ..., incarnation: _Optional[str] = ...) -> None: ...

class FetchRequest(_message.Message):
    __slots__ = ("uri", "artifact_version", "secret_name")
    URI_FIELD_NUMBER: _ClassVar[int]
    ARTIFACT_VERSION_FIELD_NUMBER: _ClassVar[int]
    SECRET_NAME_FIELD_NUMBER: _ClassVar[int]
    uri: str
    artifact_version: str
    secret_name: str
    def __init__(self, uri: _Optional[str] = ..., artifact_version: _Optional[str] = ..., secret_name: _Optional[str] = ...) -> None: ...

class FetchReply(_message.Message):
    __slots__ = ("path", "error", "error_kind")
    PATH_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    ERROR_KIND_FIELD_NUMBER: _ClassVar[int]
    path: str
    error: str
    error_kind: str
    def __init__(self, path: _Optional[str] = ..., error: _Optional[str] = ..., error_kind: _Optional[str] = ...) -> None: ...
