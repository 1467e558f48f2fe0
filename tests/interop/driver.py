"""Drives OpenMined's real Syft client code; runs inside a cached client venv, never in ours.

Started by `clients.py` as `<venv>/bin/python driver.py`, it serves JSON lines: one request
`{"op": NAME, "args": {...}}` per stdin line, one reply `{"ok": ..., "result"|"error": ...,
"printed": ...}` per stdout line. One long-lived process per stack, because importing the
clients costs seconds, and because the mock Drive pairs live in this process's memory.

The stack is detected from what is importable: `syft_rds` means protocol 1 (syft 0.10.0 +
syft-rds 0.6.1, syft-job 0.1.40), else `syft_client` means protocol 0 (syft-client 0.1.117,
syft-job 0.1.39). Everything here uses only the clients' public objects, composed exactly as
the clients compose them (see `_job_client`), so what the tests see is what a scientist and
an owner see.

Two topologies:
- shared root (ops without `pair`): both parties' clients point at one folder `ROOT/<email>/`,
  no sync, as OpenMined's standalone syft-job examples do;
- mock Drive (ops with `pair`): the clients' own `pair_with_mock_drive_service_connection`,
  each party with its own folder and the real sync engine over an in-memory Drive.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import io
import json
import os
import sys
import traceback
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

PROTOCOL = 1 if importlib.util.find_spec("syft_rds") else 0
# The module a job's code imports to find its data (`<module>.resolve_dataset_file_path`).
RESOLVE_MODULE = "syft" if PROTOCOL == 1 else "syft_client"

Args = dict[str, Any]
PAIRS: dict[str, tuple[Any, Any]] = {}  # pair id -> (ds client, do client), mock Drive only


def _mod(name: str) -> Any:
    """Imports lazily, so the ops of the other stack never import what is absent."""
    return importlib.import_module(name)


def _job_client(root: str, email: str, do_role: bool, peer: str | None = None) -> Any:
    """A JobClient built as syft-rds' `SyftRDSClientConfig._compose` and syft-client's
    `SyftboxManagerConfig` build theirs: one SyftJobConfig from (folder, email, role)."""
    job = _mod("syft_job")
    config = job.SyftJobConfig(
        syftbox_folder=Path(root), current_user_email=email, has_do_role=do_role
    )
    client = job.JobClient.from_config(config)
    if PROTOCOL == 1 and peer is not None:
        # syft-rds copies the install source each DO advertises in its VersionInfo into
        # `peer_install_sources` (SyftRDSClient._on_peers_loaded); with no sync we do the same
        # with the VersionInfo this DO would advertise, else run.sh gets `syft>=0.10.0`.
        info = _mod("syft.sync.version.version_info").VersionInfo.current()
        client.peer_install_sources[peer] = info.syft_client_install_source
    return client


def _dataset_manager(root: str, email: str) -> Any:
    """The SyftDatasetManager both clients compose from (folder, email)."""
    return _mod("syft_datasets.dataset_manager").SyftDatasetManager(
        syftbox_folder_path=Path(root), email=email
    )


def _parties(args: Args) -> tuple[Any, Any]:
    """(DS job client, DO job client): the mock pair's own, or fresh ones on a shared root."""
    if "pair" in args:
        ds, do = PAIRS[args["pair"]]
        return ds.job_client, do.job_client
    return (
        _job_client(args["root"], args["ds"], do_role=False),
        _job_client(args["root"], args["do"], do_role=True),
    )


def _find(client: Any, do: str, ds: str, name: str) -> Any:
    """The job `name` that `ds` sent to `do`, as `client.jobs` lists it (None if absent)."""
    for job in client.jobs:
        if job.name == name and job.datasite_owner_email == do and job.submitted_by == ds:
            return job
    return None


def _summary(job: Any) -> Args:
    """What a job list row shows."""
    return {
        "name": job.name,
        "status": job.status,
        "datasite_owner_email": job.datasite_owner_email,
        "submitted_by": job.submitted_by,
        "submitted_at": job.submitted_at,
    }


def _output(path: Path) -> Any:
    """A text file's content, the listing of a folder, or the hex of binary bytes."""
    if path.is_dir():
        return {"dir": sorted(str(p.relative_to(path)) for p in path.rglob("*"))}
    data = path.read_bytes()
    try:
        return data.decode()
    except UnicodeDecodeError:
        return {"hex": data.hex()}


