"""What to do after a failed install, by the error's code: only advice that is true for that failure."""

from __future__ import annotations

from appliance.library.library_errors import LibraryError

_RESUMES = "run the same command again: it resumes where it stopped, keeping the pieces already verified"
_OTHER_SOURCES = "another source (--url, --mirror, --from-dir, or a unit of the mesh that holds the model)"
_ANOTHER_SOURCE = (
    "installing again from this source will not help (the pieces already verified are kept): install from "
    f"{_OTHER_SOURCES}, or check that the manifest is the right one"
)
_ADVICE = {
    # The download broke (a dropped connection, a timeout, a short read) or the source was out of reach:
    # the source may well be fine, and a later run fetches only what is missing.
    "source_interrupted": _RESUMES,
    "source_unavailable": _RESUMES,
    "cancelled": _RESUMES,
    "no_source": f"{_RESUMES}, once the source or a unit holding the model can be reached",
    "source_bad_response": "the source answered wrongly: try again later (the install resumes where it "
    f"stopped), or install from {_OTHER_SOURCES}",
    "disk_full": f"free some space, then {_RESUMES}",
    # The source's bytes are wrong, the same every time: another run from it would fetch them again.
    "source_corrupt": _ANOTHER_SOURCE,
    "source_wrong_size": _ANOTHER_SOURCE,
    "source_missing_file": _ANOTHER_SOURCE,
    "root_mismatch": f"this source serves other content than the pinned one: install from {_OTHER_SOURCES}",
    "source_mismatch": f"this source serves other content than the published one: install from {_OTHER_SOURCES}",
    # The mesh offered content this unit cannot trust (a pin, the whitelist or the source says otherwise),
    # or could not say which content is right: the message names the roots and what to do.
    "peer_manifest_differs": f"the mesh offers other content than this unit trusts: install from {_OTHER_SOURCES}",
    "peer_manifests_disagree": "",
    "peer_manifest_unverified": "",
    # The message says it all: the request itself is wrong, or another install is running.
    "model_unknown": "",
    "manifest_invalid": "",
    "install_running": "",
}


def advise_install_error(error: LibraryError) -> str:
    """A sentence saying what helps after `error` ended an install ("" when its message says it all)."""
    return _ADVICE.get(error.code, _RESUMES)
