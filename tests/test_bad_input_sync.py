"""Hostile sync messages (hypothesis): what a peer puts on the transport never crashes a sync,
never changes anything it may not write, and never blocks another peer.

Owner side: an accepted scientist (bob) sends messages to the owner (alice) — manifests built as
JSON so that anything can be in them: hostile paths (every odd name, `..`, absolute, private/,
dot paths, markers, permission files, another submitter's job, through a symlink in the owner's
datasite), old and new hashes that match, do not match or are malformed, sizes that lie (zero,
short, long, 2^62, negative), wrong parties, extra fields, bad formats and dates, non-UTF-8 and
random bytes, missing, truncated and over-long blobs, digests that do not match their id; some are
left by an unknown sender. Then another accepted peer (carol) sends one good change. One owner
sync pass runs. Invariants, whatever the policy on names is:

- no crash: the pass gives a report (a refused message is in its problems), or a SyftError;
- outside the owner's datasite nothing changes (the rest of the syftbox and the folders outside:
  paths, modes, content hashes), and inside it only paths a sender may write (under the
  permission files as they were) change; what is there is a regular file holding a content some
  sender declared for exactly that path, or a folder holding one; a deletion was declared;
- carol's good change is applied: bob's messages never block another peer's channel;
- nothing stays staged.

Scientist side: the owner (now the hostile one) publishes messages to bob, with the same kinds of
paths and contents. Invariants: nothing changes outside bob's copy of the owner's datasite (his
own datasite, the folders outside — one is the target of a symlink in his copy); in the copy only
syncable paths change (never private/ or a dot path, never through a symlink), into regular files
holding the declared content; every version of bob's that was replaced or deleted is kept aside
(nothing of his is lost).
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import shutil
import stat
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from syft_core.datasite import PERMISSION_FILE, Datasite
from syft_core.permissions import AccessLevel, SyftPermContext
from syft_core.sync import (
    ChangeMessage,
    FileChange,
    FolderTransport,
    SyncClient,
    SyncReport,
    TransportError,
)
from syft_core.sync import owner as owner_module
from syft_core.sync.channel import Channel
from syft_core.sync.hashing import digest_bytes, digest_file
from syft_core.sync.limits import ReceiveLimits
from syft_core.sync.messages import MAX_MANIFEST_BYTES
from syft_core.sync.scope import is_syncable
from syft_core.sync.targets import install_at
from tests.fuzzing import (
    Snapshot,
    Tally,
    changes,
    describe,
    example_dir,
    fuzz_settings,
    hostile_text,
    known_finding,
    make_outside,
    names,
    snapshot,
    under,
)

OWNER = "alice@example.org"
SCI = "bob@example.org"
OTHER = "carol@example.org"  # accepted too; sends one good change per example
STRANGER = "eve@example.org"  # not accepted
JOB = f"jobs/{SCI}/j1"
BLOBS = [b"print('hostile')\n", b"", b"name: x\ntype: bash\n", b"\x00\xff" * 40]
SHAS = [digest_bytes(b) for b in BLOBS]  # the sync's digests (BLAKE3) of each blob
# A blob's digest -> its sha256, the content fingerprint of tests.fuzzing's snapshots.
FINGERPRINT = {digest_bytes(b): hashlib.sha256(b).hexdigest() for b in BLOBS}


def _fingerprints(declared: set[str | None]) -> set[str | None]:
    """Declared digests as snapshot fingerprints (None, a deletion, stays None)."""
    return {FINGERPRINT.get(d, d) if d is not None else None for d in declared}


GOOD_PATH = f"jobs/{OTHER}/ok/run.sh"
GOOD_BODY = b"echo carol\n"

# -- strategies ------------------------------------------------------------------------------
FORBIDDEN = [
    "public/defaced.csv",
    "public/data.csv",
    "api_data/results.json",
    f"jobs/{OTHER}/c1/run.sh",
    f"{JOB}/approved",
    f"{JOB}/done",
    f"{JOB}/running",
    f"{JOB}/logs/stdout.txt",
    f"{JOB}/outputs/result.csv",
    f"{JOB}/{PERMISSION_FILE}",
    f"jobs/{SCI}/{PERMISSION_FILE}",
    f"jobs/{PERMISSION_FILE}",
    PERMISSION_FILE,
    "private/secret.csv",
    ".syft/peers.yaml",
    ".syft/events.jsonl",
    f"jobs/{SCI}/linked/code/x.py",  # code/ is a symlink into private/
    f"jobs/{SCI}/linked/code/secret.csv",
]
CRAFTED = [
    "../escape.txt",
    "../../outside/secret.txt",
    "/etc/passwd",
    f"{JOB}/../../../private/x",
    f"{JOB}/./run.sh",
    f"{JOB}//run.sh",
    f"{JOB}/run.sh/",
    f"{JOB}/code/.env",
    "jobs\\bob@example.org\\j1\\run.sh",
    "",
    ".",
    f"{JOB}/code/main.py\x00.txt",
    "x" * 5000,
]
ALLOWED = [f"{JOB}/run.sh", f"{JOB}/config.yaml", f"{JOB}/code/main.py", f"jobs/{SCI}/new/run.sh"]
owner_paths = st.one_of(
    st.sampled_from(ALLOWED),
    st.tuples(
        st.sampled_from([f"{JOB}/code/", f"jobs/{SCI}/new/code/", f"jobs/{SCI}/", f"{JOB}/"]),
        st.lists(names, min_size=1, max_size=3).map("/".join),
    ).map("".join),
    st.sampled_from(FORBIDDEN + CRAFTED),
    st.tuples(
        st.sampled_from(["public/", "private/", "api_data/", f"jobs/{OTHER}/c1/", "", ".syft/"]),
        names,
    ).map("".join),
    hostile_text,
)
# What the hostile owner publishes to bob's copy of its datasite.
watcher_paths = st.one_of(
    st.sampled_from(
        [
            "public/data.csv",
            "public/new.csv",
            f"{JOB}/run.sh",
            f"{JOB}/code/main.py",
            f"{JOB}/code/edited.py",  # bob's edit, not yet sent
            "public/link/x",  # public/link is a symlink to a folder outside
            "public/link",
            "private/x.csv",
            ".syft/peers.yaml",
            f"../{SCI}/public/planted.csv",
            f"../{SCI}/.syft/peers.yaml",
            "../../outside/secret.txt",
            "/tmp/x",
        ]
    ),
    st.tuples(
        st.sampled_from(["public/", f"{JOB}/code/", "", "private/", "api_data/"]),
        st.lists(names, min_size=1, max_size=3).map("/".join),
    ).map("".join),
    st.sampled_from(CRAFTED),
    hostile_text,
)
json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False),
    hostile_text,
)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(hostile_text, inner, max_size=3),
    max_leaves=8,
)


def _changes(paths: st.SearchStrategy[str]) -> st.SearchStrategy[list[dict[str, Any]]]:
    return st.lists(
        st.fixed_dictionaries(
            {
                "path": paths,
                "old": st.sampled_from(["none", "current", "current", "current", "random"]),
                "new": st.sampled_from(["blob", "blob", "blob", "delete", "missing"]),
                "blob": st.integers(0, len(BLOBS) - 1),
                "size": st.sampled_from(["exact"] * 6 + ["zero", "short", "long", "2^62"]),
            }
        ),
        max_size=6,
    )


# A manifest is well-formed (its content is what is hostile) or has exactly one defect.
DEFECTS = [
    "format",
    "created",
    "extra_field",
    "raw_bytes",
    "raw_json",
    "datasite",
    "sender",
    "recipient",
    "path_type",
    "old_sha",
    "new_sha",
    "negative_size",
    "surrogates",
]


def _messages(paths: st.SearchStrategy[str], parties: list[str]) -> st.SearchStrategy[Any]:
    return st.fixed_dictionaries(
        {
            "changes": _changes(paths),
            "rejections": st.lists(
                st.fixed_dictionaries(
                    {
                        "path": paths,
                        "kind": st.sampled_from(["denied", "conflict", "invalid"]),
                        "reason": hostile_text,
                        "message_id": st.sampled_from(["x"]) | hostile_text,
                    }
                ),
                max_size=1,
            ),
            "defect": st.sampled_from([None] * len(DEFECTS) * 2 + DEFECTS),
            "party": st.sampled_from([*parties, "not an email", "", "BOB@EXAMPLE.ORG"]),
            "junk": json_values,
            "raw": st.binary(max_size=200),
            "blobs": st.sampled_from(["ok"] * 12 + ["missing", "truncated", "longer", "extra"]),
            "id": st.sampled_from(["ok"] * 12 + ["bad_digest", "not_an_id", "other_case"]),
            "ascii": st.booleans(),
            "unknown_sender": st.sampled_from([False] * 9 + [True]),
            # On a shared folder a peer writes its own channel: it can plant links and folders.
            "hazard": st.sampled_from([None] * 30 + ["blob_link", "blob_folder", "msg_folder"]),
        }
    )


# -- building messages -----------------------------------------------------------------------
@dataclass
class Sent:
    """What was put on the transport: per path, the contents declared for it (None: deletion)."""

    declared: dict[str, set[str | None]] = field(default_factory=dict)
    ns: int = 10**18


def _sha_field(how: str, current: str | None, blob: int) -> str | None:
    if how in ("none", "delete"):
        return None
    if how == "current":
        return current
    if how == "blob":
        return SHAS[blob]
    return digest_bytes(f"{how}{blob}".encode())  # a content nobody has


def _size_field(how: str, blob: int) -> int:
    exact = len(BLOBS[blob])
    sizes = {"exact": exact, "zero": 0, "short": max(exact - 3, 0), "long": exact + 1000}
    return sizes.get(how, 2**62)


def _manifest(
    spec: dict[str, Any], current: dict[str, str], sender: str, recipient: str, datasite: str
) -> bytes:
    """The manifest bytes: well-formed, or with the one defect `spec` names."""
    body: dict[str, Any] = {
        "format": 2,
        "datasite": datasite,
        "sender": sender,
        "recipient": recipient,
        "created": "2026-01-01T00:00:00Z",
        "changes": [
            {
                "path": c["path"],
                "old_digest": _sha_field(c["old"], current.get(c["path"]), c["blob"]),
                "new_digest": _sha_field(c["new"], None, c["blob"]),
                "size": _size_field(c["size"], c["blob"]),
            }
            for c in spec["changes"]
        ],
        "rejections": spec["rejections"],
    }
    defect = spec["defect"]
    first = body["changes"][0] if body["changes"] else {}
    if defect == "raw_bytes":
        return bytes(spec["raw"])
    if defect == "raw_json":
        body = {"junk": spec["junk"]} if isinstance(spec["junk"], dict) else spec["junk"]
    elif defect == "format":
        body["format"] = 1  # sha256-era manifests are refused
    elif defect == "created":
        body["created"] = "yesterday"
    elif defect == "extra_field":
        body["approved"] = spec["junk"]
    elif defect in ("datasite", "sender", "recipient"):
        body[defect] = spec["party"]
    elif defect == "path_type" and first:
        first["path"] = spec["junk"] if not isinstance(spec["junk"], str) else 7
    elif defect in ("old_sha", "new_sha") and first:
        first[f"{defect.removesuffix('_sha')}_digest"] = "ZZ" + SHAS[0][2:]
    elif defect == "negative_size" and first:
        first["size"] = -1
    elif defect == "surrogates" and first:
        first["path"] = str(first["path"]) + "\udcff"
    return json.dumps(body, ensure_ascii=spec["ascii"]).encode("utf-8", "surrogatepass")


def put_message(
    shared: Path,
    datasite: str,
    direction: str,
    peer: str,
    spec: dict[str, Any],
    current: dict[str, str],
    sent: Sent,
    self_email: str,
    peer_email: str,
) -> None:
    """Write one hostile message (manifest and blobs) straight into the transport folder."""
    data = _manifest(spec, current, self_email, peer_email, datasite)
    sent.ns += 1
    digest = digest_bytes(data)
    message_id = {
        "ok": f"{sent.ns:020d}-{digest}",
        "bad_digest": f"{sent.ns:020d}-{digest_bytes(data + b'x')}",
        "not_an_id": f"{sent.ns}-{digest[:10]}",
        "other_case": f"{sent.ns:020d}-{digest.upper()}",
    }[spec["id"]]
    channel = shared / datasite / direction / peer
    (channel / "msgs").mkdir(parents=True, exist_ok=True)
    (channel / "msgs" / f"{message_id}.json").write_bytes(data)
    blobs = channel / "blobs" / message_id
    blobs.mkdir(parents=True, exist_ok=True)
    for c in spec["changes"]:
        if c["new"] == "blob":
            content = BLOBS[c["blob"]]
            content = {
                "ok": content,
                "missing": None,
                "truncated": content[:-1],
                "longer": content + b"more",
                "extra": content,
            }[spec["blobs"]]
            if content is not None:
                (blobs / SHAS[c["blob"]]).write_bytes(content)
        new = SHAS[c["blob"]] if c["new"] == "blob" else None
        sent.declared.setdefault(c["path"], set()).add(new)
    if spec["blobs"] == "extra":
        (blobs / ("f" * 64)).write_bytes(b"not declared")
    _plant(channel, message_id, spec)


def _plant(channel: Path, message_id: str, spec: dict[str, Any]) -> None:
    """What a peer with write access to its channel folder can put there besides files."""
    hazard = spec["hazard"]
    blobs = sorted((channel / "blobs" / message_id).iterdir())
    if hazard == "blob_link" and blobs:
        data = blobs[0].read_bytes()
        (channel / f"{blobs[0].name}.real").write_bytes(data)
        blobs[0].unlink()
        blobs[0].symlink_to(channel / f"{blobs[0].name}.real")
    elif hazard == "blob_folder" and blobs:
        blobs[0].unlink()
        blobs[0].mkdir()
    elif hazard == "msg_folder":
        manifest = channel / "msgs" / f"{message_id}.json"
        manifest.unlink()
        (manifest / "inner.json").mkdir(parents=True)


def _clone(source: Path, dest: Path) -> None:
    """A copy of a template tree: folders, file contents and links (not followed). Plainer and
    several times faster than shutil.copytree, which copies every file's metadata too."""
    dest.mkdir()
    with os.scandir(source) as entries:
        for entry in entries:
            target = dest / entry.name
            if entry.is_symlink():
                target.symlink_to(os.readlink(entry.path))
            elif entry.is_dir():
                _clone(Path(entry.path), target)
            else:
                shutil.copyfile(entry.path, target)


