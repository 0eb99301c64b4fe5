"""Runs of a Job, as the client sees them: the run its spec and annotation request, the
run its status describes, whether that is the end of the requested run (what ``wait``
waits for), and the run ``rerun`` asks for next. Pure functions over the Job."""

from __future__ import annotations

from shiftboss.api.job import Job, is_terminal
from shiftboss.api.job import annotated_run as read_annotated_run
from shiftboss.client.errors import JobCannotRunAgain, JobNotFinished


def annotated_run(job: Job) -> int:
    """The run the ``shiftboss.io/run-generation`` annotation requests; 0 when it is
    missing or malformed (the operator ignores it then, too: the same rule)."""
    return read_annotated_run(job.metadata) or 0


def requested_run(job: Job) -> int:
    """The run asked for: the higher of ``spec.runGeneration`` and the annotation."""
    return max(job.spec.run_generation, annotated_run(job))


def observed_run(job: Job) -> int:
    """The run the Job's status is for (0 before the operator has written one)."""
    status = job.status
    return (status.run_generation or 0) if status is not None else 0


def finished(job: Job) -> bool:
    """True when the Job ended the run it requests: a terminal phase, and no rerun
    asked for that has not started yet (so a finished run does not answer for the
    next one)."""
    status = job.status
    if status is None or not is_terminal(status.phase):
        return False
    # A cancelled Job never runs again, whatever run is asked for.
    return job.spec.cancel or requested_run(job) <= observed_run(job)


def next_run(job: Job) -> int:
    """The run ``rerun`` requests: one past every run requested or observed."""
    return max(requested_run(job), observed_run(job)) + 1


def check_rerun(job: Job) -> None:
    """Refuse a rerun the operator would not start: ``JobCannotRunAgain`` for a cancelled
    Job (``spec.cancel`` never goes back to false), ``JobNotFinished`` for one still
    waiting, running, suspended, or with a requested run not finished yet."""
    if job.spec.cancel:
        raise JobCannotRunAgain(job)
    if finished(job):
        return
    status = job.status
    if status is not None and is_terminal(status.phase):
        raise JobNotFinished(job, requested_run(job))
    raise JobNotFinished(job)
