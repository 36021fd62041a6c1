"""``sunbid-crypto``: offline tool for bidders, custodians and auditors (投标/开标离线工具).

Seal a bid to the opening key and one's own certificate, open it with a private key, a
handed-over data key, or k of n custodian shares, verify an envelope against its signed
manifest, run an opening-key ceremony, check a receipt. Run ``sunbid-crypto --help``.

Exit codes (stable, for scripts):

====  ==================================================================================
0     success
1     usage error: bad or missing option, unreadable file, malformed argument
2     input refused or verification failed (the error code is printed:
      ``error[envelope_segment_auth]: segment 50 failed authentication``)
3     not enough valid shares to restore the opening key (``not_enough_shares``)
4     the key is not a recipient of this envelope (``envelope_no_matching_recipient``)
5     I/O error while reading or writing files
====  ==================================================================================

Outputs are written to a temporary file next to the target and renamed into place only
on success, so a failed ``open`` never leaves partial plaintext behind.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any, NoReturn

import click
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa, x25519

from crypto import threshold
from crypto.envelope import (
    DEFAULT_SEGMENT_SIZE,
    MAX_SEGMENT_SIZE,
    MIN_SEGMENT_SIZE,
    NoMatchingRecipientError,
    inspect_envelope,
    open_envelope,
    read_header,
    seal,
    unwrap_data_key,
)
from crypto.errors import CryptoError
from crypto.recipients import PrivateKey, Recipient

EXIT_OK = 0
EXIT_USAGE = 1
EXIT_REFUSED = 2
EXIT_NOT_ENOUGH_SHARES = 3
EXIT_NO_RECIPIENT = 4
EXIT_IO = 5

_PROGRESS_MIN = 16 * 1024 * 1024

EXIT_CODES_HELP = """\b
Exit codes:
  0  success
  1  usage error (bad option, unreadable file, malformed argument)
  2  input refused / verification failed (error code printed)
  3  not enough valid shares to restore the opening key
  4  the key is not a recipient of this envelope
  5  I/O error"""


def _exit_code(exc: CryptoError) -> int:
    if isinstance(exc, threshold.NotEnoughSharesError):
        return EXIT_NOT_ENOUGH_SHARES
    if isinstance(exc, NoMatchingRecipientError):
        return EXIT_NO_RECIPIENT
    return EXIT_REFUSED


def _fail(exc: CryptoError) -> NoReturn:
    click.echo(f"error[{exc.code}]: {exc.message}", err=True)
    details = {k: v for k, v in exc.details.items() if v is not None}
    if details:
        click.echo(f"  details: {json.dumps(details, ensure_ascii=False, default=str)}", err=True)
    raise click.exceptions.Exit(_exit_code(exc))


class _UsageError(click.UsageError):
    exit_code = EXIT_USAGE


def _usage(exc: click.UsageError) -> _UsageError:
    if isinstance(exc, _UsageError):
        return exc
    return _UsageError(exc.format_message(), exc.ctx)


class _Group(click.Group):
    """Maps usage errors to exit 1, CryptoError to 2/3/4 and OSError to 5."""

    def make_context(
        self,
        info_name: str | None,
        args: list[str],
        parent: click.Context | None = None,
        **extra: Any,
    ) -> click.Context:
        try:
            return super().make_context(info_name, args, parent, **extra)
        except click.UsageError as exc:
            raise _usage(exc) from None

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except click.UsageError as exc:
            raise _usage(exc) from None
        except CryptoError as exc:
            _fail(exc)
        except OSError as exc:
            click.echo(f"error[io]: {exc}", err=True)
            raise click.exceptions.Exit(EXIT_IO) from exc


# --------------------------------------------------------------------------- helpers


def _read_passphrase(
    passphrase_file: Path | None, ask: bool, confirm: bool = False
) -> bytes | None:
    if passphrase_file is not None:
        return passphrase_file.read_bytes().rstrip(b"\r\n")
    if ask:
        value: str = click.prompt(
            "Passphrase", hide_input=True, confirmation_prompt=confirm, err=True
        )
        return value.encode()
    return None


def _load_private_key(path: Path, passphrase: bytes | None) -> PrivateKey:
    data = path.read_bytes()
    try:
        key = serialization.load_pem_private_key(data, password=passphrase)
    except TypeError as exc:
        raise click.BadParameter(f"{path}: {exc}", param_hint="--key") from exc
    except ValueError as exc:
        raise click.BadParameter(
            f"{path}: not a PEM private key, or wrong passphrase", param_hint="--key"
        ) from exc
    if not isinstance(
        key, x25519.X25519PrivateKey | ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey
    ):
        raise click.BadParameter(
            f"{path}: unsupported key type {type(key).__name__}", param_hint="--key"
        )
    return key


def _load_recipient(path: Path) -> Recipient:
    """A PEM public key, a PEM certificate, or an opening-key ceremony JSON."""
    data = path.read_bytes()
    if b"-----BEGIN CERTIFICATE-----" in data:
        try:
            return x509.load_pem_x509_certificate(data)
        except ValueError as exc:
            raise click.BadParameter(f"{path}: bad certificate", param_hint="--to") from exc
    if data.lstrip().startswith(b"{"):
        ceremony = _load_ceremony(path)
        return ceremony.public_key
    try:
        key = serialization.load_pem_public_key(data)
    except ValueError as exc:
        raise click.BadParameter(
            f"{path}: not a PEM public key, certificate or ceremony file", param_hint="--to"
        ) from exc
    if not isinstance(key, x25519.X25519PublicKey | ec.EllipticCurvePublicKey | rsa.RSAPublicKey):
        raise click.BadParameter(
            f"{path}: unsupported key type {type(key).__name__}", param_hint="--to"
        )
    return key


def _load_ceremony(path: Path) -> threshold.OpeningKeyCeremony:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise click.BadParameter(f"{path}: not JSON", param_hint="--ceremony") from exc
    return threshold.OpeningKeyCeremony.from_dict(data)


def _parse_pairs(values: Sequence[str], option: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in values:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"expected KEY=VALUE, got {item!r}", param_hint=option)
        out[key] = value
    return out


def _parse_hex(value: str | None, option: str, size: int = 32) -> bytes | None:
    if value is None:
        return None
    try:
        raw = bytes.fromhex(value.strip())
    except ValueError as exc:
        raise click.BadParameter("not hex", param_hint=option) from exc
    if len(raw) != size:
        raise click.BadParameter(f"expected {size} bytes of hex", param_hint=option)
    return raw


def _read_data_key(path: Path) -> bytes:
    raw = _parse_hex(path.read_text(encoding="ascii", errors="replace"), "--data-key")
    assert raw is not None
    return raw


@contextmanager
def _atomic_output(path: Path, mode: int = 0o644) -> Iterator[IO[bytes]]:
    """Write to a temporary file beside ``path``; rename into place only on success."""
    directory = path.resolve().parent
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".partial", dir=directory)
    try:
        with os.fdopen(fd, "wb") as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _write_secret(path: Path, data: bytes) -> None:
    with _atomic_output(path, 0o600) as handle:
        handle.write(data)


@contextmanager
def _progress(
    total: int, label: str, enabled: bool | None
) -> Iterator[Callable[[int], None] | None]:
    show = enabled if enabled is not None else total >= _PROGRESS_MIN
    if not show:
        yield None
        return
    with click.progressbar(length=total, label=label, file=sys.stderr, show_eta=True) as bar:
        yield bar.update


def _echo_json(data: Any) -> None:
    click.echo(json.dumps(data, ensure_ascii=False, indent=2, sort_keys=True))


_path_in = click.Path(exists=True, dir_okay=False, path_type=Path)
_path_out = click.Path(dir_okay=False, path_type=Path)
_passphrase_opts = [
    click.option(
        "--passphrase-file",
        type=_path_in,
        help="Read the key passphrase from this file (first line).",
    ),
    click.option("--ask-passphrase", is_flag=True, help="Prompt for the key passphrase."),
]


def _with_passphrase(fn: Callable[..., Any]) -> Callable[..., Any]:
    for opt in reversed(_passphrase_opts):
        fn = opt(fn)
    return fn


_progress_opt = click.option(
    "--progress/--no-progress",
    default=None,
    help="Progress bar on stderr (default: for inputs of 16 MiB or more).",
)


# --------------------------------------------------------------------------- commands


@click.group(cls=_Group, epilog=EXIT_CODES_HELP)
@click.version_option("1", prog_name="sunbid-crypto (envelope format v1)")
def cli() -> None:
    """Sunbid sealed-bid tool (投标文件加密/开标工具): envelopes, opening keys, receipts."""


@cli.command(epilog=EXIT_CODES_HELP)
@click.option(
    "--out",
    "-o",
    "prefix",
    required=True,
    type=_path_out,
    help="Write PREFIX.key (private, PEM) and PREFIX.pub (public, PEM).",
)
@_with_passphrase
def keygen(prefix: Path, passphrase_file: Path | None, ask_passphrase: bool) -> None:
    """Make an X25519 key pair (custodian key, bidder decryption key)."""
    passphrase = _read_passphrase(passphrase_file, ask_passphrase, confirm=True)
    key = x25519.X25519PrivateKey.generate()
    encryption: serialization.KeySerializationEncryption = (
        serialization.BestAvailableEncryption(passphrase)
        if passphrase
        else serialization.NoEncryption()
    )
    private_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption
    )
    public_pem = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    key_path = prefix.with_name(prefix.name + ".key")
    pub_path = prefix.with_name(prefix.name + ".pub")
    _write_secret(key_path, private_pem)
    with _atomic_output(pub_path) as handle:
        handle.write(public_pem)
    click.echo(f"private key: {key_path}")
    click.echo(f"public key:  {pub_path}")
    click.echo(f"fingerprint: {threshold.public_key_fingerprint(key.public_key())}")


@cli.command("seal", epilog=EXIT_CODES_HELP)
@click.argument("src", type=_path_in)
@click.option("--out", "-o", "dst", required=True, type=_path_out, help="Envelope file.")
@click.option(
    "--to",
    "recipients",
    multiple=True,
    required=True,
    type=_path_in,
    help="Recipient: PEM public key (X25519, P-256, RSA), PEM X.509 certificate, "
    "or opening-key ceremony JSON. Repeat for several.",
)
@click.option(
    "--context",
    "contexts",
    multiple=True,
    metavar="KEY=VALUE",
    help="Context field bound into the header, e.g. section_id=..., "
    "opening_key_fingerprint=... Repeatable.",
)
@click.option(
    "--segment-size",
    type=click.IntRange(MIN_SEGMENT_SIZE, MAX_SEGMENT_SIZE),
    default=DEFAULT_SEGMENT_SIZE,
    show_default=True,
)
@click.option(
    "--result",
    "result_path",
    type=_path_out,
    help="Also write the result (manifest fields, header) as JSON here.",
)
@_progress_opt
def seal_cmd(
    src: Path,
    dst: Path,
    recipients: tuple[Path, ...],
    contexts: tuple[str, ...],
    segment_size: int,
    result_path: Path | None,
    progress: bool | None,
) -> None:
    """Seal SRC into an envelope readable by every --to recipient (加密投标文件).

    Prints the values to sign in the bid manifest (ciphertext SHA-256 and size, data key
    commitment, segment size, header SHA-256) as JSON.
    """
    keys = [_load_recipient(p) for p in recipients]
    context = _parse_pairs(contexts, "--context")
    size = src.stat().st_size
    with (
        src.open("rb") as fin,
        _atomic_output(dst) as fout,
        _progress(size, "sealing", progress) as tick,
    ):
        result = seal(fin, fout, keys, context=context, segment_size=segment_size, progress=tick)
    summary = {
        **result.manifest_fields(),
        "header": result.header.fields(),
        "plaintext_size": result.plaintext_size,
        "envelope": str(dst),
    }
    if result_path is not None:
        with _atomic_output(result_path) as handle:
            handle.write(json.dumps(summary, ensure_ascii=False, indent=2).encode() + b"\n")
    _echo_json(summary)


@cli.command("open", epilog=EXIT_CODES_HELP)
@click.argument("envelope", type=_path_in)
@click.option("--out", "-o", "dst", required=True, type=_path_out, help="Plaintext file.")
@click.option(
    "--key",
    "key_path",
    type=_path_in,
    help="Private key (PEM): opening key, bidder key, certificate key.",
)
@click.option(
    "--data-key",
    "data_key_path",
    type=_path_in,
    help="File holding the data key in hex (from `unwrap`).",
)
@click.option(
    "--expect",
    "expects",
    multiple=True,
    metavar="KEY=VALUE",
    help="Refuse unless the header context has this field. Repeatable.",
)
@click.option("--expect-sha256", help="Refuse unless the envelope has this SHA-256 (hex).")
@click.option("--expect-commitment", help="Refuse unless the header has this key commitment.")
@_with_passphrase
@_progress_opt
def open_cmd(
    envelope: Path,
    dst: Path,
    key_path: Path | None,
    data_key_path: Path | None,
    expects: tuple[str, ...],
    expect_sha256: str | None,
    expect_commitment: str | None,
    passphrase_file: Path | None,
    ask_passphrase: bool,
    progress: bool | None,
) -> None:
    """Open ENVELOPE with a private key or a data key (解密投标文件)."""
    if (key_path is None) == (data_key_path is None):
        raise click.UsageError("give exactly one of --key or --data-key")
    private_key = (
        _load_private_key(key_path, _read_passphrase(passphrase_file, ask_passphrase))
        if key_path is not None
        else None
    )
    data_key = _read_data_key(data_key_path) if data_key_path is not None else None
    _open_to(
        envelope, dst, private_key, data_key, expects, expect_sha256, expect_commitment, progress
    )


def _open_to(
    envelope: Path,
    dst: Path,
    private_key: PrivateKey | None,
    data_key: bytes | None,
    expects: Sequence[str],
    expect_sha256: str | None,
    expect_commitment: str | None,
    progress: bool | None,
) -> None:
    size = envelope.stat().st_size
    with (
        envelope.open("rb") as fin,
        _atomic_output(dst, 0o600) as fout,
        _progress(size, "opening", progress) as tick,
    ):
        result = open_envelope(
            fin,
            fout,
            private_key=private_key,
            data_key=data_key,
            expected_context=_parse_pairs(expects, "--expect"),
            expected_ciphertext_sha256=_parse_hex(expect_sha256, "--expect-sha256"),
            expected_key_commitment=_parse_hex(expect_commitment, "--expect-commitment"),
            progress=tick,
        )
    _echo_json(
        {
            "plaintext": str(dst),
            "plaintext_size": result.plaintext_size,
            "segments": result.segment_count,
            "stanza": result.stanza_index,
            **result.manifest_fields(),
            "context": dict(result.header.context),
        }
    )


@cli.command(epilog=EXIT_CODES_HELP)
@click.argument("envelope", type=_path_in)
@click.option("--key", "key_path", required=True, type=_path_in, help="Private key (PEM).")
@click.option(
    "--out",
    "-o",
    "dst",
    type=_path_out,
    help="Write the data key (hex) here (mode 0600) instead of stdout.",
)
@_with_passphrase
def unwrap(
    envelope: Path,
    key_path: Path,
    dst: Path | None,
    passphrase_file: Path | None,
    ask_passphrase: bool,
) -> None:
    """Recover the envelope's data key with one's private key (交出数据密钥).

    Lets a bidder hand over only the key of this one bid, never its private key. Only the
    header is read. The key is checked against the header's commitment.
    """
    key = _load_private_key(key_path, _read_passphrase(passphrase_file, ask_passphrase))
    with envelope.open("rb") as fin:
        header = read_header(fin)
    data_key = unwrap_data_key(header, key)
    line = data_key.hex() + "\n"
    if dst is None:
        click.echo(line, nl=False)
    else:
        _write_secret(dst, line.encode())
        click.echo(f"data key written to {dst}", err=True)


@cli.command(epilog=EXIT_CODES_HELP)
@click.argument("envelope", type=_path_in)
@click.option(
    "--expect",
    "expects",
    multiple=True,
    metavar="KEY=VALUE",
    help="Refuse unless the header context has this field. Repeatable.",
)
@click.option("--expect-sha256", help="Refuse unless the envelope has this SHA-256 (hex).")
@click.option(
    "--manifest",
    "manifest_path",
    type=_path_in,
    help="Signed bid manifest (signed-document JSON with the bidder's certificate): "
    "check its signature and that it describes this envelope.",
)
@click.option(
    "--trust-root",
    "trust_roots",
    multiple=True,
    type=_path_in,
    help="Trusted root CA certificate(s) (PEM) for the manifest signer's chain.",
)
@click.option("--crl", "crls", multiple=True, type=_path_in, help="CRL(s) (PEM).")
@click.option("--at", "at_text", help="Validation time (ISO 8601, UTC); default: now.")
@_progress_opt
def verify(
    envelope: Path,
    expects: tuple[str, ...],
    expect_sha256: str | None,
    manifest_path: Path | None,
    trust_roots: tuple[Path, ...],
    crls: tuple[Path, ...],
    at_text: str | None,
    progress: bool | None,
) -> None:
    """Check ENVELOPE without any key: structure, hash, optionally its signed manifest.

    Segment tags need the data key and are checked by `open`.
    """
    from crypto import pki, signing

    expected_context = _parse_pairs(expects, "--expect")
    expected_sha = _parse_hex(expect_sha256, "--expect-sha256")
    expected_commitment: bytes | None = None
    manifest: signing.BidManifest | None = None
    signer = None
    chain_checked = False
    if manifest_path is not None:
        signed = signing.SignedDocument.from_json(manifest_path.read_bytes())
        manifest = signing.BidManifest.from_document(signed.document)
        cert = signed.certificate
        if cert is None:
            raise click.BadParameter(
                "the manifest has no embedded certificate", param_hint="--manifest"
            )
        if trust_roots:
            at = (
                datetime.fromisoformat(at_text.replace("Z", "+00:00"))
                if at_text
                else datetime.now(UTC)
            )
            signing.verify_manifest(
                manifest,
                signed.signature,
                cert,
                intermediates=signed.intermediates,
                trust_roots=[pki.load_certificate_pem(p.read_bytes()) for p in trust_roots],
                at=at,
                crls=[pki.load_crl_pem(p.read_bytes()) for p in crls],
            )
            chain_checked = True
        else:
            signed.verify_with_key(cert)
        signer = cert.subject.rfc4514_string()
        expected_sha = expected_sha or bytes.fromhex(manifest.ciphertext_sha256)
        expected_commitment = bytes.fromhex(manifest.data_key_commitment)
        expected_context.setdefault("section_id", manifest.section_id)
        expected_context.setdefault("opening_key_fingerprint", manifest.opening_key_fingerprint)
    size = envelope.stat().st_size
    with envelope.open("rb") as fin, _progress(size, "verifying", progress) as tick:
        info = inspect_envelope(
            fin,
            expected_ciphertext_sha256=expected_sha,
            expected_key_commitment=expected_commitment,
            expected_context=expected_context,
            progress=tick,
        )
    if manifest is not None:
        from crypto.envelope import EnvelopeFormatError

        if manifest.ciphertext_size != info.ciphertext_size:
            raise EnvelopeFormatError(
                "envelope size differs from the manifest",
                manifest=manifest.ciphertext_size,
                actual=info.ciphertext_size,
            )
        if manifest.segment_size != info.segment_size:
            raise EnvelopeFormatError(
                "segment size differs from the manifest",
                manifest=manifest.segment_size,
                actual=info.segment_size,
            )
    _echo_json(
        {
            "ok": True,
            **info.manifest_fields(),
            "header": info.header.fields(),
            "plaintext_size": info.plaintext_size,
            "segments": info.segment_count,
            "manifest": None
            if manifest is None
            else {
                "signer": signer,
                "chain_checked": chain_checked,
                "bidder_id": manifest.bidder_id,
                "sealed_at": manifest.sealed_at,
            },
        }
    )
    if manifest is not None and not chain_checked:
        click.echo(
            "warning: signature checked against the embedded certificate only; "
            "pass --trust-root to validate its chain",
            err=True,
        )


@cli.command(epilog=EXIT_CODES_HELP)
@click.option("-k", "k", required=True, type=int, help="Shares needed to open.")
@click.option("-n", "n", required=True, type=int, help="Number of custodians.")
@click.option(
    "--custodian",
    "custodians",
    multiple=True,
    required=True,
    type=_path_in,
    help="Custodian X25519 public key (PEM), in share order. Give n of them.",
)
@click.option("--ceremony-id", required=True, help="Identifier, e.g. the section id.")
@click.option(
    "--out-dir",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Writes ceremony.json, opening.pub and share-<i>.json here.",
)
def split(k: int, n: int, custodians: tuple[Path, ...], ceremony_id: str, out_dir: Path) -> None:
    """Opening-key ceremony (开标密钥生成): make the key, split it k-of-n to custodians.

    The private key is never written: only the public key, the ceremony record (public
    key, fingerprint, encrypted shares, share commitments) and one encrypted share file
    per custodian.
    """
    keys: list[x25519.X25519PublicKey] = []
    for path in custodians:
        key = _load_recipient(path)
        if not isinstance(key, x25519.X25519PublicKey):
            raise click.BadParameter(f"{path}: custodian keys are X25519", param_hint="--custodian")
        keys.append(key)
    ceremony = threshold.generate_opening_key(k, n, keys, ceremony_id=ceremony_id)
    out_dir.mkdir(parents=True, exist_ok=True)
    with _atomic_output(out_dir / "ceremony.json") as handle:
        handle.write(json.dumps(ceremony.to_dict(), indent=2).encode() + b"\n")
    with _atomic_output(out_dir / "opening.pub") as handle:
        handle.write(
            ceremony.public_key.public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
        )
    for share in ceremony.encrypted_shares:
        with _atomic_output(out_dir / f"share-{share.index}.json") as handle:
            handle.write(json.dumps(share.to_dict(), indent=2).encode() + b"\n")
    _echo_json(
        {
            "ceremony_id": ceremony.ceremony_id,
            "k": ceremony.k,
            "n": ceremony.n,
            "fingerprint": ceremony.fingerprint,
            "public_key": str(out_dir / "opening.pub"),
            "ceremony": str(out_dir / "ceremony.json"),
        }
    )


@cli.command("decrypt-share", epilog=EXIT_CODES_HELP)
@click.option("--ceremony", "ceremony_path", required=True, type=_path_in)
@click.option(
    "--key",
    "key_path",
    required=True,
    type=_path_in,
    help="The custodian's X25519 private key (PEM).",
)
@click.option(
    "--out", "-o", "dst", required=True, type=_path_out, help="Decrypted share (JSON, mode 0600)."
)
@_with_passphrase
def decrypt_share(
    ceremony_path: Path,
    key_path: Path,
    dst: Path,
    passphrase_file: Path | None,
    ask_passphrase: bool,
) -> None:
    """Custodian side: decrypt one's own share (保管人解密份额) for `combine --share`."""
    ceremony = _load_ceremony(ceremony_path)
    key = _load_private_key(key_path, _read_passphrase(passphrase_file, ask_passphrase))
    share = _decrypt_own_share(ceremony, key, key_path)
    _write_secret(dst, json.dumps(share.to_dict()).encode() + b"\n")
    click.echo(f"share {share.index} of {ceremony.n} written to {dst}", err=True)


