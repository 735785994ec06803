"""Command-line pre-checks, read with Hydra's own override parser: every sweep syntax Hydra accepts
for a config group passes, an unknown option or a misused sweep setting fails in one line."""

import subprocess
import sys

import pytest

from trainer.cli import (
    CONF_DIR,
    command_line_error,
    hydra_arguments,
    multirun_misuse,
    unknown_choice,
)

LOSSES = ", ".join(sorted(p.stem for p in (CONF_DIR / "loss").glob("*.yaml")))


@pytest.mark.parametrize(
    "args",
    [
        ["-m", "loss=choice(bce,dice)"],
        ["-m", "loss=glob(*)", "data=regression"],
        ["-m", "loss=glob([b*,d*],exclude=bce_*)"],
        ["-m", "loss=bce,dice"],
        ["-m", "loss=shuffle(bce,dice)"],
        ["-m", "loss=sort(dice,bce)"],
        ["-m", "loss=choice('bce',\"dice\")"],
        ["loss='dice'"],
        ["loss=null"],
        ["+suite=boxes", "-m"],
        ["~debug"],
        ["~debug=quick"],
        ["debug=saturate"],
        ["--cfg", "job", "-p", "loss", "loss=focal"],
        ["-m", "hydra/launcher=joblib"],  # Hydra's own groups live in its plugins
        ["loss.gamma=1,2", "-m"],  # a config value, not a group
    ],
)
def test_every_group_syntax_hydra_accepts_passes(args: list[str]):
    assert unknown_choice(args) is None


@pytest.mark.parametrize(
    ("args", "line"),
    [
        (["loss=dcie"], f"unknown loss 'dcie'; choose one of: {LOSSES}"),
        (["-m", "loss=choice(bce,dcie)"], f"unknown loss 'dcie'; choose one of: {LOSSES}"),
        (["-m", "loss=bce,'dcie'"], f"unknown loss 'dcie'; choose one of: {LOSSES}"),
        (["+loss=dcie"], f"unknown loss 'dcie'; choose one of: {LOSSES}"),
        (["-m", "loss=glob(zz*)"], f"loss=glob(zz*) matches no loss; choose one of: {LOSSES}"),
        (
            ["-m", "loss=range(1,3)"],
            "loss: range() and interval() sweep numbers; a config group sweeps with a,b or "
            "choice(...) or glob(...)",
        ),
        # Hydra reads `nan` as a float: the preset is called `saturate`
        (["debug=nan"], "unknown debug 'nan'; choose one of: quick, saturate"),
    ],
)
def test_an_unknown_option_is_named_in_one_line(args: list[str], line: str):
    assert unknown_choice(args) == line


def test_options_in_an_extra_search_path_count(tmp_path, monkeypatch):
    (tmp_path / "suite").mkdir()
    (tmp_path / "suite" / "tiny.yaml").write_text("suite: {seeds: [0], variants: []}\n")
    searchpath = f"hydra.searchpath=[file://{tmp_path}]"
    assert unknown_choice(["-m", "suite=tiny", searchpath]) is None
    assert unknown_choice(["-m", "suite=tiny", "--config-dir", str(tmp_path)]) is None
    assert unknown_choice(["-m", "suite=tiny"]).startswith("unknown suite 'tiny'; choose one of: ")
    # Hydra's config loader lists a package search path too, and knows one it cannot find
    (tmp_path / "extra_conf" / "suite").mkdir(parents=True)
    (tmp_path / "extra_conf" / "__init__.py").write_text("")
    (tmp_path / "extra_conf" / "suite" / "packaged.yaml").write_text("suite: {seeds: [0]}\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    assert unknown_choice(["-m", "suite=packaged", "hydra.searchpath=[pkg://extra_conf]"]) is None
    assert unknown_choice(
        ["-m", "suite=packaged", "hydra.searchpath=[pkg://elsewhere]"]
    ).startswith("unknown suite 'packaged'; choose one of: boxes, ")


@pytest.mark.parametrize(
    ("args", "line"),
    [
        (
            ["suite=seg_imbalance"],
            "a suite is a sweep of jobs: add -m (python train.py -m suite=seg_imbalance)",
        ),
        (["+suite=boxes"], "a suite is a sweep of jobs: add -m (python train.py -m +suite=boxes)"),
        (
            ["loss=bce", "dry_run=true"],
            "dry_run lists the jobs of a sweep: add -m (python train.py -m dry_run=true)",
        ),
        (
            ["-m", "suite=boxes,retrieval"],
            "suite=boxes,retrieval: one suite per sweep; run each with its own -m",
        ),
        (["-m", "suite=boxes"], None),
        (["--multirun", "suite=boxes", "dry_run=true"], None),
        (["suite=boxes", "hydra.mode=MULTIRUN"], None),
        (["suite=boxes", "--cfg", "job"], None),  # prints the config, runs nothing
        (["suite=null", "dry_run=false"], None),
    ],
)
def test_sweep_settings_without_a_sweep(args: list[str], line: str | None):
    assert multirun_misuse(args) == line


def test_the_first_failing_check_speaks(tmp_path):
    assert command_line_error(["loss=dcie", "suite=boxes"]).startswith("unknown loss 'dcie'")
    assert command_line_error(["suite=boxes", f"hydra.run.dir={tmp_path}"]).startswith(
        "a suite is a sweep of jobs"
    )
    assert command_line_error(["-m", "suite=boxes", f"hydra.sweep.dir={tmp_path}"]) is None


@pytest.mark.parametrize("args", [[], ["-m"], ["-cd", "conf"], ["loss=focal"]])
def test_the_readme_commands_pass_the_checks(args: list[str]):
    # `python train.py` alone (the README's first command) once crashed the pre-check
    assert command_line_error(args) is None


def test_help_is_the_apps_page_with_the_groups_train_py_chooses_from():
    result = subprocess.run(
        [sys.executable, str(CONF_DIR.parent / "train.py"), "--help"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    page = result.stdout
    assert page.startswith("losscmp: ")
    assert "is powered by Hydra" not in page  # Hydra's generic page
    for command in ("-m suite=seg_imbalance dry_run=true", "scripts/findings.py", "tensorboard"):
        assert command in page, command
    groups = [line.split(":")[0] for line in page.split("== Config groups")[1].splitlines()[1:]]
    assert f"loss: {LOSSES}" in page and "suite" in groups and "debug" in groups
    assert "findings" not in groups  # a finding runs through scripts/findings.py
    assert not any(group.startswith("hydra") for group in groups)
    assert "outputs/multiruns/" in page


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["-m", "dry_run=true"], ["-m", "hydra.sweeper.dry_run=true"]),
        (
            ["+search.n_trials=3", "tune=false"],
            ["+hydra.sweeper.search.n_trials=3", "hydra.sweeper.tune=false"],
        ),
        # a flag's value, and keys that only begin like a setting, stay as they are
        (["--cfg", "job", "-p", "search"], ["--cfg", "job", "-p", "search"]),
        (["searches=1", "loss.tune=2", "seed=1"], ["searches=1", "loss.tune=2", "seed=1"]),
    ],
)
def test_the_sweep_settings_go_to_the_sweeper_under_their_short_names(args, expected):
    assert hydra_arguments(args) == expected
