"""Settings of the storage service (env prefix ``MODELPLANE_STORAGE_``)."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import SettingsConfigDict

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