def _decrypt_own_share(
    ceremony: threshold.OpeningKeyCeremony, key: PrivateKey, key_path: Path
) -> threshold.Share:
    if not isinstance(key, x25519.X25519PrivateKey):
        raise click.BadParameter(f"{key_path}: custodian keys are X25519", param_hint="--key")
    own = key.public_key().public_bytes_raw()
    for encrypted in ceremony.encrypted_shares:
        if encrypted.recipient_public_key == own:
            return threshold.decrypt_share(encrypted, key, ceremony)
    raise threshold.ShareInvalidError(
        f"{key_path.name} is not a custodian key of this ceremony", key=str(key_path)
    )


@cli.command(epilog=EXIT_CODES_HELP)
@click.option("--ceremony", "ceremony_path", required=True, type=_path_in)
@click.option(
    "--custodian-key",
    "custodian_keys",
    multiple=True,
    type=_path_in,
    help="A custodian's X25519 private key (PEM): decrypts its share. Repeatable.",
)
@click.option(
    "--share",
    "share_paths",
    multiple=True,
    type=_path_in,
    help="A decrypted share file (from `decrypt-share`). Repeatable.",
)
@click.option(
    "--out-key", type=_path_out, help="Write the restored opening private key (PEM, mode 0600)."
)
@click.option(
    "--open",
    "envelope",
    type=_path_in,
    help="Open this envelope with the restored key (needs --out).",
)
@click.option("--out", "-o", "dst", type=_path_out, help="Plaintext of --open.")
@click.option(
    "--expect",
    "expects",
    multiple=True,
    metavar="KEY=VALUE",
    help="With --open: refuse unless the header context has this field.",
)
@click.option("--expect-sha256", help="With --open: expected envelope SHA-256 (hex).")
@click.option("--expect-commitment", help="With --open: expected key commitment (hex).")
@_progress_opt
def combine(
    ceremony_path: Path,
    custodian_keys: tuple[Path, ...],
    share_paths: tuple[Path, ...],
    out_key: Path | None,
    envelope: Path | None,
    dst: Path | None,
    expects: tuple[str, ...],
    expect_sha256: str | None,
    expect_commitment: str | None,
    progress: bool | None,
) -> None:
    """Restore the opening key from k shares (开标解密), then save it or open an envelope.

    Shares come from custodian private keys (--custodian-key) or from decrypted share
    files (--share). Fewer than k valid shares: exit code 3.
    """
    if out_key is None and envelope is None:
        raise click.UsageError("give --out-key and/or --open")
    if envelope is not None and dst is None:
        raise click.UsageError("--open needs --out")
    ceremony = _load_ceremony(ceremony_path)
    shares: list[threshold.Share] = []
    for path in custodian_keys:
        key = _load_private_key(path, None)
        try:
            shares.append(_decrypt_own_share(ceremony, key, path))
        except threshold.ShareInvalidError as exc:
            click.echo(f"warning[{exc.code}]: {path.name}: {exc.message}", err=True)
    for path in share_paths:
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            shares.append(threshold.Share.from_dict(data))
        except (ValueError, CryptoError) as exc:
            click.echo(f"warning: {path.name}: not a share file ({exc})", err=True)
    opening_key = threshold.combine_shares(shares, ceremony)
    click.echo(
        f"opening key restored ({ceremony.k} of {ceremony.n}), fingerprint {ceremony.fingerprint}",
        err=True,
    )
    if out_key is not None:
        _write_secret(
            out_key,
            opening_key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            ),
        )
    if envelope is not None:
        assert dst is not None
        _open_to(
            envelope, dst, opening_key, None, expects, expect_sha256, expect_commitment, progress
        )


