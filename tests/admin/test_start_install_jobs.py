import time

import pytest

import appliance.library.find_model_entry as find_model_entry_module
from appliance.admin.start_install_jobs import start_install_jobs
from appliance.library.library_errors import LibraryError
from appliance.library.library_types import ModelSource, WhitelistEntry
from appliance.library.whitelist import WHITELIST
from appliance.store.open_database import open_database
from tests.engine.make_mlc_model_dir import make_mlc_model_dir
from tests.library.model_source_server import start_model_source

REPO = "org/Toy-MLC"


@pytest.fixture
def jobs(tmp_path, monkeypatch):
    root = tmp_path / "hf"
    make_mlc_model_dir(root / REPO, hidden_size=512, intermediate_size=1408)
    server = start_model_source(root)
    entry = WhitelistEntry(
        id="Toy",
        format="mlc",
        engine="mlc",
        size_bytes=1,
        license="",
        min_memory_bytes=0,
        boards=(),
        root_hash=None,
        source=ModelSource(kind="hf", base=server.base_url, repo=REPO),
    )
    monkeypatch.setattr(find_model_entry_module, "WHITELIST", WHITELIST + (entry,))
    open_database(tmp_path / "data")
    yield start_install_jobs(tmp_path / "data", "0123456789abcdef", piece_size=64 * 1024), server
    server.stop()


def _wait(jobs, model_id):
    deadline = time.monotonic() + 60
    while jobs.describe()[model_id].state == "running" and time.monotonic() < deadline:
        time.sleep(0.05)
    return jobs.describe()[model_id]


def test_a_job_reports_progress_then_installed(jobs):
    jobs, server = jobs
    server.rate_limit(2_000_000)
    job = jobs.start("Toy")
    assert job.state == "running" and job.error is None
    with pytest.raises(LibraryError):
        jobs.start("Toy")  # one install of a model at a time
    done = _wait(jobs, "Toy")
    assert done.state == "installed" and done.done_bytes == done.total_bytes > 0


def test_a_failing_install_reports_its_error(jobs):
    jobs, server = jobs
    server.vanish_after(server.bytes_sent + 200_000)
    jobs.start("Toy")
    failed = _wait(jobs, "Toy")
    assert failed.state == "failed" and failed.error.code.startswith("source_")
    server.restore()
    assert jobs.start("Toy").state == "running"  # and it can be started again
    assert _wait(jobs, "Toy").state == "installed"


def test_cancel(jobs):
    jobs, server = jobs
    server.rate_limit(200_000)
    jobs.start("Toy")
    time.sleep(0.3)
    assert jobs.cancel("Toy").state == "running"
    assert _wait(jobs, "Toy").state == "cancelled"
    assert jobs.cancel("Toy") is None and jobs.cancel("Other") is None
