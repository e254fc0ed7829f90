"""Integer bounds of the wire types behind manifest fields.

Every whole number a manifest carries ends up in a protobuf int32 or int64 field; a value
outside that range must be refused at the edge, naming the field (400), not fail later when the
resource is serialised (a 500 the api's property tests found with ``replicas: 2147483721``).
"""

from __future__ import annotations

from typing import Annotated, Final

from pydantic import Field

INT32_MAX: Final = 2**31 - 1
INT64_MAX: Final = 2**63 - 1

# What fits a protobuf int32 / int64 field (negative values are each field's own rule).
Int32 = Annotated[int, Field(ge=-(2**31), le=INT32_MAX)]
Int64 = Annotated[int, Field(ge=-(2**63), le=INT64_MAX)]
