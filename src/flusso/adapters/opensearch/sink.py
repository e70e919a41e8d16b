"""`OpenSearchSink`: documents into generation indexes behind stable hash aliases.

Writes only buffer; `flush` sends them as chunked bulk requests with flusso's own
retry schedule. `ensure_index` / `mark_seeded` / `reindex` report what the cluster
shows to `domain.reindex`, which plans the alias-over-generations lifecycle, and carry
out the steps it returns; nothing here decides a generation, an alias move or a drop.
"""

from __future__ import annotations

import asyncio
import logging
import types
from collections.abc import Generator, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from opensearchpy import AsyncOpenSearch
from opensearchpy.exceptions import ConnectionError as TransportConnectionError
from opensearchpy.exceptions import SerializationError, TransportError

from flusso.adapters.opensearch.bulk import (
    TRANSIENT_ITEM_STATUSES,
    BulkAction,
    ItemRejection,
    bulk_params,
    classify_bulk_reply,
    delete_action,
    index_action,
    plan_chunks,
)
from flusso.adapters.opensearch.cluster import (
    ClusterCalls,
    destination,
    error_body,
    failure_hint,
    status_line,
    transport_detail,
)
from flusso.adapters.opensearch.codec import ORJSON_CODEC
from flusso.app.ports import (
    FlushReport,
    RejectedDocument,
    SinkSerializeError,
    SinkUnavailableError,
    SinkWriteError,
)
from flusso.app.ports.steps import perform
from flusso.domain.config.model import OpenSearchSinkConfig
from flusso.domain.documents.change import Delete, DocumentOp, Upsert
from flusso.domain.documents.render import render_document
from flusso.domain.generations import (
    AliasAction,
    ClusterView,
    DropGenerations,
    IndexNames,
    StageTarget,
    Step,
)
from flusso.domain.lifecycle import Meta
from flusso.domain.mapping import build_index_body
from flusso.domain.naming import (
    convenience_alias,
    is_sibling_hash_alias,
    meta_index,
    parse_generation,
    validate_prefix,
)
from flusso.domain.reindex import SiblingMarker, StartFacts, plan_stage, plan_start, plan_swap_in
from flusso.domain.types import IndexMapping

logger = logging.getLogger(__name__)

_BULK_HINT = "the batch was not acknowledged; it is redelivered when the run restarts"
_RENDER_SLICE = 16
"""Documents rendered by `write` between two yields to the event loop (measured: 64 left
Postgres idle while the next batch's result waited for the loop; 16 keeps it busy)."""


@types.coroutine
def _yield_to_loop() -> Generator[None, None, None]:
    """One turn of the event loop (what `asyncio.sleep(0)` does, without its bookkeeping)."""
    yield


@dataclass(frozen=True)
class _Active:
    """The generation `ensure_index` chose for a logical index."""

    mapping: IndexMapping
    alias: str
    generation: str
    number: int


