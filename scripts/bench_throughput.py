"""Training throughput of this framework against bare Lightning and a raw PyTorch loop, on the
same model, data, loss and optimizer.

    .venv/bin/python scripts/bench_throughput.py                 # default model/batch + CNN, MLP
    .venv/bin/python scripts/bench_throughput.py --cases mlp-mnist-b64 --steps 150 --repeat 3
    .venv/bin/python scripts/bench_throughput.py --accelerator gpu --precision bf16-mixed
    .venv/bin/python scripts/bench_throughput.py --loader DIR    # data=image_folder's loader only

Three columns, each from the same freshly seeded model (``seed_everything(cfg.seed)``, so every
side starts from the same weights and batch order):

- raw: a bare loop over the datamodule's in-memory training tensors (index a shuffled batch,
  forward, loss, backward, step), timed inside the loop after ``WARMUP`` steps;
- bare: a minimal LightningModule (``training_step`` = forward + loss, ``configure_optimizers``
  = the configured optimizer) fitted on ``datamodule.train_dataloader()`` by a Lightning
  Trainer with no logger, no callbacks, no checkpointing, progress bar or model summary;
- ours: ``train.train(cfg)`` itself, as users run it: the default trainer config, callbacks and
  logger (TensorBoard), with validation and test shrunk to one batch and no sanity steps.

bare and ours are timed the same way: wall clock around ``Trainer.fit`` (ours: the one fit
inside ``train.train``, the test after it is not timed), on a GPU after a device sync. A fit's
wall time also holds costs paid once per fit, not per step: the trainer's setup, the warm-up
steps, ours' validation batch, figures, checkpoint writes and logger teardown. None of them can be
subtracted by a justified constant, so each side is fitted twice, for ``WARMUP + steps`` and for
``WARMUP`` training batches (one epoch each, ``max_steps`` = ``limit_train_batches``), and the
difference of the two wall times is the time of ``steps`` steady-state training steps: everything
the two fits share cancels, and the per-step costs (every logged value, every
``log_every_n_steps`` write, the progress bar, the callbacks' batch hooks) stay in. One untimed
fit per side and case comes first, so one-time costs (imports, the first TensorBoard writer,
matplotlib) do not land in the short fit, and every fit starts after a ``gc.collect()`` (not
timed), so none pays for the garbage of the run before it. What the two fits share still varies
from run to run (ours: about 0.5 s of validation, figures and checkpoints, give or take 0.1 s
on a busy 2-core CPU); that noise is divided by ``steps``, so a small model needs more steps (or
``--repeat``) than a large one for the same precision. A case whose epoch is shorter than
``WARMUP + steps`` batches runs as many steps as the epoch holds (the line above its row says so).

``--loader DIR`` measures the data side alone, on ``data=image_folder data.root=DIR``: the
training loader's samples/s (batches fetched and normalised, no model) with the decoded images
in memory (the baseline, from the cache), and streamed from disk (``data.max_memory`` below the
data's size, so every batch is decoded from its files) with 0 and ``--workers`` loader workers;
each ratio is against the in-memory rate of the same run.

A 2-core CPU is noisy: ``--repeat N`` runs every measurement N times (interleaved, raw, bare,
ours) and reports the best: the highest raw samples/s, and for bare and ours the shortest long
fit minus the shortest short fit (each minimum is the least disturbed run). Ratios are of those
best values, measured in the same process; each case also prints its fits' wall seconds. On a
CPU shared with other jobs, ``OMP_NUM_THREADS=1`` keeps torch's intra-op threads from waiting on
a busy core (the header prints the thread count).
"""

import argparse
import gc
import shutil
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from unittest import mock

import lightning as L
import torch
from hydra import compose, initialize_config_dir
from hydra.core.hydra_config import HydraConfig
from hydra.utils import instantiate
from omegaconf import open_dict
from torch import Tensor, nn

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import train  # noqa: E402  (also registers the run_name resolver)
from trainer.config import instantiate_with_data  # noqa: E402

CASES = {
    # name: overrides giving the model, data and batch size
    "unet-seg-b32 (default)": [],
    "cnn-mnist-b128": ["data=fashion_mnist", "data.batch_size=128"],
    "mlp-mnist-b64": ["data=fashion_mnist", "model=mlp", "data.batch_size=64"],
}
WARMUP = 5
COLUMNS = ("raw samples/s", "bare samples/s", "ours samples/s", "ours/raw", "bare/raw", "ours/bare")


def compose_cfg(overrides: list[str], out_dir: Path):
    """The run's config as ``train.py`` composes it, with ``out_dir`` (emptied) as its run dir."""
    with initialize_config_dir(version_base="1.3", config_dir=str(ROOT / "conf")):
        cfg = compose("train", overrides=overrides, return_hydra_config=True)
    shutil.rmtree(out_dir, ignore_errors=True)  # a fresh run dir: no best-v1.ckpt, one event file
    with open_dict(cfg):
        cfg.hydra.runtime.output_dir = str(out_dir)
    HydraConfig.instance().set_config(cfg)
    return cfg


