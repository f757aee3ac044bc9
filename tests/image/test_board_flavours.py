"""The board flavours' steps that run here, in chroots on this machine.

Orange Pi 5 (Armbian): build_armbian_image.sh stages userpatches/ and runs compile.sh (a stub here: Armbian's
framework needs its own downloads), and customize-image.sh runs in a Debian 12 root exactly as Armbian's
customize_image() calls it: Armbian's chroot mounts, the script in /tmp, userpatches/overlay bind-mounted
read-only at /tmp/overlay, the arguments RELEASE LINUXFAMILY BOARD BUILD_DESKTOP ARCH. The root stands in for
Armbian's: a first-login marker, console autologin and root password 1234 are put there as Armbian leaves them.

Jetson (L4T): install_into_rootfs.sh, the part of build_jetson_image.sh after NVIDIA's own steps, on a Debian
12 root standing in for L4T's Ubuntu 22.04 one, with stand-in MLC LLM and TVM wheels and no CUDA toolkit.

In the test command the package is the image tests' (amd64) and the root a copy of their root file system
with the package purged, so no second Debian is downloaded. IPLM_FLAVOUR_DEB=path/to/iplm_*_arm64.deb runs
the same steps in a fresh mmdebstrap root of the package's architecture (arm64: under qemu-user).
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import io
import os
import shutil
import subprocess
import tempfile
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import testinfra

from image.build_rootfs import _read_host_mirror
from image.image_types import RUNTIME_DEPENDS
from tests.image.conftest import ROOT

pytestmark = [pytest.mark.image, pytest.mark.timeout(3600)]

ARMBIAN = ROOT / "image" / "armbian"
JETSON = ROOT / "image" / "jetson"
UNITS = ("iplm-firstboot.service", "iplm-network.service", "iplm-hostapd.service", "iplm-dnsmasq.service",
         "iplm-mosquitto.path", "iplm-mesh-link.path", "iplm.service")  # fmt: skip
# What Armbian's build leaves in the root before customize-image.sh (lib/functions/rootfs/distro-agnostic.sh).
_AUTOLOGIN = "[Service]\nExecStart=\nExecStart=-/sbin/agetty --noissue --autologin root %I $TERM\nType=idle\n"
_GETTY_OVERRIDES = ("etc/systemd/system/getty@.service.d/override.conf",
                    "etc/systemd/system/serial-getty@.service.d/override.conf")  # fmt: skip
# Ubuntu's resolver link, which install_into_rootfs.sh must put back as it was.
_STUB_RESOLV = "../run/systemd/resolve/stub-resolv.conf"


def _run(command: list[str], **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(command, capture_output=True, text=True, **kwargs)


def _check(command: list[str], **kwargs) -> str:
    result = _run(command, **kwargs)
    assert result.returncode == 0, f"{' '.join(command[:4])}…\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    return result.stdout


def _read_deb_field(deb: Path, field: str) -> str:
    return _check(["dpkg-deb", "--field", str(deb), field]).strip()


def _copy_root(source: Path, target: Path) -> Path:
    _check(["cp", "-a", "--reflink=auto", str(source), str(target)])
    return target


def _strip_package(root: Path) -> None:
    """Make a unit's root a root without the unit: the package purged, its user gone (its dependencies stay)."""
    _check(["chroot", str(root), "dpkg", "--purge", "iplm"])
    if _run(["chroot", str(root), "getent", "passwd", "iplm"]).returncode == 0:
        _check(["chroot", str(root), "userdel", "iplm"])
    if _run(["chroot", str(root), "getent", "group", "iplm"]).returncode == 0:
        _check(["chroot", str(root), "groupdel", "iplm"])


def _bootstrap_root(arch: str, root: Path) -> Path:
    """A fresh Debian 12 root of `arch` with systemd, as Armbian's is (apt brings the package's dependencies)."""
    command = ["mmdebstrap", "--variant=minbase", "--mode=root", f"--architectures={arch}",
               "--include=systemd-sysv,ca-certificates", "bookworm", str(root)]  # fmt: skip
    mirror = _read_host_mirror()
    _check([*command, mirror] if mirror else command)
    return root


