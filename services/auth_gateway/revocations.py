"""The in-memory set of revoked sessions, compact enough for millions of entries.

An entry's key is the tenant-qualified record key of the session, `<tenant_id>/<handle>` as
bytes (`session_contracts.handles.record_key`): the same handle in two tenants is two entries,
and nothing done to one touches the other.

A plain `dict[bytes, float]` costs ~170 bytes per revocation (the key bytes alone are ~80-100
bytes, the float 24, the dict slot ~40). This table stores, per slot, the 64-bit hash of the
key and its expiry in whole seconds: 12 bytes a slot, at most 60 % full, so ~20-40 bytes per
revocation and no Python object per entry.

Keys are hashed with Python's own `hash(bytes)` (SipHash, keyed per process), so an outsider
cannot craft keys that collide with a revoked one. Two different keys sharing 64 bits would
only make the unrevoked one look revoked (fail closed); with a million revocations that
happens to a given request with probability ~5e-14.

An entry's expiry only ever moves later: `add` keeps the latest of the old and the new, and a
tombstone (`discard_ended`) removes an entry only once its expiry has passed.

Each slot also keeps one byte saying why the session ended (`ENDED`: an administrator, a
security control, the user signing out, an expiry; 0 when unknown), read only for a refused
request, so a browser sent to sign-in can be told why (13 bytes a slot).
"""

from __future__ import annotations

from array import array

_EMPTY = 0
_MAX_LOAD = 0.6
_MIN_CAPACITY = 1024
_MAX_UNTIL = 2**32 - 1

ENDED: dict[str, int] = {"admin": 1, "security": 2, "logout": 3, "max_length": 4, "idle": 4}
"""A revocation's `reason` as the byte the table keeps (0: not known)."""
ENDED_NAMES: dict[int, bytes] = {1: b"admin", 2: b"security", 3: b"signed_out", 4: b"expired"}
"""The byte as the `ended=` value of the sign-in redirect."""


def _slot_key(session_id: bytes) -> int:
    # 0 marks an empty slot, so a (2**-64 rare) zero hash is moved to 1.
    return hash(session_id) or 1


