"""Run a notebook top to bottom in the job sandbox: `run-notebook.py NOTEBOOK EXECUTED`.

A python job whose entrypoint is a notebook runs this (see syft_core.submit.python_run_script).
The kernel is this image's python3 (ipykernel, through sandbox_kernel.py), or the python of the
job's environment when the job declared dependencies (VIRTUAL_ENV; that environment must then
hold ipykernel itself: it never mixes with the image's packages), with the job's code folder
as its working directory, as for a .py job, so `outputs/x.csv` means the same in both; and the
notebook's folder is importable, as a script's folder is (`from helpers import x`). It is reached
over unix sockets (ZMQ `ipc`) on /tmp: the sandbox allows no other socket family, and has no
network anyway. Plots are drawn
inline, into the notebook. What cells print streams to the job's stdout and stderr as they run.

The executed notebook, with every output and plot, is written to EXECUTED, also when a cell
fails: then the exit code is 1 and stderr ends with the failing cell's traceback.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from typing import Any

import nbformat
from jupyter_client.kernelspec import KernelSpecManager
from jupyter_client.manager import KernelManager
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError, DeadKernelError

KERNEL = "python3"
# Only this image's kernel: sandbox_kernel.py, whatever kernels a user folder might list.
KERNELS_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "kernels")
KERNEL_STARTUP_SECONDS = 120  # the runner's wall-clock timeout bounds the cells themselves
_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


class SandboxKernelManager(KernelManager):  # type: ignore[misc]
    """Starts the kernel with `python` (this image's, or the job environment's)."""

    python = sys.executable

    def format_kernel_cmd(self, extra_arguments: list[str] | None = None) -> list[str]:
        cmd: list[str] = super().format_kernel_cmd(extra_arguments)
        return [self.python, *cmd[1:]]


def kernel_python() -> tuple[str, str | None]:
    """The python the kernel runs, and why it cannot when it cannot: the job's environment's
    (declared dependencies) if it has one, which then needs ipykernel, else this image's."""
    venv = os.environ.get("VIRTUAL_ENV")
    if not venv:
        return sys.executable, None
    python = os.path.join(venv, "bin", "python")
    probe = subprocess.run([python, "-c", "import ipykernel"], capture_output=True, check=False)
    if probe.returncode != 0:
        return python, (
            "the job's environment (its declared dependencies) has no ipykernel, which a "
            "notebook's kernel needs there: add ipykernel to the dependencies"
        )
    return python, None


class StreamingClient(NotebookClient):  # type: ignore[misc]
    """Echoes each cell's printed output to this process's stdout/stderr as it arrives."""

    def output(self, outs: list[Any], msg: dict[str, Any], display_id: str, cell_index: int) -> Any:
        if msg.get("msg_type") == "stream":
            content = msg.get("content", {})
            stream = sys.stderr if content.get("name") == "stderr" else sys.stdout
            stream.write(content.get("text", ""))
            stream.flush()
        return super().output(outs, msg, display_id, cell_index)


def _failed_cell(nb: Any) -> str:
    for index, cell in enumerate(nb.cells, start=1):
        for out in cell.get("outputs", []):
            if out.get("output_type") == "error":
                return f"cell {index} of {len(nb.cells)} ({out.get('ename', 'error')})"
    return "a cell"


def main(argv: list[str]) -> int:
    if len(argv) != 3:
        print("usage: run-notebook.py NOTEBOOK EXECUTED", file=sys.stderr)
        return 2
    source, target = argv[1], argv[2]
    try:
        nb = nbformat.read(source, as_version=4)
    except Exception as exc:  # noqa: BLE001 - nbformat raises many kinds for a non-notebook
        print(f"{source}: not a readable notebook: {exc}", file=sys.stderr)
        return 1
    language = nb.metadata.get("kernelspec", {}).get("language", "python")
    if language != "python":
        print(f"{source}: a {language} notebook; only Python notebooks can run", file=sys.stderr)
        return 1
    python, problem = kernel_python()
    if problem is not None:
        print(f"{source}: {problem}", file=sys.stderr)
        return 1
    # The kernel inherits this environment: inline plots instead of the image's Agg default, and
    # the notebook's folder importable, as a script's folder is for a .py job.
    os.environ["MPLBACKEND"] = "module://matplotlib_inline.backend_inline"
    folder = os.path.dirname(os.path.abspath(source))
    inherited = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = os.pathsep.join([folder, inherited] if inherited else [folder])
    runtime_dir = os.environ.setdefault("JUPYTER_RUNTIME_DIR", "/tmp/jupyter")
    os.makedirs(runtime_dir, exist_ok=True)
    # The kernel's sockets: unix sockets named <ip>-<port>, on the writable /tmp.
    ipc = os.path.join(runtime_dir, f"kernel-{os.getpid()}")
    manager = SandboxKernelManager(
        kernel_name=KERNEL,
        kernel_spec_manager=KernelSpecManager(
            kernel_dirs=[KERNELS_DIR], ensure_native_kernel=False
        ),
        transport="ipc",
        ip=ipc,
    )
    manager.python = python
    client = StreamingClient(
        nb,
        km=manager,
        kernel_name=KERNEL,
        timeout=None,
        startup_timeout=KERNEL_STARTUP_SECONDS,
        resources={"metadata": {"path": os.getcwd()}},
    )
    status = 0
    try:
        client.execute()
    except CellExecutionError as exc:
        status = 1
        print(f"\n{source}: {_failed_cell(nb)} failed:\n{_ANSI.sub('', str(exc))}", file=sys.stderr)
    except DeadKernelError as exc:
        status = 1
        print(f"\n{source}: the kernel died (out of memory?): {exc}", file=sys.stderr)
    except Exception as exc:  # noqa: BLE001 - the kernel could not start: say so briefly
        status = 1
        reason = f"{type(exc).__name__}: {exc}"
        print(f"\n{source}: the notebook could not run: {reason}", file=sys.stderr)
    finally:
        nbformat.write(nb, target)
        print(f"executed notebook saved to {target}")
    return status


if __name__ == "__main__":
    sys.exit(main(sys.argv))