@pytest.fixture(scope="module")
def flavour_deb(request) -> Path:
    chosen = os.environ.get("IPLM_FLAVOUR_DEB")
    if chosen:
        return Path(chosen).resolve()
    return request.getfixturevalue("built_image").package.path


@pytest.fixture(scope="module")
def stand_in_base(request, flavour_deb) -> Iterator[Path]:
    """A Debian 12 root without the package, which each flavour copies, with this machine's resolver (Armbian's
    chroot and the Jetson recipe's have the network)."""
    if os.geteuid() != 0 or shutil.which("mmdebstrap") is None:
        pytest.fail("the board flavour tests need root and mmdebstrap (scripts/dev setup --test)", pytrace=False)
    work = Path(tempfile.mkdtemp(prefix="iplm-flavours-", dir="/var/tmp"))
    try:
        if os.environ.get("IPLM_FLAVOUR_DEB"):
            base = _bootstrap_root(_read_deb_field(flavour_deb, "Architecture"), work / "base")
        else:
            base = _copy_root(request.getfixturevalue("built_image").rootfs, work / "base")
            _strip_package(base)
        resolv = base / "etc" / "resolv.conf"
        resolv.unlink(missing_ok=True)
        resolv.write_bytes(Path("/etc/resolv.conf").read_bytes())
        yield base
    finally:
        shutil.rmtree(work, ignore_errors=True)


@contextlib.contextmanager
def _mount_like_armbian(root: Path) -> Iterator[None]:
    """Armbian's mount_chroot (lib/functions/general/chroot-helpers.sh), undone afterwards."""
    mounted: list[Path] = []
    (root / "run" / "user" / "0").mkdir(parents=True, exist_ok=True)
    tmpfs = ["-t", "tmpfs", "-o", "size=99%", "tmpfs"]
    mounts = ((tmpfs, "tmp"), (tmpfs, "var/tmp"), (tmpfs, "run/user/0"), (["-t", "proc", "chproc"], "proc"),
              (["-t", "sysfs", "chsys"], "sys"), (["--bind", "/dev"], "dev"),
              (["-t", "devpts", "chpts"], "dev/pts"))  # fmt: skip
    try:
        for options, target in mounts:
            _check(["mount", *options, str(root / target)])
            mounted.append(root / target)
        yield
    finally:
        for target in reversed(mounted):
            if _run(["umount", str(target)]).returncode != 0:
                _run(["umount", "--lazy", str(target)])


def _customize_like_armbian(root: Path, overlay: Path, arch: str) -> subprocess.CompletedProcess:
    """Armbian's customize_image() (lib/functions/rootfs/customize.sh) with config-iplm.conf's values."""
    with _mount_like_armbian(root):
        script = root / "tmp" / "customize-image.sh"
        shutil.copy(ARMBIAN / "userpatches" / "customize-image.sh", script)
        script.chmod(0o755)
        (root / "tmp" / "overlay").mkdir()
        _check(["mount", "-o", "bind,ro", str(overlay), str(root / "tmp" / "overlay")])
        try:
            arguments = f"bookworm rk35xx orangepi5 no {arch}"  # RELEASE LINUXFAMILY BOARD BUILD_DESKTOP ARCH
            env = {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "TMPDIR": "",
                   "LC_ALL": "C", "LANG": "C", "LANGUAGE": "", "SUDO_USER": "", "HOME": "/root"}  # fmt: skip
            command = ["chroot", str(root), "/usr/bin/env", "bash", "-e", "-o", "pipefail", "-c",
                       f"/tmp/customize-image.sh {arguments}"]  # fmt: skip
            return _run(command, env=env)
        finally:
            _run(["umount", str(root / "tmp" / "overlay")])


def _leave_armbian_marks(root: Path) -> None:
    (root / "root" / ".not_logged_in_yet").touch()
    for relative in _GETTY_OVERRIDES:
        (root / relative).parent.mkdir(parents=True, exist_ok=True)
        (root / relative).write_text(_AUTOLOGIN)
    _check(["chroot", str(root), "chpasswd"], input="root:1234\n")


