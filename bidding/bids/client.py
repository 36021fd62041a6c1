"""The bidder's client (投标客户端): ``sunbid bid seal | submit | status | withdraw |
verify-receipt``.

* ``seal DIR --price-sheet SHEET.json --project P --section S --cert C.pem --key K.pem
  -o BID.env`` builds the bid package (``bidding.bids.package``: the price sheet and every
  file of DIR), seals it with ``crypto.envelope`` to the section's opening public key
  (fetched from the API, or ``--opening-key HEX``) *and* to the bidder's own certificate,
  and signs the manifest with the bidder's key. Writes ``BID.env`` and ``BID.env.bid.json``
  (project, section, manifest, signature, certificate chain). The plaintext ZIP exists only
  as a temporary 0600 file beside the output and is removed.
* ``submit BID.env`` uploads and commits with an ``Idempotency-Key``: up to
  ``--stream-max-mb`` (64) in one request that streams the envelope through the API and
  commits it (``PUT …/bids/submit``; if the server streams less, the client falls back to
  the presigned PUT); otherwise one presigned PUT straight to the object store up to
  ``--single-put-max-mb``, else presigned multipart, then the commit. Progress is kept in
  ``BID.env.state.json`` (upload key, upload id, commit key): re-running after a network
  fault resumes the upload (only missing parts are sent; a single PUT or the one-request
  submit is sent again, which is harmless) and retries the commit with the same key, so
  the bid is neither duplicated nor lost. The receipt is written to
  ``BID.env.receipt.json``.
* ``status``, ``withdraw BID_ID``, ``verify-receipt RECEIPT.json`` (signature with the
  platform key from ``--platform-key`` or the API, optional ``--envelope`` hash check and
  ``--proof`` inclusion check against the receipt's tree head).

HTTP goes through ``urllib3`` (already installed with ``minio``); no extra dependency.
Exit codes as ``crypto/CLI.md``: 0 success, 1 usage (bad option, missing file, unreadable
key), 2 refused or verification failed (``error[code]: message`` from the server or the
check), 5 I/O or network error (re-run ``submit`` to resume).
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import os
import sys
import tempfile
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any, NoReturn, Protocol

import click

EXIT_USAGE = 1
#: Envelopes up to this size (MiB) are streamed through the API and committed in the same
#: request (PUT …/bids/submit); above it one presigned PUT goes straight to the object
#: store, then the commit, and above DEFAULT_SINGLE_PUT_MAX_MB presigned multipart. The
#: server streams up to SUNBID_BID_STREAM_MAX_MB (64 by default; when it says less, the
#: client falls back to the presigned PUT). Measured on 200 × 20 MB bids
#: (tests/bench/bench_deadline_rush.py): see the README.
DEFAULT_STREAM_MAX_MB = 64
DEFAULT_SINGLE_PUT_MAX_MB = 512
EXIT_REFUSED = 2
EXIT_IO = 5


class ClientError(Exception):
    def __init__(self, exit_code: int, code: str, message: str, details: Any = None) -> None:
        super().__init__(message)
        self.exit_code = exit_code
        self.code = code
        self.message = message
        self.details = details


def _fail(err: ClientError) -> NoReturn:
    click.echo(f"error[{err.code}]: {err.message}", err=True)
    if err.details:
        click.echo(json.dumps(err.details, ensure_ascii=False), err=True)
    sys.exit(err.exit_code)


# --------------------------------------------------------------------------- transport


@dataclass
class HttpResponse:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body.decode("utf-8")) if self.body else None


class Transport(Protocol):
    def __call__(
        self,
        method: str,
        url: str,
        *,
        body: bytes | IO[bytes] | None = None,
        headers: dict[str, str] | None = None,
    ) -> HttpResponse: ...


def urllib3_transport(timeout: float = 300.0) -> Transport:
    import urllib3

    pool = urllib3.PoolManager(retries=False, timeout=urllib3.Timeout(connect=15, read=timeout))

    def send(
        method: str,
        url: str,
        *,
        body: bytes | IO[bytes] | None = None,
        headers: dict[str, str] | None = None,
    ) -> HttpResponse:
        try:
            r = pool.request(method, url, body=body, headers=headers or {}, preload_content=True)
        except urllib3.exceptions.HTTPError as exc:
            raise ClientError(
                EXIT_IO, "network_error", f"网络错误：{exc}（可重新运行以续传）"
            ) from exc
        return HttpResponse(r.status, {k.lower(): v for k, v in r.headers.items()}, r.data)

    return send


class Api:
    """The few API calls the client makes."""

    def __init__(self, base_url: str, token: str | None, transport: Transport) -> None:
        self.base = base_url.rstrip("/")
        self.token = token
        self.transport = transport

    def url(self, path: str) -> str:
        return path if path.startswith(("http://", "https://")) else self.base + path

    def call(
        self,
        method: str,
        path: str,
        *,
        json_body: Any = None,
        body: bytes | IO[bytes] | None = None,
        headers: dict[str, str] | None = None,
        auth: bool = True,
        ok: tuple[int, ...] = (200, 201),
    ) -> HttpResponse:
        h = dict(headers or {})
        if auth and self.token:
            h["Authorization"] = f"Bearer {self.token}"
        if json_body is not None:
            body = json.dumps(json_body, ensure_ascii=False).encode("utf-8")
            h["Content-Type"] = "application/json"
        response = self.transport(method, self.url(path), body=body, headers=h)
        if response.status not in ok:
            try:
                data = response.json() or {}
            except ValueError:
                data = {}
            raise ClientError(
                EXIT_IO if response.status >= 500 else EXIT_REFUSED,
                str(data.get("code", f"http_{response.status}")),
                str(data.get("message", response.body[:200].decode("utf-8", "replace"))),
                data.get("details"),
            )
        return response


def section_path(project: str, section: str) -> str:
    return f"/api/v1/projects/{project}/sections/{section}"


# --------------------------------------------------------------------------- seal


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise ClientError(EXIT_USAGE, "file_not_found", f"无法读取文件 {path}：{exc}") from exc


def seal_bid(
    directory: Path,
    price_sheet_path: Path,
    *,
    project_id: str,
    section_id: str,
    opening_public_key: bytes,
    opening_fingerprint: str,
    cert_pem: bytes,
    key_pem: bytes,
    out: Path,
    passphrase: bytes | None = None,
    segment_size: int | None = None,
    progress: Callable[[int], None] | None = None,
) -> dict[str, Any]:
    """Package, seal and sign; returns the ``.bid.json`` content (also written)."""
    from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PublicKey

    from bidding.bids.package import build_bid_package
    from crypto.canonical import format_utc
    from crypto.envelope import DEFAULT_SEGMENT_SIZE, seal
    from crypto.errors import CryptoError
    from crypto.pki import certificate_org_code, load_certificates_pem, load_private_key_pem
    from crypto.signing import BidManifest, sign_manifest

    try:
        certs = load_certificates_pem(cert_pem)
        key = load_private_key_pem(key_pem, passphrase)
        opening = X25519PublicKey.from_public_bytes(opening_public_key)
    except (CryptoError, ValueError) as exc:
        raise ClientError(
            EXIT_USAGE, "key_unreadable", f"证书、私钥或开标公钥无法读取：{exc}"
        ) from exc
    leaf = certs[0]
    org_code = certificate_org_code(leaf) or ""
    sheet = json.loads(_read(price_sheet_path).decode("utf-8"))
    sheet.setdefault("type", "sunbid.price-sheet")
    sheet.setdefault("version", 1)
    sheet.setdefault("currency", "CNY")
    sheet.setdefault("section_id", section_id)
    sheet.setdefault("bidder_credit_code", org_code)
    files = sorted(p for p in directory.iterdir() if p.is_file())
    if not files:
        raise ClientError(EXIT_USAGE, "no_documents", f"{directory} 中没有投标文件。")
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_zip = tempfile.mkstemp(dir=out.parent, prefix=".bid-", suffix=".zip")
    os.close(fd)
    tmp_env = out.with_name(out.name + ".tmp")
    try:
        try:
            build_bid_package(sheet, files, tmp_zip)
        except Exception as exc:
            code = getattr(exc, "code", "price_sheet_invalid")
            raise ClientError(
                EXIT_REFUSED, str(code), str(exc), getattr(exc, "details", None)
            ) from exc
        with open(tmp_zip, "rb") as src, open(tmp_env, "wb") as dst:
            result = seal(
                src,
                dst,
                [opening, leaf],
                context={"section_id": section_id, "opening_key_fingerprint": opening_fingerprint},
                segment_size=segment_size or DEFAULT_SEGMENT_SIZE,
                progress=progress,
            )
        manifest = BidManifest(
            section_id=section_id,
            bidder_id=org_code,
            ciphertext_sha256=result.ciphertext_sha256.hex(),
            ciphertext_size=result.ciphertext_size,
            data_key_commitment=result.key_commitment.hex(),
            segment_size=result.segment_size,
            opening_key_fingerprint=opening_fingerprint,
            sealed_at=format_utc(datetime.now(UTC).replace(microsecond=0)),
        )
        signature = sign_manifest(key, manifest)
        tmp_env.replace(out)
    except CryptoError as exc:
        raise ClientError(EXIT_REFUSED, exc.code, exc.message, exc.details) from exc
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp_zip)
        with contextlib.suppress(FileNotFoundError):
            tmp_env.unlink()
    bid = {
        "project_id": project_id,
        "section_id": section_id,
        "manifest": manifest.to_document(),
        "signature": base64.b64encode(signature).decode("ascii"),
        "certificate_chain": [_pem(c) for c in certs],
    }
    _write_json(_sidecar(out, "bid"), bid)
    return bid


def _pem(cert: Any) -> str:
    from crypto.pki import certificate_to_pem

    return certificate_to_pem(cert).decode("ascii")


def _sidecar(envelope: Path, what: str) -> Path:
    return envelope.with_name(f"{envelope.name}.{what}.json")


def _write_json(path: Path, data: Any) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, ensure_ascii=False, indent=2), encoding="utf-8")
    tmp.replace(path)


# --------------------------------------------------------------------------- submit


class _ProgressReader:
    """A file wrapper that reports bytes read (for the upload progress bar); ``prefix``
    is sent first (not counted: the bar measures the file)."""

    def __init__(
        self, fh: IO[bytes], progress: Callable[[int], None] | None, *, prefix: bytes = b""
    ) -> None:
        self.fh = fh
        self.progress = progress
        self.prefix = prefix

    def read(self, n: int = -1) -> bytes:
        if self.prefix and n is not None and n >= 0:
            head, self.prefix = self.prefix[:n], self.prefix[n:]
            return head
        head, self.prefix = self.prefix, b""
        data = self.fh.read(n)
        if head:
            if data and self.progress is not None:
                self.progress(len(data))
            return head + data
        if data and self.progress is not None:
            self.progress(len(data))
        return data


def _sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(1024 * 1024):
            digest.update(chunk)
    return digest.hexdigest()


def submit_bid(
    api: Api,
    envelope: Path,
    *,
    stream_max: int = DEFAULT_STREAM_MAX_MB << 20,
    single_max: int = DEFAULT_SINGLE_PUT_MAX_MB << 20,
    progress: Callable[[int], None] | None = None,
) -> dict[str, Any]:
    """Upload (resumably) and commit; returns the server's commit response."""
    bid = json.loads(_read(_sidecar(envelope, "bid")).decode("utf-8"))
    state_path = _sidecar(envelope, "state")
    state: dict[str, Any] = json.loads(state_path.read_text("utf-8")) if state_path.exists() else {}
    size = envelope.stat().st_size
    sha = state.get("sha256") or _sha256_file(envelope)
    if state.get("sha256") not in (None, sha) or state.get("size") not in (None, size):
        raise ClientError(
            EXIT_USAGE, "state_mismatch", "状态文件与投标文件不符，请删除状态文件后重试。"
        )
    state.update(sha256=sha, size=size)
    state.setdefault("upload_key", uuid.uuid4().hex)
    state.setdefault("commit_key", uuid.uuid4().hex)
    if not state.get("uploaded") and not state.get("method"):
        state["method"] = _upload_method(state, size, stream_max, single_max)
    # the keys and the method are on disk before any request uses them (a re-run resumes
    # with them)
    _write_json(state_path, state)
    base = section_path(bid["project_id"], bid["section_id"]) + "/bids"

    document = {
        "manifest": bid["manifest"],
        "signature": bid["signature"],
        "certificate_chain": bid["certificate_chain"],
    }
    if not state.get("uploaded") and state["method"] == "stream":
        # one request streams the envelope and commits it (a re-run sends it again with
        # the same keys: the server answers with the bid if the first one was accepted)
        prefix = json.dumps(document, separators=(",", ":")).encode("utf-8")
        prefix = len(prefix).to_bytes(4, "big") + prefix
        try:
            with envelope.open("rb") as fh:
                r = api.call(
                    "PUT",
                    f"{base}/submit/{state['upload_key']}?sha256={sha}",
                    body=_ProgressReader(fh, progress, prefix=prefix),  # type: ignore[arg-type]
                    headers={
                        "Content-Type": "application/octet-stream",
                        "Content-Length": str(len(prefix) + size),
                        "Idempotency-Key": state["commit_key"],
                    },
                )
            return _committed(envelope, state, state_path, r.json())
        except ClientError as err:
            if err.code != "upload_too_large":
                raise
            # the platform streams less than this client assumed: go straight to storage
            state["method"] = "single" if size <= single_max else "multipart"
            _write_json(state_path, state)

    if not state.get("uploaded"):
        method = state["method"]
        if method == "single":
            _single_put(api, base, envelope, state, state_path, progress)
        else:
            _multipart(api, base, envelope, state, state_path, progress)
        state["uploaded"] = True
        _write_json(state_path, state)

    r = api.call(
        "POST",
        base,
        json_body={"upload_id": state["upload_id"], **document},
        headers={"Idempotency-Key": state["commit_key"]},
    )
    return _committed(envelope, state, state_path, r.json())


