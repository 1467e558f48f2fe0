"""syft-runner: runs approved datasite jobs in hardened Docker containers."""
