"""OpenMined's Syft job protocol on disk (syft-job 0.1.39 = protocol 0, 0.1.40 = protocol 1):
finding jobs, reading what their clients submit, writing state and results as they read them.
The runner's side of serving this gateway is syft_runner.syftjob_gateway."""

from syft_core.syftjob.layout import Protocol, SyftJobRef, gateway_root, ref_for, scan
from syft_core.syftjob.results import TIMEOUT_LINE, set_outputs_rule, write_results
from syft_core.syftjob.state import (
    SyftJobState,
    now_stamp,
    parse_stamp,
    read_state,
    stamp,
    write_state,
)
from syft_core.syftjob.submission import SyftJobConfig, read_config, submission_files

__all__ = [
    "TIMEOUT_LINE",
    "Protocol",
    "SyftJobConfig",
    "SyftJobRef",
    "SyftJobState",
    "gateway_root",
    "now_stamp",
    "parse_stamp",
    "read_config",
    "read_state",
    "ref_for",
    "scan",
    "set_outputs_rule",
    "stamp",
    "submission_files",
    "write_results",
    "write_state",
]
