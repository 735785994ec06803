"""Whole-sweep wall time: K loss variants run one after another vs in one lockstep group.

    .venv/bin/python scripts/bench_lockstep.py                      # every case, K = 2, 4, 8
    .venv/bin/python scripts/bench_lockstep.py --cases regression --ks 8 --repeat 2
    .venv/bin/python scripts/bench_lockstep.py --trainer gpu        # on a GPU machine

Each measurement is one ``train.py -m`` process, exactly as a user runs the sweep: the same K
variants (one loss with K hyperparameter values), data, epochs and seed, once with Hydra's basic
launcher (K sequential jobs in one process) and once with ``hydra/launcher=lockstep``. The wall
time is the whole process (start-up, every job's config and run dir, training, validation,
test, the comparison report) and the peak memory is the process's maximum resident set
(``os.wait4``). The ratio is sequential / lockstep time, both measured in this run; with
``--repeat N`` each side is measured N times, the two sides taking turns, and the fastest kept
(a 2-core CPU is noisy: the same sweep's time varies by 20% and more from one run to the next).
"Lockstep used" says whether the lockstep run's log shows all K jobs trained in one group.

Both sides also pay a start-up that no launcher can shorten: Python, the imports (Lightning
brings in torchmetrics, torchvision and scipy), composing the command line and expanding the
sweep. It is measured as the same command with ``dry_run=true`` (everything up to launching the
jobs), fastest of ``--repeat``. "After start-up" is the ratio of the two sides' times less the
start-up; "ceiling" is sequential / start-up, the whole-process ratio a lockstep sweep would
reach if its jobs took no time at all, an upper bound on the ratio column.
The last line is ``regression K=8: lockstep <ratio>x sequential``.

``--stacking`` first times the choice the lockstep module makes, running the K models one after
another in each step, against stacking them (``torch.func.stack_module_state`` + ``vmap`` over
``functional_call``): forward, loss and backward of K MLPs 784-256-10 at batch 64.
"""

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# name: (overrides giving data, model and budget; the loss and the K values of one of its keys)
CASES = {
    "regression": (["data=regression"], "huber", "delta"),
    "mlp-fashion-b64": (
        [
            "data=fashion_mnist",
            "model=mlp",
            "data.batch_size=64",
            "trainer.max_epochs=2",
            "trainer.limit_train_batches=200",
            "trainer.limit_val_batches=10",
            "trainer.limit_test_batches=10",
        ],
        "focal",
        "gamma",
    ),
    "cnn-fashion": (
        [
            "data=fashion_mnist",
            "model=cnn",
            "trainer.max_epochs=2",
            "trainer.limit_train_batches=40",
            "trainer.limit_val_batches=5",
            "trainer.limit_test_batches=5",
        ],
        "focal",
        "gamma",
    ),
    "unet-seg": (
        [
            "trainer.max_epochs=2",
            "trainer.limit_train_batches=10",
            "trainer.limit_val_batches=4",
            "trainer.limit_test_batches=4",
        ],
        "focal",
        "gamma",
    ),
}
VALUES = {"delta": [0.25, 0.5, 1, 1.5, 2, 3, 4, 5], "gamma": [0, 0.5, 1, 1.5, 2, 3, 4, 5]}
QUIET = ["trainer.enable_progress_bar=false", "trainer.enable_model_summary=false"]


