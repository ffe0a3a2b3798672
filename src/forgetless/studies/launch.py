"""Running a study's runs concurrently: `forgetless sweep --jobs N` starts them as separate
processes on this machine (each with its share of the CPU threads, or its GPU), and
`--launcher slurm` submits them as a SLURM job array through submitit. Every run is a normal run
directory whichever way it ran: a finished run is skipped, a partial one resumes, and the study
is summarised from what is on disk.

Each process re-plans the study and runs one entry of the plan (`run_planned`), so nothing but a
study path, an output directory and an index crosses the process boundary.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from forgetless.core.errors import ConfigError, ForgetlessError

LAUNCHERS = ("local", "slurm", "submitit-local")
"""local: processes on this machine; slurm: a SLURM job array (submitit); submitit-local: the
same submitit path, run on this machine (to check a study before sending it to a cluster)."""


@dataclass(frozen=True)
class Job:
    """One pending run of a study."""

    index: int
    """Its position in the study's plan (`sweep.plan`)."""
    name: str
    """`<arm>-seed<k>`, the name of its run directory and of its log."""


@dataclass(frozen=True)
class Planned:
    """What every process needs to find its run again."""

    study: str
    out: str
    smoke: bool
    seeds: list[int] | None


DONE_ELSEWHERE = "finished by another process; nothing ran here"
"""The last line of a process whose run another sweep finished while it waited (the sweep reads
it from the log: the exit status is 0 either way)."""


def run_planned(planned: Planned, index: int, threads: int | None = None) -> str:
    """Run entry `index` of the study's plan in its run directory; return that directory."""
    from forgetless.models.device import use_threads
    from forgetless.studies.study import execute_when_free, load_study, plan, run_directory

    use_threads(threads)
    study, path = load_study(planned.study)
    run = plan(study, path, planned.smoke, planned.seeds)[index]
    run_dir = run_directory(Path(planned.out), run)
    ran = execute_when_free(study.kind, run["config"], run_dir, progress=True,  # into its log
                            on_wait=lambda holder: print(f"{run_dir.name}: in use by {holder}; "
                                                         "waiting for it", flush=True))
    if not ran:
        print(f"{run_dir.name}: {DONE_ELSEWHERE}", flush=True)
    return str(run_dir)


def cpu_cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def visible_gpus() -> list[str]:
    """The GPUs this process may use, as CUDA_VISIBLE_DEVICES names them for children."""
    import torch

    count = torch.cuda.device_count()
    named = [d for d in os.environ.get("CUDA_VISIBLE_DEVICES", "").split(",") if d.strip()]
    return named[:count] if named else [str(k) for k in range(count)]