def _regular_files(root: Path) -> dict[str, str]:
    """relpath -> sha256 of every regular file under `root` (not following links)."""
    found: dict[str, str] = {}
    for rel, (mode, digest) in snapshot(root).items():
        if stat.S_ISREG(mode):
            found[os.fsdecode(rel)] = digest
    return found


def _digests(root: Path) -> dict[str, str]:
    """relpath -> the sync's digest of every regular file under `root`: what a sender names as
    the old content of a change."""
    return {rel: digest_file(root / rel) for rel in _regular_files(root)}


# -- the owner receives ----------------------------------------------------------------------
@dataclass
class OwnerTemplate:
    root: Path  # holds box/, shared/, outside/
    current: dict[str, str]  # the owner's files: datasite relpath -> digest
    perms: SyftPermContext


def _owner_template(root: Path) -> OwnerTemplate:
    box, shared = root / "box", root / "shared"
    shared.mkdir(parents=True)
    outside = make_outside(root)
    ds = Datasite(box, OWNER).init()
    files = {
        "public/data.csv": b"a,b\n1,2\n",
        "private/secret.csv": b"secret\n",
        "api_data/results.json": b"{}\n",
        f"{JOB}/run.sh": b"echo hi\n",
        f"{JOB}/config.yaml": b"name: j1\ntype: bash\n",
        f"{JOB}/code/main.py": b"print(1)\n",
        f"{JOB}/approved": b"by: alice@example.org\n",
        f"jobs/{OTHER}/c1/run.sh": b"echo c\n",
    }
    for rel, data in files.items():
        (ds.root / rel).parent.mkdir(parents=True, exist_ok=True)
        (ds.root / rel).write_bytes(data)
    (ds.jobs / SCI / "linked").mkdir(parents=True)
    (ds.jobs / SCI / "linked" / "code").symlink_to(ds.private, target_is_directory=True)
    (outside / "link-target").mkdir()
    (box / SCI / "public").mkdir(parents=True)  # another datasite in the same syftbox
    (box / SCI / "public" / "mine.csv").write_bytes(b"bob's\n")
    transport = FolderTransport(shared)
    for peer in (SCI, OTHER):
        with SyncClient(root / f"{peer}-box", peer, transport) as client:
            client.request_peer(OWNER)
    with SyncClient(box, OWNER, transport) as owner:
        owner.accept_peer(SCI)
        owner.accept_peer(OTHER)
        owner.sync_once()  # publishes everything once: a pass then sends only what changed
    for peer in (SCI, OTHER):
        shutil.rmtree(root / f"{peer}-box")
    shutil.rmtree(shared / OWNER / "outbox")
    perms = SyftPermContext(ds.root)
    perms.reload()
    return OwnerTemplate(root, _digests(ds.root), perms)