@cli.command("verify-receipt", epilog=EXIT_CODES_HELP)
@click.argument("receipt_path", metavar="RECEIPT", type=_path_in)
@click.option("--platform-cert", type=_path_in, help="The platform's certificate (PEM).")
@click.option("--platform-key", type=_path_in, help="The platform's public key (PEM).")
@click.option(
    "--envelope",
    type=_path_in,
    help="Also check that the receipt's ciphertext hash is this envelope's.",
)
def verify_receipt_cmd(
    receipt_path: Path,
    platform_cert: Path | None,
    platform_key: Path | None,
    envelope: Path | None,
) -> None:
    """Verify a submission receipt (投标回执) offline."""
    from crypto import pki, receipt

    if (platform_cert is None) == (platform_key is None):
        raise click.UsageError("give exactly one of --platform-cert or --platform-key")
    rec = receipt.Receipt.from_json(receipt_path.read_bytes())
    if platform_cert is not None:
        trusted: Any = pki.load_certificate_pem(platform_cert.read_bytes())
    else:
        assert platform_key is not None
        trusted = pki.load_public_key_pem(platform_key.read_bytes())
    receipt.verify_receipt(rec, trusted)
    if envelope is not None:
        with envelope.open("rb") as fin:
            inspect_envelope(fin, expected_ciphertext_sha256=bytes.fromhex(rec.ciphertext_sha256))
    _echo_json({"ok": True, **rec.to_document()})


def main(argv: Sequence[str] | None = None) -> None:
    """Console-script entry point (``sunbid-crypto``)."""
    cli.main(args=list(argv) if argv is not None else None, prog_name="sunbid-crypto")


if __name__ == "__main__":
    main()
