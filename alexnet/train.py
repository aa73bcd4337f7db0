"""The training loop (§5): SGD with the paper's rule on random augmented crops, validation every
epoch, the lr divided by 10 when validation error stops improving, checkpoints that resume exactly.

Exact resume: the data order is a function of (seed, epoch) and every step reseeds the
augmentation and dropout RNGs from (seed, step), so a checkpoint needs only (epoch, batch,
step) besides the model, optimiser and schedule to continue bit for bit.
"""
from __future__ import annotations

import json
import math
import signal
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from . import checkpoint as ckpt
from .config import Config, from_dict, save_config, to_dict
from .data.augment import draw, pca_lambda, train_batch
from .data.loader import BatchLoader
from .data.store import open_store
from .errors import ConfigError, DivergenceError, UserError
from .evaluate import autocast, predict, topk_errors
from .model import build_model
from .optim import build_optimizer, set_lr
from .schedule import PlateauSchedule


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"train.device={name} but no CUDA device is available: use train.device=cpu")
    try:
        return torch.device(name)
    except RuntimeError:
        raise ConfigError(f"train.device={name!r} is not a device (use auto, cpu, cuda or cuda:N)") from None


def step_generator(seed: int, step: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed * 1_000_003 + step)


class RunLog:
    """metrics.jsonl (one JSON object per line) and TensorBoard scalars in the run folder."""

    def __init__(self, out: Path):
        self.file = open(out / "metrics.jsonl", "a")
        try:
            from torch.utils.tensorboard import SummaryWriter
            self.tb = SummaryWriter(str(out / "tb"))
        except ImportError:  # tensorboard is a dependency, but a broken install should not stop training
            self.tb = None

    def write(self, kind: str, step: int, **values) -> None:
        self.file.write(json.dumps({"kind": kind, "step": step, "time": time.time(), **values}) + "\n")
        self.file.flush()
        if self.tb is not None:
            for k, v in values.items():
                if isinstance(v, (int, float)) and not isinstance(v, bool):
                    self.tb.add_scalar(f"{kind}/{k}", v, step)

    def close(self) -> None:
        self.file.close()
        if self.tb is not None:
            self.tb.close()


class StopRequest:
    """Ctrl-C / SIGTERM set a flag that the loop reads between steps, so a step is never cut in
    half; a second Ctrl-C stops at once."""

    def __init__(self):
        self.requested = False
        self._old = {}

    def _handler(self, signum, frame):
        if self.requested and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.requested = True

    def __enter__(self):
        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                self._old[sig] = signal.signal(sig, self._handler)
            except ValueError:  # not the main thread: leave signals alone
                pass
        return self

    def __exit__(self, *exc):
        for sig, old in self._old.items():
            signal.signal(sig, old)