def test_hostile_messages_to_the_owner_change_only_what_the_sender_may_write(
    record_property: Callable[[str, object], None],
) -> None:
    tally = Tally("sync_owner")
    with example_dir() as tmp:
        template = _owner_template(Path(tmp) / "template")
        cases = Path(tmp) / "cases"
        cases.mkdir()

        @fuzz_settings("sync_owner")
        @given(messages=st.lists(_messages(owner_paths, [SCI, OTHER, OWNER]), max_size=3))
        def check(messages: list[dict[str, Any]]) -> None:
            tally.tried += 1
            case = cases / "case"
            shutil.rmtree(case, ignore_errors=True)
            _clone(template.root, case)
            try:
                _owner_case(case, template, messages, tally)
            finally:
                shutil.rmtree(case, ignore_errors=True)

        check()
    tally.record(record_property)


def _owner_case(
    case: Path, template: OwnerTemplate, messages: list[dict[str, Any]], tally: Tally
) -> None:
    box, shared = case / "box", case / "shared"
    sent = Sent()
    for spec in messages:
        sender = STRANGER if spec["unknown_sender"] else SCI
        put_message(shared, OWNER, "inbox", sender, spec, template.current, sent, sender, OWNER)
    good = Sent(ns=2 * 10**18)
    put_message(shared, OWNER, "inbox", OTHER, _good_change(), {}, good, OTHER, OWNER)
    # Everything but the sync's own state and the owner's event log and peer list.
    private_state = under(b"box/.syft-sync", f"box/{OWNER}/.syft".encode(), b"shared")
    before = snapshot(case, skip=private_state)
    report = _sync(box, OWNER, shared, tally)
    after = snapshot(case, skip=private_state)
    diff = changes(before, after)
    prefix = f"box/{OWNER}/".encode()
    outside = {rel: d for rel, d in diff.items() if not rel.startswith(prefix)}
    assert not outside, "changed outside the owner's datasite:\n" + describe(outside)
    inside = {os.fsdecode(rel[len(prefix) :]): d for rel, d in diff.items()}
    _check_owner_changes(inside, template.perms, sent, good)
    if report is not None:
        assert _good_in_place(box), ("carol's good change was not applied", report.problems)
        # A rejection goes back to the sender: it names datasite paths, never the owner's disk.
        leaked = [n.rejection.reason for n in report.rejected if str(box) in n.rejection.reason]
        assert not leaked, f"the owner's own paths sent to a peer: {leaked[:2]}"
    assert not any((box / ".syft-sync" / "staging").glob("*")), "blobs left staged"