def _committed(
    envelope: Path, state: dict[str, Any], state_path: Path, result: dict[str, Any]
) -> dict[str, Any]:
    """Keep the receipt beside the envelope and the bid's id in the state file."""
    _write_json(_sidecar(envelope, "receipt"), result["receipt"])
    state["bid_id"] = result["bid"]["id"]
    _write_json(state_path, state)
    return result


def _upload_method(state: dict[str, Any], size: int, stream_max: int, single_max: int) -> str:
    if state.get("multipart"):  # a state file of an earlier client version
        return "multipart"
    if size <= stream_max:
        return "stream"
    return "single" if size <= single_max else "multipart"


def _single_put(
    api: Api,
    base: str,
    envelope: Path,
    state: dict[str, Any],
    state_path: Path,
    progress: Callable[[int], None] | None,
) -> None:
    """One presigned PUT of the whole envelope (starting again with the same upload key
    returns the same session and a fresh URL; a second PUT of the same bytes is harmless)."""
    ticket = api.call(
        "POST",
        f"{base}/uploads",
        json_body={
            "size": state["size"],
            "sha256": state["sha256"],
            "client_key": state["upload_key"],
            "method": "single",
        },
    ).json()
    state["upload_id"] = ticket["upload"]["id"]
    _write_json(state_path, state)  # the session's id, for the record (a re-run needs only its key)
    with envelope.open("rb") as fh:
        api.call(
            "PUT",
            ticket["put_url"],
            body=_ProgressReader(fh, progress),  # type: ignore[arg-type]
            headers={
                "Content-Type": "application/octet-stream",
                **(ticket.get("put_headers") or {}),
                "Content-Length": str(state["size"]),
            },
            auth=False,
            ok=(200, 201, 204),
        )


