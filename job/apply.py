"""Applying the plan: bounded concurrent writes, conflict resolution, per-SKU failures.

Two writers do the same thing over different transports:
- `GraphQLWriter`: many aliased `updateInventoryEntry` / `createInventoryEntry` mutations in
  one request, every value in its variables (commercetools runs them one after the other;
  one failing does not stop the others, its error names its alias);
- `RestWriter`: one `POST /inventory[/{id}]` per write.
`bench/inventory_bench.py --write-mode` measures one against the other (docs/inventory.md).

Each write ends as done, failed (with a reason), or needing another round:
- `ConcurrentModification` with `currentVersion`: retried at that version. `changeQuantity`
  sets an absolute value, so the retry still converges on NewStore's target.
- `ConcurrentModification` without a version, or `DuplicateField` on a create (someone
  created the entry since it was read): the entries are read again in bulk and the write is
  recomputed (an update, or nothing if the entry already holds the target).
A bounded number of rounds (`INVENTORY_CONFLICT_RETRIES`); a failure never aborts the run.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Protocol

from connector.commercetools import CommercetoolsClient, CommercetoolsError, graphql_error
from connector.http import UpstreamError
from job.bounded import NoProgress, Progress, chunks, for_each, never
from job.plan import Create, Entry, Update, Write, recompute


class WriteOutcome(StrEnum):
    CREATED = "created"
    UPDATED = "updated"


@dataclass(frozen=True, slots=True)
class Done:
    outcome: WriteOutcome


@dataclass(frozen=True, slots=True)
class Retry:
    write: Write


@dataclass(frozen=True, slots=True)
class Refetch:
    """Read the entry again, then recompute the write."""


@dataclass(frozen=True, slots=True)
class Failed:
    reason: str


Resolution = Done | Retry | Refetch | Failed
OnResolved = Callable[[Write, Resolution], None]


def resolve_error(write: Write, errors: Sequence[dict[str, Any]], message: str) -> Resolution:
    """What to do about a write that commercetools refused (REST or GraphQL alike)."""
    codes = [str(error.get("code")) for error in errors]
    if "ConcurrentModification" in codes:
        version = next((e.get("currentVersion") for e in errors if "currentVersion" in e), None)
        if isinstance(write, Update) and isinstance(version, int):
            return Retry(Update(write.sku, write.entry_id, version, write.quantity))
        return Refetch()
    if "DuplicateField" in codes and isinstance(write, Create):
        return Refetch()
    if "ResourceNotFound" in codes and isinstance(write, Update):
        return Failed("entry deleted during the sync")
    return Failed(f"{codes[0] if codes else 'error'}: {message}"[:300])


def done(write: Write) -> Done:
    return Done(WriteOutcome.UPDATED if isinstance(write, Update) else WriteOutcome.CREATED)


class Writer(Protocol):
    async def write(
        self, writes: Sequence[Write], record: OnResolved, stop: Callable[[], bool]
    ) -> None:
        """Attempt each write (unless `stop()`), and `record` how each attempted one ended."""


class RestWriter:
    def __init__(self, ctp: CommercetoolsClient, concurrency: int) -> None:
        self.ctp = ctp
        self.concurrency = concurrency

    async def write(
        self, writes: Sequence[Write], record: OnResolved, stop: Callable[[], bool]
    ) -> None:
        async def send(write: Write) -> None:
            try:
                if isinstance(write, Update):
                    actions = [{"action": "changeQuantity", "quantity": write.quantity}]
                    await self.ctp.update_inventory_entry(write.entry_id, write.version, actions)
                else:
                    draft: dict[str, Any] = {"sku": write.sku, "quantityOnStock": write.quantity}
                    if write.channel is not None:
                        draft["supplyChannel"] = {"typeId": "channel", "id": write.channel}
                    await self.ctp.create_inventory_entry(draft)
            except CommercetoolsError as error:
                record(write, resolve_error(write, error.errors, error.message))
            except UpstreamError as error:
                record(write, Failed(str(error)))
            else:
                record(write, done(write))

        await for_each(writes, send, self.concurrency, stop)


class GraphQLWriter:
    def __init__(self, ctp: CommercetoolsClient, concurrency: int, batch_size: int) -> None:
        self.ctp = ctp
        self.concurrency = concurrency
        self.batch_size = batch_size

    async def write(
        self, writes: Sequence[Write], record: OnResolved, stop: Callable[[], bool]
    ) -> None:
        async def send(batch: Sequence[Write]) -> None:
            try:
                body = await self.ctp.graphql(*mutation_document(batch))
            except UpstreamError as error:
                for write in batch:
                    record(write, Failed(str(error)))
                return
            self._record_batch(batch, body, record)

        await for_each(chunks(writes, self.batch_size), send, self.concurrency, stop)

    @staticmethod
    def _record_batch(batch: Sequence[Write], body: dict[str, Any], record: OnResolved) -> None:
        data = body.get("data") or {}
        by_alias: dict[str, dict[str, Any]] = {}
        unplaced: list[dict[str, Any]] = []
        for error in body.get("errors") or []:
            path = error.get("path") or []
            if path:
                by_alias.setdefault(str(path[0]), graphql_error(error))
            else:
                unplaced.append(error)
        for index, write in enumerate(batch):
            alias = _alias(index)
            if data.get(alias) is not None:
                record(write, done(write))
            elif alias in by_alias:
                error = by_alias[alias]
                record(write, resolve_error(write, [error], str(error.get("message"))))
            else:
                reason = str(unplaced[0].get("message")) if unplaced else "no result"
                record(write, Failed(f"graphql: {reason}"[:300]))


def _alias(index: int) -> str:
    return f"w{index}"


def mutation_document(batch: Sequence[Write]) -> tuple[str, dict[str, Any]]:
    """One mutation per write, aliased `w0`, `w1`, ..., and the variables that carry every
    value: the document holds only names and types, so no SKU, id or quantity is ever
    spliced into GraphQL syntax (a SKU with quotes, backslashes or non-ASCII letters travels
    as JSON, exactly as given)."""
    declarations: list[str] = []
    fields: list[str] = []
    variables: dict[str, Any] = {}
    for index, write in enumerate(batch):
        alias = _alias(index)
        if isinstance(write, Update):
            declarations += [
                f"$id{index}: String!",
                f"$v{index}: Long!",
                f"$a{index}: [InventoryEntryUpdateAction!]!",
            ]
            call = f"updateInventoryEntry(id: $id{index}, version: $v{index}, actions: $a{index})"
            variables[f"id{index}"] = write.entry_id
            variables[f"v{index}"] = write.version
            variables[f"a{index}"] = [{"changeQuantity": {"quantity": write.quantity}}]
        else:
            declarations.append(f"$d{index}: InventoryEntryDraft!")
            call = f"createInventoryEntry(draft: $d{index})"
            draft: dict[str, Any] = {"sku": write.sku, "quantityOnStock": write.quantity}
            if write.channel is not None:  # a per-store entry
                draft["supplyChannel"] = {"typeId": "channel", "id": write.channel}
            variables[f"d{index}"] = draft
        fields.append(f"  {alias}: {call} {{ version }}")
    head = f"mutation WriteEntries({', '.join(declarations)})" if declarations else "mutation"
    return head + " {\n" + "\n".join(fields) + "\n}", variables


# --- the rounds ---------------------------------------------------------------------------


@dataclass
class ApplyResult:
    created: int = 0
    updated: int = 0
    unchanged: int = 0  # found already right when read again
    failed: list[tuple[str, str]] = field(default_factory=list)  # (sku, reason)
    remaining: int = 0  # not attempted: the run had to stop
    targets: dict[str, int] = field(default_factory=dict)  # what each failed write wanted

    def fail(self, write: Write, reason: str) -> None:
        self.failed.append((write.sku, reason))
        self.targets[write.sku] = write.quantity


Refetcher = Callable[[Sequence[str]], Awaitable[Mapping[Any, Entry]]]  # by `Write.slot`


async def apply_writes(
    writes: Sequence[Write],
    writer: Writer,
    refetch: Refetcher,
    rounds: int,
    stop: Callable[[], bool] = never,
    progress: Progress | None = None,
) -> ApplyResult:
    """Write, then retry what conflicted, for at most `rounds` extra rounds."""
    progress = progress or NoProgress()
    progress.start("writes", len(writes))
    result = ApplyResult()
    pending: Sequence[Write] = writes
    for _ in range(rounds + 1):
        resolutions: dict[Write, Resolution] = {}
        await writer.write(pending, resolutions.__setitem__, stop)
        pending = await _settle(pending, resolutions, refetch, result)
        progress.advance("writes", len(resolutions) - len(pending))
        if not pending or stop():
            break
    if stop():
        result.remaining += len(pending)
    else:
        for write in pending:
            result.fail(write, f"still conflicting after {rounds} retries")
    return result


async def _settle(
    writes: Sequence[Write],
    resolutions: dict[Write, Resolution],
    refetch: Refetcher,
    result: ApplyResult,
) -> list[Write]:
    """Count what ended; return the writes for the next round."""
    again: list[Write] = []
    reread: list[Write] = []
    for write in writes:
        resolution = resolutions.get(write)
        if resolution is None:
            result.remaining += 1
        elif isinstance(resolution, Done) and resolution.outcome is WriteOutcome.CREATED:
            result.created += 1
        elif isinstance(resolution, Done):
            result.updated += 1
        elif isinstance(resolution, Failed):
            result.fail(write, resolution.reason)
        elif isinstance(resolution, Retry):
            again.append(resolution.write)
        else:
            reread.append(write)
    if reread:
        again += await _recomputed(reread, refetch, result)
    return again


async def _recomputed(writes: list[Write], refetch: Refetcher, result: ApplyResult) -> list[Write]:
    try:
        current = await refetch([write.sku for write in writes])
    except UpstreamError as error:
        for write in writes:
            result.fail(write, f"re-reading the entry failed: {error}")
        return []
    again: list[Write] = []
    for write in writes:
        entry = current.get(write.slot)  # the SKU, or (SKU, channel) for a per-store entry
        if entry is None and isinstance(write, Update):
            result.fail(write, "entry deleted during the sync")
        elif (next_write := recompute(write, entry)) is None:
            result.unchanged += 1
        else:
            again.append(next_write)
    return again


def make_writer(ctp: CommercetoolsClient, mode: str, concurrency: int, batch: int) -> Writer:
    if mode == "rest":
        return RestWriter(ctp, concurrency)
    return GraphQLWriter(ctp, concurrency, batch)
