"""Write a built-in data config's train, val and test splits to files, in the layout its task's
file datamodule reads (``datasets/export.py`` picks the writer by the datamodule's task)::

    python scripts/export_data.py data=fashion_mnist --out /tmp/fmnist-folder
    python scripts/export_data.py data=mnist data.val_size=100 --out /tmp/mnist-small --limit 50
    python train.py data=image_folder data.root=/tmp/fmnist-folder     # trains on the files

Hydra overrides select and configure the data as on ``train.py``'s command line; ``--limit N``
keeps the first N samples of each split. ``--out`` must not exist or be empty: an export never
mixes with older files. Errors end the script with one line, as ``train.py``'s do.
"""

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from hydra import compose, initialize_config_dir  # noqa: E402
from hydra.errors import HydraException  # noqa: E402
from hydra.utils import instantiate  # noqa: E402

from trainer.cli import USER_ERRORS, one_line  # noqa: E402
from trainer.config import CONF_DIR, CONFIG_NAME  # noqa: E402


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("overrides", nargs="*", help="Hydra overrides: data=NAME, data.KEY=VALUE")
    parser.add_argument(
        "--out", type=Path, required=True, help="the folder to write (new or empty)"
    )
    parser.add_argument("--limit", type=int, default=None, help="keep the first N of each split")
    return parser.parse_args(argv)


def main(argv: list[str]) -> int:
    args = parse(argv)
    try:
        from datasets.export import export

        if args.out.exists() and any(args.out.iterdir()):
            raise ValueError(f"export: {args.out} is not empty; choose a new folder")
        with initialize_config_dir(version_base="1.3", config_dir=str(CONF_DIR)):
            cfg = compose(CONFIG_NAME, overrides=args.overrides)
        datamodule = instantiate(cfg.data)
        export(datamodule, args.out, args.limit)
    except (*USER_ERRORS, HydraException) as error:
        line = one_line(error) or " ".join(str(error).split())  # Hydra's own: unknown configs
        print(f"export_data.py: {line}", file=sys.stderr)
        return 1
    print(f"exported data={datamodule.name} ({datamodule.task}) to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
