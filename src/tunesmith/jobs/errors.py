"""Errors of the jobs layer; the server maps each to an HTTP status (``server/errors.py``)::

TunesmithError
├── JobsError
│   ├── NotFoundError        no such object in this project
│   ├── InvalidRequestError  a request names a bad value (``param`` says which)
│   ├── InvalidStateError    the job's status does not allow the action
│   └── NotOwnedError        the model exists but is not this project's to change
└── ModelError
    └── ModelNotFoundError   (the engine's)
        └── UnknownModelError  no model of that name for this project (``param``: ``model``)
"""

from __future__ import annotations

from tunesmith.errors import ModelNotFoundError, TunesmithError


class JobsError(TunesmithError):
    """Base of the jobs layer's errors."""


class NotFoundError(JobsError):
    def __init__(self, kind: str, object_id: str, param: str | None = None) -> None:
        self.kind = kind
        self.object_id = object_id
        self.param = param
        super().__init__(f"No such {kind}: {object_id}")


class InvalidRequestError(JobsError):
    def __init__(self, message: str, param: str | None = None, code: str | None = None) -> None:
        self.param = param
        self.code = code
        super().__init__(message)


class InvalidStateError(JobsError):
    """E.g. cancelling a job that already succeeded."""


class NotOwnedError(JobsError):
    """E.g. deleting a base model: it can be used, but only fine-tuned models are the
    project's own."""

    def __init__(self, message: str, param: str | None = "model") -> None:
        self.param = param
        super().__init__(message)


class UnknownModelError(ModelNotFoundError):
    """No model of that name that this project may use. A subclass of the engine's
    ``ModelNotFoundError`` so one row of the server's error table answers both."""

    param = "model"

    def __init__(self, name: str, detail: str | None = None) -> None:
        self.name = name
        message = f"The model `{name}` does not exist or you do not have access to it."
        super().__init__(f"{message} {detail}" if detail else message)
