"""The labels every task carries: how a runner finds its own tasks again after a restart."""

LABEL_JOB = "org.syft.job"  # <owner>/<job relpath>
LABEL_OWNER = "org.syft.owner"
LABEL_SUBMITTER = "org.syft.submitter"
LABEL_CONTENT_HASH = "org.syft.content-hash"
LABEL_RUNNER = "org.syft.runner"
LABEL_SYFTBOX = "org.syft.syftbox"
LABEL_JOB_ID = "org.syft.job-id"
LABEL_LIMITS = "org.syft.limits"
LABEL_IMAGE = "org.syft.image"
# A node holding dataset <name> carries the node label `org.syft.dataset.<name>=true`.
DATASET_NODE_LABEL = "org.syft.dataset"
