"""SigV4 query presigning with signed headers (bidding.core.storage.sigv4)."""

from __future__ import annotations

import base64
import hashlib
from datetime import UTC, datetime
from urllib.parse import parse_qs, urlsplit

from minio.credentials import Credentials
from minio.signer import presign_v4

from bidding.core.storage import sigv4

AKID = "AKIAIOSFODNN7EXAMPLE"
SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"


def test_matches_the_aws_worked_example() -> None:
    # AWS docs, "Authenticating Requests: Using Query Parameters (AWS Signature Version 4)"
    url = sigv4.presign(
        method="GET",
        scheme="https",
        host="examplebucket.s3.amazonaws.com",
        path="/test.txt",
        access_key=AKID,
        secret_key=SECRET,
        region="us-east-1",
        expires=86400,
        now=datetime(2013, 5, 24, tzinfo=UTC),
    )
    assert url.endswith(
        "X-Amz-Signature=aeeed9bbccd4d02ee5c0109b86d86835f995330da4c265957d157751f604d404"
    )


def test_host_only_matches_the_minio_presigner() -> None:
    at = datetime(2026, 11, 26, 8, 30, 5, tzinfo=UTC)
    ours = sigv4.presign(
        method="PUT",
        scheme="http",
        host="127.0.0.1:9000",
        path="/bucket/bids/a-b/c_d.1",
        access_key="k",
        secret_key="s",
        region="us-east-1",
        expires=900,
        now=at,
    )
    theirs = presign_v4(
        method="PUT",
        url=urlsplit("http://127.0.0.1:9000/bucket/bids/a-b/c_d.1"),
        region="us-east-1",
        credentials=Credentials("k", "s"),
        date=at,
        expires=900,
    )
    assert parse_qs(urlsplit(ours).query) == parse_qs(theirs.query)


def test_checksum_header_is_signed_and_changes_the_signature() -> None:
    digest = hashlib.sha256(b"sealed bid").hexdigest()
    header = sigv4.checksum_sha256_header(digest)
    assert header == {
        "x-amz-checksum-sha256": base64.b64encode(hashlib.sha256(b"sealed bid").digest()).decode()
    }
    common = {
        "method": "PUT",
        "scheme": "http",
        "host": "minio:9000",
        "path": "/b/k",
        "access_key": "k",
        "secret_key": "s",
        "region": "us-east-1",
        "expires": 60,
        "now": datetime(2026, 11, 26, tzinfo=UTC),
    }
    bound = parse_qs(urlsplit(sigv4.presign(**common, headers=header)).query)  # type: ignore[arg-type]
    other = sigv4.checksum_sha256_header(hashlib.sha256(b"other").hexdigest())
    rebound = parse_qs(urlsplit(sigv4.presign(**common, headers=other)).query)  # type: ignore[arg-type]
    plain = parse_qs(urlsplit(sigv4.presign(**common)).query)  # type: ignore[arg-type]
    assert bound["X-Amz-SignedHeaders"] == ["host;x-amz-checksum-sha256"]
    assert plain["X-Amz-SignedHeaders"] == ["host"]
    signatures = {q["X-Amz-Signature"][0] for q in (bound, rebound, plain)}
    assert len(signatures) == 3  # the declared checksum is part of what is signed