def _now(device: torch.device) -> float:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter()


@contextmanager
def timed_fit(device: torch.device) -> Iterator[list[float]]:
    """Wall seconds of every ``Trainer.fit`` called inside: the same clock for bare and ours."""
    seconds: list[float] = []
    fit = L.Trainer.fit

    def timed(self, *args, **kwargs):
        gc.collect()  # not timed: no fit pays for the garbage an earlier run left behind
        start = _now(device)
        try:
            return fit(self, *args, **kwargs)
        finally:
            seconds.append(_now(device) - start)

    with mock.patch.object(L.Trainer, "fit", timed):
        yield seconds


def raw_loop(cfg, steps: int, device: torch.device, precision: str) -> float:
    """Samples/s of a bare PyTorch loop over the datamodule's in-memory training tensors."""
    L.seed_everything(cfg.seed, workers=True, verbose=False)
    datamodule = instantiate(cfg.data)
    datamodule.setup()
    dataset = datamodule.splits["train"]
    model = instantiate_with_data(cfg.model, datamodule.model_inputs).to(device).train()
    loss_fn = instantiate_with_data(cfg.loss, datamodule.data_stats).to(device)
    optimizer = instantiate(cfg.optimizer)(model.parameters())
    batch_size, n = cfg.data.batch_size, len(dataset)
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=precision == "bf16-mixed")
    done, start = 0, 0.0
    gc.collect()  # as before every timed fit
    while done < steps + WARMUP:
        order = torch.randperm(n)
        for i in range(0, n - batch_size + 1, batch_size):
            if done == WARMUP:
                start = _now(device)
            inputs, target = dataset.__getitems__(order[i : i + batch_size].tolist())
            inputs, target = (
                inputs.to(device, non_blocking=True),
                target.to(device, non_blocking=True),
            )
            with autocast:
                loss = loss_fn(model(inputs), target)
            loss.backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            done += 1
            if done == steps + WARMUP:
                break
    return steps * batch_size / (_now(device) - start)


class BareModule(L.LightningModule):
    """The same model, loss and optimizer as ``LossExperiment``, with nothing else."""

    def __init__(self, model: nn.Module, loss: nn.Module, optimizer) -> None:
        super().__init__()
        self.model = model
        self.loss = loss
        self.optimizer_factory = optimizer

    def training_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> Tensor:
        inputs, target = batch
        return self.loss(self.model(inputs), target)

    def configure_optimizers(self):
        return self.optimizer_factory(self.parameters())