def _good_change() -> dict[str, Any]:
    return {
        "changes": [{"path": GOOD_PATH, "old": "none", "new": "blob", "blob": 0, "size": "exact"}],
        "rejections": [],
        "defect": None,
        "party": OTHER,
        "junk": None,
        "raw": b"",
        "blobs": "ok",
        "id": "ok",
        "ascii": True,
        "unknown_sender": False,
        "hazard": None,
    }


def _good_in_place(box: Path) -> bool:
    path = box / OWNER / GOOD_PATH
    return path.is_file() and digest_file(path) == SHAS[0]


def _sync(box: Path, me: str, shared: Path, tally: Tally) -> SyncReport | None:
    """One sync pass: its report, or None if it raised what a known finding raises."""
    with SyncClient(box, me, FolderTransport(shared)) as client:
        try:
            return client.sync_once()
        except Exception as exc:
            finding = known_finding(exc)
            assert finding, f"the sync pass raised {type(exc).__name__}: {exc}"
            tally.finding(finding)
            return None


def _check_owner_changes(
    inside: dict[str, tuple[tuple[int, str] | None, tuple[int, str] | None]],
    perms: SyftPermContext,
    sent: Sent,
    good: Sent,
) -> None:
    declared = {**sent.declared}
    for path, shas in good.declared.items():
        declared.setdefault(path, set()).update(shas)
    files = {rel for rel, (_, new) in inside.items() if new and stat.S_ISREG(new[0])}
    for rel, (old, new) in inside.items():
        if new is not None and stat.S_ISDIR(new[0]) and old is None:
            # A new folder only ever holds what was written into it.
            assert any(f.startswith(rel + "/") for f in files), f"{rel!r}: an empty folder made"
            continue
        assert any(perms.check(p, rel, AccessLevel.WRITE) for p in (SCI, OTHER)), (
            f"{rel!r} changed, but no sender may write it",
            old,
            new,
        )
        if new is None:
            assert None in declared.get(rel, set()), f"{rel!r} deleted, no sender deleted it"
            continue
        assert stat.S_ISREG(new[0]), f"{rel!r}: mode {new[0]:o} created"
        assert new[1] in _fingerprints(declared.get(rel, set())), (
            f"{rel!r}: content no sender declared"
        )


# -- the scientist receives ------------------------------------------------------------------
@dataclass
class WatcherTemplate:
    root: Path
    copy: dict[str, str]  # bob's copy of the owner's datasite: relpath -> digest


def _watcher_template(root: Path) -> WatcherTemplate:
    box, shared = root / "box", root / "shared"
    shared.mkdir(parents=True)
    outside = make_outside(root)
    Datasite(box, SCI).init()
    (box / SCI / "public" / "mine.csv").write_bytes(b"bob's own\n")
    copy = box / OWNER
    files = {
        "public/data.csv": b"a,b\n1,2\n",
        f"{JOB}/run.sh": b"echo hi\n",
        f"{JOB}/config.yaml": b"name: j1\ntype: bash\n",
        f"{JOB}/code/main.py": b"print(1)\n",
    }
    for rel, data in files.items():
        (copy / rel).parent.mkdir(parents=True, exist_ok=True)
        (copy / rel).write_bytes(data)
    transport = FolderTransport(shared)
    with SyncClient(box, SCI, transport) as sci:
        sci.request_peer(OWNER)
        sci.sync_once()  # proposes its files once: a pass then sends only what changed
    (copy / JOB / "code" / "edited.py").write_bytes(b"print('unsent edit')\n")
    (copy / "public" / "link").symlink_to(outside / "dir", target_is_directory=True)
    shutil.rmtree(shared / OWNER)
    return WatcherTemplate(root, _digests(copy))


