"""An image for another architecture or Python, built here: the wheels the package takes for its target, the
virtualenv's layout for the unit's Python, and the emulator the root file system's build needs."""

from __future__ import annotations

from pathlib import Path

import pytest

from image.build_deb import _download_target_wheels, _list_depends, _plan_target_wheels, _plan_venv_paths, _read_machine
from image.build_image import _check_binfmt


def _platforms(options: list[str]) -> list[str]:
    return [options[i + 1] for i, option in enumerate(options) if option == "--platform"]


def test_an_arm64_debian_12_package_takes_binary_wheels_for_its_glibc_and_cpython():
    options = _plan_target_wheels("aarch64", "3.11")
    assert options[0] == "--only-binary=:all:"
    platforms = _platforms(options)
    assert platforms[0] == "manylinux_2_36_aarch64" and "manylinux_2_17_aarch64" in platforms
    assert len([name for name in platforms if name.startswith("manylinux_2_")]) == 36 - 17 + 1
    assert "manylinux2014_aarch64" in platforms and "linux_aarch64" in platforms  # the latter: llama.cpp's
    assert not [name for name in platforms if "x86_64" in name]
    assert "manylinux_2_37_aarch64" not in platforms  # would need a newer glibc than Debian 12's
    for flag, value in (("--python-version", "3.11"), ("--implementation", "cp"), ("--abi", "cp311")):
        assert options[options.index(flag) + 1] == value


def test_a_jetsons_package_follows_ubuntu_22_04s_python_and_glibc():
    options = _plan_target_wheels("aarch64", "3.10", (2, 35))
    assert _platforms(options)[0] == "manylinux_2_35_aarch64"
    assert options[options.index("--abi") + 1] == "cp310"
    assert options[options.index("--python-version") + 1] == "3.10"


@pytest.mark.parametrize("version", ["3", "python3.11", "3.11.2", ""])
def test_a_python_version_that_is_no_major_minor_is_refused(version):
    with pytest.raises(ValueError, match="major.minor"):
        _plan_target_wheels("aarch64", version)


def test_the_virtualenv_and_its_dependency_follow_the_units_python():
    site, python3, system = _plan_venv_paths("3.10")
    assert site == Path("opt/iplm/venv/lib/python3.10/site-packages")
    assert python3 == Path("opt/iplm/venv/bin/python3") and system == "/usr/bin/python3.10"
    assert _plan_venv_paths("3.11")[0] == Path("opt/iplm/venv/lib/python3.11/site-packages")
    depends = _list_depends("3.10")
    assert "python3.10" in depends and "python3.11" not in depends and "libgomp1" in depends
    assert "python3.11" in _list_depends("3.11")


def test_a_llama_cpp_wheel_for_either_architecture_is_taken():
    assert _read_machine(Path("llama_cpp_python-0.3.36-py3-none-linux_aarch64.whl")) == "aarch64"
    assert _read_machine(Path("llama_cpp_python-0.3.36-py3-none-linux_x86_64.whl")) == "x86_64"
    with pytest.raises(ValueError, match="x86_64 or aarch64"):
        _read_machine(Path("llama_cpp_python-0.3.36-py3-none-linux_riscv64.whl"))


# pip's stand-in: `download` finds every wheel but an sdist-only dependency's until a wheel of it lies in the
# wheel folder; `wheel` builds that dependency here, pure or binary as the test says.
FAKE_PIP = """#!/bin/sh
shift 2  # -m pip
case " $* " in
  *" download "*)
    dest=$(echo "$*" | sed 's/.* -d \\([^ ]*\\).*/\\1/')
    ls "$dest"/slowpoke-*.whl >/dev/null 2>&1 && exit 0
    echo "ERROR: Could not find a version that satisfies the requirement slowpoke>=1.0 (from versions: none)" >&2
    echo "ERROR: No matching distribution found for slowpoke>=1.0" >&2
    exit 1 ;;
  *" wheel "*)
    dest=$(echo "$*" | sed 's/.* -w \\([^ ]*\\).*/\\1/')
    echo "$*" > "{log}"
    touch "$dest/slowpoke-1.0-{tag}.whl" ;;
esac
"""


def _fake_pip(tmp_path: Path, tag: str) -> list[str]:
    python = tmp_path / "python"
    python.write_text(FAKE_PIP.format(tag=tag, log=tmp_path / "wheel-call"))
    python.chmod(0o755)
    return [str(python), "-m", "pip"]


def test_a_pure_python_dependency_without_a_wheel_is_built_here(tmp_path):
    pip = _fake_pip(tmp_path, "py3-none-any")
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    said: list[str] = []
    _download_target_wheels(["app.whl"], wheels, pip, _plan_target_wheels("aarch64", "3.11"), "arm64", said.append)
    assert (wheels / "slowpoke-1.0-py3-none-any.whl").is_file()
    assert any("slowpoke>=1.0" in line for line in said)
    assert "--no-binary slowpoke" in (tmp_path / "wheel-call").read_text()


def test_a_binary_dependency_without_a_wheel_for_the_target_is_named(tmp_path):
    pip = _fake_pip(tmp_path, "cp311-cp311-linux_x86_64")
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    with pytest.raises(RuntimeError, match=r"slowpoke>=1.0: PyPI has no wheel of it for arm64 / Python 3.11.*not pure"):
        _download_target_wheels(
            ["app.whl"], wheels, pip, _plan_target_wheels("aarch64", "3.11"), "arm64 / Python 3.11", lambda line: None
        )
    assert not list(wheels.glob("*.whl"))


def _binfmt(tmp_path: Path, entry: str | None, status: bool = True) -> Path:
    if status:
        (tmp_path / "status").write_text("enabled\n")
    if entry is not None:
        (tmp_path / "qemu-aarch64").write_text(entry)
    return tmp_path


QEMU_STATIC = "enabled\ninterpreter /usr/libexec/qemu-binfmt/aarch64-binfmt-P\nflags: PF\noffset 0\n"


def test_an_arm64_build_needs_qemu_registered_to_run_arm64_programs_in_a_chroot(tmp_path):
    _check_binfmt("arm64", _binfmt(tmp_path, QEMU_STATIC))
    (tmp_path / "qemu-aarch64").unlink()
    with pytest.raises(ValueError, match="apt install qemu-user-static binfmt-support"):
        _check_binfmt("arm64", tmp_path)
    with pytest.raises(ValueError, match="update-binfmts --enable qemu-aarch64"):
        _check_binfmt("arm64", _binfmt(tmp_path, QEMU_STATIC.replace("enabled", "disabled")))
    with pytest.raises(ValueError, match="fix-binary"):
        _check_binfmt("arm64", _binfmt(tmp_path, QEMU_STATIC.replace("flags: PF", "flags: P")))


def test_an_unmounted_binfmt_misc_is_named(tmp_path):
    with pytest.raises(ValueError, match="binfmt_misc is not mounted"):
        _check_binfmt("arm64", _binfmt(tmp_path, None, status=False))
