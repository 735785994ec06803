"""``python train.py ARGS`` (or another script of the repository) for the tests, each in a
process of its own, without paying for Python's start and the ~6 s import of torch, Lightning and
the runtime in every one.

A fork server (``multiprocessing``'s ``forkserver``: a clean process started once per test
session, which has imported the training runtime and nothing of the tests) forks one child per
command; the child takes the command's working directory, environment and ``sys.argv``, sends
its stdout and stderr to files, and runs the script as ``__main__``, exactly as the interpreter
would. What a cold interpreter must show (imports, the front door's start-up) is
tested with real subprocesses in ``test_runtime_imports``, ``test_analysis_imports`` and
``test_cli``.
"""

import gc
import multiprocessing
import os
import runpy
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TRAIN = ROOT / "train.py"
# what the children share: imported once, in the fork server (not in the test process)
PRELOAD = ["torch", "lightning", "trainer.run", "trainer.analysis.report"]

_context = multiprocessing.get_context("forkserver")
_context.set_forkserver_preload(PRELOAD)


def _script_main(
    script: str, args: list[str], cwd: str, env: dict[str, str], out: str, err: str
) -> None:
    """The child: ``script`` as ``__main__`` with ``args``; its exit status is the child's."""
    os.chdir(cwd)
    os.environ.clear()
    os.environ.update(env)
    for fd, path in ((1, out), (2, err)):
        target = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
        os.dup2(target, fd)
        os.close(target)
    sys.argv = [script, *args]
    # what the server imported lives as long as the child: kept out of the garbage collector's
    # full passes, which would walk it again (a 6-job sweep's collector time: 0.6 s -> 0.2 s)
    gc.freeze()
    try:
        runpy.run_path(script, run_name="__main__")
    finally:
        # a sweep through joblib leaves its loky workers idle for reuse; an interpreter's exit
        # stops them (loky's exit hook), but a forked child first joins its children and would
        # wait out their idle timeout (300 s): stop them as the exit would
        for child in multiprocessing.active_children():
            child.terminate()
            child.join()


class ScriptProcess:
    """A started script: ``pid``, ``poll``, ``kill``, ``wait`` (returns the CompletedProcess)."""

    def __init__(self, script: Path, args: list[str], cwd: Path, env: dict | None) -> None:
        self.args = [sys.executable, str(script), *args]
        self._files = tempfile.TemporaryDirectory(prefix="train_cli_")
        self._paths = [os.path.join(self._files.name, name) for name in ("stdout", "stderr")]
        environment = {**os.environ, **(env or {})}
        self._process = _context.Process(
            target=_script_main,
            args=(str(script), list(args), str(cwd), environment, *self._paths),
        )
        self._process.start()
        self.pid = self._process.pid

    def poll(self) -> int | None:
        return self._process.exitcode

    def kill(self) -> None:
        self._process.kill()

    def wait(self, timeout: float | None = None) -> subprocess.CompletedProcess:
        self._process.join(timeout)
        if self._process.exitcode is None:
            self._process.kill()
            self._process.join()
            raise subprocess.TimeoutExpired(self.args, timeout)
        # a child that failed before its first line (the fork server's own error) wrote nothing
        stdout, stderr = (Path(p).read_text() if Path(p).exists() else "" for p in self._paths)
        self._files.cleanup()
        return subprocess.CompletedProcess(self.args, self._process.exitcode, stdout, stderr)


def start_train(*args: str, cwd: Path = ROOT, env: dict | None = None) -> ScriptProcess:
    return ScriptProcess(TRAIN, list(args), cwd, env)


def run_script(
    script: Path, *args: str, cwd: Path = ROOT, env: dict | None = None, timeout: float = 600
) -> subprocess.CompletedProcess:
    """``python SCRIPT *args`` in ``cwd`` with ``env`` added to the environment: its exit
    status, stdout and stderr, as ``subprocess.run(..., capture_output=True, text=True)``."""
    return ScriptProcess(script, list(args), cwd, env).wait(timeout)


def run_train(
    *args: str, cwd: Path = ROOT, env: dict | None = None, timeout: float = 600
) -> subprocess.CompletedProcess:
    """``python train.py *args``, as :func:`run_script`."""
    return run_script(TRAIN, *args, cwd=cwd, env=env, timeout=timeout)
