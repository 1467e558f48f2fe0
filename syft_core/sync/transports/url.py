"""Build a transport from a URL: `folder:PATH` (or a bare path) or `s3://bucket[/prefix]?...`.

S3 query parameters: `endpoint` (any S3 API URL), `region`, `profile` (a boto3 profile). Secrets
never go in the URL (it is saved in the syftbox's sync config); credentials come from the usual
boto3 chain: AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, a profile, or the instance role.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from syft_core.sync.errors import PeerConfigError
from syft_core.sync.transports.base import Transport
from syft_core.sync.transports.folder import FolderTransport
from syft_core.sync.transports.s3 import S3Transport

_S3_PARAMS = {"endpoint", "region", "profile"}


def transport_from_url(url: str) -> Transport:
    if url.startswith("s3://"):
        return _s3_from_url(url)
    if url.startswith("folder:"):
        path = url.removeprefix("folder:")
    elif url.startswith("file://"):
        path = url.removeprefix("file://")
    elif "://" not in url and url:
        path = url
    else:
        raise PeerConfigError(f"transport {url!r}: use folder:PATH or s3://bucket?endpoint=URL")
    if not path:
        raise PeerConfigError(f"transport {url!r}: the folder path is empty")
    return FolderTransport(Path(path))


def _s3_from_url(url: str) -> S3Transport:
    parts = urlsplit(url)
    if not parts.netloc:
        raise PeerConfigError(f"transport {url!r}: no bucket name after s3://")
    query = parse_qs(parts.query, keep_blank_values=False)
    unknown = set(query) - _S3_PARAMS
    if unknown:
        raise PeerConfigError(
            f"transport {url!r}: unknown parameter(s) {sorted(unknown)}; "
            f"allowed: {sorted(_S3_PARAMS)} (credentials come from the environment or a profile)"
        )
    single = {name: values[-1] for name, values in query.items()}
    return S3Transport(
        parts.netloc,
        prefix=parts.path.strip("/"),
        endpoint_url=single.get("endpoint"),
        region=single.get("region"),
        profile=single.get("profile"),
    )
