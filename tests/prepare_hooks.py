"""A prepare hook that kills its process at a chosen point (tests inject it: see prepare.Hook).
Kept in its own small module so prepare's spawned workers can import it cheaply."""
import os
import signal


class KillAt:
    """Kill this process with SIGKILL at `point` of chunk `index` (e.g. KillAt("worker", 2))."""

    def __init__(self, point: str, index: int):
        self.point, self.index = point, index

    def __call__(self, point: str, index: int) -> None:
        if (point, index) == (self.point, self.index):
            os.kill(os.getpid(), signal.SIGKILL)