def run_sweep(overrides: list[str], sweep_dir: Path) -> tuple[float, float, str]:
    """Wall seconds, peak resident MiB and the log of one ``train.py -m`` process."""
    command = [sys.executable, "train.py", "-m", *overrides, f"hydra.sweep.dir={sweep_dir}"]
    log_path = sweep_dir.with_suffix(".log")
    with open(log_path, "w") as log:
        start = time.perf_counter()
        process = subprocess.Popen(command, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(process.pid, 0)
        wall = time.perf_counter() - start
    text = log_path.read_text()
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError(f"bench_lockstep: {' '.join(command)} failed:\n{text[-3000:]}")
    return wall, usage.ru_maxrss / 1024, text


def start_up(overrides: list[str], sweep_dir: Path) -> float:
    """Wall seconds of the sweep's command as a dry run: start-up, composition and expansion."""
    return run_sweep([*overrides, "dry_run=true"], sweep_dir)[0]


def stacking_check(k: int = 8, steps: int = 200) -> None:
    """Seconds per step of K MLPs run one after another vs stacked under ``vmap``."""
    import torch
    from torch import nn
    from torch.func import functional_call, stack_module_state, vmap

    torch.manual_seed(0)
    models = [nn.Sequential(nn.Linear(784, 256), nn.ReLU(), nn.Linear(256, 10)) for _ in range(k)]
    inputs, target = torch.randn(64, 784), torch.randint(0, 10, (64,))
    params, buffers = stack_module_state(models)
    params = {name: p.detach().requires_grad_() for name, p in params.items()}
    template = models[0]

    def one(p, b, x):
        return functional_call(template, (p, b), (x,))

    def loop() -> None:
        loss = sum(nn.functional.cross_entropy(m(inputs), target) for m in models)
        loss.backward()

    def stacked() -> None:
        outputs = vmap(one, in_dims=(0, 0, None))(params, buffers, inputs)
        loss = nn.functional.cross_entropy(outputs.flatten(0, 1), target.repeat(k))
        loss.backward()

    for name, step in (("one after another", loop), ("vmap, stacked", stacked)):
        for _ in range(10):
            step()
        start = time.perf_counter()
        for _ in range(steps):
            step()
        per_step = (time.perf_counter() - start) / steps * 1e3
        print(f"stacking check, K={k} MLPs: {name}: {per_step:.2f} ms/step")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--cases", nargs="*", default=list(CASES), choices=list(CASES))
    parser.add_argument("--ks", nargs="*", type=int, default=[2, 4, 8])
    parser.add_argument("--repeat", type=int, default=1, help="measurements per side; fastest kept")
    parser.add_argument("--trainer", default="default", help="trainer config (gpu on a GPU)")
    parser.add_argument("--out", type=Path, default=None, help="sweep dirs (default: a temp dir)")
    parser.add_argument("--stacking", action="store_true", help="time vmap stacking first")
    args = parser.parse_args()
    if args.stacking:
        stacking_check()
    if max(args.ks) > min(len(v) for v in VALUES.values()):
        parser.error(f"--ks: at most {min(len(v) for v in VALUES.values())} variants")
    out = args.out or Path(tempfile.mkdtemp(prefix="bench_lockstep_"))
    out.mkdir(parents=True, exist_ok=True)

    print(f"trainer={args.trainer} repeat={args.repeat} cpus={os.cpu_count()} sweep dirs: {out}")
    print(
        f"{'case':<17}{'K':>3}{'sequential s':>14}{'lockstep s':>12}{'start-up s':>12}"
        f"{'seq MiB':>9}{'lockstep MiB':>14}  {'lockstep used':<14}{'ratio':>7}"
        f"{'after start-up':>16}{'ceiling':>9}"
    )
    last = None
    for name in args.cases:
        overrides, loss, key = CASES[name]
        for k in args.ks:
            values = ",".join(str(v) for v in VALUES[key][:k])
            common = [
                *overrides,
                f"trainer={args.trainer}",
                f"loss={loss}",
                f"loss.{key}={values}",
                *QUIET,
            ]
            best: dict[str, tuple[float, float, str]] = {}
            fixed = min(
                start_up(common, out / f"{name}-K{k}-dry-{attempt}")
                for attempt in range(args.repeat)
            )
            # the two sides alternate, so a machine that slows down for a while slows both
            for attempt in range(args.repeat):
                for launcher in ("basic", "lockstep"):
                    measured = run_sweep(
                        [*common, f"hydra/launcher={launcher}"],
                        out / f"{name}-K{k}-{launcher}-{attempt}",
                    )
                    if launcher not in best or measured[0] < best[launcher][0]:
                        best[launcher] = measured
            (seq_s, seq_mib, _), (ls_s, ls_mib, ls_log) = best["basic"], best["lockstep"]
            used = "yes" if ls_log.count("in lockstep:") == k else "no"
            ratio = seq_s / ls_s
            # a noisy dry run can outlast a short sweep: then there is no ratio to give
            after = f"{(seq_s - fixed) / (ls_s - fixed):.2f}x" if ls_s > fixed else "n/a"
            print(
                f"{name:<17}{k:>3}{seq_s:>14.1f}{ls_s:>12.1f}{fixed:>12.1f}{seq_mib:>9.0f}"
                f"{ls_mib:>14.0f}  {used:<14}{ratio:>6.2f}x{after:>16}{seq_s / fixed:>8.2f}x",
                flush=True,
            )
            if name == "regression" and k == 8:
                last = ratio
    if last is not None:
        print(f"regression K=8: lockstep {last:.2f}x sequential")


if __name__ == "__main__":
    main()
