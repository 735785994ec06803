"""Training throughput of this framework against a raw PyTorch loop on the same model and data.

    .venv/bin/python scripts/bench_throughput.py                 # default model/batch + MLP@64
    .venv/bin/python scripts/bench_throughput.py --accelerator gpu --precision bf16-mixed

Both sides train the same freshly seeded model with the same loss and optimizer on the same
in-memory tensors: (a) a bare loop (index a shuffled batch, forward, loss, backward, step) and (b)
``train.train`` with the default trainer, logging and callbacks (validation and test shrunk to one
batch and not timed). Samples/s are taken after the same warm-up on both sides; the printed ratio
is (b)/(a), measured in the same process.
"""

import argparse
import sys
import time
from pathlib import Path

import torch
from hydra import compose, initialize_config_dir
from hydra.core.hydra_config import HydraConfig
from hydra.utils import instantiate
from omegaconf import open_dict

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


def compose_cfg(overrides: list[str], out_dir: Path):
    with initialize_config_dir(version_base="1.3", config_dir=str(ROOT / "conf")):
        cfg = compose("train", overrides=overrides, return_hydra_config=True)
    with open_dict(cfg):
        cfg.hydra.runtime.output_dir = str(out_dir)
    HydraConfig.instance().set_config(cfg)
    return cfg


def raw_loop(cfg, steps: int, device: torch.device, precision: str) -> float:
    """Samples/s of a bare PyTorch loop over the datamodule's in-memory training tensors."""
    torch.manual_seed(cfg.seed)
    datamodule = instantiate(cfg.data)
    datamodule.setup()
    dataset = datamodule.splits["train"]
    loss_fn = instantiate_with_data(cfg.loss, datamodule.data_stats).to(device)
    model = instantiate_with_data(cfg.model, datamodule.model_inputs).to(device).train()
    optimizer = instantiate(cfg.optimizer)(model.parameters())
    batch_size, n = cfg.data.batch_size, len(dataset)
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=precision == "bf16-mixed")
    done, start = 0, 0.0
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


def _now(device: torch.device) -> float:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter()


def framework(cfg) -> float:
    """Samples/s of ``train.train`` with its default logging and callbacks (Throughput callback)."""
    return train.train(cfg)["perf/train_samples_per_sec"]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--steps", type=int, default=150, help="timed training steps per side")
    parser.add_argument("--accelerator", default="cpu")
    parser.add_argument("--precision", default="32-true")
    parser.add_argument("--cases", nargs="*", default=list(CASES), choices=list(CASES))
    parser.add_argument("--out", type=Path, default=ROOT / "outputs" / "bench")
    args = parser.parse_args()
    device = torch.device("cuda" if args.accelerator == "gpu" else args.accelerator)

    threads = torch.get_num_threads()
    print(f"device={device} precision={args.precision} threads={threads} steps={args.steps}")
    print(f"{'case':<26}{'raw samples/s':>15}{'ours samples/s':>16}{'ratio':>8}")
    for name, overrides in CASES.items():
        if name not in args.cases:
            continue
        common = [
            *overrides,
            f"trainer.accelerator={args.accelerator}",
            f"trainer.precision={args.precision}",
            "trainer.limit_val_batches=1",
            "trainer.limit_test_batches=1",
            "trainer.num_sanity_val_steps=0",
        ]
        cfg = compose_cfg(common, args.out / "raw")
        raw = raw_loop(cfg, args.steps, device, args.precision)
        cfg = compose_cfg(
            [*common, "trainer.max_epochs=1", f"trainer.limit_train_batches={args.steps + WARMUP}"],
            args.out / name.split()[0],
        )
        ours = framework(cfg)
        print(f"{name:<26}{raw:>15.0f}{ours:>16.0f}{ours / raw:>8.2f}", flush=True)


if __name__ == "__main__":
    main()
