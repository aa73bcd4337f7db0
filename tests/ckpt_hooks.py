"""A checkpoint-writer hook that kills its own process with SIGKILL in the middle of a background
write (tests inject it: open_trainer(..., checkpoint_hook=...)), and a runner for it:

    python tests/ckpt_hooks.py NTH STEP KEY=VALUE ...   # the `quick` preset with these overrides

holds the NTH write of last.pt once it is serialised into its temporary file (before it is made
durable and renamed) until the main thread, training on, has logged step STEP, then kills the run."""
import json
import os
import signal
import sys
import time
from pathlib import Path


def _logged_step(run: Path) -> int:
    try:
        lines = (run / "metrics.jsonl").read_text().splitlines()
    except FileNotFoundError:
        return 0
    return max((json.loads(l)["step"] for l in lines if l.endswith("}") and '"train"' in l), default=0)


class KillDuringWrite:
    def __init__(self, nth: int, step: int):
        self.nth, self.step, self.seen = nth, step, 0

    def __call__(self, point: str, path: Path) -> None:
        if point != "written" or path.name != "last.pt":
            return
        self.seen += 1
        if self.seen == self.nth:
            deadline = time.time() + 120
            while _logged_step(path.parent) < self.step and time.time() < deadline:
                time.sleep(0.01)  # the main thread keeps training meanwhile
            os.kill(os.getpid(), signal.SIGKILL)


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from alexnet.config import build_config
    from alexnet.train import open_trainer

    nth, step, overrides = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3:]
    trainer = open_trainer(build_config("quick", overrides), checkpoint_hook=KillDuringWrite(nth, step))
    trainer.fit()
    trainer.close()
