"""Test CA toolkit and chain validation: success and every refusal code."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa, x25519

from crypto import pki
from crypto.errors import CryptoError


def test_generate_key_kinds() -> None:
    assert isinstance(pki.generate_key("p256"), ec.EllipticCurvePrivateKey)
    assert isinstance(pki.generate_key("ed25519"), ed25519.Ed25519PrivateKey)
    with pytest.raises(pki.KeyInvalidError):
        pki.generate_key("dsa")


def test_org_code_check() -> None:
    assert pki.is_valid_org_code("91350100M000100Y43")  # published example
    assert pki.is_valid_org_code("91110000802100433B")
    assert not pki.is_valid_org_code("91350100M000100Y44")
    assert not pki.is_valid_org_code("91350100M000100Y4")
    assert not pki.is_valid_org_code("91350100M000100YI3")  # I is not in the alphabet


def test_issued_certificate_attributes(bidder: Any, org_codes: dict[str, str]) -> None:
    cert = bidder.certificate
    assert pki.certificate_role(cert) == "bidder"
    assert pki.certificate_org_code(cert) == org_codes["bidder"]
    ku = cert.extensions.get_extension_for_class(x509.KeyUsage)
    assert ku.critical and ku.value.digital_signature and not ku.value.key_cert_sign
    bc = cert.extensions.get_extension_for_class(x509.BasicConstraints).value
    assert bc.ca is False


def test_issue_refusals(test_pki: Any, now: Any) -> None:
    key = pki.generate_key("ed25519")
    common = {"not_before": now, "not_after": now + timedelta(days=1)}
    with pytest.raises(pki.CertificateInvalidError):
        pki.issue_certificate(
            test_pki.intermediate,
            test_pki.intermediate_key,
            "x",
            key.public_key(),
            role="king",
            **common,
        )
    with pytest.raises(pki.CertificateInvalidError):
        pki.issue_certificate(
            test_pki.intermediate,
            test_pki.intermediate_key,
            "x",
            key.public_key(),
            role="bidder",
            org_code="91350100M000100Y44",
            **common,
        )
    with pytest.raises(pki.CertificateInvalidError):
        pki.issue_certificate(
            test_pki.intermediate,
            test_pki.intermediate_key,
            "x",
            key.public_key(),
            role="bidder",
            key_usage=("key_cert_sign",),
            **common,
        )
    with pytest.raises(pki.CertificateInvalidError):  # key does not match issuer cert
        pki.issue_certificate(
            test_pki.intermediate,
            test_pki.root_key,
            "x",
            key.public_key(),
            role="bidder",
            **common,
        )
    with pytest.raises(pki.CertificateInvalidError):
        pki.issue_certificate(
            test_pki.intermediate,
            test_pki.intermediate_key,
            "x",
            key.public_key(),
            role="bidder",
            not_before=now,
            not_after=now,
        )


@pytest.mark.parametrize("fixture", ["bidder", "bidder_ed25519", "bidder_rsa", "platform_identity"])
def test_verify_chain_ok(
    request: pytest.FixtureRequest, fixture: str, test_pki: Any, now: Any
) -> None:
    ident = request.getfixturevalue(fixture)
    path = pki.verify_chain(
        ident.certificate,
        ident.intermediates,
        test_pki.trust_roots,
        at=now,
        crls=[test_pki.crl()],
    )
    assert path == [ident.certificate, test_pki.intermediate, test_pki.root]


def test_verify_chain_role(bidder: Any, test_pki: Any, now: Any) -> None:
    pki.verify_chain(
        bidder.certificate,
        bidder.intermediates,
        test_pki.trust_roots,
        at=now,
        required_role="bidder",
    )
    with pytest.raises(pki.CertificateRoleError) as err:
        pki.verify_chain(
            bidder.certificate,
            bidder.intermediates,
            test_pki.trust_roots,
            at=now,
            required_role="platform",
        )
    assert err.value.code == "certificate_role"


def _code(exc_info: pytest.ExceptionInfo[CryptoError]) -> str:
    return exc_info.value.code


def test_untrusted_issuer(bidder: Any, test_pki: Any, now: Any) -> None:
    other_root_key = pki.generate_key("p256")
    other_root = pki.create_root_ca(
        "Other Root", other_root_key, not_before=now - timedelta(1), not_after=now + timedelta(1)
    )
    with pytest.raises(pki.CertificateUntrustedError) as err:
        pki.verify_chain(bidder.certificate, bidder.intermediates, [other_root], at=now)
    assert _code(err) == "certificate_untrusted"
    # Missing intermediate: issuer not found.
    with pytest.raises(pki.CertificateUntrustedError) as err:
        pki.verify_chain(bidder.certificate, [], test_pki.trust_roots, at=now)
    assert err.value.details["reason"] == "issuer_not_found"
    # A self-signed certificate that is not a trust root.
    with pytest.raises(pki.CertificateUntrustedError) as err:
        pki.verify_chain(other_root, [], test_pki.trust_roots, at=now, required_key_usage=None)
    assert err.value.details["reason"] == "self_signed_untrusted"
    with pytest.raises(pki.CertificateUntrustedError):
        pki.verify_chain(bidder.certificate, bidder.intermediates, [], at=now)


def test_impostor_intermediate_signature(test_pki: Any, bidder: Any, now: Any) -> None:
    # An intermediate with the same subject name but another key: named, but no signature.
    fake_key = pki.generate_key("p256")
    fake = pki.issue_intermediate(
        test_pki.root,
        test_pki.root_key,
        "Sunbid Test Issuing CA",
        fake_key.public_key(),
        not_before=now - timedelta(1),
        not_after=now + timedelta(1),
    )
    with pytest.raises(pki.CertificateSignatureError) as err:
        pki.verify_chain(bidder.certificate, [fake], test_pki.trust_roots, at=now)
    assert _code(err) == "certificate_signature_invalid"
    # With the real one also offered, the path builder picks the one that verifies.
    pki.verify_chain(
        bidder.certificate, [fake, test_pki.intermediate], test_pki.trust_roots, at=now
    )


def test_expired_and_not_yet_valid(test_pki: Any, now: Any) -> None:
    expired = test_pki.issue(
        not_before=now - timedelta(days=400), not_after=now - timedelta(days=1)
    )
    future = test_pki.issue(not_before=now + timedelta(days=1), not_after=now + timedelta(days=2))
    with pytest.raises(pki.CertificateExpiredError) as err:
        pki.verify_chain(expired.certificate, expired.intermediates, test_pki.trust_roots, at=now)
    assert _code(err) == "certificate_expired"
    with pytest.raises(pki.CertificateNotYetValidError) as err:
        pki.verify_chain(future.certificate, future.intermediates, test_pki.trust_roots, at=now)
    assert _code(err) == "certificate_not_yet_valid"
    # The time is a parameter: the expired certificate was fine when it was valid.
    pki.verify_chain(
        expired.certificate,
        expired.intermediates,
        test_pki.trust_roots,
        at=now - timedelta(days=10),
    )
    # An expired intermediate breaks the path as well.
    with pytest.raises(pki.CertificateExpiredError):
        pki.verify_chain(
            expired.certificate,
            expired.intermediates,
            test_pki.trust_roots,
            at=now + timedelta(days=2000),
        )


def test_naive_time_refused(bidder: Any, test_pki: Any, now: Any) -> None:
    with pytest.raises(pki.CertificateError):
        pki.verify_chain(
            bidder.certificate,
            bidder.intermediates,
            test_pki.trust_roots,
            at=now.replace(tzinfo=None),
        )


def test_revocation(test_pki: Any, now: Any) -> None:
    ident = test_pki.issue()
    serial = ident.certificate.serial_number
    args = (ident.certificate, ident.intermediates, test_pki.trust_roots)
    revoked_crl = test_pki.crl([serial])
    with pytest.raises(pki.CertificateRevokedError) as err:
        pki.verify_chain(*args, at=now, crls=[revoked_crl])
    assert _code(err) == "certificate_revoked"
    # Revoked later than the time of signing: valid as of that earlier time.
    late = pki.create_crl(
        test_pki.intermediate,
        test_pki.intermediate_key,
        {serial: now + timedelta(hours=1)},
        this_update=now + timedelta(hours=1),
        next_update=now + timedelta(days=7),
    )
    pki.verify_chain(*args, at=now, crls=[late])
    with pytest.raises(pki.CertificateRevokedError):
        pki.verify_chain(*args, at=now + timedelta(hours=2), crls=[late])
    # Other serials do not matter.
    pki.verify_chain(*args, at=now, crls=[test_pki.crl([serial + 1])])


def test_crl_refusals(test_pki: Any, bidder: Any, now: Any) -> None:
    args = (bidder.certificate, bidder.intermediates, test_pki.trust_roots)
    stale = test_pki.crl(this_update=now - timedelta(days=10), next_update=now - timedelta(days=3))
    with pytest.raises(pki.CRLExpiredError) as err:
        pki.verify_chain(*args, at=now, crls=[stale])
    assert _code(err) == "crl_expired"
    # A CRL claiming the intermediate's name but signed by another key.
    forged = pki.create_crl(
        test_pki.intermediate,
        test_pki.root_key,
        [],
        this_update=now - timedelta(1),
        next_update=now + timedelta(1),
    )
    with pytest.raises(pki.CRLInvalidError) as err:
        pki.verify_chain(*args, at=now, crls=[forged])
    assert _code(err) == "crl_invalid"
    with pytest.raises(pki.CRLMissingError) as err:
        pki.verify_chain(*args, at=now, require_crl=True)
    assert _code(err) == "crl_missing"
    root_crl = pki.create_crl(
        test_pki.root,
        test_pki.root_key,
        [],
        this_update=now - timedelta(1),
        next_update=now + timedelta(1),
    )
    pki.verify_chain(*args, at=now, crls=[test_pki.crl(), root_crl], require_crl=True)
    # Revoking the intermediate at the root revokes everything under it.
    root_revokes = pki.create_crl(
        test_pki.root,
        test_pki.root_key,
        [test_pki.intermediate.serial_number],
        this_update=now - timedelta(1),
        next_update=now + timedelta(1),
    )
    with pytest.raises(pki.CertificateRevokedError):
        pki.verify_chain(*args, at=now, crls=[root_revokes])


def test_key_usage(test_pki: Any, now: Any) -> None:
    enc_only = test_pki.issue(key_usage=("key_agreement",))
    args = (enc_only.certificate, enc_only.intermediates, test_pki.trust_roots)
    with pytest.raises(pki.CertificateKeyUsageError) as err:
        pki.verify_chain(*args, at=now)
    assert _code(err) == "certificate_key_usage"
    assert err.value.details["missing"] == ["digital_signature"]
    pki.verify_chain(*args, at=now, required_key_usage="key_agreement")
    pki.verify_chain(*args, at=now, required_key_usage=None)


def _leaf_under(
    issuer: x509.Certificate, issuer_key: pki.SigningPrivateKey, now: Any
) -> x509.Certificate:
    return pki.issue_certificate(
        issuer,
        issuer_key,
        "leaf",
        pki.generate_key("ed25519").public_key(),
        role="expert",
        not_before=now - timedelta(1),
        not_after=now + timedelta(1),
    )


def test_path_too_long(test_pki: Any, now: Any) -> None:
    # Root (pathlen 1) → intermediate (pathlen 0) → sub-CA → leaf violates pathlen 0.
    sub_key = pki.generate_key("ed25519")
    sub = pki.issue_intermediate(
        test_pki.intermediate,
        test_pki.intermediate_key,
        "Sub CA",
        sub_key.public_key(),
        not_before=now - timedelta(1),
        not_after=now + timedelta(1),
        path_length=None,
    )
    leaf = _leaf_under(sub, sub_key, now)
    with pytest.raises(pki.CertificatePathTooLongError) as err:
        pki.verify_chain(leaf, [sub, test_pki.intermediate], test_pki.trust_roots, at=now)
    assert _code(err) == "certificate_path_too_long"
    # max_intermediates applies independently of pathLenConstraint.
    with pytest.raises(pki.CertificatePathTooLongError):
        pki.verify_chain(
            leaf, [sub, test_pki.intermediate], test_pki.trust_roots, at=now, max_intermediates=1
        )
    # A chain of unconstrained CAs longer than max_intermediates.
    root_key = pki.generate_key("ed25519")
    root = pki.create_root_ca(
        "Deep Root",
        root_key,
        not_before=now - timedelta(1),
        not_after=now + timedelta(1),
        path_length=None,
    )
    chain, issuer, issuer_key = [], root, root_key
    for i in range(5):
        key = pki.generate_key("ed25519")
        issuer = pki.issue_intermediate(
            issuer,
            issuer_key,
            f"CA {i}",
            key.public_key(),
            not_before=now - timedelta(1),
            not_after=now + timedelta(1),
            path_length=None,
        )
        issuer_key = key
        chain.append(issuer)
    deep_leaf = _leaf_under(issuer, issuer_key, now)
    with pytest.raises(pki.CertificatePathTooLongError):
        pki.verify_chain(deep_leaf, chain, [root], at=now)
    pki.verify_chain(deep_leaf, chain, [root], at=now, max_intermediates=5)


def test_leaf_cannot_act_as_ca(test_pki: Any, bidder: Any, now: Any) -> None:
    # A certificate issued by a non-CA leaf (bidder key signing a "certificate").
    leaf = _leaf_under(bidder.certificate, bidder.key, now)
    with pytest.raises(pki.CertificateInvalidError) as err:
        pki.verify_chain(
            leaf, [bidder.certificate, *bidder.intermediates], test_pki.trust_roots, at=now
        )
    assert _code(err) == "certificate_invalid"


def test_pem_roundtrips(bidder: Any, test_pki: Any) -> None:
    for passphrase in (None, b"correct horse"):
        pem = pki.private_key_to_pem(bidder.key, passphrase)
        loaded = pki.load_private_key_pem(pem, passphrase)
        assert loaded.public_key() == bidder.key.public_key()
    encrypted = pki.private_key_to_pem(bidder.key, b"pw")
    with pytest.raises(pki.KeyInvalidError):
        pki.load_private_key_pem(encrypted, b"wrong")
    with pytest.raises(pki.KeyInvalidError):
        pki.load_private_key_pem(encrypted, None)
    with pytest.raises(pki.KeyInvalidError):
        pki.load_private_key_pem(b"not a key")
    xkey = x25519.X25519PrivateKey.generate()
    xpem = pki.private_key_to_pem(xkey, b"pw")
    assert pki.load_x25519_private_key_pem(xpem, b"pw").public_key() == xkey.public_key()
    with pytest.raises(pki.KeyInvalidError):
        pki.load_private_key_pem(xpem, b"pw")
    with pytest.raises(pki.KeyInvalidError):
        pki.load_x25519_private_key_pem(pki.private_key_to_pem(bidder.key))
    small_rsa = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    with pytest.raises(pki.KeyInvalidError):
        pki.load_private_key_pem(pki.private_key_to_pem(small_rsa))  # type: ignore[arg-type]

    assert (
        pki.load_public_key_pem(pki.public_key_to_pem(bidder.key.public_key()))
        == bidder.key.public_key()
    )
    bundle = pki.certificate_to_pem(bidder.certificate) + pki.certificate_to_pem(
        test_pki.intermediate
    )
    assert pki.load_certificates_pem(bundle) == [bidder.certificate, test_pki.intermediate]
    assert (
        pki.load_certificate_pem(pki.certificate_to_pem(bidder.certificate)) == bidder.certificate
    )
    with pytest.raises(pki.CertificateInvalidError):
        pki.load_certificate_pem(bundle)
    crl = test_pki.crl([5])
    assert pki.load_crl_pem(pki.crl_to_pem(crl)) == crl
    with pytest.raises(pki.CRLInvalidError):
        pki.load_crl_pem(b"-----BEGIN X509 CRL-----\nAAAA\n-----END X509 CRL-----\n")


def test_key_id_is_spki_sha256(bidder: Any) -> None:
    assert pki.key_id(bidder.certificate) == pki.key_id(bidder.key.public_key())
    assert len(pki.key_id(bidder.certificate)) == 64
