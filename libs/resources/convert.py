"""Domain resources <-> protobuf (the KV and gRPC wire form). To/from pairs, nothing else."""

from __future__ import annotations

from modelplane.libs.errors import InvalidError
from modelplane.libs.resources.types import (
    BALANCING_STRATEGIES,
    EXPERIMENT_RESOURCE_TYPES,
    Experiment,
    ExperimentCandidate,
    ExperimentMirror,
    ExperimentSpec,
    LoadBalancing,
    Meta,
    Model,
    ModelSpec,
    PrefixHashOptions,
    Resource,
    Server,
    ServerConfig,
    ServerConfigSpec,
    ServerSpec,
)
from modelplane.proto import control_pb2 as cpb
from modelplane.proto import resources_pb2 as pb


def meta_to_pb(meta: Meta) -> pb.ObjectMeta:
    return pb.ObjectMeta(
        name=meta.name,
        generation=meta.generation,
        labels=meta.labels,
        annotations=meta.annotations,
        created_at=meta.created_at,
        imported_from=meta.imported_from,
    )


def meta_from_pb(msg: pb.ObjectMeta) -> Meta:
    return Meta(
        name=msg.name,
        generation=msg.generation,
        labels=dict(msg.labels),
        annotations=dict(msg.annotations),
        created_at=msg.created_at,
        imported_from=msg.imported_from,
    )


def load_balancing_to_pb(balancing: LoadBalancing) -> pb.LoadBalancing:
    options = balancing.prefix_hash
    return pb.LoadBalancing(
        strategy=balancing.strategy,
        prefix_hash=pb.PrefixHashOptions(
            mean_load_factor_percent=options.mean_load_factor_percent,
            replication=options.replication,
            prefix_char_length=options.prefix_char_length,
        ),
    )


def load_balancing_from_pb(msg: pb.LoadBalancing) -> LoadBalancing:
    """Unset fields (zero values, records written before the field existed) take the defaults."""
    defaults = PrefixHashOptions()
    options = msg.prefix_hash
    return LoadBalancing(
        strategy=msg.strategy or BALANCING_STRATEGIES[0],
        prefix_hash=PrefixHashOptions(
            mean_load_factor_percent=options.mean_load_factor_percent or defaults.mean_load_factor_percent,
            replication=options.replication or defaults.replication,
            prefix_char_length=options.prefix_char_length or defaults.prefix_char_length,
        ),
    )


def model_spec_to_pb(spec: ModelSpec) -> pb.ModelSpec:
    return pb.ModelSpec(
        storage_uri=spec.storage_uri,
        artifact_version=spec.artifact_version,
        requirements=list(spec.requirements),
        memory_bytes=spec.memory_bytes,
        replicas=spec.replicas,
        min_replicas=spec.min_replicas,
        max_replicas=spec.max_replicas,
        server=spec.server,
        parameters=spec.parameters,
        secret_name=spec.secret_name,
        explainer_for=spec.explainer_for,
        parallel_workers=spec.parallel_workers,
        load_balancing=load_balancing_to_pb(spec.load_balancing),
        timeout_seconds=spec.timeout_seconds,
    )


def model_spec_from_pb(msg: pb.ModelSpec) -> ModelSpec:
    return ModelSpec(
        storage_uri=msg.storage_uri,
        artifact_version=msg.artifact_version,
        requirements=tuple(msg.requirements),
        memory_bytes=msg.memory_bytes,
        replicas=msg.replicas,
        min_replicas=msg.min_replicas,
        max_replicas=msg.max_replicas,
        server=msg.server,
        parameters=dict(msg.parameters),
        secret_name=msg.secret_name,
        explainer_for=msg.explainer_for,
        parallel_workers=msg.parallel_workers,
        load_balancing=load_balancing_from_pb(msg.load_balancing),
        timeout_seconds=msg.timeout_seconds,
    )


def model_to_pb(model: Model) -> pb.Model:
    return pb.Model(meta=meta_to_pb(model.meta), spec=model_spec_to_pb(model.spec))


def model_from_pb(msg: pb.Model) -> Model:
    return Model(meta=meta_from_pb(msg.meta), spec=model_spec_from_pb(msg.spec))


def server_spec_to_pb(spec: ServerSpec) -> pb.ServerSpec:
    return pb.ServerSpec(
        server_config=spec.server_config,
        capabilities=list(spec.capabilities),
        extra_capabilities=list(spec.extra_capabilities),
        replicas=spec.replicas,
        min_replicas=spec.min_replicas,
        max_replicas=spec.max_replicas,
        disable_auto_update=spec.disable_auto_update,
        memory_bytes=spec.memory_bytes,
        env=spec.env,
    )


