"""The image is built from the Debian mirror this machine's apt uses: a CI machine may reach Debian only there."""

from __future__ import annotations

from image.build_rootfs import _read_host_mirror


def test_the_hosts_debian_mirror_is_found_in_either_format(tmp_path):
    (tmp_path / "sources.list.d").mkdir()
    assert _read_host_mirror(tmp_path) is None
    (tmp_path / "sources.list").write_text(
        "# a comment\ndeb http://archive.ubuntu.com/ubuntu jammy main\n"
        "deb [arch=amd64 signed-by=/k.gpg] http://mirror.example/debian bookworm main\n"
    )
    assert _read_host_mirror(tmp_path) == "http://mirror.example/debian"
    (tmp_path / "sources.list.d" / "debian.sources").write_text(
        "Types: deb\nURIs: http://proxy.local:3142/debian\nSuites: bookworm\n"
        "\nTypes: deb\nURIs: http://proxy.local:3142/debian-security\nSuites: bookworm-security\n"
    )
    assert _read_host_mirror(tmp_path) == "http://proxy.local:3142/debian"


def test_an_ubuntu_hosts_mirror_is_not_taken_for_debian(tmp_path):
    (tmp_path / "sources.list.d").mkdir()
    (tmp_path / "sources.list").write_text("deb http://archive.ubuntu.com/ubuntu jammy main universe\n")
    assert _read_host_mirror(tmp_path) is None
