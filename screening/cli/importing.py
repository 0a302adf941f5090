"""`screenctl import`: send a file (CSV or xlsx) to the server, which reads it, with a progress bar.

The file goes as it is, in chunks: the server reads and checks every cell,
so screenctl, the console and any other client get the same results, and
every bad line is kept with the job. Ctrl-C or a lost connection cancels
the stream before it ends, and the server commits nothing.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)

from screening.cli.connection import CliError, Session
from screening.v1 import screening_pb2 as pb

CHUNK_BYTES = 1024 * 1024
_XLSX_MAGIC = b"PK\x03\x04"


def file_format(path: Path, head: bytes) -> pb.FileFormat:
    """From the content (a workbook is a zip archive), else from the name."""
    if head.startswith(_XLSX_MAGIC) or path.suffix.lower() in (".xlsx", ".xlsm"):
        return pb.FILE_FORMAT_XLSX
    return pb.FILE_FORMAT_CSV


def import_file(
    session: Session,
    tenant: str,
    path: Path,
    mode: pb.ImportMode,
    time_zone: str,
    err: Console,
    show_progress: bool,
) -> pb.ImportJob:
    try:
        size = path.stat().st_size
        raw = path.open("rb")
    except OSError as exc:
        raise CliError(f"cannot read {str(path)!r}: {exc.strerror or exc}") from None
    progress = Progress(
        TextColumn("{task.description:<10}"),
        BarColumn(bar_width=16),
        TaskProgressColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TextColumn("eta"),
        TimeRemainingColumn(),
        TimeElapsedColumn(),
        console=err,
        disable=not show_progress,
    )
    with raw, progress:
        head = raw.read(len(_XLSX_MAGIC))
        raw.seek(0)
        task = progress.add_task("sending", total=size)

        def requests() -> Iterator[pb.ImportForbiddenNumbersRequest]:
            # Runs in gRPC's sending thread; rich's progress is thread-safe.
            yield pb.ImportForbiddenNumbersRequest(
                header=pb.ImportHeader(
                    tenant_id=tenant,
                    mode=mode,
                    source_name=path.name,
                    file_format=file_format(path, head),
                    file_size=size,
                    time_zone=time_zone,
                )
            )
            while chunk := raw.read(CHUNK_BYTES):
                yield pb.ImportForbiddenNumbersRequest(file_chunk=chunk)
                progress.advance(task, len(chunk))
            progress.update(task, description="importing")

        future = session.admin.ImportForbiddenNumbers.future(requests(), metadata=session.metadata)
        try:
            job: pb.ImportJob = future.result()
        finally:
            if not future.done():
                future.cancel()  # Ctrl-C: the server sees a broken stream and commits nothing
        progress.update(task, description="imported" if job.state == pb.IMPORT_JOB_STATE_SUCCEEDED else "failed")
    return job


def download_failed_rows(session: Session, tenant: str, job_id: str, path: Path, force: bool) -> str:
    """Write a job's failed rows to `path`; returns the server's suggested name."""
    stream = session.admin.GetImportJobFailedRows(
        pb.GetImportJobFailedRowsRequest(tenant_id=tenant, id=job_id), metadata=session.metadata
    )
    suggested = ""
    with path.open("wb" if force else "xb") as out:
        for chunk in stream:
            if chunk.file_name:
                suggested = chunk.file_name
            out.write(chunk.data)
    return suggested