def test_hostile_messages_from_the_owner_stay_in_the_copy_and_lose_nothing(
    record_property: Callable[[str, object], None],
) -> None:
    tally = Tally("sync_watcher")
    with example_dir() as tmp:
        template = _watcher_template(Path(tmp) / "template")
        cases = Path(tmp) / "cases"
        cases.mkdir()

        @fuzz_settings("sync_watcher")
        @given(messages=st.lists(_messages(watcher_paths, [SCI, OWNER]), max_size=3))
        def check(messages: list[dict[str, Any]]) -> None:
            tally.tried += 1
            case = cases / "case"
            shutil.rmtree(case, ignore_errors=True)
            _clone(template.root, case)
            try:
                _watcher_case(case, template, messages, tally)
            finally:
                shutil.rmtree(case, ignore_errors=True)

        check()
    tally.record(record_property)


def _watcher_case(
    case: Path, template: WatcherTemplate, messages: list[dict[str, Any]], tally: Tally
) -> None:
    box, shared = case / "box", case / "shared"
    sent = Sent()
    for spec in messages:
        put_message(shared, OWNER, "outbox", SCI, spec, template.copy, sent, OWNER, SCI)
    state = under(b"box/.syft-sync", f"box/{SCI}/.syft".encode(), b"shared")
    before = snapshot(case, skip=state)
    _sync(box, SCI, shared, tally)
    after = snapshot(case, skip=state)
    diff = changes(before, after)
    prefix = f"box/{OWNER}/".encode()
    outside = {rel: d for rel, d in diff.items() if not rel.startswith(prefix)}
    assert not outside, "changed outside the copy of the owner's datasite:\n" + describe(outside)
    files = {os.fsdecode(rel[len(prefix) :]) for rel, (_, new) in diff.items() if new}
    for raw, (_, new) in diff.items():
        rel = os.fsdecode(raw[len(prefix) :])
        assert is_syncable(rel), f"{rel!r} is private or a dot path, and changed"
        if new is None:
            assert None in sent.declared.get(rel, set()), f"{rel!r} removed, never withdrawn"
            continue
        if stat.S_ISDIR(new[0]):
            # A folder is made only on the way to a file the owner sent (which a later change
            # of the same pass may have withdrawn again, leaving the folder empty).
            sent_files = [p for p, contents in sent.declared.items() if contents - {None}]
            on_the_way = any(f.startswith(rel + "/") for f in [*files, *sent_files])
            assert on_the_way, f"{rel!r}: an empty folder made"
            continue
        assert stat.S_ISREG(new[0]), f"{rel!r}: mode {new[0]:o} created"
        assert new[1] in _fingerprints(sent.declared.get(rel, set())), (
            f"{rel!r}: content the owner never sent"
        )
    _nothing_of_bob_lost(before, after, box, prefix)


def _nothing_of_bob_lost(before: Snapshot, after: Snapshot, box: Path, prefix: bytes) -> None:
    """Each of bob's file versions the pass replaced or removed is kept aside in conflicts/."""
    conflicts = box / ".syft-sync" / SCI / "conflicts"
    kept = set(_regular_files(conflicts).values()) if conflicts.is_dir() else set()
    for rel, (mode, digest) in before.items():
        if not rel.startswith(prefix) or not stat.S_ISREG(mode):
            continue
        now = after.get(rel)
        if now is not None and now[1] == digest:
            continue
        assert digest in kept, f"{rel!r}: bob's version was replaced and not kept aside"


# -- findings of this suite: reproducers (strict xfail until fixed in syft_core) -------------
@dataclass
class Trio:
    """The owner with two accepted peers over one shared folder."""

    root: Path
    shared: FolderTransport
    owner: SyncClient
    bob: SyncClient
    carol: SyncClient

    def carol_proposes(self) -> Path:
        """carol's good job; the path the owner should then hold."""
        job = self.carol.box.root / OWNER / "jobs" / OTHER / "ok"
        job.mkdir(parents=True)
        (job / "run.sh").write_bytes(GOOD_BODY)
        self.carol.sync_once()
        return self.owner.box.root / OWNER / "jobs" / OTHER / "ok" / "run.sh"

    def bob_sends(self, path: str, body: bytes = b"x\n") -> tuple[str, Path]:
        """A message from bob changing `path`; its id and its blob's file on the transport."""
        source = self.root / "source"
        source.write_bytes(body)
        sha = digest_bytes(body)
        change = FileChange(path=path, old_digest=None, new_digest=sha, size=len(body))
        message = ChangeMessage(datasite=OWNER, sender=SCI, recipient=OWNER, changes=[change])
        channel = Channel(self.shared, OWNER, "inbox", SCI, pool=self.owner._pool)
        message_id = channel.send(message, {sha: source})
        return message_id, self.shared.root / channel.prefix / "blobs" / message_id / sha


@pytest.fixture
def trio(tmp_path: Path) -> Iterator[Trio]:
    (tmp_path / "shared").mkdir()
    shared = FolderTransport(tmp_path / "shared")
    Datasite(tmp_path / "owner-box", OWNER).init()
    with (
        SyncClient(tmp_path / "owner-box", OWNER, shared) as owner,
        SyncClient(tmp_path / "bob-box", SCI, shared) as bob,
        SyncClient(tmp_path / "carol-box", OTHER, shared) as carol,
    ):
        for peer in (bob, carol):
            peer.request_peer(OWNER)
            owner.accept_peer(peer.email)
        yield Trio(tmp_path, shared, owner, bob, carol)


def test_an_over_long_name_is_refused_not_a_crash(trio: Trio) -> None:
    trio.bob_sends(f"jobs/{SCI}/j/code/" + "x" * 256)
    carols = trio.carol_proposes()
    rejected = []
    for _ in range(2):  # refused once, by the first pass; the second finds nothing in the way
        rejected += trio.owner.sync_once().rejected
    assert carols.read_bytes() == GOOD_BODY
    assert [n.rejection.kind for n in rejected] == ["invalid"]
    assert "256 bytes" in rejected[0].rejection.reason
    assert [n.rejection.kind for n in trio.bob.sync_once().notices] == ["invalid"]  # bob is told


