"""Render the unit's mosquitto ACL: a unit publishes only its own topics; every unit reads presence, each
reads only the work addressed to it."""

from __future__ import annotations


def render_mosquitto_acl() -> str:
    """The ACL file's text. The username is the client certificate's CN (use_identity_as_username), that is the
    unit's node id, so `%u` in a pattern is the connected unit itself: a member that publishes on another unit's
    topic is refused by the broker (and its message never reaches anyone). Anything not granted is denied.
    `pattern` lines apply to every user; `topic` lines before any `user` line would apply to anonymous clients only.
    Mesh ids are `+`: only certificates of this mesh pass the handshake, so the id adds nothing here.
    """
    return "\n".join(
        [
            "# Written by iplm (appliance.mesh.broker.render_mosquitto_acl); changes here are overwritten.",
            "pattern read iplm/+/presence/+",
            "pattern write iplm/+/presence/%u",
            # Work: iplm/<mesh>/jobs|results/<from>/<to>. A job is written by its sender on the receiver's
            # broker; a result by the unit that ran the job, on its own broker. Only <to> reads it.
            "pattern write iplm/+/jobs/%u/+",
            "pattern read iplm/+/jobs/+/%u",
            "pattern write iplm/+/results/%u/+",
            "pattern read iplm/+/results/+/%u",
            "",
        ]
    )