class RevocationTable:
    """Revoked sessions' keys, each kept until its expiry (epoch seconds); linear probing."""

    __slots__ = ("_count", "_keys", "_mask", "_sweep_at", "_until", "_why")

    def __init__(self, capacity: int = _MIN_CAPACITY) -> None:
        size = _MIN_CAPACITY
        while size < capacity:
            size *= 2
        self._allocate(size)
        self._count = 0
        self._sweep_at = 0

    def _allocate(self, size: int) -> None:
        self._keys = array("q", bytes(8 * size))
        self._until = array("I", bytes(4 * size))
        self._why = array("B", bytes(size))
        self._mask = size - 1

    def __len__(self) -> int:
        return self._count

    @property
    def capacity(self) -> int:
        """Number of slots; memory is 13 bytes per slot."""
        return self._mask + 1

    def __contains__(self, entry: bytes) -> bool:
        key = hash(entry) or 1
        keys = self._keys
        mask = self._mask
        i = key & mask
        while True:
            found = keys[i]
            if found == key:
                return True
            if found == _EMPTY:
                return False
            i = (i + 1) & mask

    def _find(self, key: int) -> int:
        """The slot holding `key`, or the empty slot where it would go."""
        keys = self._keys
        mask = self._mask
        i = key & mask
        while keys[i] != key and keys[i] != _EMPTY:
            i = (i + 1) & mask
        return i

    def add(self, entry: bytes, until: float, why: int = 0) -> None:
        """Revoke `entry` until `until` (epoch seconds, rounded up to a whole second); `why`
        is its `ENDED` byte.

        The expiry never moves earlier: adding an entry already present keeps the later of
        the two expiries, so no later record can shorten a revocation.
        """
        if (self._count + 1) > _MAX_LOAD * self.capacity:
            self._resize(self.capacity * 2)
        key = _slot_key(entry)
        i = self._find(key)
        seconds = min(max(int(-(-until // 1)), 1), _MAX_UNTIL)
        if self._keys[i] == _EMPTY:
            self._keys[i] = key
            self._count += 1
        elif self._until[i] >= seconds:
            if not self._why[i]:
                self._why[i] = why
            return
        self._until[i] = seconds
        if why or not self._why[i]:
            self._why[i] = why

    def why(self, entry: bytes) -> int | None:
        """Why `entry` was revoked (its `ENDED` byte, 0 when unknown), or None when it is not."""
        i = self._find(_slot_key(entry))
        return None if self._keys[i] == _EMPTY else self._why[i]

    def until(self, entry: bytes) -> int | None:
        """The expiry of `entry` (whole epoch seconds), or None when it is not revoked."""
        i = self._find(_slot_key(entry))
        return None if self._keys[i] == _EMPTY else self._until[i]

    def discard(self, entry: bytes) -> bool:
        """Forget `entry` whatever its expiry; return whether it was there."""
        i = self._find(_slot_key(entry))
        if self._keys[i] == _EMPTY:
            return False
        self._delete_slot(i)
        return True

    def discard_ended(self, entry: bytes, now: float) -> bool | None:
        """A tombstone: forget `entry` only if its expiry is not after `now`.

        True: forgotten; False: not there; None: still valid, kept (an early tombstone can
        never end a revocation before its time).
        """
        i = self._find(_slot_key(entry))
        if self._keys[i] == _EMPTY:
            return False
        if self._until[i] > now:
            return None
        self._delete_slot(i)
        return True

    def _delete_slot(self, hole: int) -> None:
        # Backward-shift deletion: later entries of the same probe run move into the hole,
        # so lookups never need tombstone markers.
        keys, until, why, mask = self._keys, self._until, self._why, self._mask
        j = hole
        while True:
            j = (j + 1) & mask
            key = keys[j]
            if key == _EMPTY:
                break
            home = key & mask
            if (hole <= j and (home <= hole or home > j)) or (
                hole > j and home <= hole and home > j
            ):
                keys[hole] = key
                until[hole] = until[j]
                why[hole] = why[j]
                hole = j
        keys[hole] = _EMPTY
        until[hole] = 0
        why[hole] = 0
        self._count -= 1

    def evict(self, now: float, slots: int) -> int:
        """Drop entries whose expiry is before `now`, scanning the next `slots` slots; count them.

        Call it repeatedly: the sweep resumes where it stopped, and shrinks the table after
        each full pass when most of it has been evicted.
        """
        keys, until, mask = self._keys, self._until, self._mask
        capacity = mask + 1
        i = self._sweep_at
        end = i + min(slots, capacity)
        dropped = 0
        while i < end:
            slot = i & mask
            if keys[slot] != _EMPTY and until[slot] < now:
                self._delete_slot(slot)  # another entry may shift into this slot: look again
                dropped += 1
                continue
            i += 1
        self._sweep_at = end & mask
        if end >= capacity:
            self._shrink_if_sparse()
        return dropped

    def _shrink_if_sparse(self) -> None:
        size = self.capacity
        while size > _MIN_CAPACITY and self._count < _MAX_LOAD * size / 4:
            size //= 2
        if size != self.capacity:
            self._resize(size)

    def _resize(self, size: int) -> None:
        old_keys, old_until, old_why = self._keys, self._until, self._why
        self._allocate(size)
        keys, until, why, mask = self._keys, self._until, self._why, self._mask
        for slot, key in enumerate(old_keys):
            if key != _EMPTY:
                i = key & mask
                while keys[i] != _EMPTY:
                    i = (i + 1) & mask
                keys[i] = key
                until[i] = old_until[slot]
                why[i] = old_why[slot]
        self._sweep_at = 0
