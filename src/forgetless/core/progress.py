"""Whether progress bars may show: tqdm's own switch, TQDM_DISABLE, which `--quiet` sets."""

from __future__ import annotations

import os


def bars_disabled() -> bool | None:
    """True where TQDM_DISABLE is set to anything but 0/false; otherwise None (tqdm's "a bar on a
    terminal, nothing in a log file")."""
    value = os.environ.get("TQDM_DISABLE", "").strip().lower()
    return True if value not in ("", "0", "false") else None


def silence_bars() -> None:
    """`--quiet`: no progress bars in this process (nor in processes it starts)."""
    os.environ["TQDM_DISABLE"] = "1"


def duration(seconds: float) -> str:
    """A wait as people read it: `28m03s`, or `1h05m` from an hour on."""
    minutes, s = divmod(round(seconds), 60)
    hours, m = divmod(minutes, 60)
    return f"{hours}h{m:02d}m" if hours else f"{m}m{s:02d}s"
