"""OpenMined's Syft job protocol on disk (syft-job 0.1.39 = protocol 0, 0.1.40 = protocol 1).

The edge adapter of their job gateway `<datasite>/app_data/job/{inbox,review}/<ds>/[v1/]JOB/`:
finding jobs, reading what their scientist clients submit, and writing state and results exactly
as their clients read them. Nothing here runs a job; the runner's side is built on this API.
"""

from syft_core.syftjob.layout import (
    Protocol,
    SyftJobRef,
    gateway_root,
    inbox_dir,
    ref_for,
    review_dir,
    scan,
)
from syft_core.syftjob.results import TIMEOUT_LINE, write_results
from syft_core.syftjob.rules import ensure_review_rules, set_outputs_rule
from syft_core.syftjob.state import (
    Status,
    SyftJobState,
    format_stamp,
    mark_running,
    now_stamp,
    parse_stamp,
    read_state,
    write_received,
    write_state,
)
from syft_core.syftjob.submission import (
    SyftJobConfig,
    newest_mtime,
    read_config,
    submission_files,
    submission_hash,
)

__all__ = [
    "TIMEOUT_LINE",
    "Protocol",
    "Status",
    "SyftJobConfig",
    "SyftJobRef",
    "SyftJobState",
    "ensure_review_rules",
    "format_stamp",
    "gateway_root",
    "inbox_dir",
    "mark_running",
    "newest_mtime",
    "now_stamp",
    "parse_stamp",
    "read_config",
    "read_state",
    "ref_for",
    "review_dir",
    "scan",
    "set_outputs_rule",
    "submission_files",
    "submission_hash",
    "write_received",
    "write_results",
    "write_state",
]
