"""Domain resources <-> protobuf (the KV and gRPC wire form). To/from pairs, nothing else."""

from __future__ import annotations

from modelplane.libs.errors import InvalidError
from modelplane.libs.resources.types import (
    BALANCING_STRATEGIES,
    EXPERIMENT_RESOURCE_TYPES,
    GRAPH_DEPENDENCIES,
    GRAPH_ROOT_NODE,
    JOIN_TYPES,
    Autoscaling,
    Experiment,
    ExperimentCandidate,
    ExperimentMirror,
    ExperimentSpec,
    GraphNode,
    GraphStep,
    InferenceGraph,
    InferenceGraphSpec,
    LoadBalancing,
    Meta,
    Model,
    ModelSpec,
    Pipeline,
    PipelineBatch,
    PipelineInput,
    PipelineOutput,
    PipelineSpec,
    PipelineStep,
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
        owner=meta.owner,
        namespace=meta.namespace,
    )


def meta_from_pb(msg: pb.ObjectMeta) -> Meta:
    return Meta(
        name=msg.name,
        generation=msg.generation,
        labels=dict(msg.labels),
        annotations=dict(msg.annotations),
        created_at=msg.created_at,
        imported_from=msg.imported_from,
        owner=msg.owner,
        namespace=msg.namespace,
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
        autoscaling=autoscaling_to_pb(spec.autoscaling),
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
        autoscaling=autoscaling_from_pb(msg) if msg.HasField("autoscaling") else None,
    )


def autoscaling_to_pb(autoscaling: Autoscaling | None) -> pb.Autoscaling | None:
    if autoscaling is None:
        return None
    return pb.Autoscaling(
        target_requests=autoscaling.target_requests,
        scale_down_delay_seconds=autoscaling.scale_down_delay_seconds,
        metric=autoscaling.metric,
        disabled=autoscaling.disabled,
    )


