"""Session-wide processes for the end-to-end tests: one screening service, a
SIPp UAS as the next hop, and Kamailio twice: failing open and failing closed.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest
import testbed
from testbed import Call, Kamailio, Service, SourceSpec, UacRun, Uas, run_uac

import tests.support.profiles  # noqa: F401 - registers and loads the Hypothesis profiles
from screening.v1 import screening_pb2 as pb
from screening.v1 import screening_pb2_grpc as pb_grpc

TENANT = "acme"


@pytest.fixture(scope="session")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    missing = testbed.missing_packages()
    assert not missing, f"install the Debian packages {' '.join(missing)} (make e2e does it)"
    return tmp_path_factory.mktemp("kamailio-e2e")


@pytest.fixture(scope="session")
def service(workdir: Path) -> Iterator[Service]:
    service = Service(workdir).start()
    yield service
    service.stop()


@pytest.fixture(scope="session")
def uas(workdir: Path) -> Iterator[Uas]:
    uas = Uas(workdir).start()
    yield uas
    uas.stop()


@dataclass(frozen=True)
class Ports:
    carrier: int
    pbx: int
    stranger: int
    # Trunks that write numbers their own way, and one trusted to assert the caller.
    de_carrier: int
    us_carrier: int
    trusted: int


@pytest.fixture(scope="session")
def ports() -> Ports:
    return Ports(*(testbed.free_port() for _ in range(6)))


def sources(ports: Ports) -> list[SourceSpec]:
    return [
        SourceSpec("carrier", "inbound", ports.carrier, TENANT),
        SourceSpec("acme-pbx", "outbound", ports.pbx, TENANT, tenant_header="X-Tenant"),
        SourceSpec(
            "de-carrier", "inbound", ports.de_carrier, TENANT, settings=('numbers = "national"', 'country_code = "49"')
        ),
        SourceSpec(
            "us-carrier",
            "inbound",
            ports.us_carrier,
            TENANT,
            settings=(
                'numbers = "national"',
                'country_code = "1"',
                'national_prefix = "1"',
                'international_prefix = "011"',
            ),
        ),
        SourceSpec("trusted", "inbound", ports.trusted, TENANT, settings=('identity = "pai"',)),
    ]


@pytest.fixture(scope="session")
def fail_open(workdir: Path, service: Service, uas: Uas, ports: Ports) -> Iterator[Kamailio]:
    kamailio = Kamailio(
        workdir / "fail-open", target=service.target, next_hop_port=uas.port, sources=sources(ports)
    ).start()
    yield kamailio
    kamailio.stop()


@pytest.fixture(scope="session")
def fail_closed(workdir: Path, service: Service, uas: Uas, ports: Ports) -> Iterator[Kamailio]:
    kamailio = Kamailio(
        workdir / "fail-closed",
        target=service.target,
        next_hop_port=uas.port,
        sources=sources(ports),
        on_failure="closed",
    ).start()
    yield kamailio
    kamailio.stop()


class Admin:
    """The service's gRPC API, as an admin tool would use it."""

    def __init__(
        self, target: str, channel: grpc.Channel | None = None, metadata: tuple[tuple[str, str]] | None = None
    ) -> None:
        self.channel = channel or grpc.insecure_channel(target)
        self.metadata = metadata
        self.admin = pb_grpc.ForbiddenNumberAdminStub(self.channel)
        self.screening = pb_grpc.ScreeningStub(self.channel)

    def create(self, number: str, call_type: pb.CallType, tenant: str = TENANT) -> pb.ForbiddenNumber:
        return self.admin.CreateForbiddenNumber(
            pb.CreateForbiddenNumberRequest(
                forbidden_number=pb.ForbiddenNumber(tenant_id=tenant, number=number, call_type=call_type)
            ),
            timeout=10,
            metadata=self.metadata,
        )

    def set_enabled(self, entry: pb.ForbiddenNumber, enabled: bool) -> None:
        response = self.admin.SetForbiddenNumbersEnabled(
            pb.SetForbiddenNumbersEnabledRequest(tenant_id=entry.tenant_id, ids=[entry.id], enabled=enabled),
            timeout=10,
            metadata=self.metadata,
        )
        assert response.updated_count == 1

    def wait_verdict(self, number: str, direction: pb.Direction, verdict: pb.Verdict, tenant: str = TENANT) -> None:
        """Until the service answers `verdict` (it promises to within 1 s of a change)."""
        deadline = time.monotonic() + 5
        while True:
            response = self.screening.ScreenCall(
                pb.ScreenCallRequest(tenant_id=tenant, number=number, direction=direction),
                timeout=5,
                metadata=self.metadata,
            )
            if response.verdict == verdict:
                return
            assert time.monotonic() < deadline, f"{number}: still {response.verdict}, expected {verdict}"
            time.sleep(0.05)


@pytest.fixture(scope="session")
def admin(service: Service) -> Iterator[Admin]:
    admin = Admin(service.target)
    yield admin
    admin.channel.close()


class Phone:
    """Places one call at a time through a Kamailio from a given source port."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir

    def call(
        self,
        kamailio: Kamailio,
        port: int,
        caller: str,
        callee: str,
        tenant: str = "",
        *,
        from_uri: str = "",
        headers: tuple[str, ...] = (),
        scenario: Path = testbed.UAC,
    ) -> testbed.Result:
        """One call; `from_uri` and `headers` replace the From URI and add INVITE headers."""
        uac = self.workdir / "uac"
        if from_uri or headers:
            scenario = testbed.uac_scenario(uac, from_uri, headers, scenario)
        run: UacRun = run_uac(uac, kamailio.port, port, [Call(caller, callee, tenant)], scenario=scenario)
        assert run.returncode == 0 and len(run.results) == 1, f"SIPp UAC failed ({run.returncode}): {run.log}"
        return run.results[0]


@pytest.fixture(scope="session")
def phone(workdir: Path) -> Phone:
    return Phone(workdir)


@pytest.fixture
def silent_service() -> Iterator[str]:
    """A TCP port that accepts connections and never answers: a hung service."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as listener:
        listener.bind((testbed.HOST, 0))
        listener.listen(64)
        yield f"{testbed.HOST}:{listener.getsockname()[1]}"