def _write_overlay(overlay: Path, deb: Path, country: str) -> None:
    """What build_armbian_image.sh puts into userpatches/overlay."""
    shutil.rmtree(overlay, ignore_errors=True)
    (overlay / "iplm").mkdir(parents=True)
    shutil.copy(deb, overlay / "iplm")
    (overlay / "iplm" / "image.env").write_text(f"IPLM_WIFI_COUNTRY={country}\n")


@pytest.fixture(scope="module")
def armbian_root(stand_in_base, flavour_deb) -> Iterator[tuple[Path, subprocess.CompletedProcess, bool]]:
    """The stand-in after customize-image.sh ran twice: refusing a bad country (and whether the package was
    installed after that), then for real."""
    root = _copy_root(stand_in_base, stand_in_base.with_name("armbian"))
    _leave_armbian_marks(root)
    arch = _read_deb_field(flavour_deb, "Architecture")
    overlay = stand_in_base.with_name("overlay")
    _write_overlay(overlay, flavour_deb, "Germany")
    refused = _customize_like_armbian(root, overlay, arch)
    installed_after_refusal = _run(["chroot", str(root), "dpkg", "--status", "iplm"]).returncode == 0
    _write_overlay(overlay, flavour_deb, "DE")
    result = _customize_like_armbian(root, overlay, arch)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    yield root, refused, installed_after_refusal


def test_customize_image_refuses_a_bad_country_before_it_changes_anything(armbian_root):
    _, refused, installed_after_refusal = armbian_root
    assert refused.returncode != 0
    assert "IPLM_WIFI_COUNTRY" in refused.stderr and "two capital letters" in refused.stderr, refused.stderr
    assert not installed_after_refusal


def test_customize_image_installs_the_package_with_its_dependencies_and_enables_the_units(armbian_root, flavour_deb):
    host = testinfra.get_host(str(armbian_root[0]), connection="chroot")
    assert host.package("iplm").is_installed
    assert host.package("iplm").version == _read_deb_field(flavour_deb, "Version")
    for name in RUNTIME_DEPENDS:
        assert host.package(name).is_installed, name
    for unit in UNITS:
        assert host.run(f"systemctl is-enabled {unit}").stdout.strip() == "enabled", unit
    assert host.user("iplm").exists and host.file("/var/lib/iplm").user == "iplm"
    assert host.file("/etc/iplm/iplm.conf").contains('^IPLM_NETWORK_ARGS="--country DE"$')


def test_the_armbian_unit_boots_headless(armbian_root):
    host = testinfra.get_host(str(armbian_root[0]), connection="chroot")
    assert not host.file("/root/.not_logged_in_yet").exists  # no first-login wizard
    for relative in _GETTY_OVERRIDES:
        assert not host.file(f"/{relative}").exists, relative  # no root shell on the console
    assert host.run("passwd --status root").stdout.split()[1] == "L"
    assert "\nroot:!:" in "\n" + host.file("/etc/shadow").content_string  # Armbian's 1234 is gone, not just locked
    assert host.file("/boot/efi").is_directory  # where iplm-firstboot leaves the PIN file


def _make_fake_deb(work: Path, arch: str, depends: str) -> Path:
    """A package named iplm with nothing in it: what the scripts read from a package before using it."""
    folder = Path(tempfile.mkdtemp(dir=work))
    stage = folder / "stage"
    (stage / "DEBIAN").mkdir(parents=True)
    (stage / "DEBIAN" / "control").write_text(
        f"Package: iplm\nVersion: 0.0.1\nArchitecture: {arch}\nMaintainer: t <t@localhost>\nDepends: {depends}\n"
        "Description: stand-in\n test\n"
    )
    deb = folder / f"iplm_0.0.1_{arch}.deb"
    _check(["dpkg-deb", "--root-owner-group", "--build", str(stage), str(deb)])
    return deb


