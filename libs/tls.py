"""TLS from certificate files: server contexts for aiohttp and gRPC, client ones for the CLI.

Design: listeners take a certificate chain and a private key in PEM files (``--tls-cert`` /
``--tls-key``); clients take a CA bundle (``--ca``) or the system's trust store. Unreadable or
mismatched files are an InvalidError naming the setting, raised at start, never a traceback
from inside the server. Only TLS 1.2 and later are accepted.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from pathlib import Path

import grpc

from modelplane.libs.errors import InvalidError


@dataclass(frozen=True, slots=True)
class TlsFiles:
    """A server's certificate chain and private key (PEM); ``field`` prefixes error names."""

    cert: Path
    key: Path
    field: str = "tls"

    def __post_init__(self) -> None:
        for name, path in (("cert", self.cert), ("key", self.key)):
            if not Path(path).is_file():
                raise InvalidError(f"no such file: {path}", field=f"{self.field}_{name}")

    def read(self) -> tuple[bytes, bytes]:
        return _read(self.cert, f"{self.field}_cert"), _read(self.key, f"{self.field}_key")


def tls_files(cert: Path | str | None, key: Path | str | None, field: str = "tls") -> TlsFiles | None:
    """Both files, or None when neither is set; InvalidError when only one is."""
    if not cert and not key:
        return None
    if not cert or not key:
        missing = "cert" if not cert else "key"
        raise InvalidError("is required when the other TLS file is set", field=f"{field}_{missing}")
    return TlsFiles(Path(cert), Path(key), field)


def _read(path: Path, field: str) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise InvalidError(f"cannot read {path}: {exc.strerror}", field=field) from exc


def server_ssl_context(files: TlsFiles) -> ssl.SSLContext:
    """An SSL context serving ``files`` (for aiohttp's TCPSite or an asyncio server)."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        context.load_cert_chain(files.cert, files.key)
    except (ssl.SSLError, OSError) as exc:
        raise InvalidError(
            f"cannot load the certificate and key: {exc}", field=f"{files.field}_cert"
        ) from exc
    return context


def grpc_server_credentials(files: TlsFiles) -> grpc.ServerCredentials:
    """gRPC server credentials for ``files`` (checked as an SSL context first: grpc's own error
    for a bad file is a crash at bind time)."""
    server_ssl_context(files)
    cert, key = files.read()
    return grpc.ssl_server_credentials([(key, cert)])


def client_ssl_context(ca: Path | str | None = None) -> ssl.SSLContext:
    """A client context trusting ``ca`` (a PEM bundle) or, without it, the system's store."""
    if ca is None:
        return ssl.create_default_context()
    path = Path(ca)
    if not path.is_file():
        raise InvalidError(f"no such file: {path}", field="ca")
    try:
        return ssl.create_default_context(cafile=str(path))
    except (ssl.SSLError, OSError) as exc:
        raise InvalidError(f"cannot load {path}: {exc}", field="ca") from exc


def grpc_channel_credentials(ca: Path | str | None = None) -> grpc.ChannelCredentials:
    """gRPC channel credentials trusting ``ca`` or, without it, grpc's default roots."""
    if ca is None:
        return grpc.ssl_channel_credentials()
    client_ssl_context(ca)  # a clear error for a missing or bad file
    return grpc.ssl_channel_credentials(root_certificates=Path(ca).read_bytes())
