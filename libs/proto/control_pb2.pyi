from google.protobuf import struct_pb2 as _struct_pb2
from . import resources_pb2 as _resources_pb2
from . import state_pb2 as _state_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Resource(_message.Message):
    __slots__ = ("model", "server", "server_config")
    MODEL_FIELD_NUMBER: _ClassVar[int]
    SERVER_FIELD_NUMBER: _ClassVar[int]
    SERVER_CONFIG_FIELD_NUMBER: _ClassVar[int]
    model: _resources_pb2.Model
    server: _resources_pb2.Server
    server_config: _resources_pb2.ServerConfig
    def __init__(self, model: _Optional[_Union[_resources_pb2.Model, _Mapping]] = ..., server: _Optional[_Union[_resources_pb2.Server, _Mapping]] = ..., server_config: _Optional[_Union[_resources_pb2.ServerConfig, _Mapping]] = ...) -> None: ...

class ApplyRequest(_message.Message):
    __slots__ = ("resource", "manifest")
    RESOURCE_FIELD_NUMBER: _ClassVar[int]
    MANIFEST_FIELD_NUMBER: _ClassVar[int]
    resource: Resource
    manifest: _struct_pb2.Struct
    def __init__(self, resource: _Optional[_Union[Resource, _Mapping]] = ..., manifest: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ...) -> None: ...

class ApplyResponse(_message.Message):
    __slots__ = ("resource", "outcome")
    RESOURCE_FIELD_NUMBER: _ClassVar[int]
    OUTCOME_FIELD_NUMBER: _ClassVar[int]
    resource: Resource
    outcome: str
    def __init__(self, resource: _Optional[_Union[Resource, _Mapping]] = ..., outcome: _Optional[str] = ...) -> None: ...

class ResourceRef(_message.Message):
    __slots__ = ("kind", "name")
    KIND_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    kind: str
    name: str
    def __init__(self, kind: _Optional[str] = ..., name: _Optional[str] = ...) -> None: ...

class ListRequest(_message.Message):
    __slots__ = ("kind",)
    KIND_FIELD_NUMBER: _ClassVar[int]
    kind: str
    def __init__(self, kind: _Optional[str] = ...) -> None: ...

class ListResponse(_message.Message):
    __slots__ = ("resources",)
    RESOURCES_FIELD_NUMBER: _ClassVar[int]
    resources: _containers.RepeatedCompositeFieldContainer[Resource]
    def __init__(self, resources: _Optional[_Iterable[_Union[Resource, _Mapping]]] = ...) -> None: ...

class DeleteResponse(_message.Message):
    __slots__ = ("outcome",)
    OUTCOME_FIELD_NUMBER: _ClassVar[int]
    outcome: str
    def __init__(self, outcome: _Optional[str] = ...) -> None: ...

class StatusResponse(_message.Message):
    __slots__ = ("status",)
    STATUS_FIELD_NUMBER: _ClassVar[int]
    status: _state_pb2.ResourceStatus
    def __init__(self, status: _Optional[_Union[_state_pb2.ResourceStatus, _Mapping]] = ...) -> None: ...

class ListStatusResponse(_message.Message):
    __slots__ = ("statuses",)
    STATUSES_FIELD_NUMBER: _ClassVar[int]
    statuses: _containers.RepeatedCompositeFieldContainer[_state_pb2.ResourceStatus]
    def __init__(self, statuses: _Optional[_Iterable[_Union[_state_pb2.ResourceStatus, _Mapping]]] = ...) -> None: ...

class ServerReplicasResponse(_message.Message):
    __slots__ = ("replicas",)
    REPLICAS_FIELD_NUMBER: _ClassVar[int]
    replicas: _containers.RepeatedCompositeFieldContainer[_state_pb2.ReplicaInfo]
    def __init__(self, replicas: _Optional[_Iterable[_Union[_state_pb2.ReplicaInfo, _Mapping]]] = ...) -> None: ...

class WatchRequest(_message.Message):
    __slots__ = ("kind", "name")
    KIND_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    kind: str
    name: str
    def __init__(self, kind: _Optional[str] = ..., name: _Optional[str] = ...) -> None: ...

class WatchEvent(_message.Message):
    __slots__ = ("type", "status")
    TYPE_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    type: str
    status: _state_pb2.ResourceStatus
    def __init__(self, type: _Optional[str] = ..., status: _Optional[_Union[_state_pb2.ResourceStatus, _Mapping]] = ...) -> None: ...
