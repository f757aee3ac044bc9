"""Model installs that run in the background of `iplm serve`, with progress for the admin page.

The decisions are apply_install_event's (pure); this module runs each install in a thread of its own,
feeds its progress and outcome back as events, and performs the effects.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from appliance.admin.admin_types import InstallJobs
from appliance.admin.apply_install_event import apply_install_event
from appliance.admin.install_job_types import (
    CancelRequested,
    InstallEffect,
    InstallEnded,
    InstallEvent,
    InstallJob,
    InstallJobsState,
    InstallProgressed,
    InstallRequested,
    JobError,
    RefuseRequest,
    RunInstall,
    StopInstall,
)
from appliance.library.install_model import install_model
from appliance.library.library_errors import LibraryError
from appliance.library.library_types import InstallProgress
from appliance.mesh.pieces.install_from_peers import install_from_peers

_log = logging.getLogger("iplm.admin")


@dataclass(eq=False)
class _Edge:
    state: InstallJobsState = field(default_factory=InstallJobsState)
    lock: threading.Lock = field(default_factory=threading.Lock)
    cancels: dict[str, threading.Event] = field(default_factory=dict)


def _install(
    model_id: str,
    cancel: threading.Event,
    report: Callable[[InstallProgress], None],
    *,
    data_dir: Path,
    node_id: str,
    find_peers,
    load_secrets,
    install_options: dict,
    trust_mesh: bool = False,
) -> InstallEnded:
    try:
        peers = find_peers(model_id) if find_peers else []
        secrets = load_secrets() if peers and load_secrets else None
        if peers and secrets is not None:
            install_from_peers(
                model_id,
                peers,
                data_dir=data_dir,
                node_id=node_id,
                secrets=secrets,
                trust_mesh=trust_mesh,
                progress=report,
                cancel=cancel,
            )
        else:
            install_model(
                model_id, data_dir=data_dir, node_id=node_id, progress=report, cancel=cancel, **install_options
            )
        return InstallEnded(model_id, "installed")
    except LibraryError as exc:
        return InstallEnded(
            model_id, "cancelled" if exc.code == "cancelled" else "failed", JobError(exc.code, exc.message)
        )
    except Exception as exc:  # a bug must show on the admin page, not kill the thread silently
        _log.exception("install of %s failed", model_id)
        return InstallEnded(model_id, "failed", JobError("install_failed", str(exc)))


def _apply(edge: _Edge, event: InstallEvent, run: Callable[[str, threading.Event, bool], None]) -> list[InstallEffect]:
    with edge.lock:
        edge.state, effects = apply_install_event(edge.state, event)
        for effect in effects:
            if isinstance(effect, RunInstall):
                edge.cancels[effect.model] = cancel = threading.Event()
                threading.Thread(
                    target=run,
                    args=(effect.model, cancel, effect.trust_mesh),
                    name=f"install-{effect.model}",
                    daemon=True,
                ).start()
            elif isinstance(effect, StopInstall):
                edge.cancels[effect.model].set()
    return effects


def start_install_jobs(
    data_dir: Path, node_id: str, *, find_peers=None, load_secrets=None, **install_options
) -> InstallJobs:
    """An InstallJobs for this unit; `install_options` go to install_model (tests pass piece sizes).

    With `find_peers(model_id) -> [portal URL]` and `load_secrets() -> MeshSecrets | None`, a model some
    units of the mesh hold is installed from them (several at once), the rest from its source; with
    `start(model_id, trust_mesh=True)` the admin accepts a manifest that only one unit vouches for.
    """
    edge = _Edge()

    def run(model_id: str, cancel: threading.Event, trust_mesh: bool) -> None:
        def report(update: InstallProgress) -> None:
            _apply(
                edge,
                InstallProgressed(
                    model_id,
                    update.done_bytes,
                    update.total_bytes,
                    update.rate_bps,
                    update.eta_s,
                    update.rejected_pieces,
                ),
                run,
            )

        outcome = _install(
            model_id,
            cancel,
            report,
            data_dir=data_dir,
            node_id=node_id,
            find_peers=find_peers,
            load_secrets=load_secrets,
            install_options=install_options,
            trust_mesh=trust_mesh,
        )
        _apply(edge, outcome, run)

    def start(model_id: str, trust_mesh: bool = False) -> InstallJob:
        effects = _apply(edge, InstallRequested(model_id, trust_mesh), run)
        refusal = next((e for e in effects if isinstance(e, RefuseRequest)), None)
        if refusal is not None:
            raise LibraryError(code=refusal.code, message=refusal.message)
        return edge.state.jobs[model_id]

    def cancel(model_id: str) -> InstallJob | None:
        effects = _apply(edge, CancelRequested(model_id), run)
        return None if any(isinstance(e, RefuseRequest) for e in effects) else edge.state.jobs[model_id]

    return InstallJobs(start=start, cancel=cancel, describe=lambda: dict(edge.state.jobs))
