"""Shared fixtures for ``crypto`` tests: a fixed time, a test CA hierarchy, identities.

* ``now`` — the fixed validation time (2025-03-01T08:00:00Z); nothing reads the wall clock.
* ``test_pki`` (session) — root CA (P-256) → intermediate CA (P-256); ``test_pki.issue(...)``
  makes an :class:`Identity` (key, certificate, intermediates) for any role and key kind,
  ``test_pki.crl(...)`` a CRL from the intermediate.
* ``bidder``, ``bidder_ed25519``, ``bidder_rsa``, ``platform_identity`` (session) — ready-made
  identities; the RSA one is RSA-2048 to keep the suite fast.
* ``custodian_keys`` (session) — five X25519 private keys for opening-key ceremonies.
* ``org_codes`` (session) — valid 统一社会信用代码 values used by the identities.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from crypto import pki

NOW = datetime(2025, 3, 1, 8, 0, 0, tzinfo=UTC)
_USCC_CHARS = "0123456789ABCDEFGHJKLMNPQRTUWXY"


def make_org_code(prefix17: str) -> str:
    """Append the GB 32100-2015 check character to 17 characters."""
    total = sum(_USCC_CHARS.index(ch) * pow(3, i, 31) for i, ch in enumerate(prefix17))
    return prefix17 + _USCC_CHARS[(31 - total % 31) % 31]


BIDDER_ORG_CODE = make_org_code("91110108MA01ABCD1")
OTHER_ORG_CODE = make_org_code("91310115MA1K2XYW3")
PLATFORM_ORG_CODE = make_org_code("12110000MB0123456")


@dataclass
class Identity:
    key: pki.SigningPrivateKey
    certificate: x509.Certificate
    intermediates: list[x509.Certificate] = field(default_factory=list)


@dataclass
class TestPKI:
    root_key: pki.SigningPrivateKey
    root: x509.Certificate
    intermediate_key: pki.SigningPrivateKey
    intermediate: x509.Certificate

    __test__ = False  # not a test class

    @property
    def trust_roots(self) -> list[x509.Certificate]:
        return [self.root]

    def issue(
        self,
        role: str = "bidder",
        kind: str = "p256",
        *,
        cn: str = "测试投标人有限公司",
        org_code: str | None = BIDDER_ORG_CODE,
        not_before: datetime = NOW - timedelta(days=30),
        not_after: datetime = NOW + timedelta(days=365),
        key_usage: Sequence[str] = ("digital_signature", "content_commitment"),
        key: pki.SigningPrivateKey | None = None,
    ) -> Identity:
        key = key or pki.generate_key(kind)
        cert = pki.issue_certificate(
            self.intermediate,
            self.intermediate_key,
            cn,
            key.public_key(),
            role=role,
            org_code=org_code,
            not_before=not_before,
            not_after=not_after,
            key_usage=key_usage,
        )
        return Identity(key=key, certificate=cert, intermediates=[self.intermediate])

    def crl(
        self,
        revoked: Sequence[int] = (),
        *,
        this_update: datetime = NOW - timedelta(days=1),
        next_update: datetime = NOW + timedelta(days=7),
    ) -> x509.CertificateRevocationList:
        return pki.create_crl(
            self.intermediate,
            self.intermediate_key,
            revoked,
            this_update=this_update,
            next_update=next_update,
        )


def build_test_pki() -> TestPKI:
    root_key = pki.generate_key("p256")
    root = pki.create_root_ca(
        "Sunbid Test Root CA",
        root_key,
        not_before=NOW - timedelta(days=3650),
        not_after=NOW + timedelta(days=3650),
        organization="Sunbid 测试",
    )
    intermediate_key = pki.generate_key("p256")
    intermediate = pki.issue_intermediate(
        root,
        root_key,
        "Sunbid Test Issuing CA",
        intermediate_key.public_key(),
        not_before=NOW - timedelta(days=1000),
        not_after=NOW + timedelta(days=1000),
    )
    return TestPKI(root_key, root, intermediate_key, intermediate)


@pytest.fixture
def now() -> datetime:
    return NOW


@pytest.fixture(scope="session")
def test_pki() -> TestPKI:
    return build_test_pki()


@pytest.fixture(scope="session")
def bidder(test_pki: TestPKI) -> Identity:
    return test_pki.issue("bidder", "p256")


@pytest.fixture(scope="session")
def bidder_ed25519(test_pki: TestPKI) -> Identity:
    return test_pki.issue("bidder", "ed25519")


@pytest.fixture(scope="session")
def bidder_rsa(test_pki: TestPKI) -> Identity:
    return test_pki.issue("bidder", "rsa2048")


@pytest.fixture(scope="session")
def platform_identity(test_pki: TestPKI) -> Identity:
    return test_pki.issue("platform", "ed25519", cn="Sunbid 交易平台", org_code=PLATFORM_ORG_CODE)


@pytest.fixture(scope="session")
def custodian_keys() -> list[X25519PrivateKey]:
    return [X25519PrivateKey.generate() for _ in range(5)]


@pytest.fixture(scope="session")
def org_codes() -> dict[str, str]:
    """Valid 统一社会信用代码 used by the fixtures (``bidder`` carries ``org_codes["bidder"]``)."""
    return {"bidder": BIDDER_ORG_CODE, "other": OTHER_ORG_CODE, "platform": PLATFORM_ORG_CODE}
