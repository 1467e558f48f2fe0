"""A throwaway Docker Swarm (1 manager + N workers) on one machine, beside the main engine.

Used by the Swarm tests (`tests/swarm/conftest.py`), by developers
(`python -m tests.swarm.cluster up|down|status [--dir D]`) and by benches:

    with SwarmCluster(workdir, workers=2, images=["syft-runner/minimal:latest"]) as cluster:
        cluster.client().services.create(...)

Each node is a `dockerd` (which starts its own containerd) inside namespaces created here:
a network namespace with one veth into a private bridge that lives in a namespace of its own
(private subnet, no default route: nodes only reach each other), and a mount + UTS namespace
where private folders are bound over /run/docker, /run/containerd, /etc/docker and
/var/lib/docker so no node shares a key or a shim socket with the main engine. Nothing is
attached to the host's root network namespace, and no mount is made in the host's mount
namespace. Measured facts behind these choices: /work/shared/reference/swarm.md.

Everything created is written to a state file in the work dir *before* it is created, so
`down` (or the next run, see `reap_stale`) can remove what a crashed run left behind; the
tear-down is idempotent and only touches processes inside namespaces or cgroups made here.
"""

from __future__ import annotations

import argparse
import hashlib
import ipaddress
import json
import logging
import os
import random
import secrets
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager, suppress
from dataclasses import asdict, dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

import docker

log = logging.getLogger(__name__)

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_SECCOMP_PROFILE = REPO_ROOT / "seccomp" / "job.json"
IMAGE_CACHE = Path.home() / ".cache" / "syft-runner-tests" / "swarm"
STATE_FILE = "swarm-state.json"
NAME_PREFIX = "syftsw-"
# Bound over privately in each node: otherwise nodes share the main engine's key and sockets.
PRIVATE_DIRS = ("/run/docker", "/run/containerd", "/etc/docker", "/var/lib/docker")
SWARM_PORT = 2377
REQUIRED_TOOLS = ("ip", "unshare", "nsenter", "dockerd", "docker")


class ClusterError(RuntimeError):
    pass


@dataclass(frozen=True)
class Node:
    name: str  # netns name == hostname == Swarm node hostname
    role: str  # "manager" or "worker"
    address: str  # on the private L2
    bip: str  # the node's own docker0, away from the main engine's 172.17/16
    dir: Path

    @property
    def socket_url(self) -> str:
        return f"unix://{self.dir / 'docker.sock'}"

    @property
    def cgroup_parent(self) -> str:
        return f"/{self.name}"


@dataclass
class State:
    """What a cluster created, persisted as JSON before each resource is created."""

    prefix: str
    workdir: str
    owner_pid: int
    owner_started: float
    persistent: bool = False  # left up by `up`: never reaped as stale
    octet: int = 0
    nodes: list[dict[str, str]] = field(default_factory=list)
    netns: list[str] = field(default_factory=list)
    netns_inodes: list[int] = field(default_factory=list)
    mntns_inodes: list[int] = field(default_factory=list)
    holders: dict[str, int] = field(default_factory=dict)
    dockerd: dict[str, int] = field(default_factory=dict)
    cgroup_parents: list[str] = field(default_factory=list)

    def save(self) -> None:
        path = Path(self.workdir) / STATE_FILE
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(asdict(self), indent=1))
        os.replace(tmp, path)

    @classmethod
    def load(cls, workdir: Path) -> State | None:
        path = workdir / STATE_FILE
        try:
            return cls(**json.loads(path.read_text()))
        except FileNotFoundError:
            return None
        except (ValueError, TypeError) as exc:  # not ours, or torn: never guess what to delete
            log.warning("ignoring unreadable swarm state %s: %s", path, exc)
            return None


# --- small helpers -------------------------------------------------------------------------


