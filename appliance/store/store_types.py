"""Data shapes of the chat store: how much it keeps, and for how long."""

from __future__ import annotations

from dataclasses import dataclass

MIB = 1 << 20
RETENTION_SETTING = "chat_retention_days"
# A unit stands in public places: chats go after two weeks unless the owner says otherwise.
DEFAULT_RETENTION_DAYS = 14
MAX_RETENTION_DAYS = 3650
# Free space installs must leave on the data disk, so that chats (and the database's own journal) always
# have room: a reply already streamed to a phone is not lost to a full disk.
INSTALL_RESERVE_BYTES = 512 * MIB
# Below this much free space the unit stores no new chats and says so before generating anything.
CHATS_STOP_BELOW_BYTES = 128 * MIB


@dataclass(frozen=True)
class StoreLimits:
    """What the chat store keeps. Past a limit the oldest conversations go (least recently used first).

    Sizes count the text of the messages: the rows and indexes around them add a little.
    """

    retention_days: int = DEFAULT_RETENTION_DAYS
    total_bytes: int = 256 * MIB  # every phone together: about a hundred thousand exchanges
    phone_bytes: int = 8 * MIB  # one phone (one cookie)
    phone_conversations: int = 200  # as many as the chat list shows


@dataclass(frozen=True)
class PruneReport:
    """How many conversations one pass removed, and why."""

    expired: int = 0
    over_phone_quota: int = 0
    over_total: int = 0

    @property
    def removed(self) -> int:
        return self.expired + self.over_phone_quota + self.over_total
