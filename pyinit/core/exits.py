"""How a process ended: an exit code, or the signal that killed it (pure, stdlib only)."""

from __future__ import annotations

import os
from dataclasses import dataclass


@dataclass(frozen=True)
class ExitStatus:
    """How a process ended: an exit code, or the signal that killed it."""

    code: int | None = None
    signal: int | None = None
    core: bool = False

    @classmethod
    def decode(cls, status: int) -> ExitStatus:
        """From a waitpid() status."""
        if os.WIFSIGNALED(status):
            return cls(signal=os.WTERMSIG(status), core=os.WCOREDUMP(status))
        return cls(code=os.WEXITSTATUS(status))

    @property
    def shell_code(self) -> int:
        """The shell's convention: the exit code, or 128+N for signal N."""
        return self.code if self.signal is None else 128 + self.signal

    def describe(self) -> str:
        if self.signal is None:
            return f"exit code {self.code}"
        from pyinit.core.signames import name

        return f"signal {name(self.signal)}" + (" (core dumped)" if self.core else "")
