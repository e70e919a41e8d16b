"""`flusso verify`: compare every index with the documents the database implies; `--repair` fixes it."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING

import rich_click as click
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table

from flusso.entrypoints.cli.console import debug_flag, err, out, report_error, user_errors
from flusso.entrypoints.cli.files import LocalFiles
from flusso.entrypoints.logs import configure_logging

if TYPE_CHECKING:
    from flusso.app.services.verify import IndexDrift, VerifyOptions, VerifyReport
    from flusso.domain.config.model import Deployment

EXIT_DRIFT = 1
EXIT_USAGE = 2


@click.command("verify")
@click.option("-c", "--config", envvar="FLUSSO_CONFIG", show_envvar=True, default=None,
              help="Config to compile and compare against (the lock is not written). "
                   "Without it or --lock: ./flusso.toml if present, else ./flusso.lock.")
@click.option("--lock", envvar="FLUSSO_LOCK", show_envvar=True, default=None,
              help="Compiled lock to compare against instead of a config.")
@click.option("--index", "indexes", multiple=True, metavar="NAME",
              envvar="FLUSSO_VERIFY_INDEX", show_envvar=True,
              help="Verify only this index (repeatable; the variable takes names separated by "
                   "spaces). Default: every enabled index.")
@click.option("--repair", is_flag=True, envvar="FLUSSO_VERIFY_REPAIR", show_envvar=True,
              help="Write missing and stale documents and delete orphans. Safe while "
                   "flusso run syncs the same index: a newer write always wins.")
@click.option("--sample", type=click.IntRange(min=1), default=None, metavar="N",
              envvar="FLUSSO_VERIFY_SAMPLE", show_envvar=True,
              help="Check N random rows and N random indexed documents per index instead of "
                   "everything: a quick answer for a big index.")
@click.option("--settle", type=click.FloatRange(min=0), default=2.0, show_default=True,
              metavar="SECONDS", envvar="FLUSSO_VERIFY_SETTLE", show_envvar=True,
              help="How long a difference must persist before it counts as drift; raise it "
                   "when live sync lags further behind.")
@click.option("--index-prefix", envvar="FLUSSO_INDEX_PREFIX", show_envvar=True, default=None,
              help="Prefix of every index and alias (overrides config `prefix`), as given to "
                   "flusso run.")
@click.option("--json", "as_json", is_flag=True, envvar="FLUSSO_JSON", show_envvar=True,
              help="Print one JSON object on stdout instead of a table.")
@click.option("-v", "--verbose", is_flag=True, envvar="FLUSSO_VERBOSE", show_envvar=True,
              help="Also list the first ids of each kind of drift.")
def verify(
    config: str | None,
    lock: str | None,
    indexes: Sequence[str],
    repair: bool,
    sample: int | None,
    settle: float,
    index_prefix: str | None,
    as_json: bool,
    verbose: bool,
) -> None:
    """Prove each index serves exactly what the database implies.

    Builds every document from the current rows (as flusso run does), reads what each
    OpenSearch index serves through its alias, and counts documents missing, stale
    (different) and orphaned (no row implies them). A difference counts only if it is
    still there after --settle seconds, so changes live sync is writing are not drift.
    Exits 0 when no drift is left, 1 when drift was found and left or on an error,
    2 on a usage error.
    """
    if config is not None and lock is not None:
        raise click.UsageError("give --config or --lock, not both")
    # Imported here: the verify stack is heavy, and `flusso --help` should stay instant.
    from flusso.app.services.compile import read_deployment
    from flusso.app.services.verify import UnknownIndexError, VerifyOptions, select_indexes

    # Quiet unless asked: the table (or the JSON) is the result; FLUSSO_LOG=info narrates.
    configure_logging({**os.environ, "FLUSSO_LOG": os.environ.get("FLUSSO_LOG") or "warn"})
    debug = debug_flag()
    with user_errors(debug):
        deployment = read_deployment(config, lock, LocalFiles())
        try:
            chosen = select_indexes(
                [i.name for i in deployment.enabled_indexes()],
                [i.name for i in deployment.indexes],
                indexes,
            )
        except UnknownIndexError as exc:
            if debug:
                raise
            report_error(exc)
            raise SystemExit(EXIT_USAGE) from None
        options = VerifyOptions(repair=repair, sample=sample, settle=settle)
        report = asyncio.run(_run(deployment, chosen, options, index_prefix))
    if as_json:
        out().out(json.dumps(report.to_json(verbose=verbose)), highlight=False)
    else:
        _print_table(report, verbose)
    if report.drift_left:
        raise SystemExit(EXIT_DRIFT)


async def _run(
    deployment: Deployment, indexes: list[str], options: VerifyOptions, prefix: str | None
) -> VerifyReport:
    from flusso.entrypoints.container import Container, close_resources, provided
    from flusso.entrypoints.settings import RunSettings

    container = Container(
        deployment=deployment, settings=RunSettings(index_prefix=prefix), env=dict(os.environ)
    )
    with _ProgressBar() as progress:
        try:
            container.prefix()  # checked before anything connects
            verifier = await provided(container.verifier, options=options, progress=progress)
            return await verifier.run(indexes)
        finally:
            await close_resources(container)


class _ProgressBar:
    """A bar per index on stderr with an ETA, shown only when stderr is a terminal."""

    def __init__(self) -> None:
        console = err()
        self._progress: Progress | None = None
        if console.is_terminal and sys.stderr.isatty():
            self._progress = Progress(
                TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn(),
                console=console, transient=True,
            )
        self._task: TaskID | None = None

    def __enter__(self) -> _ProgressBar:
        if self._progress is not None:
            self._progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._progress is not None:
            self._progress.stop()

    def index_started(self, sink: str, index: str, total: int | None) -> None:
        if self._progress is not None:
            self._task = self._progress.add_task(f"{sink}/{index}", total=total)

    def advanced(self, count: int) -> None:
        if self._progress is not None and self._task is not None:
            self._progress.advance(self._task, count)

    def index_finished(self, drift: IndexDrift) -> None:
        if self._progress is not None and self._task is not None:
            # The total was an estimate: the bar ends full at what was actually read.
            done = next(t.completed for t in self._progress.tasks if t.id == self._task)
            self._progress.update(self._task, total=done, completed=done)
            self._task = None


def _print_table(report: VerifyReport, verbose: bool) -> None:
    console = out()
    with_sink = len({d.sink for d in report.drifts}) > 1
    table = Table(title="sample" if report.sampled else None)
    table.add_column("index")
    if with_sink:
        table.add_column("sink")
    for name in ("checked", "missing", "stale", "orphaned", "repaired"):
        table.add_column(name, justify="right")
    for drift in report.drifts:
        sink = [drift.sink] if with_sink else []
        table.add_row(
            drift.index, *sink, f"{drift.checked:,}", f"{drift.missing:,}", f"{drift.stale:,}",
            f"{drift.orphaned:,}", f"{drift.repaired:,}",
        )
    console.print(table)
    if verbose:
        for drift in report.drifts:
            for kind, ids in drift.examples.items():
                if ids:
                    console.print(f"{drift.index} {kind}: {', '.join(ids)}")
            for refusal in drift.refusals:
                console.print(f"{drift.index} refused: {refusal}")
            if drift.unsettled:
                console.print(
                    f"{drift.index}: {drift.unsettled} document(s) kept changing while verify "
                    "looked; left to live sync"
                )
    found = sum(d.found for d in report.drifts)
    left = sum(d.left for d in report.drifts)
    where = " in the sample" if report.sampled else ""
    if not found:
        console.print(f"no drift{where}: every index equals the database")
    elif not left:
        console.print(f"drift found{where} and repaired: {found:,} document(s)")
    else:
        hint = "" if report.repair else "; run flusso verify --repair to fix it"
        console.print(f"drift left{where}: {left:,} document(s){hint}")
