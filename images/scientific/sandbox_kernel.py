"""ipykernel as the job sandbox can run it: `sandbox_kernel.py -f CONNECTION_FILE`.

The sandbox allows unix sockets only (seccomp), so the kernel's channels are ZMQ `ipc` sockets
(run-notebook.py asks for them). One thing in ipykernel binds TCP whatever the transport: the
IOPub pipe that carries the output of forked subprocesses, on tcp://127.0.0.1, where libzmq
aborts instead of failing. It is turned off here (pipe=False, as ipykernel itself supports):
output printed by a forked child then goes straight to the job's stdout/stderr instead of the
notebook. The image has no debugpy, so the notice that debugging is off is not printed either.
Everything else is ipykernel's own launcher.
"""

import logging
from typing import Any

from ipykernel import iostream, kernelapp


class IOPubThread(iostream.IOPubThread):  # type: ignore[misc]
    # IOPubThread(socket, pipe=False, ...): whatever else a version passes goes through.
    def __init__(self, socket: Any, *args: Any, **kwargs: Any) -> None:
        kwargs.pop("pipe", None)
        super().__init__(socket, False, *args[1:], **kwargs)


class _NoDebuggerNotice(logging.Filter):
    # The image leaves out debugpy (it brings gdb): no debugger in a batch job, and no warning.
    def filter(self, record: logging.LogRecord) -> bool:
        return "debugpy_stream undefined" not in record.getMessage()


kernelapp.IOPubThread = IOPubThread
logging.getLogger(kernelapp.IPKernelApp.__name__).addFilter(_NoDebuggerNotice())

if __name__ == "__main__":
    kernelapp.launch_new_instance()