def bare_fit(cfg, batches: int, device: torch.device) -> float:
    """Wall seconds of a bare Lightning fit of ``batches`` training batches."""
    L.seed_everything(cfg.seed, workers=True, verbose=False)  # as train.train, in the same order
    datamodule = instantiate(cfg.data)
    model = instantiate_with_data(cfg.model, datamodule.model_inputs)
    loss = instantiate_with_data(cfg.loss, datamodule.data_stats)
    module = BareModule(model, loss, instantiate(cfg.optimizer))
    loader = datamodule.train_dataloader()
    t = cfg.trainer
    trainer = L.Trainer(
        accelerator=t.accelerator,
        devices=t.devices,
        precision=t.precision,
        max_epochs=1,
        max_steps=batches,
        limit_train_batches=batches,
        gradient_clip_val=t.gradient_clip_val,
        deterministic=t.deterministic,
        benchmark=t.benchmark,
        default_root_dir=cfg.paths.output_dir,
        logger=False,
        callbacks=[],
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    with timed_fit(device) as seconds:
        trainer.fit(module, train_dataloaders=loader)
    return seconds[0]


def ours_fit(cfg, device: torch.device) -> float:
    """Wall seconds of the fit inside ``train.train(cfg)`` (its test is not timed)."""
    with timed_fit(device) as seconds:
        train.train(cfg)
    if len(seconds) != 1:
        raise RuntimeError(f"train.train called Trainer.fit {len(seconds)} times, expected 1")
    return seconds[0]


def case_steps(cfg, steps: int) -> int:
    """``steps``, or fewer when one epoch holds less than ``WARMUP + steps`` training batches."""
    datamodule = instantiate(cfg.data)
    available = len(datamodule.train_dataloader()) - WARMUP
    if available < 1:
        raise SystemExit(f"an epoch has fewer than {WARMUP + 1} training batches")
    return min(steps, available)


def measure(name: str, overrides: list[str], args, device: torch.device) -> list[float]:
    """The row of one case: best samples/s of raw, bare and ours over ``args.repeat`` runs."""
    common = [
        *overrides,
        f"trainer.accelerator={args.accelerator}",
        f"trainer.precision={args.precision}",
        "trainer.limit_val_batches=1",
        "trainer.limit_test_batches=1",
        "trainer.num_sanity_val_steps=0",
        "trainer.max_epochs=1",
    ]
    case_dir = args.out / name.split()[0]
    base = compose_cfg(common, case_dir / "raw")
    steps = case_steps(base, args.steps)
    if steps < args.steps:
        print(f"# {name}: {steps} steps, all that one epoch holds after {WARMUP} warm-up steps")

    def cfg_for(side: str, batches: int, rep: int):
        limits = [f"trainer.limit_train_batches={batches}", f"trainer.max_steps={batches}"]
        return compose_cfg([*common, *limits], case_dir / f"{side}-{batches}-r{rep}")

    long, short = WARMUP + steps, WARMUP
    # untimed: one-time costs (first TensorBoard writer, matplotlib, ...) out of the short fits
    bare_fit(cfg_for("bare", short, 0), short, device)
    ours_fit(cfg_for("ours", short, 0), device)
    raw, bare, ours = [], {long: [], short: []}, {long: [], short: []}
    for rep in range(args.repeat):
        raw.append(raw_loop(base, steps, device, args.precision))
        for batches in (short, long):
            bare[batches].append(bare_fit(cfg_for("bare", batches, rep), batches, device))
        for batches in (short, long):
            ours[batches].append(ours_fit(cfg_for("ours", batches, rep), device))
    samples = steps * base.data.batch_size
    fits = "  ".join(
        f"{side} {n}: {' '.join(f'{s:.3f}' for s in times[n])}"
        for side, times in (("bare", bare), ("ours", ours))
        for n in (short, long)
    )
    print(f"# {name}: {steps} steps of {base.data.batch_size}; fit seconds (batches: runs) {fits}")

    def rate(times: dict[int, list[float]]) -> float:
        seconds = min(times[long]) - min(times[short])
        return samples / seconds if seconds > 0 else float("nan")

    return [max(raw), rate(bare), rate(ours)]


def row(name: str, values: list[float]) -> str:
    raw, bare, ours = values
    cells = [f"{raw:.0f}", f"{bare:.0f}", f"{ours:.0f}"]
    cells += [f"{ours / raw:.2f}", f"{bare / raw:.2f}", f"{ours / bare:.2f}"]
    return f"| {name} | " + " | ".join(cells) + " |"


def loader_rate(root: Path, overrides: list[str], batches: int) -> float:
    """Samples/s of ``data=image_folder``'s training loader over ``batches`` batches after one
    untimed batch (workers started, first decode paid)."""
    cfg = compose_cfg(["data=image_folder", f"data.root={root}", *overrides], ROOT / "outputs")
    datamodule = instantiate(cfg.data)
    datamodule.setup()
    loader = iter(datamodule.train_dataloader())
    next(loader)
    samples, start = 0, time.perf_counter()
    for _ in range(batches):
        inputs, _ = next(loader)
        samples += len(inputs)
    return samples / (time.perf_counter() - start)


def loader_table(root: Path, batches: int, workers: int, repeat: int) -> None:
    """In memory vs streamed from disk, best of ``repeat`` each (see the module docstring)."""
    streamed = "data.max_memory=0.001"  # MB: below any real folder, so the splits stream
    sides = {
        "in memory (cache)": [],
        "streamed, 0 workers": [streamed],
        f"streamed, {workers} workers": [streamed, f"data.num_workers={workers}"],
    }
    rates = {
        name: max(loader_rate(root, o, batches) for _ in range(repeat)) for name, o in sides.items()
    }
    base = rates["in memory (cache)"]
    print(f"\ndata=image_folder data.root={root}: {batches} batches, best of {repeat}")
    print("| loader | samples/s | vs in memory |\n|---|---:|---:|")
    for name, rate in rates.items():
        print(f"| {name} | {rate:.0f} | {rate / base:.2f} |", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--steps", type=int, default=150, help="timed training steps per side")
    parser.add_argument("--accelerator", default="cpu")
    parser.add_argument("--precision", default="32-true")
    parser.add_argument("--cases", nargs="*", default=list(CASES), choices=list(CASES))
    parser.add_argument("--out", type=Path, default=ROOT / "outputs" / "bench")
    parser.add_argument(
        "--repeat", type=int, default=1, help="runs per measurement; the best is reported"
    )
    parser.add_argument("--loader", type=Path, help="an image folder: time its loader only")
    parser.add_argument("--workers", type=int, default=2, help="--loader: streaming workers")
    args = parser.parse_args()
    if args.steps < 1 or args.repeat < 1:
        parser.error("--steps and --repeat must be at least 1")
    if args.loader is not None:
        loader_table(args.loader, args.steps, args.workers, args.repeat)
        return
    device = torch.device("cuda" if args.accelerator == "gpu" else args.accelerator)

    header = (
        f"device={device} precision={args.precision} threads={torch.get_num_threads()} "
        f"steps={args.steps} repeat={args.repeat} warmup={WARMUP}"
    )
    rows = []
    for name, overrides in CASES.items():
        if name in args.cases:
            rows.append(row(name, measure(name, overrides, args, device)))
            print(rows[-1], flush=True)
    # the whole table again at the end, after Lightning's and the loggers' own output
    print(f"\n{header}")
    print("| case | " + " | ".join(COLUMNS) + " |")
    print("|---|" + "---:|" * len(COLUMNS))
    print("\n".join(rows), flush=True)


if __name__ == "__main__":
    main()
