"""Hash banks for the operator: list, count, look up, disable/re-enable entries.

Adding to a bank (hashing an image or a given hash, quality floor, crop windows) and matching
are ``moderation.hashbank.banks``; this module is what the CLI reads and toggles.
"""

from __future__ import annotations

from moderation.db.repositories.banks import (
    BankEntryRecord,
    BankStats,
    UnknownBankEntry,
    get_entries,
    list_entries,
    set_enabled,
    stats,
)

__all__ = [
    "BankEntryRecord",
    "BankStats",
    "UnknownBankEntry",
    "get_entries",
    "list_entries",
    "set_enabled",
    "stats",
]