def _run(*cmd: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(cmd, capture_output=True, text=True)
    if check and result.returncode != 0:
        raise ClusterError(f"{' '.join(cmd)} failed ({result.returncode}): {result.stderr.strip()}")
    return result


def _ip(*args: str, netns: str | None = None) -> None:
    _run("ip", *(("-n", netns) if netns else ()), *args)


def _ns_inode(pid: int, kind: str) -> int | None:
    try:
        return os.stat(f"/proc/{pid}/ns/{kind}").st_ino
    except OSError:
        return None


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


def _read_pid(path: Path) -> int | None:
    try:
        return int(path.read_text().strip())
    except (OSError, ValueError):
        return None


def _wait_until(what: str, ready: Callable[[], bool], timeout: float, step: float = 0.1) -> None:
    deadline = time.monotonic() + timeout
    while not ready():
        if time.monotonic() > deadline:
            raise ClusterError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(step)


@contextmanager
def _timed(timings: dict[str, float], step: str) -> Iterator[None]:
    start = time.monotonic()
    try:
        yield
    finally:
        timings[step] = round(time.monotonic() - start, 2)
        log.info("swarm %s: %.2f s", step, timings[step])


def _cgroup_mounts() -> list[tuple[str, str, str]]:
    """(fstype, mount point, options) of every cgroup hierarchy the host has mounted."""
    mounts = []
    for line in Path("/proc/self/mounts").read_text().splitlines():
        _src, target, fstype, options, *_ = line.split()
        if fstype in ("cgroup", "cgroup2"):
            mounts.append((fstype, target, options))
    return mounts


def missing_requirements() -> str | None:
    """Why this machine cannot run the cluster, or None."""
    if os.geteuid() != 0:
        return "needs root (network and mount namespaces, a dockerd per node)"
    missing = [tool for tool in REQUIRED_TOOLS if shutil.which(tool) is None]
    return f"missing tools: {', '.join(missing)}" if missing else None


# --- the private network ---------------------------------------------------------------------


def _host_networks() -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    """Every IPv4 prefix the host's root namespace has an address or route for."""
    nets = []
    for line in _run("ip", "-4", "-o", "addr").stdout.splitlines():
        nets.append(ipaddress.ip_interface(line.split()[3]).network)
    for line in _run("ip", "-4", "route", "show", "table", "all").stdout.splitlines():
        dst = line.split()[0]
        if dst not in ("default", "broadcast", "local", "unreachable", "blackhole"):
            nets.append(ipaddress.ip_network(dst, strict=False))
    return nets


def _pick_octet() -> int:
    """A third octet N such that 10.213.N/24 (node L2) and 10.214.N/24 (node bridges) are unused
    on the host, so an address seen in a test can never be mistaken for a host one."""
    used = _host_networks()
    for _ in range(200):
        octet = random.randint(16, 250)
        ours = [ipaddress.ip_network(f"10.{b}.{octet}.0/24") for b in (213, 214)]
        if not any(a.overlaps(b) for a in ours for b in used):
            return octet
    raise ClusterError("no free 10.213.N.0/24 subnet found")


def _create_l2(prefix: str, nodes: list[Node]) -> None:
    """A bridge in its own namespace, one veth per node created directly between the two
    namespaces (never in the root namespace), no default route anywhere."""
    bridge_ns = f"{prefix}-br"
    _ip("link", "set", "lo", "up", netns=bridge_ns)
    _ip("link", "add", "br0", "type", "bridge", netns=bridge_ns)
    _ip("link", "set", "br0", "up", netns=bridge_ns)
    for i, node in enumerate(nodes):
        veth = f"v{i}"
        _ip("link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", node.name,
            netns=bridge_ns)  # fmt: skip
        _ip("link", "set", veth, "master", "br0", "up", netns=bridge_ns)
        _ip("link", "set", "lo", "up", netns=node.name)
        _ip("addr", "add", f"{node.address}/24", "dev", "eth0", netns=node.name)
        _ip("link", "set", "eth0", "up", netns=node.name)


# --- node namespaces and daemons ---------------------------------------------------------------


def _holder_script(node: Node, data_on_tmpfs: bool, shared: Path) -> str:
    """Runs inside `ip netns exec NS unshare -m -u`: prepares the node's mount namespace, then
    sleeps so the namespace outlives any dockerd (a restarted dockerd joins the same one)."""
    # `ip netns exec` remounts /sys, which hides the cgroup v1 hierarchies dockerd needs.
    lines = ["set -e", f"hostname {node.name}", "mount -t tmpfs -o mode=755 cgroup /sys/fs/cgroup"]
    if data_on_tmpfs:
        # Image layers in RAM, visible only in this namespace and freed with it: deleting the
        # unpacked images from disk was most of the tear-down (19 s of 22 s).
        data = node.dir / "data"
        lines.append(f"mkdir -p {data} && mount -t tmpfs -o mode=711 {node.name}-data {data}")
    for fstype, target, options in _cgroup_mounts():
        if target == "/sys/fs/cgroup":
            continue
        lines.append(f"mkdir -p {target} && mount -t {fstype} -o {options} {fstype} {target}")
    for private in PRIVATE_DIRS:
        source = node.dir / "private" / private.strip("/").replace("/", "_")
        lines.append(f"mkdir -p {private} && mount --bind {source} {private}")
    # The shared folder as a worker mounts its NFS/CephFS export: noexec, nosuid, nodev, so
    # nothing a job writes into its outputs can be run (the local backend's per-job filesystem
    # gives the same; `doctor` checks it from inside a task).
    lines.append(
        f"mount --bind {shared} {shared} && mount -o remount,bind,noexec,nosuid,nodev {shared}"
    )
    lines += [f"touch {node.dir / 'holder.ready'}", "exec sleep infinity"]
    return "\n".join(lines)


def _daemon_config(node: Node, seccomp_profile: Path) -> dict[str, Any]:
    return {
        "data-root": str(node.dir / "data"),
        "exec-root": str(node.dir / "exec"),
        "pidfile": str(node.dir / "dockerd.pid"),
        "hosts": [node.socket_url],
        "cgroup-parent": node.cgroup_parent,
        "bip": node.bip,
        # Swarm cannot set seccomp per service: the node daemon applies the job profile (which
        # replaces Docker's default) and no-new-privileges to every task.
        "seccomp-profile": str(seccomp_profile),
        "no-new-privileges": True,
        # What the local backend sets per container and a service cannot: the node's defaults.
        "default-cgroupns-mode": "private",
        "default-ipc-mode": "private",
        "shutdown-timeout": 3,
        "userland-proxy": False,
        "log-level": "warn",
    }


def _start_holder(node: Node, data_on_tmpfs: bool, shared: Path) -> int:
    for private in PRIVATE_DIRS:
        (node.dir / "private" / private.strip("/").replace("/", "_")).mkdir(parents=True)
    script = _holder_script(node, data_on_tmpfs, shared)
    cmd = ["ip", "netns", "exec", node.name, "unshare", "--mount", "--uts",
           "--propagation", "private", "sh", "-c", script]  # fmt: skip
    log_file = open(node.dir / "holder.log", "wb")  # noqa: SIM115 -- the child keeps it
    with log_file:
        # Each exec replaces the previous program (no fork), so this pid is the holder's.
        proc = subprocess.Popen(cmd, stdout=log_file, stderr=log_file, start_new_session=True)
    return proc.pid


def _start_dockerd(node: Node, holder_pid: int) -> subprocess.Popen[bytes]:
    env = dict(os.environ, DOCKER_SERVICE_PREFER_OFFLINE_IMAGE="1")  # else workers pull per task
    cmd = ["nsenter", f"--target={holder_pid}", "--mount", "--uts", "--net",
           "dockerd", "--config-file", str(node.dir / "daemon.json")]  # fmt: skip
    with open(node.dir / "dockerd.log", "ab") as log_file:
        return subprocess.Popen(cmd, stdout=log_file, stderr=log_file, env=env, cwd=node.dir,
                                start_new_session=True)  # fmt: skip


@contextmanager
def _docker(url: str | None = None, timeout: int = 60) -> Iterator[docker.DockerClient]:
    """A client that is closed afterwards (DockerClient is no context manager); None: main."""
    client = (
        docker.from_env() if url is None else docker.DockerClient(base_url=url, timeout=timeout)
    )
    try:
        yield client
    finally:
        client.close()


def _ping(url: str) -> bool:
    try:
        with _docker(url, timeout=5) as client:
            return bool(client.ping())
    except Exception:
        return False


def _wait_dockerd(node: Node, proc: subprocess.Popen[bytes], timeout: float = 60) -> None:
    def tail() -> str:
        return (node.dir / "dockerd.log").read_text(errors="replace")[-2000:]

    def ready() -> bool:
        if proc.poll() is not None:
            raise ClusterError(f"dockerd of {node.name} exited ({proc.returncode}):\n{tail()}")
        return _ping(node.socket_url)

    try:
        _wait_until(f"dockerd of {node.name}", ready, timeout)
    except ClusterError as exc:
        raise ClusterError(f"{exc}\n{tail()}") from None


# --- images --------------------------------------------------------------------------------


def saved_images(refs: list[str]) -> Path:
    """A `docker save` tarball of refs from the main engine (read-only use), cached by image id
    so an unchanged set is saved once."""
    with _docker() as main:
        ids = sorted(f"{ref}={main.images.get(ref).id}" for ref in refs)
    key = hashlib.sha256("\n".join(ids).encode()).hexdigest()[:20]
    tarball = IMAGE_CACHE / f"{key}.tar"
    if not tarball.exists():
        IMAGE_CACHE.mkdir(parents=True, exist_ok=True)
        tmp = tarball.with_suffix(f".{os.getpid()}.tmp")
        _run("docker", "save", "-o", str(tmp), *refs)
        os.replace(tmp, tarball)
    return tarball


def _load_images(tarball: Path, urls: list[str]) -> None:
    """`docker load` into every node at once (the load is CPU- and disk-bound per node)."""
    procs = [
        subprocess.Popen(["docker", "-H", url, "load", "-q", "-i", str(tarball)],
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        for url in urls
    ]  # fmt: skip
    errors = [p.communicate()[1] for p in procs if p.wait() != 0]
    if errors:
        raise ClusterError(f"docker load failed: {errors}")


# --- tear-down (works from the state file alone) ---------------------------------------------


def _our_pids(state: State) -> set[int]:
    """Processes inside a namespace or cgroup this cluster created, and nothing else."""
    net, mnt = set(state.netns_inodes), set(state.mntns_inodes)
    pids = set()
    for entry in os.scandir("/proc"):
        if entry.name.isdigit() and int(entry.name) != os.getpid():
            pid = int(entry.name)
            if _ns_inode(pid, "net") in net or _ns_inode(pid, "mnt") in mnt:
                pids.add(pid)
    for cgroup in _cgroup_dirs(state):
        for procs in cgroup.rglob("cgroup.procs"):
            with suppress(OSError):
                pids.update(int(p) for p in procs.read_text().split())
    return {pid for pid in pids if _alive(pid)}


def _cgroup_dirs(state: State) -> list[Path]:
    return [
        Path(target) / parent.lstrip("/")
        for _fstype, target, _options in _cgroup_mounts()
        for parent in state.cgroup_parents
        if (Path(target) / parent.lstrip("/")).is_dir()
    ]


def _stop_daemons(state: State, grace: float) -> None:
    """SIGTERM each recorded dockerd (it stops its containers and its containerd), SIGKILL after
    the grace period. A pid is signalled only while it still lives in one of our namespaces."""
    ours = _our_pids(state)
    daemons = [pid for pid in state.dockerd.values() if pid in ours]
    for pid in daemons:
        os.kill(pid, signal.SIGTERM)
    try:
        _wait_until("dockerd exit", lambda: not any(_alive(p) for p in daemons), grace)
    except ClusterError:
        log.warning("dockerd still running after %.0f s: killing", grace)


def _kill_leftovers(state: State, timeout: float = 15) -> None:
    """SIGKILL every process left in our namespaces/cgroups (containerd, shims, containers,
    namespace holders) until none remains."""

    def none_left() -> bool:
        pids = _our_pids(state)
        for pid in pids:
            with suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        return not pids

    _wait_until("cluster processes to exit", none_left, timeout, step=0.2)


def _remove_cgroups(state: State) -> None:
    for cgroup in _cgroup_dirs(state):
        for _ in range(50):  # a cgroup can stay busy for a moment after its last task died
            try:
                for sub in sorted(cgroup.rglob("*"), key=lambda p: len(p.parts), reverse=True):
                    if sub.is_dir():
                        sub.rmdir()
                cgroup.rmdir()
                break
            except FileNotFoundError:
                break
            except OSError:
                time.sleep(0.1)
        else:
            log.warning("could not remove cgroup %s", cgroup)


def _unmount_under(workdir: Path) -> None:
    """Nothing is mounted in the host namespace by design; this only repairs a foreign leftover."""
    for line in reversed(Path("/proc/self/mounts").read_text().splitlines()):
        target = line.split()[1]
        if target == str(workdir) or target.startswith(f"{workdir}/"):
            _run("umount", "-l", target, check=False)


def teardown(workdir: Path, grace: float = 10) -> dict[str, float]:
    """Remove everything the state file in workdir records. Idempotent; returns timings."""
    timings: dict[str, float] = {}
    state = State.load(workdir)
    if state is None:
        return timings
    with _timed(timings, "teardown total"):
        with _timed(timings, "stop dockerd"):
            _stop_daemons(state, grace)
        with _timed(timings, "kill leftovers"):
            _kill_leftovers(state)
        with _timed(timings, "delete namespaces"):
            for name in state.netns:
                if Path("/run/netns", name).exists():
                    _run("ip", "netns", "delete", name, check=False)
        _remove_cgroups(state)
        _unmount_under(workdir)
        with _timed(timings, "remove node folders"):
            folders = [node["dir"] for node in state.nodes] + [str(workdir / "shared")]
            with ThreadPoolExecutor(max_workers=len(folders)) as pool:
                list(pool.map(lambda d: shutil.rmtree(d, ignore_errors=True), folders))
        (workdir / STATE_FILE).unlink(missing_ok=True)
    return timings


def _owner_alive(state: State) -> bool:
    try:
        import psutil

        return bool(psutil.Process(state.owner_pid).create_time() == state.owner_started)
    except Exception:
        return False


def reap_stale(base: Path) -> list[Path]:
    """Tear down and delete the work dirs under base whose owning process died without tearing
    down (a killed test run). Clusters left up on purpose (`up`) and live ones are left alone."""
    reaped = []
    for state_file in sorted(base.glob(f"*/{STATE_FILE}")):
        state = State.load(state_file.parent)
        if state and not state.persistent and not _owner_alive(state):
            log.warning("reaping a stale swarm cluster in %s", state_file.parent)
            teardown(state_file.parent)
            shutil.rmtree(state_file.parent, ignore_errors=True)
            reaped.append(state_file.parent)
    return reaped


# --- the cluster ---------------------------------------------------------------------------


class SwarmCluster:
    """1 manager (drained) + `workers` workers, each a dockerd in namespaces of its own."""

    def __init__(
        self,
        workdir: Path | str,
        workers: int = 2,
        images: list[str] | None = None,
        seccomp_profile: Path | str = DEFAULT_SECCOMP_PROFILE,
        labels: dict[str, dict[str, str]] | None = None,
        load_images_on_manager: bool = False,
        persistent: bool = False,
        data_on_tmpfs: bool = True,
    ) -> None:
        self.workdir = Path(workdir).resolve()
        self.workers = workers
        self.images = list(images or [])
        self.seccomp_profile = Path(seccomp_profile).resolve()
        self.initial_labels = labels or {}
        self.load_images_on_manager = load_images_on_manager
        self.persistent = persistent
        self.data_on_tmpfs = data_on_tmpfs
        self.timings: dict[str, float] = {}
        self.nodes: list[Node] = []
        self._procs: dict[str, subprocess.Popen[bytes]] = {}
        self._state: State | None = None

    # -- public API --

    @property
    def shared_dir(self) -> Path:
        """A folder every node sees at the same path. All namespaces share this host's file
        system, so a host folder is enough; a real deployment uses NFS/CephFS mounted at the
        same path on every node."""
        return self.workdir / "shared"

    @property
    def manager(self) -> Node:
        return self.nodes[0]

    @property
    def manager_socket(self) -> str:
        return self.manager.socket_url

    @property
    def manager_address(self) -> str:
        return self.manager.address

    @property
    def worker_sockets(self) -> dict[str, str]:
        return {n.name: n.socket_url for n in self.nodes if n.role == "worker"}

    @property
    def node_names(self) -> list[str]:
        return [n.name for n in self.nodes]

    def client(self) -> docker.DockerClient:
        return docker.DockerClient(base_url=self.manager_socket, timeout=60)

    def node_client(self, name: str) -> docker.DockerClient:
        return docker.DockerClient(base_url=self._node(name).socket_url, timeout=60)

    def __enter__(self) -> SwarmCluster:
        self.up()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.down()

    def up(self) -> None:
        """Bring the cluster up; on any failure, tear down what was made and re-raise."""
        teardown(self.workdir)  # a previous run's leftovers in this work dir
        try:
            with _timed(self.timings, "bring-up total"):
                self._up()
        except BaseException:
            log.exception("swarm bring-up failed: tearing down")
            self.down()
            raise

    def down(self) -> None:
        for proc in self._procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        self.timings.update(teardown(self.workdir))
        for proc in self._procs.values():
            proc.wait()  # reap: no zombie dockerd left in this process
        self._procs.clear()

    def label_node(self, node_name: str, key: str, value: str) -> None:
        """Set a Swarm node label (for placement constraints like node.labels.dataset==x)."""
        with _docker(self.manager_socket) as client:
            node = self._swarm_node(client, node_name)
            spec = dict(node.attrs["Spec"])
            spec["Labels"] = {**spec.get("Labels", {}), key: value}
            node.update(spec)

    def kill_worker_daemon(self, name: str) -> None:
        """kill -9 the worker's dockerd (its containers keep running), as when a node is lost."""
        node = self._node(name)
        containerd = _read_pid(node.dir / "exec" / "containerd" / "containerd.pid")
        proc = self._procs[node.name]
        proc.kill()
        proc.wait()
        # Its containerd dies with it (parent-death signal), but not always at once.
        if containerd is not None:
            with suppress(ClusterError):
                _wait_until(f"containerd of {name} to exit", lambda: not _alive(containerd), 10)

    def restart_worker_daemon(self, name: str, timeout: float = 60) -> None:
        """Start the worker's dockerd again in the same namespaces; it rejoins the swarm."""
        node = self._node(name)
        state = self._require_state()
        if self._procs[name].poll() is None:
            raise ClusterError(f"dockerd of {name} is still running")
        # The killed dockerd's containerd is dead but may linger as a zombie (this machine's
        # init reaps late): dockerd would see its pid "alive", adopt it and time out.
        pidfile = node.dir / "exec" / "containerd" / "containerd.pid"
        containerd = _read_pid(pidfile)
        if containerd is not None and not _alive(containerd):
            pidfile.unlink(missing_ok=True)
        self._procs[name] = _start_dockerd(node, state.holders[name])
        state.dockerd[name] = self._procs[name].pid
        state.save()
        _wait_dockerd(node, self._procs[name], timeout)

    def wait_nodes_ready(self, timeout: float = 60) -> None:
        def all_ready() -> bool:
            with _docker(self.manager_socket) as client:
                nodes = client.nodes.list()
            states = {n.attrs["Description"]["Hostname"]: n.attrs["Status"]["State"] for n in nodes}
            return len(states) == len(self.nodes) and set(states.values()) == {"ready"}

        _wait_until("all swarm nodes ready", all_ready, timeout, step=0.2)

    # -- bring-up steps --

    def _up(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        if not self.seccomp_profile.is_file():
            raise ClusterError(f"seccomp profile not found: {self.seccomp_profile}")
        state = self._new_state()
        with _timed(self.timings, "namespaces + network"):
            self._create_namespaces(state)
        with _timed(self.timings, "dockerd start"):
            self._start_nodes(state)
        loader = self._start_image_load()  # overlaps with forming the swarm
        with _timed(self.timings, "swarm init + join + ready"):
            self._form_swarm()
        with _timed(self.timings, "image load (after swarm ready)"):
            loader.join()
            if self._load_error:
                raise self._load_error

    def _new_state(self) -> State:
        prefix = f"{NAME_PREFIX}{secrets.token_hex(3)}"
        octet = _pick_octet()
        names = [f"{prefix}-m"] + [f"{prefix}-w{i + 1}" for i in range(self.workers)]
        self.nodes = [
            Node(name, "manager" if i == 0 else "worker", f"10.213.{octet}.{i + 1}",
                 f"10.214.{octet}.{i * 16 + 1}/28", self.workdir / name)
            for i, name in enumerate(names)
        ]  # fmt: skip
        me = os.getpid()
        import psutil

        state = State(prefix, str(self.workdir), me, psutil.Process(me).create_time(),
                      self.persistent, octet)  # fmt: skip
        state.nodes = [{"name": n.name, "role": n.role, "dir": str(n.dir)} for n in self.nodes]
        state.cgroup_parents = [n.cgroup_parent for n in self.nodes]
        self._state = state
        state.save()
        return state

    def _create_namespaces(self, state: State) -> None:
        for name in [f"{state.prefix}-br", *self.node_names]:
            state.netns.append(name)
            state.save()  # recorded before it exists: a crash right after still cleans it
            _run("ip", "netns", "add", name)
            state.netns_inodes.append(os.stat(f"/run/netns/{name}").st_ino)
        state.save()
        _create_l2(state.prefix, self.nodes)

    def _start_nodes(self, state: State) -> None:
        self.shared_dir.mkdir(parents=True, exist_ok=True)
        for node in self.nodes:
            node.dir.mkdir(parents=True)
            config = _daemon_config(node, self.seccomp_profile)
            (node.dir / "daemon.json").write_text(json.dumps(config, indent=1))
            state.holders[node.name] = _start_holder(node, self.data_on_tmpfs, self.shared_dir)
        state.save()
        for node in self.nodes:
            _wait_until(f"namespaces of {node.name}", (node.dir / "holder.ready").exists, 15)
            state.mntns_inodes.append(_ns_inode(state.holders[node.name], "mnt") or 0)
        for node in self.nodes:
            self._procs[node.name] = _start_dockerd(node, state.holders[node.name])
            state.dockerd[node.name] = self._procs[node.name].pid
        state.save()
        for node in self.nodes:
            _wait_dockerd(node, self._procs[node.name])

    def _start_image_load(self) -> threading.Thread:
        self._load_error: BaseException | None = None
        targets = [n.socket_url for n in self.nodes if n.role == "worker"]
        if self.load_images_on_manager:
            targets.append(self.manager_socket)

        def load() -> None:
            try:
                if self.images:
                    start = time.monotonic()
                    tarball = saved_images(self.images)
                    self.timings["image save (cached)"] = round(time.monotonic() - start, 2)
                    _load_images(tarball, targets)
            except BaseException as exc:
                self._load_error = exc

        thread = threading.Thread(target=load, name="swarm-image-load", daemon=True)
        thread.start()
        return thread

    def _form_swarm(self) -> None:
        manager = self.manager
        with _docker(self.manager_socket) as client:
            client.swarm.init(advertise_addr=manager.address,
                              listen_addr=f"{manager.address}:{SWARM_PORT}")  # fmt: skip
            client.swarm.reload()
            token = client.swarm.attrs["JoinTokens"]["Worker"]
        workers = [n for n in self.nodes if n.role == "worker"]
        with ThreadPoolExecutor(max_workers=max(1, len(workers))) as pool:
            list(pool.map(lambda n: self._join(n, token), workers))
        self.wait_nodes_ready()
        self._set_availability(manager.name, "drain")
        for node_name, labels in self.initial_labels.items():
            for key, value in labels.items():
                self.label_node(node_name, key, value)

    def _join(self, node: Node, token: str) -> None:
        with _docker(node.socket_url) as client:
            client.swarm.join(remote_addrs=[f"{self.manager.address}:{SWARM_PORT}"],
                              join_token=token, listen_addr=f"{node.address}:{SWARM_PORT}",
                              advertise_addr=node.address)  # fmt: skip

    def _set_availability(self, node_name: str, availability: str) -> None:
        with _docker(self.manager_socket) as client:
            node = self._swarm_node(client, node_name)
            node.update({**node.attrs["Spec"], "Availability": availability})

    # -- lookups --

    def _node(self, name: str) -> Node:
        for node in self.nodes:
            if node.name == name:
                return node
        raise KeyError(f"no node {name!r} in {self.node_names}")

    @staticmethod
    def _swarm_node(client: docker.DockerClient, name: str) -> Any:
        for node in client.nodes.list():
            if node.attrs["Description"]["Hostname"] == name:
                return node
        raise KeyError(f"no swarm node {name!r}")

    def _require_state(self) -> State:
        if self._state is None:
            raise ClusterError("cluster is not up")
        return self._state


# --- developer command line ------------------------------------------------------------------

DEV_DIR = Path("/tmp/syftsw-dev")
DEV_IMAGES = ["syft-runner/minimal:latest", "syft-runner/scientific:latest"]


def _status(workdir: Path) -> int:
    state = State.load(workdir)
    if state is None:
        print(f"no cluster recorded in {workdir}")
        return 1
    for node in state.nodes:
        url = f"unix://{node['dir']}/docker.sock"
        print(f"{node['name']:<20} {node['role']:<8} {url}  {'up' if _ping(url) else 'DOWN'}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.swarm.cluster", description=__doc__)
    parser.add_argument("command", choices=["up", "down", "status"])
    parser.add_argument("--dir", type=Path, default=DEV_DIR, help=f"work dir (default {DEV_DIR})")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--image", action="append", help="image ref to load (repeatable)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if (reason := missing_requirements()) is not None:
        print(f"cannot run a swarm cluster here: {reason}", file=sys.stderr)
        return 2
    workdir = args.dir.resolve()
    if args.command == "down":
        print(json.dumps(teardown(workdir)))
        return 0
    if args.command == "status":
        return _status(workdir)
    cluster = SwarmCluster(workdir, args.workers, args.image or DEV_IMAGES, persistent=True)
    cluster.up()
    print(json.dumps(cluster.timings))
    print(f"manager: DOCKER_HOST={cluster.manager_socket}")
    for name, url in cluster.worker_sockets.items():
        print(f"{name}: DOCKER_HOST={url}")
    print(f"shared dir: {cluster.shared_dir}\ntear down: python -m tests.swarm.cluster down "
          f"--dir {workdir}")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