def test_an_over_long_name_from_the_owner_is_refused_not_a_crash(tmp_path: Path) -> None:
    (tmp_path / "shared").mkdir()
    shared = FolderTransport(tmp_path / "shared")
    with SyncClient(tmp_path / "bob-box", SCI, shared) as bob:
        bob.request_peer(OWNER)
        spec = _good_change() | {
            "changes": [
                {"path": "public/" + "y" * 256, "old": "none", "new": "blob", "blob": 0}
                | {"size": "exact"},
                {"path": "public/fine.csv", "old": "none", "new": "blob", "blob": 0}
                | {"size": "exact"},
            ]
        }
        put_message(tmp_path / "shared", OWNER, "outbox", SCI, spec, {}, Sent(), OWNER, SCI)
        report = bob.sync_once()
    assert [r.path for r in report.received] == ["public/fine.csv"]


def test_a_link_in_a_peers_inbox_blocks_no_one(trio: Trio) -> None:
    _, blob = trio.bob_sends(f"jobs/{SCI}/j/run.sh")
    real = trio.root / "elsewhere"
    real.write_bytes(blob.read_bytes())
    blob.unlink()
    blob.symlink_to(real)
    carols = trio.carol_proposes()
    for _ in range(2):
        trio.owner.sync_once()
    assert carols.read_bytes() == GOOD_BODY
    assert not (trio.owner.box.root / OWNER / "jobs" / SCI / "j" / "run.sh").exists()


def test_a_fifo_in_a_peers_inbox_does_not_hang_the_owners_sync(trio: Trio) -> None:
    msgs = trio.shared.root / OWNER / "inbox" / SCI / "msgs"
    msgs.mkdir(parents=True)
    fifo = msgs / f"{10**18:020d}-{'0' * 64}.json"
    os.mkfifo(fifo)
    carols = trio.carol_proposes()
    passes = threading.Thread(target=trio.owner.sync_once, daemon=True)
    passes.start()
    try:
        passes.join(timeout=3)
        assert not passes.is_alive(), "the owner's sync pass still blocked after 3 s"
        assert carols.read_bytes() == GOOD_BODY
    finally:
        if passes.is_alive():  # let the blocked open return (EOF), so the pass can end
            os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
            passes.join(timeout=30)


# -- around those findings: what else one peer's channel or change can hold, and what is not
# the sender's fault (retried, never refused) -------------------------------------------------
def _owner_events(trio: Trio, what: str) -> list[dict[str, Any]]:
    events = trio.owner.box.datasite(OWNER).events
    return [e.details for e in events if e.what == what]


def _bobs_channel(trio: Trio) -> Channel:
    return Channel(trio.shared, OWNER, "inbox", SCI, pool=trio.owner._pool)


def _plant_instead(path: Path, hazard: str, elsewhere: Path) -> None:
    """Put `hazard` where the file or folder `path` is (its content moved to `elsewhere`)."""
    shutil.move(path, elsewhere)
    if hazard == "fifo":
        os.mkfifo(path)
    elif hazard == "folder":
        path.mkdir()
    elif hazard == "link":
        path.symlink_to(elsewhere)
    elif hazard == "file":
        path.write_bytes(b"not a folder\n")


@pytest.mark.parametrize(
    ("where", "hazard"),
    [
        ("blob", "fifo"),
        ("blob", "folder"),
        ("blob", "link"),
        ("blobs", "link"),  # the message's whole blob folder: a link to a copy elsewhere
        ("blobs", "file"),
        ("manifest", "link"),
        ("manifest", "folder"),
    ],
)
def test_anything_but_a_file_in_a_peers_channel_refuses_that_message_only(
    trio: Trio, where: str, hazard: str
) -> None:
    message_id, blob = trio.bob_sends(f"jobs/{SCI}/j/run.sh")
    manifest = blob.parent.parent.parent / "msgs" / f"{message_id}.json"
    target = {"blob": blob, "blobs": blob.parent, "manifest": manifest}[where]
    elsewhere = trio.root / "elsewhere"
    _plant_instead(target, hazard, elsewhere)
    carols = trio.carol_proposes()
    passes = threading.Thread(target=trio.owner.sync_once, daemon=True)
    passes.start()
    passes.join(timeout=10)
    assert not passes.is_alive(), "the owner's sync pass blocked"
    report = trio.owner.sync_once()  # and the next pass runs as plainly
    assert carols.read_bytes() == GOOD_BODY
    assert not (trio.owner.box.root / OWNER / "jobs" / SCI / "j" / "run.sh").exists()
    assert elsewhere.exists(), "something was removed through a planted link"
    if where != "manifest":  # a manifest that is no file is never listed, so never read
        refused = _owner_events(trio, "sync.message_refused")
        assert len(refused) == 1 and "refused" in refused[0]["reason"], refused
    assert _bobs_channel(trio).pending() == []
    assert not report.problems, report.problems
    # bob's channel is not blocked: his next message is applied
    trio.bob_sends(f"jobs/{SCI}/j2/run.sh")
    trio.owner.sync_once()
    assert (trio.owner.box.root / OWNER / "jobs" / SCI / "j2" / "run.sh").read_bytes() == b"x\n"


def test_a_manifest_over_the_size_limit_is_refused_not_retried(trio: Trio) -> None:
    msgs = trio.shared.root / OWNER / "inbox" / SCI / "msgs"
    msgs.mkdir(parents=True)
    with (msgs / f"{10**18:020d}-{'0' * 64}.json").open("wb") as fh:
        fh.truncate(MAX_MANIFEST_BYTES + 1)  # sparse: no disk used
    carols = trio.carol_proposes()
    trio.owner.sync_once()
    assert carols.read_bytes() == GOOD_BODY
    assert "larger than" in _owner_events(trio, "sync.message_refused")[0]["reason"]
    assert _bobs_channel(trio).pending() == []


def test_a_transient_transport_failure_is_retried_not_refused(
    trio: Trio, monkeypatch: pytest.MonkeyPatch
) -> None:
    trio.bob_sends(f"jobs/{SCI}/j/run.sh")
    real_get_file = trio.shared.get_file
    failures = [TransportError("injected outage")]

    def flaky_get_file(*args: Any, **kwargs: Any) -> str:
        if failures:
            raise failures.pop()
        return real_get_file(*args, **kwargs)

    monkeypatch.setattr(trio.shared, "get_file", flaky_get_file)
    with pytest.raises(TransportError):
        trio.owner.sync_once()
    trio.owner.sync_once()
    assert (trio.owner.box.root / OWNER / "jobs" / SCI / "j" / "run.sh").read_bytes() == b"x\n"
    assert _owner_events(trio, "sync.message_refused") == []


