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
      checkpoints/exp-XXX/     weights.safetensors, methods.safetensors, state.json (+
                               optimizer.safetensors when the optimizer state carries over)
      checkpoints/step-XXX-SSSSSSS/  mid-experience (`train.checkpoint_every`): the same plus
                               optimizer, RNG and data position; removed once exp-XXX exists

A checkpoint directory is written under a temporary name and renamed when complete, so one
that exists is whole; resume takes the newest. Tensors go to safetensors and everything else
to JSON: resuming never unpickles anything.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import shutil
import socket
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from forgetless.core.errors import RunDirError


def atomic_write_text(path: Path, text: str) -> None:
    write_files({path: text})


def check_writable(path: Path, what: str = "") -> None:
    """`path` can be made as a directory (or is one) and written into; else a one-line error
    (`what`: the option that named it, e.g. "--out")."""
    path = Path(path)
    name = f"{what} {path}" if what else str(path)
    if path.exists() and not path.is_dir():
        raise RunDirError(f"{name}: exists and is not a directory")
    existing = next(p for p in (path, *path.parents) if p.exists())
    if not existing.is_dir():
        raise RunDirError(f"{name}: cannot be created: {existing} is a file")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise RunDirError(f"{name}: cannot be written: {existing} is not writable")


def write_files(files: dict[Path, str | bytes]) -> None:
    """Write several files as one step: each goes to a temporary file beside it and is synced;
    only when all are on disk are they renamed into place, one after another (a window of
    microseconds). A failure before that (a full disk, a kill) leaves every old file as it was
    and no temporary behind; each file is always whole. Errors name the file."""
    temps: list[tuple[str, Path]] = []
    try:
        for path, content in files.items():
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
            temps.append((tmp, path))
            data = content.encode("utf-8") if isinstance(content, str) else content
            try:
                with os.fdopen(fd, "wb") as fh:
                    fh.write(data)
                    fh.flush()
                    os.fsync(fh.fileno())
            except OSError as e:
                raise OSError(e.errno, e.strerror, str(path)) from None
        for tmp, path in temps:
            os.replace(tmp, path)
    finally:
        for tmp, _ in temps:
            Path(tmp).unlink(missing_ok=True)


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


def _save_tensors(tensors: dict[str, torch.Tensor], path: Path, named: Path) -> None:
    """safetensors' save_file, whose I/O failures (a full disk) become OSErrors naming `named`."""
    try:
        save_file(tensors, str(path))
    except SafetensorError as e:
        raise as_os_error(e, named) from None


def as_os_error(error: Exception, named: Path) -> Exception:
    """safetensors reports a failed write as SafetensorError("… (os error 28)"): the OSError it
    stands for, naming `named` (any other error is returned as it is)."""
    code = re.search(r"os error (\d+)", str(error))
    if code is None:
        return error
    number = int(code.group(1))
    return OSError(number, os.strerror(number), str(named))


MARKER = ".forgetless-run"
LOCK = ".lock"


def _holder(fd: int) -> str:
    """The note a lock file's holder (or its last holder) left: "pid N on HOST", or ""."""
    return os.pread(fd, 200, 0).decode(errors="replace").strip()


def lock_holder(run_dir: Path) -> str:
    """Who holds a run directory's lock, read without taking it (a status check must not make a
    run that starts at that moment find its directory in use): "pid N on HOST", or "" when
    nobody does. A note whose process has died on this host is no holder (the kernel freed its
    lock; the note stays until the next run signs); a note from another host cannot be checked
    from here and is returned as it is."""
    try:
        note = (run_dir / LOCK).read_text(errors="replace").strip()
    except OSError:
        return ""
    found = re.fullmatch(r"pid (\d+) on (\S+)", note)
    if found is None or found.group(2) != socket.gethostname():
        return note
    try:
        os.kill(int(found.group(1)), 0)
    except ProcessLookupError:
        return ""
    except PermissionError:  # alive, another user's
        pass
    return note


def _sign(fd: int) -> str:
    """Leave this process's note in a lock file it holds; return the note."""
    me = f"pid {os.getpid()} on {socket.gethostname()}"
    os.ftruncate(fd, 0)
    os.pwrite(fd, me.encode(), 0)
    return me