def test_build_armbian_image_checks_its_inputs_stages_userpatches_and_runs_compile(tmp_path):
    checkout = tmp_path / "armbian"
    (checkout / "lib").mkdir(parents=True)
    # compile.sh as a stub: it records what it got and makes the image Armbian would.
    image = "output/images/Armbian-unofficial_25.8.2_Orangepi5_bookworm_vendor_6.1.115_minimal.img"
    (checkout / "compile.sh").write_text(
        f'#!/bin/bash\nset -e\necho "$@" > args\nmkdir -p output/images\ntouch {image}\n'
    )
    (checkout / "compile.sh").chmod(0o755)
    script = str(ARMBIAN / "build_armbian_image.sh")
    arm64 = _make_fake_deb(tmp_path, "arm64", "python3.11, mosquitto")
    wrong_arch = _make_fake_deb(tmp_path, "amd64", "python3.11")
    wrong_python = _make_fake_deb(tmp_path, "arm64", "python3.10")
    for arguments, message in (
        (["--country", "DE", "--armbian", str(checkout)], "--deb is required"),
        (["--deb", str(wrong_arch), "--country", "DE", "--armbian", str(checkout)], "needs the arm64 package"),
        (["--deb", str(wrong_python), "--country", "DE", "--armbian", str(checkout)], "does not depend on python3.11"),
        (["--deb", str(arm64), "--country", "Germany", "--armbian", str(checkout)], "--country is required"),
        (["--deb", str(arm64), "--country", "DE", "--armbian", str(tmp_path)], "not a checkout of armbian/build"),
    ):
        refused = _run([script, *arguments])
        assert refused.returncode != 0 and message in refused.stderr, (arguments, refused.stderr)
    assert not (checkout / "args").exists()  # compile.sh never ran
    passphrase = tmp_path / "passphrase"
    passphrase.write_text("correct horse battery\n")
    result = _run([script, "--deb", str(arm64), "--country", "de", "--passphrase-file", str(passphrase),
                   "--armbian", str(checkout), "--", "BRANCH=current"])  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert (checkout / "args").read_text().split() == ["iplm", "BRANCH=current"]
    userpatches = checkout / "userpatches"
    shipped = ARMBIAN / "userpatches"
    assert (userpatches / "config-iplm.conf").read_bytes() == (shipped / "config-iplm.conf").read_bytes()
    assert os.access(userpatches / "customize-image.sh", os.X_OK)
    assert (userpatches / "overlay" / "iplm" / "image.env").read_text() == "IPLM_WIFI_COUNTRY=DE\n"
    assert (userpatches / "overlay" / "iplm" / "wifi-passphrase").stat().st_mode & 0o777 == 0o600
    assert sorted(path.name for path in (userpatches / "overlay" / "iplm").glob("*.deb")) == [arm64.name]
    assert "Orangepi5_bookworm_vendor" in result.stdout and "dd if=" in result.stdout


def _build_wheel(
    directory: Path, name: str, version: str, files: dict[str, str], requires: tuple[str, ...] = ()
) -> Path:
    """A minimal pure-Python wheel: stands in for MLC's and TVM's (which only exist for JetPack's CUDA)."""
    dist_info = f"{name}-{version}.dist-info"
    metadata = f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n" + "".join(
        f"Requires-Dist: {requirement}\n" for requirement in requires
    )
    wheel_file = "Wheel-Version: 1.0\nGenerator: iplm-test\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
    contents = {**files, f"{dist_info}/METADATA": metadata, f"{dist_info}/WHEEL": wheel_file}
    record = io.StringIO()
    for path, text in contents.items():
        digest = hashlib.sha256(text.encode()).digest()
        encoded = base64.urlsafe_b64encode(digest).rstrip(b"=").decode()
        record.write(f"{path},sha256={encoded},{len(text.encode())}\n")
    record.write(f"{dist_info}/RECORD,,\n")
    wheel = directory / f"{name}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        for path, text in {**contents, f"{dist_info}/RECORD": record.getvalue()}.items():
            archive.writestr(path, text)
    return wheel


