"""The loss catalogue, ``docs/losses.md``: committed as ``scripts/loss_catalogue.py`` writes it
now, one row and one section per loss config, and a formula and a reference for every loss a
config reaches."""

import importlib.util
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hydra.utils import get_class
from omegaconf import OmegaConf

from losses.base import Loss
from trainer.config import declared_tasks

ROOT = Path(__file__).resolve().parent.parent
CONFIGS = sorted((ROOT / "conf" / "loss").glob("*.yaml"))
DOC = ROOT / "docs" / "losses.md"


@pytest.fixture(scope="module")
def generator():
    """``scripts/loss_catalogue.py`` as a module (scripts/ is no package)."""
    spec = importlib.util.spec_from_file_location(
        "loss_catalogue", ROOT / "scripts" / "loss_catalogue.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _targets(node: Any) -> Iterator[str]:
    """Every ``_target_`` of a config, nested components included."""
    if isinstance(node, dict):
        if "_target_" in node:
            yield node["_target_"]
        for value in node.values():
            yield from _targets(value)


def _reached_losses() -> list[type[Loss]]:
    classes = {
        get_class(target)
        for path in CONFIGS
        for target in _targets(OmegaConf.to_container(OmegaConf.load(path)))
    }
    return sorted((c for c in classes if issubclass(c, Loss)), key=lambda c: c.__qualname__)


def test_the_committed_catalogue_is_what_the_generator_writes(generator):
    assert DOC.read_text(encoding="utf-8") == generator.catalogue(), (
        "docs/losses.md is stale: run python scripts/loss_catalogue.py"
    )


@pytest.mark.parametrize("cls", _reached_losses(), ids=lambda c: c.__qualname__)
def test_every_loss_a_config_reaches_has_a_formula_and_a_reference(cls):
    for attribute in ("formula", "reference"):
        text = getattr(cls, attribute)
        assert text.strip(), f"{cls.__qualname__}.{attribute} is empty"
        # one table cell: a line break would end the row
        assert "\n" not in text, f"{cls.__qualname__}.{attribute} spans lines"
    # the catalogue shows the formula as one code span
    assert "`" not in cls.formula, cls.__qualname__


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.stem)
def test_every_config_has_a_row_and_a_section(path):
    doc = DOC.read_text(encoding="utf-8")
    tasks = ", ".join(sorted(declared_tasks(OmegaConf.load(path))))
    assert f"| [`{path.stem}`](#{path.stem}) | {tasks} |" in doc
    assert f"\n### `{path.stem}`\n" in doc


def test_comments_explain_their_key_or_the_whole_config(generator, tmp_path):
    (tmp_path / "loss").mkdir()
    (tmp_path / "loss" / "toy.yaml").write_text(
        "_target_: losses.combo.Combo  # beside the target\n"
        "# right under the target: the config as a whole\n"
        "components:\n"
        "  huber:\n"
        "    _target_: losses.regression.Huber\n"
        "    delta: 2.0   # beside delta\n"
        "    # above reduction\n"
        "    reduction: sum\n"
        "weights:  # beside weights\n"
        "  huber: 0.5\n"
    )
    doc = generator.catalogue(tmp_path)
    assert "`losses.combo.Combo`: beside the target right under the target: the config" in doc
    rows = [line for line in doc.splitlines() if line.startswith("| `")]
    assert rows == [
        "| `components.huber` | `losses.regression.Huber` |  |",
        "| `components.huber.delta` | `2.0` | beside delta |",
        "| `components.huber.reduction` | `sum` | above reduction |",
        "| `weights` |  | beside weights |",
        "| `weights.huber` | `0.5` |  |",
    ]


def test_check_names_a_stale_catalogue_in_one_line(generator, tmp_path, monkeypatch, capsys):
    doc = tmp_path / "losses.md"
    doc.write_text("# an old catalogue\n")
    monkeypatch.setattr(generator, "DOC", doc)
    assert generator.main(["--check"]) == 1
    message = capsys.readouterr().err
    assert message.count("\n") == 1 and f"{doc} is stale" in message
    assert generator.main([]) == 0 and generator.main(["--check"]) == 0
    assert doc.read_text(encoding="utf-8") == generator.catalogue()