def test_a_link_planted_in_a_peers_outbox_blocks_no_ones_publishing(trio: Trio) -> None:
    news = trio.owner.box.root / OWNER / "public" / "news.csv"
    news.write_bytes(b"a\n1\n")
    elsewhere = trio.root / "elsewhere"
    elsewhere.mkdir()
    outbox = trio.shared.root / OWNER / "outbox"
    outbox.mkdir(parents=True)
    (outbox / SCI).symlink_to(elsewhere)  # bob is published to first
    report = trio.owner.sync_once()
    assert any(p.startswith(f"publishing to {SCI}") for p in report.problems), report.problems
    assert list(elsewhere.iterdir()) == []
    assert [a.path for a in trio.carol.sync_once().received] == ["public/news.csv"]
    (outbox / SCI).unlink()  # once it is gone, bob is published to again
    trio.owner.sync_once()
    assert "public/news.csv" in [a.path for a in trio.bob.sync_once().received]


@pytest.mark.parametrize(
    ("error", "refused"),
    [
        # The file system refuses this name, or this one folder may not be written: that change
        # only is refused. The disk is full, or failing: the pass fails, and is retried.
        pytest.param(errno.EILSEQ, True, id="EILSEQ"),
        pytest.param(errno.EACCES, True, id="EACCES"),
        pytest.param(errno.ENOSPC, False, id="ENOSPC"),
        pytest.param(errno.EIO, False, id="EIO"),
    ],
)
def test_a_change_the_file_system_refuses_fails_that_change_only(
    trio: Trio, monkeypatch: pytest.MonkeyPatch, error: int, refused: bool
) -> None:
    failures = [OSError(error, os.strerror(error))]

    def failing_install(staged: Path, fd: int, name: str, *, consume: bool) -> None:
        folder = Path(os.readlink(f"/proc/self/fd/{fd}"))  # the folder it is put in
        if name == "run.sh" and SCI in folder.parts and failures:
            raise failures.pop()
        install_at(staged, fd, name, consume=consume)

    monkeypatch.setattr("syft_core.sync.owner.install_at", failing_install)
    trio.bob_sends(f"jobs/{SCI}/j/run.sh")
    carols = trio.carol_proposes()
    bobs = trio.owner.box.root / OWNER / "jobs" / SCI / "j" / "run.sh"
    if refused:
        report = trio.owner.sync_once()
        assert carols.read_bytes() == GOOD_BODY
        assert [(n.peer, n.rejection.kind) for n in report.rejected] == [(SCI, "invalid")]
        assert os.strerror(error) in report.rejected[0].rejection.reason
        assert str(trio.owner.box.root) not in report.rejected[0].rejection.reason
        assert not bobs.exists()
    else:
        with pytest.raises(OSError):
            trio.owner.sync_once()
        trio.owner.sync_once()  # retried: nothing was refused
        assert carols.read_bytes() == GOOD_BODY
        assert bobs.read_bytes() == b"x\n"
        assert _owner_events(trio, "sync.rejected") == []


def test_a_path_too_long_in_all_is_refused(trio: Trio) -> None:
    deep = "/".join(["d" * 250] * 17)  # each name fits; the whole path (over 4,096 bytes) does not
    trio.bob_sends(f"jobs/{SCI}/j/code/{deep}/x.py")
    carols = trio.carol_proposes()
    report = trio.owner.sync_once()
    assert carols.read_bytes() == GOOD_BODY
    assert [n.rejection.kind for n in report.rejected] == ["invalid"]
    assert "would make a path of" in report.rejected[0].rejection.reason


def test_the_owners_version_of_a_file_with_a_name_at_the_limit_keeps_mine_aside(
    tmp_path: Path,
) -> None:
    """A name of 255 bytes is valid; keeping my version aside adds a time to it, cut to fit."""
    (tmp_path / "shared").mkdir()
    name = "z" * 255
    with SyncClient(tmp_path / "bob-box", SCI, FolderTransport(tmp_path / "shared")) as bob:
        bob.request_peer(OWNER)
        mine = tmp_path / "bob-box" / OWNER / "public" / name
        mine.parent.mkdir(parents=True)
        mine.write_bytes(b"bob's\n")
        spec = _good_change() | {
            "changes": [
                {"path": f"public/{name}", "old": "none", "new": "blob", "blob": 0}
                | {"size": "exact"}
            ]
        }
        put_message(tmp_path / "shared", OWNER, "outbox", SCI, spec, {}, Sent(), OWNER, SCI)
        report = bob.sync_once()
    assert [r.path for r in report.received] == [f"public/{name}"]
    assert digest_file(mine) == SHAS[0]
    kept = list((tmp_path / "bob-box" / ".syft-sync" / SCI / "conflicts" / OWNER).rglob("z*"))
    assert [k.read_bytes() for k in kept] == [b"bob's\n"]
    assert len(os.fsencode(kept[0].name)) <= 255


def test_a_refusal_tells_a_peer_nothing_about_files_it_may_not_read(trio: Trio) -> None:
    # Probing paths it may not write (under an existing file, a missing one, a folder), a peer
    # must get one and the same answer: what exists there, and which rule refused it, is not
    # its business. The owner's own log keeps the rule.
    owner_root = trio.owner.box.root / OWNER
    (owner_root / "api_data" / "merger").mkdir(parents=True)
    (owner_root / "api_data" / "merger" / "board.pdf").write_bytes(b"secret")
    probes = ["api_data/merger/board.pdf/x", "api_data/merger/none.pdf/x", "api_data/merger"]
    for probe in probes:
        trio.bob_sends(probe)
    rejected = trio.owner.sync_once().rejected
    reasons = {n.rejection.path: (n.rejection.kind, n.rejection.reason) for n in rejected}
    assert reasons == {p: ("denied", f"{SCI} may not write {p}") for p in probes}
    logged = [e for e in trio.owner.box.datasite(OWNER).events if e.what == "sync.rejected"]
    assert len(logged) == len(probes) and all(
        len(str(e.details["reason"])) > len(f"{SCI} may not write {e.path}") for e in logged
    )


