"""Imports under way: a file the browser uploaded, streamed on to the server by a task of its own.

The browser's request ends as soon as the console holds the file, so a long
import neither ties up a request nor stops when the tab closes; the page
polls the upload's progress, and the finished job is in the Task Center
whatever happens to the page.

The server names the import's job in the call's initial metadata as soon
as the job exists, and the page follows that job's progress while it runs. A
file the server refuses ends the call with INVALID_ARGUMENT whose
ResourceInfo detail names the FAILED job it left; that job, with its
reason, is fetched for the page.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import IO

import grpc
from google.rpc import error_details_pb2, status_pb2

from screening.console.backend import ApiError, Backend, api_error
from screening.v1 import screening_pb2 as pb

log = logging.getLogger(__name__)

CHUNK = 1024 * 1024
# An import of millions of rows takes minutes; the server bounds it by its own row limit.
IMPORT_TIMEOUT = 3600.0
# A finished upload's result is kept this long for the page that polls it.
KEEP_FINISHED = 3600.0
# The initial metadata naming the job (screening.api.servicers), and the error detail naming a FAILED one.
IMPORT_JOB_ID = "x-import-job-id"
IMPORT_JOB = "screening.v1.ImportJob"


def failed_job_id(error: grpc.aio.AioRpcError) -> str:
    """The id of the FAILED job a refused import names in its error details, or ""."""
    for key, value in error.trailing_metadata() or ():
        if key != "grpc-status-details-bin" or not isinstance(value, bytes):
            continue
        for detail in status_pb2.Status.FromString(value).details:
            info = error_details_pb2.ResourceInfo()
            if detail.Unpack(info) and info.resource_type == IMPORT_JOB:
                return str(info.resource_name)
    return ""


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
    following: asyncio.Future[None] | None = field(default=None, repr=False)

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
            upload.following = asyncio.ensure_future(self._follow(upload, call))
            upload.job = await call
            upload.job_id = upload.job.id
        except grpc.aio.AioRpcError as error:
            upload.error = api_error(error)
            upload.job_id = failed_job_id(error) or upload.job_id
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

    @staticmethod
    async def _follow(upload: Upload, call: grpc.aio.StreamUnaryCall) -> None:  # type: ignore[type-arg]
        """The job's id, from the call's initial metadata, as soon as the server sends it."""
        with contextlib.suppress(grpc.aio.AioRpcError, asyncio.CancelledError):
            for key, value in await call.initial_metadata() or ():
                if key == IMPORT_JOB_ID and isinstance(value, str):
                    upload.job_id = upload.job_id or value

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