def _view(job: Any) -> Args:
    """The scientist's view of a job, exactly through the client's JobInfo accessors."""
    outputs = job.output_paths  # prints a hint unless done/failed: captured in `printed`
    state = job._state  # no public accessor: rc is only shown in the repr table
    return {
        **_summary(job),
        "return_code": state.return_code,
        "approved_by": state.approved_by,
        "approval_method": job.approval_method,
        "review_reason": job.review_reason,
        "stdout": str(job.stdout),
        "stderr": str(job.stderr),
        "outputs": {p.name: _output(p) for p in outputs},
        "inbox_path": str(job.job_submission_path),
        "review_path": str(job.job_review_path),
    }


# ---------------------------------------------------------------- ops


def op_info(args: Args) -> Args:
    """Which stack this is and the versions that matter."""
    meta = _mod("importlib.metadata")
    names = ["syft", "syft-rds", "syft-client", "syft-job", "syft-dataset", "syft-permissions"]
    versions = {}
    for name in names:
        with contextlib.suppress(meta.PackageNotFoundError):
            versions[name] = meta.version(name)
    return {"protocol": PROTOCOL, "resolve_module": RESOLVE_MODULE, "versions": versions}


def op_add_peer(args: Args) -> Args:
    """What the owner's client does on approving a peer: create inbox/ and review/ for DS
    with their syft.pub.yaml (`JobClient.setup_ds_job_folder_as_do`)."""
    _, do = _parties(args)
    return {"inbox": str(do.setup_ds_job_folder_as_do(args["ds"]))}


def op_submit_bash(args: Args) -> Args:
    """The scientist submits a bash job (`submit_bash_job`)."""
    if "pair" in args:
        ds, _ = PAIRS[args["pair"]]
        ds.submit_bash_job(args["do"], args["script"], job_name=args["name"])
        return {}
    client = _job_client(args["root"], args["ds"], do_role=False, peer=args["do"])
    return {"job_dir": str(client.submit_bash_job(args["do"], args["script"], args["name"]))}


def op_submit_python(args: Args) -> Args:
    """The scientist submits a python job: a file or folder, entrypoint, dependencies; the
    client itself prepends its install source to the dependencies."""
    kwargs = {
        "job_name": args["name"],
        "dependencies": args.get("deps") or [],
        "entrypoint": args.get("entrypoint"),
    }
    if "pair" in args:
        ds, _ = PAIRS[args["pair"]]
        ds.submit_python_job(args["do"], args["code"], **kwargs)
        return {}
    client = _job_client(args["root"], args["ds"], do_role=False, peer=args["do"])
    return {"job_dir": str(client.submit_python_job(args["do"], args["code"], **kwargs))}


def op_list_jobs(args: Args) -> list[Args]:
    """`client.jobs` of one party (`as`: "do" or "ds"); the owner's listing also scans its
    inbox, which writes `pending` (or `rejected` for a malformed submission)."""
    owner = args["as"] == "do"
    if "pair" in args:
        client = PAIRS[args["pair"]][1 if owner else 0].job_client
    else:
        client = _job_client(args["root"], args["email"], do_role=owner)
    return [_summary(job) for job in client.jobs]


def _review(args: Args, action: Callable[[Any], None]) -> Args:
    """Finds the job in the owner's `jobs` and applies `action` to its JobInfo."""
    _, do = _parties(args)
    job = _find(do, args["do"], args["ds"], args["name"])
    if job is None:
        raise LookupError(f"the owner's client lists no job {args['name']!r}")
    action(job)
    return {"status": job.status}


def op_approve(args: Args) -> Args:
    """The owner approves (`JobInfo.approve`)."""
    return _review(args, lambda job: job.approve(reason=args.get("reason")))


def op_reject(args: Args) -> Args:
    """The owner rejects with a reason (`JobInfo.reject`)."""
    return _review(args, lambda job: job.reject(reason=args.get("reason")))


def op_read(args: Args) -> Args | None:
    """The scientist reads a job: status, rc, stdout, stderr, outputs (None if not listed)."""
    ds, _ = _parties(args)
    job = _find(ds, args["do"], args["ds"], args["name"])
    return None if job is None else _view(job)


