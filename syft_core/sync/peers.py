"""Peers: who may propose changes to my datasite (accepted) and whose datasites I follow.

The state is a file in my datasite, `.syft/peers.yaml` (a dot-folder: never synced). A peer
request travels as a small file in the sender's own inbox at the owner,
`<owner>/inbox/<sender>/request.json` (so a sender needs no rights beyond its inbox); nothing from
a sender is applied until the owner accepts them, which also creates `jobs/<sender>/`.
"""

from __future__ import annotations

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from syft_core.atomic import atomic_write_yaml
from syft_core.datasite import Datasite
from syft_core.identity import is_valid_email, validate_email
from syft_core.sync.errors import (
    InvalidMessageError,
    MalformedValueError,
    MissingKeyError,
    PeerConfigError,
)
from syft_core.sync.messages import Email, PeerRequest
from syft_core.sync.transports.base import Transport

PEERS_FILE = ".syft/peers.yaml"
MAX_REQUEST_BYTES = 64 << 10


_SAFE_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class PeerList(BaseModel):
    model_config = ConfigDict(extra="forbid")

    accepted: list[Email] = Field(default_factory=list)  # their changes to my datasite apply
    following: list[Email] = Field(default_factory=list)  # I sync with their datasite


class PeerBook:
    def __init__(self, datasite: Datasite) -> None:
        self.datasite = datasite
        self.path = datasite.root / PEERS_FILE

    def load(self) -> PeerList:
        try:
            # libyaml's safe loader where built in (ten times faster: read on every pass)
            raw = yaml.load(self.path.read_text(encoding="utf-8"), Loader=_SAFE_LOADER)
        except FileNotFoundError:
            return PeerList()
        except (OSError, yaml.YAMLError) as exc:
            raise PeerConfigError(f"peers file {self.path} is unreadable: {exc}") from exc
        try:
            return PeerList.model_validate(raw or {})
        except ValidationError as exc:
            raise PeerConfigError(f"peers file {self.path} is malformed: {exc}") from exc

    def save(self, peers: PeerList) -> None:
        atomic_write_yaml(self.path, peers.model_dump())

    def accept(self, email: str) -> bool:
        """Accept `email` as a peer; False if they already were. Creates `jobs/<email>/`."""
        validate_email(email)
        peers = self.load()
        (self.datasite.jobs / email).mkdir(parents=True, exist_ok=True)
        if email in peers.accepted:
            return False
        self.save(peers.model_copy(update={"accepted": [*peers.accepted, email]}))
        self.datasite.events.append(self.datasite.email, "peer.accepted", f"jobs/{email}")
        return True

    def follow(self, email: str) -> bool:
        validate_email(email)
        peers = self.load()
        if email in peers.following:
            return False
        self.save(peers.model_copy(update={"following": [*peers.following, email]}))
        return True


def request_key(owner: str, sender: str) -> str:
    return f"{owner}/inbox/{sender}/request.json"


def send_request(transport: Transport, request: PeerRequest) -> None:
    transport.put_bytes(
        request_key(request.datasite, request.sender), request.model_dump_json().encode()
    )


def pending_requests(
    transport: Transport, owner: str, accepted: list[str]
) -> tuple[list[PeerRequest], list[str]]:
    """Requests to `owner` from senders not yet accepted, and the problems with malformed ones."""
    requests: list[PeerRequest] = []
    problems: list[str] = []
    for sender in transport.list_dirs(f"{owner}/inbox"):
        if not is_valid_email(sender) or sender in accepted:
            continue
        key = request_key(owner, sender)
        try:
            requests.append(_read_request(transport, key, owner, sender))
        except MissingKeyError:
            continue  # messages without a request: held until the sender asks and is accepted
        except (InvalidMessageError, MalformedValueError, ValidationError) as exc:
            problems.append(f"{key}: {exc}")  # e.g. a link or fifo planted as the request
    return requests, problems


def _read_request(transport: Transport, key: str, owner: str, sender: str) -> PeerRequest:
    request = PeerRequest.model_validate_json(transport.get_bytes(key, max_size=MAX_REQUEST_BYTES))
    if request.sender != sender or request.datasite != owner:
        raise InvalidMessageError(
            f"request names {request.sender} -> {request.datasite}, not {sender} -> {owner}"
        )
    return request