def _make_stand_in_wheels(directory: Path) -> Path:
    directory.mkdir()
    # MLC needs a dependency only the directory has, and one the package's virtualenv already holds.
    _build_wheel(directory, "mlc_llm", "0.0.1", {"mlc_llm/__init__.py": "STAND_IN = True\n"},
                 ("tvm", "iplm_mlc_dependency", "httpx>=0.27"))  # fmt: skip
    _build_wheel(directory, "tvm", "0.0.1", {"tvm/__init__.py": "STAND_IN = True\n"})
    _build_wheel(directory, "iplm_mlc_dependency", "1.0", {"iplm_mlc_dependency.py": "VALUE = 1\n"})
    pip = sorted(Path("/usr/share/python-wheels").glob("pip-*.whl"))
    assert pip, "Debian's pip wheel (python3-pip-whl, which python3-venv pulls in) is missing"
    shutil.copy(pip[-1], directory)
    return directory


@pytest.fixture(scope="module")
def jetson_root(stand_in_base, flavour_deb) -> Iterator[tuple[Path, subprocess.CompletedProcess]]:
    root = _copy_root(stand_in_base, stand_in_base.with_name("jetson"))
    (root / "etc" / "NetworkManager").mkdir(exist_ok=True)  # JetPack's root runs NetworkManager
    (root / "etc" / "resolv.conf").unlink()
    (root / "etc" / "resolv.conf").symlink_to(_STUB_RESOLV)
    wheels = _make_stand_in_wheels(stand_in_base.with_name("wheels"))
    command = [str(JETSON / "install_into_rootfs.sh"), str(root), "--deb", str(flavour_deb), "--wheels", str(wheels),
               "--country", "jp", "--no-cuda"]  # fmt: skip
    result = _run(command)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    yield root, result


def test_the_jetson_recipe_installs_the_package_and_mlc_into_its_virtualenv(jetson_root):
    root, _ = jetson_root
    host = testinfra.get_host(str(root), connection="chroot")
    assert host.package("iplm").is_installed
    for unit in UNITS:
        assert host.run(f"systemctl is-enabled {unit}").stdout.strip() == "enabled", unit
    found = host.run("/opt/iplm/venv/bin/python3 -c 'import mlc_llm, tvm, iplm_mlc_dependency, appliance; "
                     "print(mlc_llm.__file__, tvm.STAND_IN)'")  # fmt: skip
    assert found.rc == 0 and found.stdout.startswith("/opt/iplm/venv/lib/python3."), found.stderr
    # Hash-checked .pyc (flags 0b11 after the magic): valid on a read-only /opt whatever the files' dates.
    pyc = next((root / "opt/iplm/venv/lib").glob("python3.*/site-packages/mlc_llm/__pycache__/__init__.*.pyc"))
    assert int.from_bytes(pyc.read_bytes()[4:8], "little") == 0b11
    assert host.file("/etc/iplm/iplm.conf").contains('^IPLM_NETWORK_ARGS="--country JP"$')
    assert host.file("/etc/NetworkManager/conf.d/90-iplm-unmanaged.conf").contains("unmanaged-devices=type:wifi")
    assert host.file("/etc/systemd/system/default.target").linked_to.endswith("multi-user.target")


def test_the_jetson_recipe_leaves_the_root_as_it_found_it(jetson_root):
    root, _ = jetson_root
    assert os.readlink(root / "etc" / "resolv.conf") == _STUB_RESOLV
    assert not (root / "tmp" / "iplm-install").exists()
    assert not (root / "usr" / "sbin" / "policy-rc.d").exists()
    assert str(root) not in Path("/proc/mounts").read_text()


def test_the_jetson_recipe_refuses_a_package_for_another_python(armbian_root, tmp_path):
    root = armbian_root[0]  # a Debian 12 root with its python3.11; refused before anything is changed
    arch = _check(["chroot", str(root), "dpkg", "--print-architecture"]).strip()
    deb = _make_fake_deb(tmp_path, arch, "python3.10")
    (tmp_path / "wheels").mkdir()
    result = _run([str(JETSON / "install_into_rootfs.sh"), str(root), "--deb", str(deb), "--wheels",
                   str(tmp_path / "wheels"), "--country", "DE"])  # fmt: skip
    assert result.returncode != 0 and "built for python3.10" in result.stderr, result.stderr
