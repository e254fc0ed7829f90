"""Settings of the storage service (env prefix ``MODELPLANE_STORAGE_``)."""

from __future__ import annotations

from pathlib import Path

from pydantic import AliasChoices, Field, field_validator
from pydantic_settings import SettingsConfigDict

from modelplane.libs.egress import DEFAULT_BLOCKED_NETWORKS, EgressPolicy, parse_networks
from modelplane.libs.local_paths import LocalRoots, default_roots, parse_roots
from modelplane.libs.settings import CommonSettings


class StorageSettings(CommonSettings):
    """What ``modelplane run storage`` reads from the environment."""

    model_config = SettingsConfigDict(env_prefix="MODELPLANE_STORAGE_", extra="ignore", validate_default=True)

    cache_dir: Path = Field(
        default=Path(".modelplane/storage-cache"),
        description=(
            "Directory (path) where remote schemes (s3, gs, azure, http, hf) will download artifacts; "
            "local paths and file:// are served in place and never copied here. Defaults under the "
            "working directory's .modelplane/ so a local run keeps all its state in one place."
        ),
    )
    cache_max_bytes: int = Field(
        default=20 * 1024**3,
        gt=0,
        description=(
            "Size limit (bytes) of the download cache; after each new artifact the least-recently-used "
            "ones are removed until the cache fits. 20 GiB holds a few dozen classic models or a couple "
            "of small LLMs, and fits the ephemeral disk of a typical node. An artifact larger than the "
            "limit is still kept (everything else is evicted and a warning is logged)."
        ),
    )
    lease_timeout: float = Field(
        default=300.0,
        gt=0,
        description=(
            "Seconds a cache entry named in a fetch reply stays protected from eviction after the "
            "reply, unless the caller publishes FetchRelease earlier (the agent copies the entry "
            "into its model repository right after the reply). 300 s covers copying tens of GiB "
            "on a slow disk; a caller that died holds nothing longer than that."
        ),
    )
    secrets_dir: Path = Field(
        default=Path(".modelplane/secrets"),
        description=(
            "Directory (path) holding the secrets named by Model.spec.secretName: <name>.env files "
            "(KEY=VALUE lines) or <name>/ folders with one file per key (a mounted Kubernetes "
            "Secret). Defaults under .modelplane/ beside the rest of a local run's state."
        ),
    )
    default_secret_name: str = Field(
        default="",
        description=(
            "Secret used when a model names none (Seldon's defaultEnvSecretRefName). Empty: such "
            "models fetch without credentials (anonymous access or the process environment)."
        ),
    )
    pvc_root: Path = Field(
        default=Path(".modelplane/volumes"),
        description=(
            "Directory (path) under which pvc://<claim>/<path> resolves to <pvc_root>/<claim>/<path>. "
            "On Kubernetes point it at the folder where the claims are mounted; locally it defaults "
            "under .modelplane/ so volumes are plain folders of the local run."
        ),
    )
    state_dir: Path = Field(
        default=Path(".modelplane"),
        validation_alias=AliasChoices("MODELPLANE_STATE_DIR", "state_dir"),
        description=(
            "The local run's state directory (path; `modelplane up` sets MODELPLANE_STATE_DIR). "
            "Local storageUris never resolve into it (auth, secrets, NATS store, cache, replicas), "
            "except under an allowed root inside it such as <state dir>/models."
        ),
    )
    local_roots: str = Field(
        default="",
        description=(
            "Folders (os.pathsep- or comma-separated paths) that local and file:// storageUris may "
            "name; a path is resolved (symlinks followed) before the check. Empty: the working "
            "directory and <state dir>/models, which is what `modelplane up` passes explicitly "
            "(the folder it was started from)."
        ),
    )
    max_artifact_bytes: int = Field(
        default=50 * 1024**3,
        gt=0,
        description=(
            "Largest artifact (bytes) one remote fetch may write: downloads and the unpacked size "
            "of archives are counted while they stream, and the fetch fails (partial files "
            "removed) as soon as it is exceeded, so a hostile or mistaken URI cannot fill the "
            "disk. 50 GiB holds a 7B-parameter LLM in fp32 with room to spare."
        ),
    )

    blocked_networks: str = Field(
        default=DEFAULT_BLOCKED_NETWORKS,
        description=(
            "Networks (comma-separated CIDRs) that http(s) and hf fetches may not connect to, "
            "checked on the address a name resolved to, at connect time and after every redirect. "
            "The default blocks link-local (169.254.0.0/16, fe80::/10: cloud metadata services), "
            "0.0.0.0/8 and the known metadata addresses, in IPv4 and IPv4-mapped IPv6 forms; "
            "loopback and private ranges stay allowed because a local MinIO or emulator is the "
            "common laptop setup (add 127.0.0.0/8, 10.0.0.0/8, ... in a shared cluster). Empty: "
            "nothing is blocked."
        ),
    )

    @field_validator("blocked_networks")
    @classmethod
    def _networks(cls, value: str) -> str:
        parse_networks(value)
        return value

    def egress_policy(self) -> EgressPolicy:
        """What remote fetches may connect to."""
        return EgressPolicy.parse(self.blocked_networks)

    def local_storage_roots(self) -> LocalRoots:
        """The allowed roots and the folders no local storageUri may reach."""
        roots = parse_roots(self.local_roots) or default_roots(self.state_dir)
        return LocalRoots.for_state(roots, self.state_dir, forbidden=(self.secrets_dir, self.cache_dir))
