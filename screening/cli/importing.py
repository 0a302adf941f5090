"""`screenctl import`: stream a template file to the server, with a progress bar.

The file is read batch by batch while it is sent, so its size does not
matter. Lines the template reader cannot read (an unknown call type, a time
without its offset) are reported here with their line numbers; the server
reports the rest. A file that is not a template at all (no header, bytes
that are not UTF-8) cancels the stream before it ends, so the server commits
nothing.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from rich.console import Console
from rich.progress import (
    BarColumn,
    Progress,
    ProgressColumn,
    Task,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.text import Text

from screening.cli.connection import CliError, Session
from screening.cli.template import TemplateError, read_template
from screening.v1 import screening_pb2 as pb

BATCH_ROWS = 1000


class RowsPerSecond(ProgressColumn):
    """Rows read so far, and rows per second since the start: while the
    server commits, the rate falls to the import's true overall rate."""

    def render(self, task: Task) -> Text:
        rows = int(task.fields.get("rows", 0))
        seconds = task.elapsed or 0.0
        return Text(f"{rows:,} rows {rows / seconds if seconds > 0 else 0:,.0f} rows/s")


class _CountingLines:
    """The file's lines, counting the bytes handed out (the progress bar's measure)."""

    def __init__(self, raw: BinaryIO) -> None:
        self._raw = raw
        self.consumed = 0

    def __iter__(self) -> Iterator[bytes]:
        for line in self._raw:
            self.consumed += len(line)
            yield line


@dataclass
class Outcome:
    job: pb.ImportJob
    # Lines the reader could not turn into rows; never sent.
    unreadable: list[pb.ImportRowError] = field(default_factory=list)

    @property
    def failed(self) -> int:
        return self.job.failed_count + len(self.unreadable)

    @property
    def complete(self) -> bool:
        return self.job.state == pb.IMPORT_JOB_STATE_SUCCEEDED and self.failed == 0

    def bad_lines(self) -> list[pb.ImportRowError]:
        return sorted([*self.job.errors, *self.unreadable], key=lambda e: e.line)


def import_file(
    session: Session, tenant: str, path: Path, mode: pb.ImportMode, err: Console, show_progress: bool
) -> Outcome:
    try:
        size = path.stat().st_size
        raw = path.open("rb")
    except OSError as exc:
        raise CliError(f"cannot read {str(path)!r}: {exc.strerror or exc}") from None
    unreadable: list[pb.ImportRowError] = []
    broken: list[TemplateError] = []
    reading_failed = threading.Event()
    release = threading.Event()
    progress = Progress(
        TextColumn("{task.description:<10}"),
        BarColumn(bar_width=16),
        TaskProgressColumn(),
        RowsPerSecond(),
        TextColumn("eta"),
        TimeRemainingColumn(),
        TimeElapsedColumn(),
        console=err,
        disable=not show_progress,
    )
    # The bar measures bytes of the file sent; one more unit is the commit,
    # so that the bar (and its elapsed time) ends when the job does.
    total = size + 1
    with raw, progress:
        task = progress.add_task("sending", total=total, rows=0)
        lines = _CountingLines(raw)

        def requests() -> Iterator[pb.ImportForbiddenNumbersRequest]:
            # Runs in gRPC's sending thread; rich's progress is thread-safe.
            yield pb.ImportForbiddenNumbersRequest(
                header=pb.ImportHeader(tenant_id=tenant, mode=mode, source_name=path.name)
            )
            rows = 0
            try:
                for batch in read_template(lines, BATCH_ROWS):  # type: ignore[arg-type]
                    unreadable.extend(batch.errors)
                    rows += len(batch)
                    if batch.rows:
                        yield pb.ImportForbiddenNumbersRequest(rows=pb.ImportRowBatch(rows=batch.rows))
                    progress.update(task, completed=lines.consumed, rows=rows)
            except TemplateError as exc:
                broken.append(exc)
                reading_failed.set()
                # Never end the stream normally: that would commit what was sent.
                release.wait()
                return
            progress.update(task, description="committing", completed=size, rows=rows)

        future = session.admin.ImportForbiddenNumbers.future(requests(), metadata=session.metadata)
        try:
            while not future.done():
                if reading_failed.wait(0.05):
                    future.cancel()
                    raise CliError(f"{path}: {broken[0]}; nothing was imported")
            job = future.result()
        finally:
            if not future.done():
                future.cancel()  # Ctrl-C: the server sees a broken stream and commits nothing
            release.set()
        progress.update(
            task, description="imported" if job.state == pb.IMPORT_JOB_STATE_SUCCEEDED else "failed", completed=total
        )
    return Outcome(job, unreadable)