@contextlib.contextmanager
def taking_turns(path: Path, on_wait: Callable[[str], None] | None = None) -> Iterator[None]:
    """Hold an exclusive lock on `path` (created), waiting while another process holds it:
    for work that several processes may want done once (a pretraining study's shared phase A),
    the first does it and the others find it done. `on_wait` hears who is being waited for.
    Freed by the kernel if the holder dies."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            if on_wait is not None:
                on_wait(_holder(fd) or "another process")
            fcntl.flock(fd, fcntl.LOCK_EX)
        _sign(fd)
        yield
    finally:
        os.close(fd)  # closing the descriptor releases the lock


def wait_until_free(run_dir: Path) -> None:
    """Block until no process holds `run_dir`'s lock (at once when none does, or there is no
    lock file). The lock is taken and dropped without signing it, so the note of whoever held it
    stays as it was: a sweep that waits for another's run is never taken for its holder."""
    try:
        fd = os.open(run_dir / LOCK, os.O_RDWR)
    except FileNotFoundError:
        return
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
    finally:
        os.close(fd)


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
            holder = _holder(fd) or "another process"
            os.close(fd)
            raise RunDirError(f"{self.path.parent}: in use by {holder}; wait for it to finish or "
                              f"choose another --out") from None
        self.previous = _holder(fd)
        if self.previous == _sign(fd):
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
        other directory is refused: --fresh must never delete a user's files. A directory with
        nothing in it but the lock (a new --out) has nothing to empty."""
        if not self.is_marked and any(p.name != LOCK for p in self.dir.iterdir()):
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
        """(experience, path) of every complete after-experience checkpoint, oldest first."""
        return [(key[0], path) for key, path in self._complete("exp-")]

    def step_checkpoint(self) -> tuple[int, int, Path] | None:
        """(experience, optimizer steps into it, path) of the newest mid-experience checkpoint."""
        found = self._complete("step-")
        return (*found[-1][0], found[-1][1]) if found else None

    def _complete(self, prefix: str) -> list[tuple[tuple[int, ...], Path]]:
        root = self.dir / "checkpoints"
        if not root.is_dir():
            return []
        found = []
        for p in root.iterdir():
            parts = p.name[len(prefix):].split("-")
            if (p.is_dir() and p.name.startswith(prefix) and all(x.isdigit() for x in parts)
                    and (p / "state.json").is_file()):
                found.append((tuple(int(x) for x in parts), p))
        return sorted(found)

    def finish_interrupted_writes(self, keep_all: bool) -> None:
        """What a kill left undone around a checkpoint write: the temporary directory of a write
        cut off, and the removals `save_checkpoint` does after one finished (mid-experience
        checkpoints of finished experiences and, unless `keep_all`, the older after-experience
        ones) — a run killed there and resumed after its last experience writes none again."""
        root = self.dir / "checkpoints"
        if not root.is_dir():
            return
        for p in root.iterdir():
            if p.name.startswith(".") and p.is_dir():
                shutil.rmtree(p, ignore_errors=True)
        done = self.checkpoints()
        if not done:
            return
        newest = done[-1][0]
        for (experience, _), path in self._complete("step-"):
            if experience <= newest:
                shutil.rmtree(path, ignore_errors=True)
        if not keep_all:
            for _, path in done[:-1]:
                shutil.rmtree(path, ignore_errors=True)

    def save_checkpoint(
        self, index: int, weights: dict[str, torch.Tensor], methods: dict[str, Any],
        state: dict[str, Any], keep_all: bool, optimizer: dict[str, Any] | None = None,
    ) -> Path:
        """The checkpoint after experience `index`; it replaces every mid-experience one (and,
        unless `keep_all`, the older after-experience ones)."""
        parts = {"methods": methods, **({"optimizer": optimizer} if optimizer else {})}
        final = self._write(f"exp-{index:03d}", weights, parts, state)
        for _, path in self._complete("step-"):
            shutil.rmtree(path, ignore_errors=True)
        if not keep_all:
            for other, path in self.checkpoints():
                if other != index:
                    shutil.rmtree(path, ignore_errors=True)
        return final

    def save_step_checkpoint(self, experience: int, step: int, weights: dict[str, torch.Tensor],
                             parts: dict[str, Any], state: dict[str, Any]) -> Path:
        """A checkpoint `step` optimizer steps into `experience` (`train.checkpoint_every`); the
        previous mid-experience one is removed only once this one is complete."""
        final = self._write(f"step-{experience:03d}-{step:07d}", weights, parts, state)
        for _, path in self._complete("step-"):
            if path != final:
                shutil.rmtree(path, ignore_errors=True)
        return final

    def _write(self, name: str, weights: dict[str, torch.Tensor], parts: dict[str, Any],
               state: dict[str, Any]) -> Path:
        """weights.safetensors, <part>.safetensors per part (nested tensors) and state.json (with
        the parts' JSON skeletons under "parts"), written under a temporary name and renamed:
        a checkpoint directory that exists is whole."""
        root = self.dir / "checkpoints"
        root.mkdir(parents=True, exist_ok=True)
        final = root / name
        tmp = Path(tempfile.mkdtemp(prefix=f".{name}.", dir=root))
        try:
            _save_tensors({k: v.detach().cpu().contiguous() for k, v in weights.items()},
                          tmp / "weights.safetensors", final)
            skeletons = {}
            for part, nested in parts.items():
                tensors, skeletons[part] = flatten_state(nested)
                _save_tensors(tensors, tmp / f"{part}.safetensors", final)
            text = json.dumps({**state, "parts": skeletons}, indent=1, allow_nan=True)
            try:
                (tmp / "state.json").write_text(text)
                for f in tmp.iterdir():  # on disk before the rename makes the directory count
                    with open(f, "rb") as fh:
                        os.fsync(fh.fileno())
            except OSError as e:
                raise OSError(e.errno, e.strerror, str(final)) from None
            if final.exists():
                shutil.rmtree(final)
            tmp.rename(final)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        return final

    def load_checkpoint(self, path: Path) -> tuple[dict[str, torch.Tensor], dict[str, Any], dict]:
        """(weights, methods' states, run state); `load_parts` gives every part."""
        weights, parts, state = self.load_parts(path)
        return weights, parts["methods"], state

    def load_parts(self, path: Path) -> tuple[dict[str, torch.Tensor], dict[str, Any], dict]:
        """(weights, {part: nested state}, the rest of state.json)."""
        try:
            state = json.loads((path / "state.json").read_text())
            weights = load_file(str(path / "weights.safetensors"))
            # before mid-experience checkpoints there was one part, its skeleton at "methods"
            skeletons = state.pop("parts", None) or {"methods": state.pop("methods")}
            parts = {part: unflatten_state(skeleton, load_file(str(path / f"{part}.safetensors")))
                     for part, skeleton in skeletons.items()}
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as e:
            # checkpoints are renamed into place whole, so this is damage from outside
            raise RunDirError(f"{path}: damaged checkpoint ({type(e).__name__}: {e}); remove "
                              f"it to resume from the one before, or run with --fresh") from None
        return weights, parts, state