def _multipart(
    api: Api,
    base: str,
    envelope: Path,
    state: dict[str, Any],
    state_path: Path,
    progress: Callable[[int], None] | None,
) -> None:
    ticket = api.call(
        "POST",
        f"{base}/uploads",
        json_body={
            "size": state["size"],
            "sha256": state["sha256"],
            "client_key": state["upload_key"],
        },
    ).json()
    state.update(multipart=True, upload_id=ticket["upload"]["id"])
    state["done_parts"] = sorted(p["part_number"] for p in ticket["done_parts"])
    _write_json(state_path, state)
    part_size = int(ticket["part_size"])
    if progress is not None:
        progress(sum(int(p["size"]) for p in ticket["done_parts"]))
    with envelope.open("rb") as fh:
        for part in ticket["parts"]:
            n = int(part["part_number"])
            fh.seek((n - 1) * part_size)
            data = fh.read(part_size)
            api.call("PUT", part["url"], body=data, auth=False, ok=(200, 201, 204))
            state["done_parts"] = sorted({*state["done_parts"], n})
            _write_json(state_path, state)
            if progress is not None:
                progress(len(data))


# --------------------------------------------------------------------------- verify


def verify_receipt_file(
    receipt_path: Path,
    platform_key_pem: bytes,
    *,
    envelope: Path | None = None,
    proof: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Verify a receipt's signature (and optionally the envelope hash and an inclusion
    proof against the receipt's root). Raises :class:`ClientError` (exit 2)."""
    from crypto import merkle
    from crypto.errors import CryptoError
    from crypto.pki import load_public_key_pem
    from crypto.receipt import Receipt, verify_receipt

    try:
        receipt = Receipt.from_json(_read(receipt_path))
        key = load_public_key_pem(platform_key_pem)
        verify_receipt(receipt, key)  # type: ignore[arg-type]
        if envelope is not None and _sha256_file(envelope) != receipt.ciphertext_sha256:
            raise ClientError(
                EXIT_REFUSED, "envelope_hash_mismatch", "回执中的密文摘要与该投标文件不一致。"
            )
        if proof is not None:
            if receipt.root_hash is None:
                raise ClientError(
                    EXIT_REFUSED, "receipt_invalid", "回执未包含树根，无法验证包含证明。"
                )
            merkle.verify_inclusion(
                bytes.fromhex(proof["leaf_hash"]),
                int(proof["leaf_index"]),
                int(proof["tree_size"]),
                [bytes.fromhex(p) for p in proof["audit_path"]],
                bytes.fromhex(receipt.root_hash),
            )
            if int(proof["leaf_index"]) != receipt.log_index:
                raise ClientError(EXIT_REFUSED, "proof_mismatch", "包含证明不是该回执的日志序号。")
    except CryptoError as exc:
        raise ClientError(EXIT_REFUSED, exc.code, exc.message, exc.details) from exc
    return receipt.to_dict()


# --------------------------------------------------------------------------- click commands


def _api(ctx: click.Context) -> Api:
    obj = ctx.obj or {}
    if not obj.get("api_url"):
        raise click.UsageError("需要 --api 或环境变量 SUNBID_API_URL")
    return Api(obj["api_url"], obj.get("token"), obj.get("transport") or urllib3_transport())


@contextlib.contextmanager
def _bar(total: int, label: str, enabled: bool) -> Iterator[Callable[[int], None] | None]:
    if not enabled:
        yield None
        return
    with click.progressbar(length=total, label=label, file=sys.stderr) as bar:
        yield bar.update


@click.group("bid", help="投标客户端：加密、递交、查询、撤回投标文件，验证回执。")
@click.option("--api", "api_url", envvar="SUNBID_API_URL", help="平台地址，如 https://host")
@click.option("--token", envvar="SUNBID_TOKEN", help="API 令牌（Bearer）")
@click.pass_context
def bid(ctx: click.Context, api_url: str | None, token: str | None) -> None:
    ctx.ensure_object(dict)
    ctx.obj.setdefault("api_url", api_url)
    ctx.obj.setdefault("token", token)


@bid.command("seal")
@click.argument("directory", type=click.Path(path_type=Path, exists=True, file_okay=False))
@click.option("--price-sheet", required=True, type=click.Path(path_type=Path, exists=True))
@click.option("--project", "project_id", required=True)
@click.option("--section", "section_id", required=True)
@click.option("--cert", required=True, type=click.Path(path_type=Path, exists=True))
@click.option("--key", required=True, type=click.Path(path_type=Path, exists=True))
@click.option("--passphrase-file", type=click.Path(path_type=Path, exists=True))
@click.option("--opening-key", help="开标公钥（64 位十六进制）；省略时从平台获取")
@click.option("--fingerprint", help="开标公钥指纹（与 --opening-key 一起）")
@click.option("-o", "--out", required=True, type=click.Path(path_type=Path))
@click.option("--progress/--no-progress", default=None)
@click.pass_context
def seal_cmd(
    ctx: click.Context,
    directory: Path,
    price_sheet: Path,
    project_id: str,
    section_id: str,
    cert: Path,
    key: Path,
    passphrase_file: Path | None,
    opening_key: str | None,
    fingerprint: str | None,
    out: Path,
    progress: bool | None,
) -> None:
    """Build, seal and sign the bid (投标文件加密签名)."""
    try:
        if opening_key is None:
            section = _api(ctx).call("GET", section_path(project_id, section_id), auth=False).json()
            opening_key = section.get("opening_public_key")
            fingerprint = section.get("opening_key_fingerprint")
            if not opening_key or not fingerprint:
                raise ClientError(EXIT_REFUSED, "section_not_published", "该标段尚未发布开标公钥。")
        elif fingerprint is None:
            from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PublicKey

            from crypto.threshold import public_key_fingerprint

            fingerprint = public_key_fingerprint(
                X25519PublicKey.from_public_bytes(bytes.fromhex(opening_key))
            )
        total = sum(p.stat().st_size for p in directory.iterdir() if p.is_file())
        with _bar(total, "加密", progress if progress is not None else total >= 16 << 20) as cb:
            bid_file = seal_bid(
                directory,
                price_sheet,
                project_id=project_id,
                section_id=section_id,
                opening_public_key=bytes.fromhex(opening_key),
                opening_fingerprint=fingerprint,
                cert_pem=_read(cert),
                key_pem=_read(key),
                passphrase=_read(passphrase_file).strip() if passphrase_file else None,
                out=out,
                progress=cb,
            )
    except ClientError as err:
        _fail(err)
    except ValueError as exc:
        _fail(ClientError(EXIT_USAGE, "usage", str(exc)))
    m = bid_file["manifest"]
    click.echo(
        json.dumps(
            {
                "envelope": str(out),
                "ciphertext_sha256": m["ciphertext_sha256"],
                "size": m["ciphertext_size"],
            },
            ensure_ascii=False,
        )
    )


@bid.command("submit")
@click.argument("envelope", type=click.Path(path_type=Path, exists=True, dir_okay=False))
@click.option("--stream-max-mb", default=DEFAULT_STREAM_MAX_MB, show_default=True)
@click.option("--single-put-max-mb", default=DEFAULT_SINGLE_PUT_MAX_MB, show_default=True)
@click.option("--progress/--no-progress", default=None)
@click.pass_context
def submit_cmd(
    ctx: click.Context,
    envelope: Path,
    stream_max_mb: int,
    single_put_max_mb: int,
    progress: bool | None,
) -> None:
    """Upload and commit (resumable; re-run after any failure)."""
    size = envelope.stat().st_size
    try:
        with _bar(size, "上传", progress if progress is not None else size >= 16 << 20) as cb:
            result = submit_bid(
                _api(ctx),
                envelope,
                stream_max=stream_max_mb << 20,
                single_max=single_put_max_mb << 20,
                progress=cb,
            )
    except ClientError as err:
        _fail(err)
    b = result["bid"]
    click.echo(
        f"已递交：投标 {b['id']}，服务器时间 {result['receipt']['server_time']}，"
        f"日志序号 {b['log_index']}；回执已保存到 {_sidecar(envelope, 'receipt')}"
        + ("（重复请求，返回首次结果）" if result.get("replayed") else "")
    )


@bid.command("status")
@click.option("--project", "project_id", required=True)
@click.option("--section", "section_id", required=True)
@click.pass_context
def status_cmd(ctx: click.Context, project_id: str, section_id: str) -> None:
    """The bidder's status for a section."""
    try:
        data = _api(ctx).call("GET", section_path(project_id, section_id) + "/bids/status").json()
    except ClientError as err:
        _fail(err)
    click.echo(json.dumps(data, ensure_ascii=False, indent=2))


@bid.command("withdraw")
@click.argument("bid_id")
@click.option("--project", "project_id", required=True)
@click.option("--section", "section_id", required=True)
@click.pass_context
def withdraw_cmd(ctx: click.Context, bid_id: str, project_id: str, section_id: str) -> None:
    """Withdraw a bid before the deadline (撤回)."""
    try:
        data = (
            _api(ctx)
            .call("POST", section_path(project_id, section_id) + f"/bids/{bid_id}/withdraw")
            .json()
        )
    except ClientError as err:
        _fail(err)
    click.echo(f"已撤回：投标 {data['id']}（{data['withdrawn_at']}）")


@bid.command("verify-receipt")
@click.argument("receipt", type=click.Path(path_type=Path, exists=True, dir_okay=False))
@click.option("--platform-key", type=click.Path(path_type=Path, exists=True), help="平台公钥 PEM")
@click.option("--envelope", type=click.Path(path_type=Path, exists=True, dir_okay=False))
@click.option("--proof/--no-proof", default=False, help="从平台获取并验证包含证明")
@click.option("--project", "project_id")
@click.pass_context
def verify_receipt_cmd(
    ctx: click.Context,
    receipt: Path,
    platform_key: Path | None,
    envelope: Path | None,
    proof: bool,
    project_id: str | None,
) -> None:
    """Verify a receipt offline with the platform key (and optionally its log inclusion)."""
    try:
        if platform_key is not None:
            key_pem = _read(platform_key)
        else:
            key_pem = (
                _api(ctx)
                .call("GET", "/api/v1/audit/public-key", auth=False)
                .json()["public_key_pem"]
                .encode("ascii")
            )
        proof_data = None
        if proof:
            data = json.loads(_read(receipt))
            if not project_id:
                raise click.UsageError("--proof 需要 --project")
            proof_data = (
                _api(ctx)
                .call(
                    "GET",
                    section_path(project_id, data["section_id"]) + f"/bids/{data['bid_id']}/proof",
                )
                .json()
            )
        verified = verify_receipt_file(receipt, key_pem, envelope=envelope, proof=proof_data)
    except ClientError as err:
        _fail(err)
    click.echo(
        f"回执有效：投标 {verified['bid_id']}，密文 SHA-256 {verified['ciphertext_sha256']}，"
        f"服务器时间 {verified['server_time']}，日志序号 {verified['log_index']}"
        + ("，已验证包含于签名树头" if proof else "")
    )
