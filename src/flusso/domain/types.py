"""Types and nullability of resolved fields (language spec §6), and the typed index mapping.

`resolve_fields` and the type-acceptance table are implemented here; the dataclasses
below are the shared contract read by mapping, the document decoder, `check` and sinks.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from flusso.domain.config.model import Value


@dataclass(frozen=True)
class ResolvedField:
    """A field after type resolution (§6.2).

    `type` is the OpenSearch type (`keyword`, `nested`, `object`, `geo_point`, …);
    `declared` is the flusso type it came from (`identifier`, `decimal`, `count`, …),
    which the document decoder uses to coerce values.
    """

    name: str
    type: str
    nullable: bool
    declared: str
    array: bool = False
    extra: Mapping[str, Value] = field(default_factory=dict)  # options, after injections
    children: tuple[ResolvedField, ...] = ()
    map_values: str | None = None
    decimal: bool = False
    enum_order: tuple[str, ...] = ()


@dataclass(frozen=True)
class IndexMapping:
    """The typed mapping of one enabled index: logical name, content hash, resolved fields."""

    index: str
    hash: str
    fields: tuple[ResolvedField, ...]
