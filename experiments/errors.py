"""How a run fails once its settings were accepted (exit 1 at the command line)."""

from __future__ import annotations

__all__ = ["RunDiverged", "CellFailed"]


class RunDiverged(RuntimeError):
    """Training produced a non-finite loss; the message names the experience and epoch."""


class CellFailed(RuntimeError):
    """A grid's cell ended without a summary: its worker died (killed, out of memory) or its run
    failed. Names the cell; the grid's finished cells are kept and a rerun resumes.

    Attributes
    ----------
    cell : str
        The cell's name (its directory under ``cells/``).
    cause : BaseException
        What ended it.
    """

    def __init__(self, cell: str, cause: BaseException) -> None:
        self.cell, self.cause = cell, cause
        what = str(cause).strip() or type(cause).__name__
        if type(cause).__name__ == "BrokenProcessPool":
            what = (
                "its worker process died (killed by a signal, or out of memory); cells running beside it "
                "stopped with it"
            )
        super().__init__(f"cell {cell}: {what}")