def slot_environments(jobs: int, threads: int | None = None,
                      gpus: list[str] | None = None) -> list[dict[str, str]]:
    """The environment of each of `jobs` concurrent processes: CPU threads split between them
    (or `threads` each), and the GPUs dealt round-robin — one each when there are as many GPUs
    as jobs, shared when there are fewer."""
    per = threads or max(1, cpu_cores() // jobs)
    gpus = visible_gpus() if gpus is None else gpus
    envs = []
    for k in range(jobs):
        env = {"OMP_NUM_THREADS": str(per), "MKL_NUM_THREADS": str(per)}
        if gpus:
            env["CUDA_VISIBLE_DEVICES"] = gpus[k % len(gpus)]
        envs.append(env)
    return envs


def oversubscribed(jobs: int, threads: int | None, cores: int, gpus: int) -> str | None:
    """A warning when concurrent runs on the CPU ask for more threads than there are cores. Each
    run's OpenMP threads then wait on the others' (spinning, then in the kernel): two runs of two
    threads on two cores were seen to stall, one run of minutes not finishing its first step in
    13 min (benchmarks/README.md, sweep_jobs.py)."""
    if gpus or jobs < 2 or threads is None or jobs * threads <= cores:
        return None
    return (f"forgetless: warning: --jobs {jobs} × --threads {threads} = {jobs * threads} threads "
            f"on {cores} CPU cores: runs that over-subscribe the cores can stall each other; "
            f"leave --threads out (the cores are split between the jobs) or lower it")


def _command(planned: Planned, job: Job) -> list[str]:
    cmd = [sys.executable, "-m", "forgetless.studies.launch", planned.study, "--out", planned.out,
           "--index", str(job.index)]
    if planned.smoke:
        cmd.append("--smoke")
    if planned.seeds is not None:
        cmd += ["--seeds", ",".join(map(str, planned.seeds))]
    return cmd


Done = Callable[[Job, int | None, Path], None]
"""Called as each job ends: (job, exit code or None when it failed to start, log)."""


def run_local(planned: Planned, jobs: list[Job], n: int, done: Done, threads: int | None = None,
              poll_s: float = 0.2) -> list[Job]:
    """Run `jobs` as processes, at most `n` at a time; return the ones that failed. Each process
    writes its output to <out>/logs/<name>.log. Interrupted (Ctrl-C), the running processes are
    stopped; their runs resume when the sweep runs again."""
    log_dir = Path(planned.out) / "logs"
    log_dir.mkdir(parents=True, exist_ok=True)
    gpus = visible_gpus()
    free = slot_environments(n, threads, gpus)
    if warning := oversubscribed(n, threads, cpu_cores(), len(gpus)):
        print(warning, file=sys.stderr, flush=True)
    queue, running, failed = list(jobs), {}, []
    try:
        while queue or running:
            while queue and free:
                job, env = queue.pop(0), free.pop(0)
                log = log_dir / f"{job.name}.log"
                with open(log, "w") as handle:
                    process = subprocess.Popen(
                        _command(planned, job), stdout=handle, stderr=subprocess.STDOUT,
                        env={**os.environ, **env, "TQDM_DISABLE": "1"})
                running[process] = (job, env, log)
            time.sleep(poll_s)
            for process in [p for p in running if p.poll() is not None]:
                job, env, log = running.pop(process)
                free.append(env)
                if process.returncode != 0:
                    failed.append(job)
                done(job, process.returncode, log)
    except BaseException:
        for process in running:
            process.terminate()
        for process in running:
            process.wait()
        raise
    return failed


def launcher_options(items: list[str]) -> dict[str, Any]:
    """`KEY=VALUE` pairs for submitit's executor (values read as YAML: 60 is a number)."""
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--launcher-option {item!r}: expected KEY=VALUE, e.g. "
                              "slurm_partition=gpu or timeout_min=120")
        out[key.strip()] = yaml.safe_load(value)
    return out


def run_submitit(planned: Planned, jobs: list[Job], n: int, done: Done, cluster: str,
                 options: dict[str, Any], threads: int | None = None) -> list[Job]:
    """Submit `jobs` as one job array (SLURM runs at most `n` at a time), wait for them and
    return the ones that failed. submitit keeps its job files and logs in <out>/submitit."""
    try:
        import submitit
    except ImportError:
        raise ConfigError("--launcher slurm needs submitit: pip install 'forgetless[slurm]'") from None
    folder = Path(planned.out) / "submitit"
    executor = submitit.AutoExecutor(folder=folder,
                                     cluster="local" if cluster == "submitit-local" else "slurm")
    defaults: dict[str, Any] = {"name": "forgetless-sweep", "slurm_array_parallelism": n}
    if cluster == "submitit-local":
        defaults["timeout_min"] = 24 * 60  # submitit's local default (2 min) would kill any run
    try:
        executor.update_parameters(**{**defaults, **options})
    except (ValueError, TypeError) as e:
        raise ConfigError(f"--launcher-option: {str(e).splitlines()[0]}") from None
    submitted = executor.map_array(run_planned, [planned] * len(jobs), [j.index for j in jobs],
                                   [threads] * len(jobs))
    failed = []
    for job, handle in zip(jobs, submitted, strict=True):
        try:
            handle.result()
            code, log = 0, handle.paths.stdout
        except Exception:  # submitit raises the job's own error or a FailedJobError
            failed.append(job)
            code, log = 1, handle.paths.stderr
        done(job, code, Path(log))
    return failed


def _main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m forgetless.studies.launch",
                                description="run one entry of a study's plan (what `forgetless "
                                "sweep --jobs N` starts per run)")
    p.add_argument("study")
    p.add_argument("--out", required=True)
    p.add_argument("--index", type=int, required=True)
    p.add_argument("--smoke", action="store_true")
    p.add_argument("--seeds", type=lambda s: [int(x) for x in s.split(",")])
    args = p.parse_args(argv)
    try:
        run_planned(Planned(args.study, args.out, args.smoke, args.seeds), args.index)
    except ForgetlessError as e:
        print(f"forgetless: error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(_main())