def op_create_dataset(args: Args) -> Args:
    """The owner creates a dataset: `client.create_dataset` over the mock Drive, else the
    client's own dataset manager (what create_dataset does locally before uploading)."""
    kwargs = {
        "name": args["name"],
        "mock_path": args["mock_path"],
        "private_path": args["private_path"],
        "summary": args.get("summary"),
        "users": args.get("users") or [],
    }
    if "pair" in args:
        dataset = PAIRS[args["pair"]][1].create_dataset(**kwargs)
    else:
        dataset = _dataset_manager(args["root"], args["do"]).create(**kwargs)
    return {"mock_dir": str(dataset.mock_dir), "private_dir": str(dataset.private_dir)}


@contextlib.contextmanager
def _env(values: dict[str, str]) -> Iterator[None]:
    """Sets environment variables for one call, then restores them."""
    saved = {key: os.environ.get(key) for key in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def op_resolve_dataset(args: Args) -> Args:
    """What a job's `<module>.resolve_dataset_file_path(name)` returns under the environment
    the real runner gives (SYFTBOX_FOLDER, SYFTBOX_EMAIL, SYFT_IS_IN_JOB)."""
    env = {"SYFTBOX_FOLDER": args["root"], "SYFTBOX_EMAIL": args["do"]}
    env["SYFT_IS_IN_JOB"] = "true" if args.get("in_job", True) else "false"
    with _env(env):
        module = _mod(RESOLVE_MODULE)
        first = module.resolve_dataset_file_path(args["name"])
        every = module.resolve_dataset_files_path(args["name"])
    return {"path": str(first), "paths": [str(p) for p in every]}


def op_mock_pair(args: Args) -> Args:
    """A (DS, DO) pair of real clients over the in-memory mock Drive, each with its own
    folder, peers added and approved, as the packages' own tests and examples build it."""
    if PROTOCOL == 1:
        factory = _mod("syft_rds").SyftRDSClient.pair_with_mock_drive_service_connection
    else:
        manager = _mod("syft_client.sync.syftbox_manager").SyftboxManager
        factory = manager.pair_with_mock_drive_service_connection
    ds, do = factory(
        email1=args["do"],
        email2=args["ds"],
        base_path1=Path(args["do_root"]),
        base_path2=Path(args["ds_root"]),
        use_in_memory_cache=False,
    )
    PAIRS[args["pair"]] = (ds, do)
    return {"ds_root": str(ds.syftbox_folder), "do_root": str(do.syftbox_folder)}


def op_sync(args: Args) -> Args:
    """One party's `client.sync()` over the mock Drive."""
    ds, do = PAIRS[args["pair"]]
    (do if args["as"] == "do" else ds).sync()
    return {}


OPS: dict[str, Callable[[Args], Any]] = {
    name[3:]: fn for name, fn in globals().items() if name.startswith("op_")
}


def handle(line: str) -> Args:
    """Runs one request; what the clients print is captured, never mixed into the replies."""
    printed = io.StringIO()
    try:
        request = json.loads(line)
        with contextlib.redirect_stdout(printed):
            result = OPS[request["op"]](request.get("args") or {})
        return {"ok": True, "result": result, "printed": printed.getvalue()}
    except Exception as exc:
        error = f"{type(exc).__name__}: {exc}"
        trace = traceback.format_exc()
        return {"ok": False, "error": error, "traceback": trace, "printed": printed.getvalue()}


def main() -> None:
    """Serves requests until stdin closes. The request and reply streams are dups of fds 0
    and 1, which then point at /dev/null and stderr: a client's prompt (`input()`, as in
    syft's pre-submit check) reads EOF instead of eating a request, and nothing printed (by a
    subprocess, a C extension) can corrupt the replies."""
    requests = os.fdopen(os.dup(0), encoding="utf-8")
    replies = os.fdopen(os.dup(1), "w", encoding="utf-8")
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.dup2(2, 1)
    sys.stdin = open(os.devnull, encoding="utf-8")  # noqa: SIM115 (lives as long as we do)
    sys.stdout = sys.stderr
    for line in requests:
        if line.strip():
            replies.write(json.dumps(handle(line), default=str) + "\n")
            replies.flush()


if __name__ == "__main__":
    main()
