"""The one exception that the mesh layer raises for bad input files."""

from __future__ import annotations

import os


class MeshError(ValueError):
    """A mesh (or its material/texture) cannot be used.

    ``str(error)`` is ONE line, ``"<file>: <problem>"``, meant to be shown to the user as is.
    ``error.path`` and ``error.problem`` hold the two parts.
    """

    def __init__(self, path: str | os.PathLike, problem: str):
        self.path = str(path)
        # Collapse any newline or run of whitespace so that the message stays on one line.
        self.problem = " ".join(str(problem).split())
        super().__init__(f"{self.path}: {self.problem}")