class OpenSearchSink:
    """The Sink port over one OpenSearch cluster.

    Remembers, per logical index, the active generation (what `is_seeded` and
    `mark_seeded` act on) and the list of generations writes go to: one entry,
    or two while an online rebuild dual-writes (`route_writes`). It is also the
    `IndexAdmin` of that rebuild.
    """

    def __init__(
        self,
        client: AsyncOpenSearch,
        *,
        sink_name: str,
        config: OpenSearchSinkConfig,
        prefix: str = "",
        skip_backfill: bool = False,
        backoff_base: float = 0.2,
        owns_client: bool = False,
        url: str = "",
    ) -> None:
        validate_prefix(prefix)
        self.sink_name = sink_name
        self._client = client
        self._url = url  # for messages only
        self._calls = ClusterCalls(client, sink=sink_name, url=url)
        self._config = config
        self._prefix = prefix
        self._skip_backfill = skip_backfill
        self._backoff_base = backoff_base
        self._owns_client = owns_client
        self._batch_size = max(1, config.batch_size)
        self._max_bytes = max(1, config.max_bytes)
        self._max_retries = max(0, config.max_retries)
        self._active: dict[str, _Active] = {}
        self._routes: dict[str, tuple[str, ...]] = {}
        self._buffer: list[BulkAction] = []
        self._generation_buffer: list[BulkAction] = []

    @property
    def meta_index(self) -> str:
        return meta_index(self._prefix)

    def active_generation(self, index: str) -> str | None:
        """The concrete generation `ensure_index` chose for `index`, if it ran."""
        active = self._active.get(index)
        return active.generation if active else None

    def write_targets(self, index: str) -> tuple[str, ...]:
        """Where writes for `index` go; an unannounced index is written under its bare name."""
        return self._routes.get(index, (index,))

    # -- lifecycle: facts in, the domain's plan out, steps carried out ----------------

    async def ensure_index(self, mapping: IndexMapping) -> None:
        names = self.index_names(mapping)
        alias = names.hash_alias
        if alias in await self._calls.list_indices(alias):
            raise SinkWriteError(
                f"{alias} exists as a concrete index from an older flusso version; "
                f"reindex it into {alias}_1 and delete {alias} so the name can become an alias",
                hint=f"sink {self.sink_name}: migrate the index by hand, then restart",
            )
        plan = plan_start(names, await self._start_facts(names), skip_backfill=self._skip_backfill)
        generation = names.generation(plan.generation)
        if plan.missing is not None:
            logger.warning(
                "seeded generation is missing; rebuilding the index into a new generation",
                extra={
                    "index": names.logical,
                    "missing": names.generation(plan.missing),
                    "generation": generation,
                },
            )
        for step in plan.steps:
            await self._perform(mapping, step)
            if isinstance(step, StageTarget) and step.hash_alias != alias:
                logger.info(
                    "another schema hash of this index is no longer current; "
                    "it will be rebuilt if the schema returns to it",
                    extra={
                        "index": names.logical,
                        "hash_alias": step.hash_alias,
                        "generation": step.generation,
                    },
                )
        if plan.bare_alias_waits:
            logger.info(
                "convenience alias stays on its index until this generation is seeded",
                extra={"alias": names.bare_alias, "index": generation},
            )
        if plan.serving_while_staged is not None:
            logger.warning(
                "a staged rebuild stays pending while backfill is skipped; "
                "writing to the serving generation",
                extra={
                    "index": names.logical,
                    "generation": plan.serving_while_staged,
                    "staged": generation,
                },
            )
        # Set last: the plan's route may name the serving generation, but seeding acts on
        # the one the plan chose.
        self._active[names.logical] = _Active(mapping, alias, generation, plan.generation)

    async def _start_facts(self, names: IndexNames) -> StartFacts:
        marker = await self.read_marker(names)
        exists = marker is not None and await self._calls.exists(
            names.generation(marker.generation)
        )
        siblings: list[SiblingMarker] = []
        for other, meta in await self._calls.all_meta(self.meta_index):
            if other == names.hash_alias or not is_sibling_hash_alias(
                self._prefix, names.logical, other
            ):
                continue
            listed = await self._calls.list_indices(f"{other}_*")
            siblings.append(SiblingMarker(other, Meta(*meta), _generations(other, listed)))
        return StartFacts(marker, exists, await self.cluster_view(names), tuple(siblings))

    async def _perform(self, mapping: IndexMapping, step: Step) -> None:
        failure = await perform(self, mapping, step)
        if failure is not None:
            logger.warning(
                "could not point the convenience alias at the index; writes are unaffected",
                extra={"alias": convenience_alias(self._prefix, mapping.index), "error": str(failure)},
            )
        if isinstance(step, DropGenerations) and step.indexes:
            logger.info(
                "dropped superseded generations",
                extra={"index": mapping.index, "generations": ",".join(step.indexes)},
            )

    def _creation_body(self, mapping: IndexMapping) -> dict[str, Any]:
        body = build_index_body(
            mapping,
            shards=max(1, self._config.number_of_shards),
            replicas=self._config.number_of_replicas,
            text_analysis=self._config.text_analysis,
            auto_subfields=self._config.auto_subfields,
        )
        # Refresh stays off while seeding; mark_seeded applies the configured interval.
        settings = body.setdefault("settings", {}).setdefault("index", {})
        settings["refresh_interval"] = "-1"
        return body

    async def is_seeded(self, index: str) -> bool:
        active = self._active.get(index)
        if active is None:
            return False
        meta = await self._calls.read_meta(self.meta_index, active.alias)
        return meta is not None and meta[1]

    async def mark_seeded(self, index: str) -> None:
        active = self._active.get(index)
        if active is None:
            raise SinkWriteError(
                f"cannot mark {index} seeded: it has no active generation (ensure_index not run?)"
            )
        names = self.index_names(active.mapping)
        view = await self.cluster_view(names)
        for step in plan_swap_in(names, view, active.number, self._config.refresh_interval):
            await self._perform(active.mapping, step)

    async def reindex(self, mapping: IndexMapping) -> None:
        names = self.index_names(mapping)
        stage = plan_stage(names, await self.cluster_view(names))
        await self._perform(mapping, stage)
        logger.info(
            "staged a rebuild into a new generation",
            extra={"index": mapping.index, "generation": names.generation(stage.generation)},
        )

    async def close(self) -> None:
        self._buffer = []
        if self._owns_client:
            await self._client.close()

    # -- IndexAdmin: generation-level steps of an online rebuild --------------------

    @property
    def refresh_interval(self) -> str:
        return self._config.refresh_interval

    def index_names(self, mapping: IndexMapping) -> IndexNames:
        return IndexNames.of(self._prefix, mapping)

    async def read_marker(self, names: IndexNames) -> Meta | None:
        meta = await self._calls.read_meta(self.meta_index, names.hash_alias)
        return None if meta is None else Meta(*meta)

    async def cluster_view(self, names: IndexNames) -> ClusterView:
        listed = await self._calls.list_indices(f"{names.hash_alias}_*")
        return ClusterView(
            hash_holders=tuple(await self._calls.alias_holders(names.hash_alias)),
            bare_holders=tuple(await self._calls.alias_holders(names.bare_alias)),
            generations=_generations(names.hash_alias, listed),
        )

    async def write_marker(self, hash_alias: str, generation: int, seeded: bool) -> None:
        await self._calls.write_meta(self.meta_index, hash_alias, generation, seeded)

    async def create_generation(self, mapping: IndexMapping, index: str) -> bool:
        if await self._calls.exists(index):
            logger.debug("generation exists; its mapping is left as is", extra={"index": index})
            return False
        created = await self._calls.create(index, self._creation_body(mapping))
        if created:
            logger.info(
                "created generation index",
                extra={"index": mapping.index, "generation": index, "sink": self.sink_name},
            )
        return created

    def route_writes(self, index: str, generations: Sequence[str]) -> None:
        self._routes[index] = tuple(generations)
        active = self._active.get(index)
        if active is not None and len(generations) == 1:
            number = parse_generation(active.alias, generations[0])
            if number is not None:
                self._active[index] = replace(active, generation=generations[0], number=number)

    async def write_generation(self, generation: str, ops: Sequence[DocumentOp]) -> None:
        for op in ops:
            self._generation_buffer.extend(_actions(op, (generation,)))

    async def flush_generations(self) -> FlushReport:
        actions, self._generation_buffer = self._generation_buffer, []
        return await self._send(actions, False)

    async def refresh(self, index: str, interval: str) -> None:
        await self._calls.refresh(index)
        await self._calls.set_refresh_interval(index, interval)

    async def swap_aliases(self, actions: Sequence[AliasAction]) -> None:
        if actions:
            await self._calls.update_aliases([action.as_json() for action in actions])

    async def drop(self, indexes: Sequence[str]) -> None:
        for name in indexes:
            await self._calls.drop(name)

    # -- writes ------------------------------------------------------------------

    async def write(self, ops: Sequence[DocumentOp]) -> None:
        for position, op in enumerate(ops):
            if position % _RENDER_SLICE == 0:
                # Rendering is CPU work: let other tasks (the pipeline building the next
                # batch, HTTP surfaces, replication keepalives) run between slices.
                await _yield_to_loop()
            self._buffer.extend(_actions(op, self.write_targets(op.id.index)))

    async def flush(self, caught_up: bool) -> FlushReport:
        actions, self._buffer = self._buffer, []
        return await self._send(actions, caught_up)

    async def _send(self, actions: list[BulkAction], caught_up: bool) -> FlushReport:
        if not actions:
            return FlushReport()
        sizes = [action.size for action in actions]
        for size in sizes:
            if size > self._max_bytes:
                logger.warning(
                    "a single document exceeds the bulk byte cap; sending it in its own request",
                    extra={"bytes": size, "max_bytes": self._max_bytes},
                )
        rejected: list[ItemRejection] = []
        start = 0
        for count in plan_chunks(sizes, self._batch_size, self._max_bytes):
            rejected.extend(await self._send_chunk(actions[start : start + count], caught_up))
            start += count
        logger.debug(
            "flushed bulk actions",
            extra={"documents": len(actions), "rejected": len(rejected), "caught_up": caught_up},
        )
        # A dual-written document refused by both generations is one rejection.
        unique = {(r.index, r.id): r for r in (self._rejection(item) for item in rejected)}
        return FlushReport(tuple(unique.values()))

    async def _send_chunk(self, chunk: Sequence[BulkAction], refresh: bool) -> list[ItemRejection]:
        """One chunk with its retry budget: whole-request failures and items throttled or
        refused for a moment (re-sent, not rejected)."""
        params = bulk_params(self._config.pipeline, refresh)
        pending = list(chunk)
        rejected: list[ItemRejection] = []
        failure: SinkWriteError | None = None
        cause: Exception | None = None
        attempts = self._max_retries + 1
        for attempt in range(attempts):
            if attempt:
                await asyncio.sleep(self._backoff_base * 2 ** (attempt - 1))
                logger.warning("retrying OpenSearch bulk request", extra={"attempt": attempt})
            try:
                reply = await self._calls.bulk("".join(a.fragment for a in pending), params)
            except SerializationError as exc:
                raise SinkWriteError(f"failed to read bulk response: {exc}") from exc
            except TransportError as exc:
                failure, cause = _bulk_failure(exc, self.sink_name, self._url), exc
                continue
            if not isinstance(reply, Mapping):
                raise SinkWriteError(
                    f"failed to read bulk response: not a JSON object: {reply!r:.200}"
                )
            outcome = classify_bulk_reply(reply, pending)
            rejected.extend(outcome.rejected)
            if not outcome.transient:
                return rejected
            pending = [pending[i] for i in outcome.transient]
            failure = SinkUnavailableError(
                f"bulk items still rejected as transient after {attempt + 1} attempts: "
                f"{outcome.transient_reason}",
                hint=_BULK_HINT,
            )
            cause = None
        if failure is None:  # unreachable: at least one attempt is always made
            failure = SinkWriteError("bulk request failed with no attempt made")
        raise failure from cause

    def _rejection(self, item: ItemRejection) -> RejectedDocument:
        if item.action is not None:
            return RejectedDocument(item.action.logical, item.id, item.reason)
        for logical, targets in self._routes.items():
            if item.index in targets:
                return RejectedDocument(logical, item.id, item.reason)
        return RejectedDocument(item.index, item.id, item.reason)


