"""Errors raised by syft_core. Each names the file or value at fault and the reason."""

from __future__ import annotations


class SyftError(Exception):
    """Base class for every error syft_core raises on purpose."""


class InvalidEmailError(SyftError, ValueError):
    """A string that should be an email is not one."""


class UnsafePathError(SyftError, ValueError):
    """A path escapes its datasite (`..`, absolute, or a symlink that leads out)."""


class PermissionFileError(SyftError):
    """A `syft.pub.yaml` is malformed; it then grants nothing."""


class JobError(SyftError):
    """A job folder, its config or a status transition is invalid."""


class AccessDeniedError(SyftError, PermissionError):
    """The acting user lacks the access the operation needs."""