def autoscaling_from_pb(spec: pb.ModelSpec) -> Autoscaling:
    msg, defaults = spec.autoscaling, Autoscaling()
    return Autoscaling(
        target_requests=msg.target_requests or defaults.target_requests,
        scale_down_delay_seconds=msg.scale_down_delay_seconds,
        metric=msg.metric or defaults.metric,
        disabled=msg.disabled,
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


def pipeline_step_to_pb(step: PipelineStep) -> pb.PipelineStep:
    msg = pb.PipelineStep(
        name=step.name,
        inputs=list(step.inputs),
        triggers=list(step.triggers),
        tensor_map=step.tensor_map,
        inputs_join_type=step.inputs_join_type,
        triggers_join_type=step.triggers_join_type,
        join_window_ms=step.join_window_ms,
    )
    if step.batch is not None:
        msg.batch.CopyFrom(pb.PipelineBatch(size=step.batch.size, window_ms=step.batch.window_ms))
    return msg


def pipeline_step_from_pb(msg: pb.PipelineStep) -> PipelineStep:
    return PipelineStep(
        name=msg.name,
        inputs=tuple(msg.inputs),
        triggers=tuple(msg.triggers),
        tensor_map=dict(msg.tensor_map),
        inputs_join_type=msg.inputs_join_type or JOIN_TYPES[0],
        triggers_join_type=msg.triggers_join_type or JOIN_TYPES[0],
        join_window_ms=msg.join_window_ms,
        # Presence, not content: a batch section with zeros is still what the user wrote.
        batch=(
            PipelineBatch(size=msg.batch.size, window_ms=msg.batch.window_ms)
            if msg.HasField("batch")
            else None
        ),
    )


def pipeline_spec_to_pb(spec: PipelineSpec) -> pb.PipelineSpec:
    msg = pb.PipelineSpec(
        steps=[pipeline_step_to_pb(step) for step in spec.steps],
        allow_cycles=spec.allow_cycles,
        max_step_revisits=spec.max_step_revisits,
    )
    if spec.input is not None:
        given = spec.input
        msg.input.CopyFrom(
            pb.PipelineInput(
                external_inputs=list(given.external_inputs),
                external_triggers=list(given.external_triggers),
                join_type=given.join_type,
                triggers_join_type=given.triggers_join_type,
                join_window_ms=given.join_window_ms,
                tensor_map=given.tensor_map,
            )
        )
    if spec.output is not None:
        out = spec.output
        msg.output.CopyFrom(
            pb.PipelineOutput(
                steps=list(out.steps),
                steps_join=out.steps_join,
                join_window_ms=out.join_window_ms,
                tensor_map=out.tensor_map,
            )
        )
    return msg


def pipeline_spec_from_pb(msg: pb.PipelineSpec) -> PipelineSpec:
    given: PipelineInput | None = None
    if msg.HasField("input"):
        given = PipelineInput(
            external_inputs=tuple(msg.input.external_inputs),
            external_triggers=tuple(msg.input.external_triggers),
            join_type=msg.input.join_type or JOIN_TYPES[0],
            triggers_join_type=msg.input.triggers_join_type or JOIN_TYPES[0],
            join_window_ms=msg.input.join_window_ms,
            tensor_map=dict(msg.input.tensor_map),
        )
    output: PipelineOutput | None = None
    if msg.HasField("output"):
        output = PipelineOutput(
            steps=tuple(msg.output.steps),
            steps_join=msg.output.steps_join or JOIN_TYPES[0],
            join_window_ms=msg.output.join_window_ms,
            tensor_map=dict(msg.output.tensor_map),
        )
    return PipelineSpec(
        steps=tuple(pipeline_step_from_pb(step) for step in msg.steps),
        input=given,
        output=output,
        allow_cycles=msg.allow_cycles,
        max_step_revisits=msg.max_step_revisits,
    )


def pipeline_to_pb(pipeline: Pipeline) -> pb.Pipeline:
    return pb.Pipeline(meta=meta_to_pb(pipeline.meta), spec=pipeline_spec_to_pb(pipeline.spec))


def pipeline_from_pb(msg: pb.Pipeline) -> Pipeline:
    return Pipeline(meta=meta_from_pb(msg.meta), spec=pipeline_spec_from_pb(msg.spec))


def graph_step_to_pb(step: GraphStep) -> pb.GraphStep:
    return pb.GraphStep(
        name=step.name,
        service_name=step.service_name,
        service_url=step.service_url,
        node_name=step.node_name,
        data=step.data,
        condition=step.condition,
        weight=step.weight,
        dependency=step.dependency,
    )


def graph_step_from_pb(msg: pb.GraphStep) -> GraphStep:
    return GraphStep(
        name=msg.name,
        service_name=msg.service_name,
        service_url=msg.service_url,
        node_name=msg.node_name,
        data=msg.data,
        condition=msg.condition,
        weight=msg.weight,
        dependency=msg.dependency or GRAPH_DEPENDENCIES[0],
    )


def graph_spec_to_pb(spec: InferenceGraphSpec) -> pb.InferenceGraphSpec:
    msg = pb.InferenceGraphSpec(timeout_seconds=spec.timeout_seconds)
    for name, node in spec.nodes.items():
        msg.nodes[name].CopyFrom(
            pb.GraphNode(router_type=node.router_type, steps=[graph_step_to_pb(s) for s in node.steps])
        )
    return msg


def graph_spec_from_pb(msg: pb.InferenceGraphSpec) -> InferenceGraphSpec:
    # A protobuf map has no order: root first, then the others by name (stable manifests).
    names = sorted(msg.nodes, key=lambda name: (name != GRAPH_ROOT_NODE, name))
    nodes = {
        name: GraphNode(
            router_type=msg.nodes[name].router_type,
            steps=tuple(graph_step_from_pb(s) for s in msg.nodes[name].steps),
        )
        for name in names
    }
    return InferenceGraphSpec(nodes=nodes, timeout_seconds=msg.timeout_seconds)


def graph_to_pb(graph: InferenceGraph) -> pb.InferenceGraph:
    return pb.InferenceGraph(meta=meta_to_pb(graph.meta), spec=graph_spec_to_pb(graph.spec))


def graph_from_pb(msg: pb.InferenceGraph) -> InferenceGraph:
    return InferenceGraph(meta=meta_from_pb(msg.meta), spec=graph_spec_from_pb(msg.spec))


def resource_to_pb(resource: Resource) -> cpb.Resource:
    if isinstance(resource, Model):
        return cpb.Resource(model=model_to_pb(resource))
    if isinstance(resource, Server):
        return cpb.Resource(server=server_to_pb(resource))
    if isinstance(resource, Experiment):
        return cpb.Resource(experiment=experiment_to_pb(resource))
    if isinstance(resource, Pipeline):
        return cpb.Resource(pipeline=pipeline_to_pb(resource))
    if isinstance(resource, InferenceGraph):
        return cpb.Resource(inference_graph=graph_to_pb(resource))
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
    if which == "pipeline":
        return pipeline_from_pb(msg.pipeline)
    if which == "inference_graph":
        return graph_from_pb(msg.inference_graph)
    raise InvalidError(
        "a resource must be one of model, server, server_config, experiment, pipeline, inference_graph",
        field="resource",
    )