def test_a_folder_named_like_a_permission_file_is_refused(trio: Trio) -> None:
    # A folder named syft.pub.yaml reads as a broken permission file, which grants nothing
    # below it: made by a peer with a mere write, it would take everyone's access away.
    trio.bob_sends(f"jobs/{SCI}/j/code/syft.pub.yaml/x")
    rejected = trio.owner.sync_once().rejected
    assert [n.rejection.kind for n in rejected] == ["invalid"]
    assert "syft.pub.yaml" in rejected[0].rejection.reason
    assert not (trio.owner.box.root / OWNER / "jobs" / SCI / "j" / "code").exists()


def test_a_write_right_revoked_while_the_blobs_arrive_is_honoured(
    trio: Trio, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Screened under the old rules, fetched, then applied: a permission revoked in between (a
    # large blob takes a while) must stop the change, not let it land under rights now gone.
    jobs_rules = trio.owner.box.root / OWNER / "jobs" / PERMISSION_FILE
    fetch = Channel.fetch

    def revoking(self: Channel, *args: Any, **kwargs: Any) -> None:
        fetch(self, *args, **kwargs)
        jobs_rules.write_text("terminal: true\nrules: []\n")

    monkeypatch.setattr(Channel, "fetch", revoking)
    trio.bob_sends(f"jobs/{SCI}/j9/run.sh")
    rejected = trio.owner.sync_once().rejected
    assert [(n.rejection.path, n.rejection.kind) for n in rejected] == [
        (f"jobs/{SCI}/j9/run.sh", "denied")
    ]
    assert not (trio.owner.box.root / OWNER / "jobs" / SCI / "j9" / "run.sh").exists()


def test_a_message_of_many_refused_changes_costs_the_owner_a_bounded_reply(trio: Trio) -> None:
    # Refusals are told back and logged: a message of many forbidden changes must not grow the
    # owner's memory, event log and reply with it.
    many = owner_module.MAX_REJECTIONS + 500
    changes = [
        FileChange(path=f"api_data/x{i}.csv", old_digest="0" * 64, new_digest=None)
        for i in range(many)
    ]
    message = ChangeMessage(datasite=OWNER, sender=SCI, recipient=OWNER, changes=changes)
    Channel(trio.shared, OWNER, "inbox", SCI, pool=trio.owner._pool).send(message, {})
    carols = trio.carol_proposes()
    report = trio.owner.sync_once()
    assert carols.read_bytes() == GOOD_BODY
    assert len(report.rejected) == owner_module.MAX_REJECTIONS + 1
    assert "more changes" in report.rejected[-1].rejection.reason
    logged = [e for e in trio.owner.box.datasite(OWNER).events if e.what == "sync.rejected"]
    assert len(logged) == owner_module.MAX_REJECTIONS + 1
    assert len(trio.bob.sync_once().notices) == owner_module.MAX_REJECTIONS + 1


def test_a_publish_larger_than_one_manifest_travels_in_several(
    trio: Trio, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A receiver refuses a manifest over MAX_MANIFEST_BYTES for good: the owner must never send
    # one, and what did not fit (a file published in the same pass) must still arrive.
    monkeypatch.setattr(
        owner_module, "PUBLISH_MANIFEST_BYTES", 20 * owner_module.ENTRY_OVERHEAD_BYTES
    )
    public = trio.owner.box.root / OWNER / "public"
    for i in range(60):
        (public / f"f{i:02d}.csv").write_text(f"{i}\n")
    for _ in range(6):
        trio.owner.sync_once()
        trio.bob.sync_once()
    got = trio.bob.box.root / OWNER / "public"
    assert sorted(p.name for p in got.glob("f*.csv")) == [f"f{i:02d}.csv" for i in range(60)]


def test_a_path_deeper_than_any_datasite_needs_is_refused_not_a_crash(tmp_path: Path) -> None:
    # Folders are made and walked one call per level: 1,500 one-letter folders (3 KB of path,
    # under PATH_MAX) overflowed the stack and stopped every pass, for every owner followed.
    deep = "public/" + "a/" * 1500 + "f.csv"
    (tmp_path / "shared").mkdir()
    shared = FolderTransport(tmp_path / "shared")
    with SyncClient(tmp_path / "bob-box", SCI, shared) as bob:
        bob.request_peer(OWNER)
        changes = [
            {"path": path, "old": "none", "new": "blob", "blob": 0, "size": "exact"}
            for path in (deep, "public/fine.csv")
        ]
        spec = _good_change() | {"changes": changes}
        put_message(tmp_path / "shared", OWNER, "outbox", SCI, spec, {}, Sent(), OWNER, SCI)
        report = bob.sync_once()
    assert [r.path for r in report.received] == ["public/fine.csv"]
    assert any("folders deep" in p for p in report.problems)


def test_one_content_named_by_many_paths_counts_every_copy_against_the_reserve(
    trio: Trio,
) -> None:
    # The free-space reserve was checked against each content once, while each path gets its
    # own copy: one 2 MiB content under 30 paths wrote 60 MiB past a reserve that allowed 2.
    public = trio.owner.box.root / OWNER / "public"
    body = os.urandom(2 << 20)
    for i in range(30):
        (public / f"copy{i}.bin").write_bytes(body)
    trio.owner.sync_once()
    disk = os.statvfs(trio.bob.box.root)
    limits = ReceiveLimits(min_free_bytes=disk.f_bavail * disk.f_frsize - (20 << 20))
    with SyncClient(trio.bob.box.root, SCI, trio.shared, limits=limits) as bob:
        report = bob.sync_once()
    assert report.received == []
    assert any("kept free" in p for p in report.problems)