def _actions(op: DocumentOp, targets: Sequence[str]) -> list[BulkAction]:
    logical = op.id.index
    doc_id = op.id.render()
    if isinstance(op, Upsert):
        try:
            source = render_document(op.document, ORJSON_CODEC)
        except (TypeError, ValueError) as exc:
            raise SinkSerializeError(f"document {logical}/{doc_id}: {exc}") from exc
        return [index_action(t, logical, doc_id, source) for t in targets]
    if isinstance(op, Delete):
        return [delete_action(t, logical, doc_id) for t in targets]
    raise SinkWriteError(f"cannot write {type(op).__name__}: not a document op")


def _bulk_failure(exc: TransportError, sink: str, url: str) -> SinkWriteError:
    where = destination(sink, url)
    suffix = f" ({where})" if where else ""
    hint = failure_hint(exc, sink, url)
    hint = f"{hint}; {_BULK_HINT}" if hint else _BULK_HINT
    if isinstance(exc, TransportConnectionError):
        return SinkUnavailableError(
            f"bulk request error: {transport_detail(exc)}{suffix}", hint=hint
        )
    if isinstance(exc.status_code, int):
        detail = (
            f"bulk request failed: HTTP {status_line(exc.status_code)}: {error_body(exc)}{suffix}"
        )
        if exc.status_code in TRANSIENT_ITEM_STATUSES:
            return SinkUnavailableError(detail, hint=hint)
        return SinkWriteError(detail, hint=hint)
    return SinkWriteError(f"bulk request error: {exc}{suffix}", hint=hint)


def _generations(alias: str, names: Sequence[str]) -> tuple[int, ...]:
    """The generation numbers of `alias` among index names, in order."""
    numbers = (parse_generation(alias, name) for name in names)
    return tuple(sorted(n for n in numbers if n is not None))
