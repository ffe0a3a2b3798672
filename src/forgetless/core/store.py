"""The run directory: every file written atomically, checkpoints that resume without pickle.

    <run_dir>/
      .forgetless-run          marker: forgetless made this directory (only such a directory is
                               ever emptied by --fresh)
      .lock                    held (flock) by the process running in it; pid and host inside
      config.yaml              resolved config (what ran)
      results.json             matrices, metrics, timings, versions (rewritten after each exp.)
      matrix_train.csv / matrix_test.csv
      predictions/after-XXX.jsonl   per-example predictions of each evaluation
      summary.md               Markdown summary (`forgetless report` re-renders it)
      checkpoints/exp-XXX/     weights.safetensors, methods.safetensors, state.json

A checkpoint directory is written under a temporary name and renamed when complete, so one
that exists is whole; resume takes the newest. Tensors go to safetensors and everything else
to JSON: resuming never unpickles anything.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import socket
import tempfile
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from forgetless.core.errors import RunDirError


def atomic_write_text(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_json(path: Path, data: Any) -> None:
    atomic_write_text(path, json.dumps(data, indent=1, allow_nan=True) + "\n")


def flatten_state(state: Any, prefix: str = "") -> tuple[dict[str, torch.Tensor], Any]:
    """Split a nested dict/list of tensors and JSON values into (tensors by dotted key, skeleton
    JSON where each tensor is replaced by {"__tensor__": key})."""
    tensors: dict[str, torch.Tensor] = {}

    def walk(node: Any, path: str) -> Any:
        if isinstance(node, torch.Tensor):
            tensors[path] = node.detach().cpu().contiguous()
            return {"__tensor__": path}
        if isinstance(node, dict):
            return {str(k): walk(v, f"{path}.{k}" if path else str(k)) for k, v in node.items()}
        if isinstance(node, (list, tuple)):
            return [walk(v, f"{path}.{i}" if path else str(i)) for i, v in enumerate(node)]
        return node

    return tensors, walk(state, prefix)


def unflatten_state(skeleton: Any, tensors: dict[str, torch.Tensor]) -> Any:
    if isinstance(skeleton, dict):
        if set(skeleton) == {"__tensor__"}:
            return tensors[skeleton["__tensor__"]]
        return {k: unflatten_state(v, tensors) for k, v in skeleton.items()}
    if isinstance(skeleton, list):
        return [unflatten_state(v, tensors) for v in skeleton]
    return skeleton


MARKER = ".forgetless-run"
LOCK = ".lock"


class RunLock:
    """An exclusive lock on a run directory: a `.lock` file held with flock, so the kernel frees
    it when the holder dies (a crashed run never blocks the next one); pid and host are written
    inside for the message another process gets."""

    def __init__(self, run_dir: Path):
        self.path = run_dir / LOCK
        self._fd: int | None = None
        self.previous: str = ""
        """Who held the lock before, if a process that died left its note (for a message)."""

    def acquire(self) -> RunLock:
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 200, 0).decode(errors="replace").strip() or "another process"
            os.close(fd)
            raise RunDirError(f"{self.path.parent}: in use by {holder}; wait for it to finish or "
                              f"choose another --out") from None
        self.previous = os.pread(fd, 200, 0).decode(errors="replace").strip()
        me = f"pid {os.getpid()} on {socket.gethostname()}"
        os.ftruncate(fd, 0)
        os.pwrite(fd, me.encode(), 0)
        if self.previous == me:
            self.previous = ""
        self._fd = fd
        return self

    def release(self) -> None:
        if self._fd is not None:
            os.ftruncate(self._fd, 0)
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None


class RunStore:
    def __init__(self, run_dir: str | Path):
        self.dir = Path(run_dir)

    @property
    def is_marked(self) -> bool:
        return (self.dir / MARKER).is_file()

    def mark(self) -> None:
        atomic_write_text(self.dir / MARKER, "a forgetless run directory\n")

    def clear(self) -> None:
        """Empty a run directory forgetless made (`--fresh`), keeping the lock being held; any
        other directory is refused: --fresh must never delete a user's files."""
        if not self.is_marked:
            raise RunDirError(
                f"{self.dir}: --fresh empties only run directories forgetless made (no "
                f"{MARKER} marker here); remove it yourself or choose another --out")
        for p in self.dir.iterdir():
            if p.name == LOCK:
                continue
            if p.is_dir() and not p.is_symlink():
                shutil.rmtree(p)
            else:
                p.unlink()

    def write_results(self, results: dict[str, Any]) -> None:
        """results.json, with the landscape rows `forgetless landscape` added since (kept in
        landscape.json so a resumed run does not drop them)."""
        landscape = self.dir / "landscape.json"
        if landscape.is_file():
            results["landscape"] = json.loads(landscape.read_text())
        atomic_write_json(self.results_path, results)

    @property
    def results_path(self) -> Path:
        return self.dir / "results.json"

    def read_results(self) -> dict[str, Any]:
        if not self.results_path.is_file():
            raise RunDirError(f"{self.dir}: no results.json (not a forgetless run directory)")
        try:
            data = json.loads(self.results_path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as e:
            raise RunDirError(f"{self.results_path}:{e.lineno}: not valid JSON ({e.msg})") from None
        except UnicodeDecodeError:
            raise RunDirError(f"{self.results_path}: not UTF-8 text") from None
        from forgetless.core.results import check_results

        return check_results(data, str(self.results_path))

    def checkpoints(self) -> list[tuple[int, Path]]:
        root = self.dir / "checkpoints"
        if not root.is_dir():
            return []
        found = []
        for p in root.iterdir():
            if p.is_dir() and p.name.startswith("exp-") and (p / "state.json").is_file():
                found.append((int(p.name[4:]), p))
        return sorted(found)

    def save_checkpoint(
        self, index: int, weights: dict[str, torch.Tensor], methods: dict[str, Any],
        state: dict[str, Any], keep_all: bool,
    ) -> Path:
        root = self.dir / "checkpoints"
        root.mkdir(parents=True, exist_ok=True)
        final = root / f"exp-{index:03d}"
        tmp = Path(tempfile.mkdtemp(prefix=f".exp-{index:03d}.", dir=root))
        try:
            save_file({k: v.detach().cpu().contiguous() for k, v in weights.items()},
                      str(tmp / "weights.safetensors"))
            tensors, skeleton = flatten_state(methods)
            save_file(tensors, str(tmp / "methods.safetensors"))
            (tmp / "state.json").write_text(
                json.dumps({**state, "methods": skeleton}, indent=1, allow_nan=True)
            )
            if final.exists():
                shutil.rmtree(final)
            tmp.rename(final)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        if not keep_all:
            for other, path in self.checkpoints():
                if other != index:
                    shutil.rmtree(path, ignore_errors=True)
        return final

    def load_checkpoint(self, path: Path) -> tuple[dict[str, torch.Tensor], dict[str, Any], dict]:
        try:
            state = json.loads((path / "state.json").read_text())
            weights = load_file(str(path / "weights.safetensors"))
            tensors = load_file(str(path / "methods.safetensors"))
            methods = unflatten_state(state.pop("methods"), tensors)
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as e:
            # checkpoints are renamed into place whole, so this is damage from outside
            raise RunDirError(f"{path}: damaged checkpoint ({type(e).__name__}: {e}); remove "
                              f"it to resume from the one before, or run with --fresh") from None
        return weights, methods, state
