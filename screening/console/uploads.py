"""Imports under way: a file the browser uploaded, streamed on to the server by a task of its own.

The browser's request ends as soon as the console holds the file, so a long
import neither ties up a request nor stops when the tab closes; the page
polls the upload's progress, and the finished job is in the Task Center
whatever happens to the page.

The server answers an import only when it ends, so while it runs the page
finds its job in ListImportJobs (this person's newest running job of this
file and size) to show the rows read. A file the server refuses ends the
call with INVALID_ARGUMENT naming the FAILED job it left; that job, with its
reason, is fetched for the page.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import secrets
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import IO

import grpc

from screening.console.backend import ApiError, Backend, api_error
from screening.v1 import screening_pb2 as pb

log = logging.getLogger(__name__)

CHUNK = 1024 * 1024
# An import of millions of rows takes minutes; the server bounds it by its own row limit.
IMPORT_TIMEOUT = 3600.0
# A finished upload's result is kept this long for the page that polls it.
KEEP_FINISHED = 3600.0
# "...; import job 0b9c...-... FAILED, nothing was imported" (screening.usecases.imports).
_FAILED_JOB = re.compile(r"import job ([0-9a-fA-F-]{36}) FAILED")


def failed_job_id(message: str) -> str:
    """The id of the FAILED job a refused import names in its error, or ""."""
    found = _FAILED_JOB.search(message)
    return found.group(1) if found else ""


@dataclass
class Upload:
    id: str
    session_id: str
    tenant: str
    file_name: str
    file_size: int
    started: float = field(default_factory=time.time)
    sent: int = 0
    # The server's job, once found (while it runs) or returned (when it ends).
    job_id: str = ""
    job: pb.ImportJob | None = None
    error: ApiError | None = None
    finished: float | None = None
    task: asyncio.Task[None] | None = field(default=None, repr=False)

    @property
    def done(self) -> bool:
        return self.finished is not None

    @property
    def percent(self) -> int:
        return 100 if not self.file_size else min(100, self.sent * 100 // self.file_size)


class Uploads:
    def __init__(self, backend: Backend) -> None:
        self._backend = backend
        self._by_id: dict[str, Upload] = {}

    def start(
        self,
        *,
        session_id: str,
        token: str | None,
        header: pb.ImportHeader,
        file: IO[bytes],
    ) -> Upload:
        self._forget_old()
        upload = Upload(
            id=secrets.token_urlsafe(12),
            session_id=session_id,
            tenant=header.tenant_id,
            file_name=header.source_name,
            file_size=header.file_size,
        )
        upload.task = asyncio.create_task(self._run(upload, token, header, file))
        self._by_id[upload.id] = upload
        return upload

    def claimed(self, job_id: str) -> bool:
        """Whether an upload of this console already follows this job."""
        return any(u.job_id == job_id for u in self._by_id.values())

    def get(self, upload_id: str, session_id: str, tenant: str) -> Upload | None:
        upload = self._by_id.get(upload_id)
        # Another person's upload is none of this session's business.
        if upload is None or upload.session_id != session_id or upload.tenant != tenant:
            return None
        return upload

    async def _run(self, upload: Upload, token: str | None, header: pb.ImportHeader, file: IO[bytes]) -> None:
        async def requests() -> AsyncIterator[pb.ImportForbiddenNumbersRequest]:
            yield pb.ImportForbiddenNumbersRequest(header=header)
            while chunk := file.read(CHUNK):
                upload.sent += len(chunk)
                yield pb.ImportForbiddenNumbersRequest(file_chunk=chunk)

        try:
            call = self._backend.admin.ImportForbiddenNumbers(
                requests(), metadata=Backend.metadata(token), timeout=IMPORT_TIMEOUT
            )
            upload.job = await call
            upload.job_id = upload.job.id
        except grpc.aio.AioRpcError as error:
            upload.error = api_error(error)
            upload.job_id = failed_job_id(upload.error.message) or upload.job_id
            if upload.job_id:
                # The FAILED job, for its reason as the Task Center shows it.
                with contextlib.suppress(ApiError):
                    upload.job = await self._backend.call(
                        "GetImportJob", pb.GetImportJobRequest(tenant_id=upload.tenant, id=upload.job_id), token
                    )
        except asyncio.CancelledError:
            upload.error = ApiError(grpc.StatusCode.CANCELLED, "the console stopped before the import ended")
            raise
        except Exception as error:  # the page must hear of every failure
            log.exception("import upload failed")
            upload.error = ApiError(grpc.StatusCode.INTERNAL, f"{type(error).__name__}: {error}")
        finally:
            upload.finished = time.time()
            file.close()

    def _forget_old(self) -> None:
        now = time.time()
        for old in [u for u in self._by_id.values() if u.finished is not None and now - u.finished > KEEP_FINISHED]:
            del self._by_id[old.id]

    async def close(self) -> None:
        tasks = [u.task for u in self._by_id.values() if u.task is not None and not u.task.done()]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
