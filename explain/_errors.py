"""Typed errors of the explain package: what the Explain page shows instead of a traceback."""

from __future__ import annotations

from collections.abc import Sequence


class ExplainError(Exception):
    """An explanation that cannot be given; ``message`` says why and what to do.

    Parameters
    ----------
    message : str
        Plain-language reason, naming the thing that is wrong, what is accepted and what
        was found.
    """

    def __init__(self, message: str):
        self.message = message
        super().__init__(message)


class ArtifactError(ExplainError):
    """A model artifact that cannot be used: missing, not a model, wrong features, untrusted.

    Parameters
    ----------
    artifact : str
        The file or directory.
    problem : str
        What is wrong with it and how to fix it.
    """

    def __init__(self, artifact: str, problem: str):
        self.artifact = artifact
        self.problem = problem
        super().__init__(f"model artifact {artifact}: {problem}")


class RemoteExplainError(ExplainError):
    """A request to the service failed during an explanation; nothing partial is returned.

    Parameters
    ----------
    call : str
        The HTTP call, e.g. ``"POST /v2/models/credit-risk/infer"``.
    reason : str
        Why it failed (the client's message: timeout, HTTP status and the server's words, ...).
    request : int
        Which request of the explanation failed (1-based).
    n_requests : int
        How many requests the explanation needed.
    rows : int
        Rows in the failed request.
    """

    def __init__(self, call: str, reason: str, *, request: int, n_requests: int, rows: int):
        self.call = call
        self.reason = reason
        self.request = request
        self.n_requests = n_requests
        self.rows = rows
        super().__init__(
            f"request {request} of {n_requests} ({call}, {rows:,} rows) failed: {reason}. "
            "The explanation was abandoned; no partial result is shown.")


class WhatIfInputError(ExplainError):
    """Edited values that cannot be sent to the model; ``problems`` has one message per feature."""

    def __init__(self, problems: Sequence[str]):
        self.problems = tuple(problems)
        super().__init__("; ".join(self.problems))
