"""Model installs that run in the background of `iplm serve`, with progress for the admin page."""
from __future__ import annotations

import logging
import threading
from pathlib import Path

from appliance.admin.admin_types import InstallJobs
from appliance.library.install_model import install_model
from appliance.library.library_errors import LibraryError
from appliance.mesh.pieces.install_from_peers import install_from_peers

_log = logging.getLogger("iplm.admin")


def start_install_jobs(data_dir: Path, node_id: str, *, find_peers=None, load_secrets=None,
                       **install_options) -> InstallJobs:
    """An InstallJobs for this unit; `install_options` go to install_model (tests pass piece sizes).

    With `find_peers(model_id) -> [portal URL]` and `load_secrets() -> MeshSecrets | None`, a model some
    units of the mesh hold is installed from them (several at once), the rest from its source.
    """
    lock = threading.Lock()
    jobs: dict[str, dict] = {}
    cancels: dict[str, threading.Event] = {}

    def run(model_id: str, cancel: threading.Event) -> None:
        def progress(update: dict) -> None:
            with lock:
                jobs[model_id].update({k: update[k] for k in
                                       ("done_bytes", "total_bytes", "rate_bps", "eta_s", "rejected_pieces")})
        try:
            peers = find_peers(model_id) if find_peers else []
            secrets = load_secrets() if peers and load_secrets else None
            if peers and secrets is not None:
                install_from_peers(model_id, peers, data_dir=data_dir, node_id=node_id, secrets=secrets,
                                   progress=progress, cancel=cancel)
            else:
                install_model(model_id, data_dir=data_dir, node_id=node_id, progress=progress, cancel=cancel,
                              **install_options)
            outcome = {"state": "installed", "error": None}
        except LibraryError as exc:
            state = "cancelled" if exc.code == "cancelled" else "failed"
            outcome = {"state": state, "error": {"code": exc.code, "message": exc.message}}
        except Exception as exc:  # a bug must show on the admin page, not kill the thread silently
            _log.exception("install of %s failed", model_id)
            outcome = {"state": "failed", "error": {"code": "install_failed", "message": str(exc)}}
        with lock:
            jobs[model_id].update(outcome, rate_bps=0.0, eta_s=None)

    def start(model_id: str) -> dict:
        with lock:
            if model_id in jobs and jobs[model_id]["state"] == "running":
                raise LibraryError(code="install_running", message=f"{model_id} is already being installed")
            cancels[model_id] = cancel = threading.Event()
            jobs[model_id] = {"model": model_id, "state": "running", "done_bytes": 0, "total_bytes": 0,
                              "rate_bps": 0.0, "eta_s": None, "rejected_pieces": 0, "error": None}
            job = dict(jobs[model_id])
        threading.Thread(target=run, args=(model_id, cancel), name=f"install-{model_id}", daemon=True).start()
        return job

    def cancel(model_id: str) -> dict | None:
        with lock:
            if model_id not in jobs or jobs[model_id]["state"] != "running":
                return None
            cancels[model_id].set()
            return dict(jobs[model_id])

    def describe() -> dict[str, dict]:
        with lock:
            return {model_id: dict(job) for model_id, job in jobs.items()}

    return InstallJobs(start=start, cancel=cancel, describe=describe)
