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