class Trainer:
    def __init__(self, cfg: Config, resume: bool = False):
        self.cfg = cfg
        self.out = Path(cfg.train.out)
        self.device = resolve_device(cfg.train.device)
        self._prepare_out(resume)
        self.store = open_store(cfg.data.store) if cfg.data.store else None
        if self.store is None:
            raise ConfigError("data.store is empty: point it at a folder made by `alexnet prepare` (--data STORE)")
        self._check_data()
        if cfg.train.threads:
            torch.set_num_threads(cfg.train.threads)
        torch.use_deterministic_algorithms(cfg.train.deterministic)
        torch.manual_seed(cfg.train.seed)  # the initial weights
        self.model = build_model(cfg.model).to(self.device)
        if cfg.train.channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)
        self.forward = torch.compile(self.model, mode=cfg.train.compile_mode) if cfg.train.compile else self.model
        self.optimizer = build_optimizer(self.model, cfg.optim)
        self.schedule = PlateauSchedule(cfg.schedule, cfg.optim.lr)
        self.epoch, self.batch, self.step = 0, 0, 0
        self.best_error = math.inf
        self.train_reader = self.store.split(cfg.data.train_split)
        self.val_reader = self.store.split(cfg.data.val_split)
        self.loader = BatchLoader(self.train_reader, cfg.optim.batch_size, shuffle=True, seed=cfg.train.seed,
                                  prefetch=cfg.data.prefetch, max_batches=cfg.train.max_steps_per_epoch,
                                  device=self.device, threads=cfg.data.threads, decode=cfg.data.decode)
        if len(self.loader) == 0:
            raise ConfigError(f"split {cfg.data.train_split!r} has {len(self.train_reader)} images, "
                              f"fewer than one batch of optim.batch_size={cfg.optim.batch_size}")
        self.mean = self.store.mean.to(self.device) if cfg.data.mean_image else None
        self.eigvecs = self.store.pca_eigvecs.to(self.device)
        self.lam = pca_lambda(self.store.pca_eigvals, cfg.data.pca_scale).to(self.device)
        if resume:
            self.load(self.out / "last.pt")
        save_config(cfg, self.out / "config.json")
        self.log = RunLog(self.out)

    # -- set-up -------------------------------------------------------------------------------
    def _prepare_out(self, resume: bool) -> None:
        try:
            self.out.mkdir(parents=True, exist_ok=True)
            probe = self.out / ".write-test"
            probe.write_text("")
            probe.unlink()
        except OSError as e:
            raise UserError(f"cannot write to run folder {self.out}: {e.strerror}; choose another --out") from None
        has_ckpt = (self.out / "last.pt").exists() or ckpt.prev_path(self.out / "last.pt").exists()
        if has_ckpt and not resume:
            raise UserError(f"run folder {self.out} already holds a checkpoint: continue it with --resume {self.out}, "
                            "or choose another --out")
        if resume and not has_ckpt:
            raise UserError(f"nothing to resume in {self.out}: it has no last.pt")

    def _check_data(self) -> None:
        cfg, store = self.cfg, self.store
        if cfg.data.crop > store.size:
            raise ConfigError(f"data.crop={cfg.data.crop} is larger than the store's {store.size}px images ({store.path})")
        if cfg.model.num_classes != store.num_classes:
            raise ConfigError(f"model.num_classes={cfg.model.num_classes} but store {store.path} has "
                              f"{store.num_classes} classes: set model.num_classes={store.num_classes}")

    # -- one step -----------------------------------------------------------------------------
    def train_step(self, images: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """One SGD step on a uint8 batch; returns (loss, finite) as device tensors (no host sync)."""
        cfg = self.cfg
        gen = step_generator(cfg.train.seed, self.step)
        d = draw(images.shape[0], images.shape[-1], cfg.data.crop, gen, cfg.data.flip, cfg.data.pca_std)
        torch.manual_seed(int(torch.randint(0, 2**62, (1,), generator=gen)))  # dropout masks, replayable
        x = train_batch(images.to(self.device, non_blocking=True), d, cfg.data.crop, self.mean, self.eigvecs, self.lam)
        if cfg.train.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        y = labels.to(self.device, non_blocking=True)
        with autocast(self.device, cfg.train.precision):
            logits = self.forward(x)  # (B, num_classes)
        loss = F.cross_entropy(logits.float(), y)  # §3.5 multinomial logistic regression
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        grad_norms = torch._foreach_norm([p.grad for p in self.model.parameters() if p.grad is not None])
        finite = torch.isfinite(loss) & torch.isfinite(torch.stack(grad_norms).sum())
        self.optimizer.step()
        return loss.detach(), finite

    # -- checkpoints --------------------------------------------------------------------------
    def state(self) -> dict:
        return {
            "config": to_dict(self.cfg),
            "model": ckpt.unwrap(self.model).state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "schedule": self.schedule.state_dict(),
            "progress": {"epoch": self.epoch, "batch": self.batch, "step": self.step, "best_error": self.best_error},
            "classes": list(self.store.classes),
        }

    def save(self, name: str = "last.pt") -> None:
        ckpt.save_checkpoint(self.state(), self.out / name)

    def load(self, path: Path) -> None:
        state, used = ckpt.load_with_fallback(path, map_location=self.device)
        if used != path:
            print(f"alexnet: warning: {path} is missing or damaged; resuming from {used}", file=sys.stderr)
        if _net(state.get("config", {})) != _net(to_dict(self.cfg)):
            raise ConfigError(f"{used} was trained with a different model config: resume without model.* overrides")
        ckpt.unwrap(self.model).load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.schedule.load_state_dict(state["schedule"])
        p = state["progress"]
        self.epoch, self.batch, self.step, self.best_error = p["epoch"], p["batch"], p["step"], p["best_error"]
        set_lr(self.optimizer, self.schedule.lr)

    # -- validation ---------------------------------------------------------------------------
    def validate(self) -> dict[str, float]:
        probs = predict([self.forward], self.val_reader, self.mean, self.cfg.data.crop, "center",
                        self.cfg.eval.batch_size, self.device, self.cfg.train.precision,
                        threads=self.cfg.data.threads)
        self.model.train()
        return topk_errors(probs, torch.as_tensor(self.val_reader.labels, dtype=torch.int64))

    # -- the loop -----------------------------------------------------------------------------
    def fit(self) -> dict:
        """Train until the schedule says stop; returns the final summary. Ctrl-C saves and returns."""
        with StopRequest() as stop:
            while not self.schedule.finished(self.epoch):
                if self._run_epoch(stop) == "stopped":
                    self.save()
                    return self._summary(status="interrupted")
                self._end_epoch()
        return self._summary(status="finished")

    def _run_epoch(self, stop: StopRequest) -> str:
        cfg, n = self.cfg, len(self.loader)
        set_lr(self.optimizer, self.schedule.lr)
        self.model.train()
        bar = _progress(cfg.train.progress, n, self.batch, f"epoch {self.epoch + 1}")
        t0, seen, loss_sum, count, first_bad = time.perf_counter(), 0, None, 0, None
        for images, labels in self.loader.batches(self.epoch, start=self.batch):
            loss, finite = self.train_step(images, labels)
            self.batch, self.step, seen, count = self.batch + 1, self.step + 1, seen + images.shape[0], count + 1
            loss_sum = loss if loss_sum is None else loss_sum + loss
            first_bad = _first_bad(first_bad, finite, self.step)
            if self.step % cfg.train.log_every_steps == 0 or self.batch == n:
                self._check_finite(first_bad)  # the only host sync of the loop, every log_every_steps
                mean_loss = loss_sum.item() / count
                rate = seen / (time.perf_counter() - t0)
                self.log.write("train", self.step, loss=mean_loss, lr=self.schedule.lr, img_per_s=rate, epoch=self.epoch)
                _update_bar(bar, count, loss=f"{mean_loss:.3f}", lr=f"{self.schedule.lr:.0e}", img_s=f"{rate:.0f}")
                loss_sum, count = None, 0
            if cfg.train.ckpt_every_steps and self.step % cfg.train.ckpt_every_steps == 0:
                self._check_finite(first_bad)
                self.save()
            if stop.requested:
                self._check_finite(first_bad)
                _close(bar)
                return "stopped"
        _close(bar)
        return "done"

    def _check_finite(self, first_bad: torch.Tensor | None) -> None:
        if first_bad is not None and int(first_bad) >= 0:
            raise DivergenceError(f"non-finite loss or gradient at step {int(first_bad)}: stopped; the last good "
                                  f"checkpoint {self.out / 'last.pt'} is kept (lower optim.lr or use "
                                  "train.on_divergence=rollback)")

    def _end_epoch(self) -> None:
        metrics = self.validate()
        err = metrics["top1_error"]
        cut = self.schedule.observe(self.epoch, err)
        self.epoch, self.batch = self.epoch + 1, 0
        self.log.write("val", self.step, epoch=self.epoch, lr_cut=cut, **metrics)
        _print(self.cfg.train.progress, f"epoch {self.epoch}: val top-1 error {err:.4f}, top-5 error "
               f"{metrics['top5_error']:.4f}, lr {self.schedule.lr:g}" + (" (cut)" if cut else ""))
        improved = err < self.best_error
        self.best_error = min(self.best_error, err)
        self.save()
        if improved:
            self.save("best.pt")

    def _summary(self, status: str) -> dict:
        return {"status": status, "run": str(self.out), "epoch": self.epoch, "step": self.step,
                "best_val_top1_error": self.best_error, "lr": self.schedule.lr}


def _net(config: dict) -> dict:
    """The model config that defines the function (defaults filled in for fields added since it
    was saved); lrn_impl and grouped_impl only say how it is computed, so they may change on resume."""
    try:
        model = to_dict(from_dict({"model": config.get("model", {})}))["model"]
    except ConfigError:
        return {"unreadable": config.get("model")}
    return {k: v for k, v in model.items() if k not in ("lrn_impl", "grouped_impl")}


def _first_bad(first_bad, finite: torch.Tensor, step: int) -> torch.Tensor:
    """Device-side record of the first non-finite step (-1 while all is well): no host sync."""
    if first_bad is None:
        first_bad = torch.full((), -1, dtype=torch.int64, device=finite.device)
    return torch.where((first_bad < 0) & ~finite, torch.full_like(first_bad, step), first_bad)


def _progress(enabled: bool, total: int, initial: int, desc: str):
    if not enabled:
        return None
    from tqdm import tqdm
    return tqdm(total=total, initial=initial, desc=desc, unit="batch", dynamic_ncols=True, leave=False)


def _update_bar(bar, n: int, **postfix) -> None:
    if bar is not None:
        bar.update(n)
        bar.set_postfix(postfix, refresh=False)


def _close(bar) -> None:
    if bar is not None:
        bar.close()


def _print(enabled: bool, message: str) -> None:
    if enabled:
        from tqdm import tqdm
        tqdm.write(message)


def train(cfg: Config, resume: bool = False) -> dict:
    """Train with divergence handling: 'stop' raises; 'rollback' reloads last.pt with lr x0.1 (3 times at most)."""
    trainer = Trainer(cfg, resume=resume)
    try:
        for attempt in range(4):
            try:
                return trainer.fit()
            except DivergenceError:
                if cfg.train.on_divergence != "rollback" or attempt == 3 or not (trainer.out / "last.pt").exists():
                    raise
                trainer.load(trainer.out / "last.pt")
                trainer.schedule.state.lr *= cfg.schedule.factor
                trainer.log.write("rollback", trainer.step, lr=trainer.schedule.lr)
        raise AssertionError("unreachable")
    finally:
        trainer.log.close()