def server_spec_from_pb(msg: pb.ServerSpec) -> ServerSpec:
    return ServerSpec(
        server_config=msg.server_config,
        capabilities=tuple(msg.capabilities),
        extra_capabilities=tuple(msg.extra_capabilities),
        replicas=msg.replicas,
        min_replicas=msg.min_replicas,
        max_replicas=msg.max_replicas,
        disable_auto_update=msg.disable_auto_update,
        memory_bytes=msg.memory_bytes,
        env=dict(msg.env),
    )


def server_to_pb(server: Server) -> pb.Server:
    return pb.Server(meta=meta_to_pb(server.meta), spec=server_spec_to_pb(server.spec))


def server_from_pb(msg: pb.Server) -> Server:
    return Server(meta=meta_from_pb(msg.meta), spec=server_spec_from_pb(msg.spec))


def server_config_spec_to_pb(spec: ServerConfigSpec) -> pb.ServerConfigSpec:
    return pb.ServerConfigSpec(
        runtime=spec.runtime,
        capabilities=list(spec.capabilities),
        memory_bytes=spec.memory_bytes,
        overcommit_percent=spec.overcommit_percent,
        env=spec.env,
        args=list(spec.args),
        command=list(spec.command),
        parallel_workers=spec.parallel_workers,
    )


def server_config_spec_from_pb(msg: pb.ServerConfigSpec) -> ServerConfigSpec:
    return ServerConfigSpec(
        runtime=msg.runtime or "mlserver",
        capabilities=tuple(msg.capabilities),
        memory_bytes=msg.memory_bytes,
        overcommit_percent=msg.overcommit_percent,
        env=dict(msg.env),
        args=tuple(msg.args),
        command=tuple(msg.command),
        parallel_workers=msg.parallel_workers,
    )


def server_config_to_pb(config: ServerConfig) -> pb.ServerConfig:
    return pb.ServerConfig(meta=meta_to_pb(config.meta), spec=server_config_spec_to_pb(config.spec))


def server_config_from_pb(msg: pb.ServerConfig) -> ServerConfig:
    return ServerConfig(meta=meta_from_pb(msg.meta), spec=server_config_spec_from_pb(msg.spec))


def experiment_spec_to_pb(spec: ExperimentSpec) -> pb.ExperimentSpec:
    msg = pb.ExperimentSpec(
        default=spec.default,
        candidates=[pb.ExperimentCandidate(name=c.name, weight=c.weight) for c in spec.candidates],
        resource_type=spec.resource_type,
    )
    if spec.mirror is not None:
        msg.mirror.CopyFrom(pb.ExperimentMirror(name=spec.mirror.name, percent=spec.mirror.percent))
    return msg


def experiment_spec_from_pb(msg: pb.ExperimentSpec) -> ExperimentSpec:
    return ExperimentSpec(
        candidates=tuple(ExperimentCandidate(name=c.name, weight=c.weight) for c in msg.candidates),
        default=msg.default,
        # Presence, not content: a mirror with percent 0 is still a mirror.
        mirror=(
            ExperimentMirror(name=msg.mirror.name, percent=msg.mirror.percent)
            if msg.HasField("mirror")
            else None
        ),
        resource_type=msg.resource_type or EXPERIMENT_RESOURCE_TYPES[0],
    )


def experiment_to_pb(experiment: Experiment) -> pb.Experiment:
    return pb.Experiment(meta=meta_to_pb(experiment.meta), spec=experiment_spec_to_pb(experiment.spec))


def experiment_from_pb(msg: pb.Experiment) -> Experiment:
    return Experiment(meta=meta_from_pb(msg.meta), spec=experiment_spec_from_pb(msg.spec))


def resource_to_pb(resource: Resource) -> cpb.Resource:
    if isinstance(resource, Model):
        return cpb.Resource(model=model_to_pb(resource))
    if isinstance(resource, Server):
        return cpb.Resource(server=server_to_pb(resource))
    if isinstance(resource, Experiment):
        return cpb.Resource(experiment=experiment_to_pb(resource))
    return cpb.Resource(server_config=server_config_to_pb(resource))


def resource_from_pb(msg: cpb.Resource) -> Resource:
    which = msg.WhichOneof("kind")
    if which == "model":
        return model_from_pb(msg.model)
    if which == "server":
        return server_from_pb(msg.server)
    if which == "server_config":
        return server_config_from_pb(msg.server_config)
    if which == "experiment":
        return experiment_from_pb(msg.experiment)
    raise InvalidError("a resource must be one of model, server, server_config, experiment", field="resource")
