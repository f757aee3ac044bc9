"""Check rendered config files with the programs that read them, as far as each program can check.

- dnsmasq: `dnsmasq --test -C FILE` parses the whole file ("syntax check OK"; exit 0).
- nftables: `nft -c -f FILE` runs the script in check mode: the kernel validates every rule, nothing is
  committed. Run in a throwaway network namespace, so not even a check touches this host's tables.
- hostapd (2.10) has no check-only option. It reads and cross-checks the whole config file (unknown
  keys, passphrase length, WPA settings) before it opens the driver, so it runs in a throwaway network
  namespace, where it can see no radio: a good file ends at "Failed to initialize driver", a bad one at
  "N errors found in configuration file". What needs the radio (channel vs regulatory domain, HT
  capabilities, whether the driver does OWE or SAE, a second BSS) is not checked, nor numbers hostapd reads
  with atoi (ieee80211w=two is 0): the renderer's tests pin those.
- mosquitto (2.0) has no check-only option either: it runs in a throwaway network namespace, where its
  listeners cannot bind (loopback is down); a bad file stops it with "Error found at FILE:LINE" first.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Mapping
from pathlib import Path

from appliance.network.network_types import ConfigCheck

# A board at boot, or a VM without KVM, loads nftables' kernel modules slowly: 10 s was too short under QEMU TCG.
_TIMEOUT_S = 60.0
_MOSQUITTO_RUN_S = 3.0  # a good file leaves mosquitto running (or failing to bind): stop it then
_DETAIL_LINES = 12


def _find_program(name: str) -> str | None:
    # Debian puts these in /usr/sbin, which is not on a normal user's PATH.
    return shutil.which(name) or shutil.which(name, path="/usr/sbin:/sbin:/usr/local/sbin")


def _isolate(argv: list[str]) -> list[str] | None:
    unshare = _find_program("unshare")
    if unshare is None:
        return None
    if os.geteuid() == 0:
        return [unshare, "--net", *argv]
    # Not root: a user namespace grants the network namespace (where the kernel allows it).
    return [unshare, "--user", "--map-root-user", "--net", *argv]


def _run(argv: list[str], timeout: float) -> tuple[int | None, str]:
    """(exit status or None when it was stopped at the timeout, stdout and stderr together)."""
    process = subprocess.Popen(
        argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, errors="replace", start_new_session=True
    )
    try:
        output, _ = process.communicate(timeout=timeout)
        return process.returncode, output
    except subprocess.TimeoutExpired:
        process.kill()
        output, _ = process.communicate()
        return None, output


def _summarize(output: str, keep=lambda line: True) -> str:
    lines = [line for line in output.splitlines() if line.strip() and keep(line)]
    return "\n".join(lines[:_DETAIL_LINES])


def _describe_timeout() -> str:
    # Not a verdict on the file: applying it still fails loudly if the kernel refuses it.
    return f"not checked: no answer within {_TIMEOUT_S:.0f} s"


def _detect_unshare_failure(status: int | None, output: str) -> bool:
    return status not in (0, None) and output.lstrip().startswith("unshare:")


def _check_dnsmasq(path: Path) -> ConfigCheck:
    program = _find_program("dnsmasq")
    if program is None:
        return ConfigCheck("dnsmasq", "dnsmasq --test", None, "dnsmasq is not installed (Debian: dnsmasq-base)")
    status, output = _run([program, "--test", "-C", str(path)], _TIMEOUT_S)
    if status is None:
        return ConfigCheck("dnsmasq", "dnsmasq --test", None, _describe_timeout())
    ok = status == 0 and "syntax check OK" in output
    return ConfigCheck("dnsmasq", "dnsmasq --test", ok, _summarize(output))


def _check_nftables(path: Path) -> ConfigCheck:
    program = _find_program("nft")
    argv = _isolate([program, "-c", "-f", str(path)]) if program else None
    if argv is None:
        return ConfigCheck("nftables", "nft -c", None, "nft or unshare is not installed (Debian: nftables)")
    status, output = _run(argv, _TIMEOUT_S)
    if _detect_unshare_failure(status, output):
        return ConfigCheck("nftables", "nft -c", None, f"no network namespace to check in: {output.strip()}")
    if status is None:
        return ConfigCheck("nftables", "nft -c", None, _describe_timeout())
    return ConfigCheck("nftables", "nft -c", status == 0, _summarize(output))


def _check_hostapd(path: Path) -> ConfigCheck:
    program = _find_program("hostapd")
    argv = _isolate([program, "-dd", str(path)]) if program else None
    if argv is None:
        return ConfigCheck("hostapd", "hostapd", None, "hostapd or unshare is not installed (Debian: hostapd)")
    status, output = _run(argv, _TIMEOUT_S)
    if _detect_unshare_failure(status, output):
        return ConfigCheck("hostapd", "hostapd", None, f"no network namespace to check in: {output.strip()}")
    read = f"Configuration file: {path}" in output
    bad = "errors found in configuration file" in output or "Failed to set up interface with" in output
    detail = _summarize(
        output, lambda line: line.startswith(("Line ", "Failed", "Configuration file")) or "error" in line.lower()
    )
    return ConfigCheck("hostapd", "hostapd (no radio)", read and not bad, detail)


def _check_mosquitto(path: Path) -> ConfigCheck:
    program = _find_program("mosquitto")
    argv = _isolate([program, "-c", str(path)]) if program else None
    if argv is None:
        return ConfigCheck("mosquitto", "mosquitto", None, "mosquitto or unshare is not installed")
    status, output = _run(argv, _MOSQUITTO_RUN_S)
    if _detect_unshare_failure(status, output):
        return ConfigCheck("mosquitto", "mosquitto", None, f"no network namespace to check in: {output.strip()}")
    bad = any(
        sign in output for sign in ("Error found at", "Unknown configuration variable", "Unable to open config file")
    )
    return ConfigCheck(
        "mosquitto",
        "mosquitto (isolated)",
        not bad,
        _summarize(output, lambda line: "Error" in line or "Config loaded" in line),
    )


_ACL_LINE = re.compile(r"(#.*|user \S+|(topic|pattern)( (read|write|readwrite|deny))? [^\s#]+)?\Z")


def _check_mosquitto_acl(path: Path) -> ConfigCheck:
    # mosquitto reads its ACL file only with a config that names it, and ignores lines it cannot parse (a typo
    # denies silently): every line is checked here against the format of mosquitto.conf(5), acl_file.
    lines = path.read_text(encoding="utf-8").splitlines()
    bad = [f"line {number}: {line!r}" for number, line in enumerate(lines, 1) if not _ACL_LINE.match(line.strip())]
    return ConfigCheck("mosquitto_acl", "ACL lines (mosquitto.conf(5))", not bad, "\n".join(bad) or "ok")


_CHECKERS = {
    "dnsmasq": _check_dnsmasq,
    "nftables": _check_nftables,
    "hostapd": _check_hostapd,
    "mosquitto": _check_mosquitto,
    "mosquitto_acl": _check_mosquitto_acl,
}


def check_rendered_configs(files: Mapping[str, Path | str]) -> tuple[ConfigCheck, ...]:
    """Check each file {"hostapd" | "dnsmasq" | "nftables" | "mosquitto": path} with its own program.

    One ConfigCheck per file: ok True (the program accepts it), False (detail: its error lines), None
    (not checked: the program or a network namespace to run it in is missing). Never touches a radio or
    this host's firewall.
    """
    unknown = set(files) - set(_CHECKERS)
    if unknown:
        raise ValueError(f"no checker for {sorted(unknown)}; known: {sorted(_CHECKERS)}")
    return tuple(_CHECKERS[name](Path(path)) for name, path in files.items())
