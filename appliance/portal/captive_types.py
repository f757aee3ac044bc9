"""Data of the captive portal: the platforms' connectivity probes, their success answers, and the per-client state.

Sources (checked against public copies): Android AOSP NetworkMonitor (DEFAULT_HTTP_URL
connectivitycheck.gstatic.com/generate_204, fallbacks www.google.com/gen_204 and play.googleapis.com/generate_204;
success is HTTP 204, a 3xx is a portal); ChromeOS shill design doc (clients3.google.com/generate_204 → 204); Apple
(captive.apple.com/hotspot-detect.html, WBA captive-behavior host list); Microsoft NCSI docs
(www.msftconnecttest.com/connecttest.txt → "Microsoft Connect Test", www.msftncsi.com/ncsi.txt → "Microsoft NCSI",
the browser is opened on www.msftconnecttest.com/redirect); Firefox prefs (captivedetect.canonicalURL and the exact
canonicalContent compared with ===, network.connectivity-service …/success.txt → "success\\n"); IANA's RFC 8908 key
registry. Vendor hosts (Xiaomi, Huawei, Samsung, vivo) come from ROM patches and third-party lists, not vendor docs.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

CAPTIVE_API_PATH = "/captive-portal/api"  # DHCP option 114 (RFC 8910) points here
CAPTIVE_JSON_TYPE = "application/captive+json"  # RFC 8908
CAPTIVE_OPEN_PATH = "/captive-portal/open"  # the chat page posts here when it runs: the portal is open
DEFAULT_OPEN_SECONDS = 12 * 3600  # like the DHCP lease: a phone that rejoins the next day sees the portal again
DEFAULT_MAX_CLIENTS = 4096  # far above what one AP serves; bounds memory if addresses churn


@dataclass(frozen=True)
class ProbeAnswer:
    """The exact response a platform reads as "this network reaches the internet"."""

    status: int
    content_type: str | None  # None: no body, no Content-Type (HTTP 204)
    body: bytes
    headers: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class ProbeRule:
    """Requests to these hosts (any path) or to these paths are a platform's connectivity probe."""

    platform: str
    hosts: tuple[str, ...]  # lower-case names, exact
    paths: tuple[str, ...]
    answer: ProbeAnswer | None  # None: the URL an OS opens to show the portal, so it always goes to the portal
    paths_on_any_host: bool = True  # False for paths too common to mean a probe anywhere else


APPLE_SUCCESS = ProbeAnswer(200, "text/html", b"<HTML><HEAD><TITLE>Success</TITLE></HEAD><BODY>Success</BODY></HTML>")
ANDROID_SUCCESS = ProbeAnswer(204, None, b"")
WINDOWS_CONNECTTEST_SUCCESS = ProbeAnswer(200, "text/plain", b"Microsoft Connect Test")
WINDOWS_NCSI_SUCCESS = ProbeAnswer(200, "text/plain", b"Microsoft NCSI")
FIREFOX_CANONICAL_SUCCESS = ProbeAnswer(
    200, "text/html", b'<meta http-equiv="refresh" content="0;url=https://support.mozilla.org/kb/captive-portal"/>'
)
FIREFOX_SUCCESS_TXT = ProbeAnswer(200, "text/plain", b"success\n")

_GENERATE_204 = ("/generate_204", "/gen_204")
_MSFT_CONNECTTEST_HOSTS = ("www.msftconnecttest.com", "ipv6.msftconnecttest.com", "msftconnecttest.com")

# Order matters: for a probe host's other paths the first rule naming the host answers.
# General sites (www.google.com, www.apple.com) are not listed as hosts: only their probe paths count, so a
# person who types them still gets the portal rather than an empty success page.
PROBE_RULES: tuple[ProbeRule, ...] = (
    ProbeRule(
        "android",
        (
            "connectivitycheck.gstatic.com",
            "connectivitycheck.android.com",
            "play.googleapis.com",
            "clients4.google.com",
            "www.gstatic.com",
        ),
        _GENERATE_204,
        ANDROID_SUCCESS,
    ),
    ProbeRule("chromeos", ("clients3.google.com",), _GENERATE_204, ANDROID_SUCCESS),
    ProbeRule("android-xiaomi", ("connect.rom.miui.com",), _GENERATE_204, ANDROID_SUCCESS),
    ProbeRule("android-huawei", ("connectivitycheck.platform.hicloud.com",), _GENERATE_204, ANDROID_SUCCESS),
    ProbeRule("android-samsung", ("connectivitycheck.samsung.com",), _GENERATE_204, ANDROID_SUCCESS),
    ProbeRule("android-vivo", ("wifi.vivo.com.cn",), _GENERATE_204, ANDROID_SUCCESS),
    ProbeRule(
        "apple",
        (
            "captive.apple.com",
            "www.appleiphonecell.com",
            "www.itools.info",
            "www.ibook.info",
            "www.airport.us",
            "www.thinkdifferent.us",
        ),
        ("/hotspot-detect.html", "/library/test/success.html"),
        APPLE_SUCCESS,
    ),
    ProbeRule("windows", _MSFT_CONNECTTEST_HOSTS, ("/connecttest.txt",), WINDOWS_CONNECTTEST_SUCCESS),
    ProbeRule("windows-legacy", ("www.msftncsi.com", "msftncsi.com"), ("/ncsi.txt",), WINDOWS_NCSI_SUCCESS),
    ProbeRule("firefox", ("detectportal.firefox.com",), ("/canonical.html",), FIREFOX_CANONICAL_SUCCESS),
    ProbeRule("firefox-connectivity", ("detectportal.firefox.com",), ("/success.txt",), FIREFOX_SUCCESS_TXT),
    # Windows opens a browser here once it sees a portal: the page to show is the portal, opened or not.
    ProbeRule("windows-open-portal", _MSFT_CONNECTTEST_HOSTS, ("/redirect",), None, paths_on_any_host=False),
)


@dataclass(frozen=True)
class CaptiveState:
    """Which clients opened the portal: only {ip: expiry} in memory, nothing else about them.

    mark_open(ip) starts (or restarts) the client's open period; seconds_remaining(ip) is None for a client that
    has not opened the portal or whose period ran out; read_entries() copies {ip: expiry} (expiry on the state's
    clock), for tests and status pages.
    """

    mark_open: Callable[[str | None], None]
    seconds_remaining: Callable[[str | None], float | None]
    read_entries: Callable[[], dict[str, float]]
