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

The table grows and shrinks a little at a time. Copying every entry into new arrays at once
held the event loop, and so every request the gateway serves: 311 ms at a million
revocations, seconds once an administrator had ended ten million sessions. Now a resize allocates
the new arrays and copies `_MOVED_PER_ADD` old slots with each later `add` (and more with each
eviction tick) until all are copied. Meanwhile the old arrays stay the table: lookups read only
them, every change is made to both, and an entry a deletion shifts in the old arrays is copied
again, so the new arrays hold everything once the last slot is copied.
"""

from __future__ import annotations

import math
from array import array

_EMPTY = 0
_MAX_LOAD = 0.6
_MIN_CAPACITY = 1024
_MAX_UNTIL = 2**32 - 1
_MOVED_PER_ADD = 64
"""Old slots copied by each add during a resize (up to four times as many when shrinking, by
at most a quarter a pass): tens of microseconds an add, and a growth is copied before the old
arrays are 62 % full."""
_FULL_WHILE_MOVING = 0.9
"""An add that would fill the old arrays beyond this during a resize copies what is left."""

ENDED: dict[str, int] = {"admin": 1, "security": 2, "logout": 3, "max_length": 4, "idle": 4}
"""A revocation's `reason` as the byte the table keeps (0: not known)."""
ENDED_NAMES: dict[int, bytes] = {1: b"admin", 2: b"security", 3: b"signed_out", 4: b"expired"}
"""The byte as the `ended=` value of the sign-in redirect."""


def _whole_seconds(until: float) -> int:
    """`until` rounded up to a whole second a slot holds (1 to `_MAX_UNTIL`).

    Never raises: an infinite grace made expiries NaN, `int()` raised on each, and the watcher
    rejected every revocation (before 2026-12-06). Whatever cannot be computed is held longest.
    """
    if not until < _MAX_UNTIL:  # beyond the range, infinite, or NaN (which compares false)
        return _MAX_UNTIL
    return math.ceil(until) if until > 1 else 1


def _slot_key(session_id: bytes) -> int:
    # 0 marks an empty slot, so a (2**-64 rare) zero hash is moved to 1.
    return hash(session_id) or 1


class RevocationTable:
    """Revoked sessions' keys, each kept until its expiry (epoch seconds); linear probing."""

    __slots__ = (
        "_count",
        "_keys",
        "_mask",
        "_moved",
        "_next",
        "_step",
        "_sweep_at",
        "_until",
        "_why",
    )

    def __init__(self, capacity: int = _MIN_CAPACITY) -> None:
        size = _MIN_CAPACITY
        while size < capacity:
            size *= 2
        self._allocate(size)
        self._count = 0
        self._sweep_at = 0
        self._next: RevocationTable | None = None
        """The arrays being filled during a resize (None: no resize under way)."""
        self._moved = 0
        """Slots of this table's arrays copied into `_next` so far."""
        self._step = _MOVED_PER_ADD

    def _allocate(self, size: int) -> None:
        self._keys = array("q", bytes(8 * size))
        self._until = array("I", bytes(4 * size))
        self._why = array("B", bytes(size))
        self._mask = size - 1

    def __len__(self) -> int:
        return self._count

    @property
    def capacity(self) -> int:
        """Number of slots; memory is 13 bytes per slot (and the new arrays' during a resize)."""
        return self._mask + 1

    @property
    def resizing(self) -> int:
        """Slots still to copy into the new arrays of a resize under way (0: none)."""
        return 0 if self._next is None else self.capacity - self._moved

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
        the two expiries, so no later record can shorten a revocation. An expiry past what a
        slot holds, infinite or not a number is held as long as a slot can (fail closed).
        """
        key = _slot_key(entry)
        seconds = _whole_seconds(until)
        if self._next is not None or (self._count + 1) > _MAX_LOAD * (self._mask + 1):
            self._add_resizing(key, seconds, why)
        else:
            self._put(key, seconds, why)

    def _add_resizing(self, key: int, seconds: int, why: int) -> None:
        if self._next is not None:
            self._move(self._step)
        if self._next is None and (self._count + 1) > _MAX_LOAD * self.capacity:
            self._start_resize(self.capacity * 2)
        i = self._put(key, seconds, why)
        if self._next is not None:  # the old arrays decide; the new ones take their entry
            self._next._set(key, self._until[i], self._why[i])

    def _put(self, key: int, seconds: int, why: int) -> int:
        """`add` of a hashed key; the slot that holds it."""
        i = self._find(key)
        if self._keys[i] == _EMPTY:
            self._keys[i] = key
            self._count += 1
        elif self._until[i] >= seconds:
            if not self._why[i]:
                self._why[i] = why
            return i
        self._until[i] = seconds
        if why or not self._why[i]:
            self._why[i] = why
        return i

    def _set(self, key: int, seconds: int, why: int) -> None:
        """Hold `key` with exactly this expiry and byte (a resize's copy of an old entry)."""
        i = self._find(key)
        if self._keys[i] == _EMPTY:
            self._keys[i] = key
            self._count += 1
        self._until[i] = seconds
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
        return self._discard_key(_slot_key(entry))

    def _discard_key(self, key: int) -> bool:
        i = self._find(key)
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
        self._delete_slot(i)  # in the new arrays too: its expiry there is never later
        return True

    def _delete_slot(self, hole: int) -> None:
        # Backward-shift deletion: later entries of the same probe run move into the hole,
        # so lookups never need tombstone markers.
        keys, until, why, mask = self._keys, self._until, self._why, self._mask
        target = self._next
        if target is not None:  # during a resize, gone from the new arrays too
            target._discard_key(keys[hole])
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
                if target is not None:  # it may move into a slot already copied
                    target._set(key, until[j], why[j])
                hole = j
        keys[hole] = _EMPTY
        until[hole] = 0
        why[hole] = 0
        self._count -= 1

    def evict(self, now: float, slots: int) -> int:
        """Drop entries whose expiry is before `now`, scanning the next `slots` slots; count them.

        Call it repeatedly: the sweep resumes where it stopped, and shrinks the table after
        each full pass when most of it has been evicted. During a resize it copies `slots`
        slots instead, and evicts nothing.
        """
        if self._next is not None:
            self._move(slots)
            return 0
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
        # a quarter at most a pass: each add then copies at most 4 x `_MOVED_PER_ADD` slots
        while size > max(_MIN_CAPACITY, self.capacity // 4) and self._count < _MAX_LOAD * size / 4:
            size //= 2
        if size != self.capacity:
            self._start_resize(size)

    def _start_resize(self, size: int) -> None:
        self._next = RevocationTable(size)
        self._moved = 0
        # shrinking, the new arrays must not fill before the old ones are copied
        self._step = _MOVED_PER_ADD * max(1, self.capacity // size)

    def _move(self, slots: int) -> None:
        """Copy the next `slots` old slots into the new arrays; once all are, use them."""
        target = self._next
        assert target is not None
        if (
            self._count + 1 > _FULL_WHILE_MOVING * self.capacity
            or self._count + 1 > _MAX_LOAD * target.capacity
        ):
            slots = self.capacity  # no room to wait: copy the rest now
        keys, until, why = self._keys, self._until, self._why
        new_keys, new_until, new_why, mask = target._keys, target._until, target._why, target._mask
        end = min(self._moved + max(slots, 0), self.capacity)
        copied = 0
        for slot in range(self._moved, end):  # `_set` inlined: the copy is most of a resize
            key = keys[slot]
            if key == _EMPTY:
                continue
            i = key & mask
            while new_keys[i] != key and new_keys[i] != _EMPTY:
                i = (i + 1) & mask
            if new_keys[i] == _EMPTY:
                new_keys[i] = key
                copied += 1
            new_until[i] = until[slot]  # the old entry as it stands (`_set`)
            new_why[i] = why[slot]
        target._count += copied
        self._moved = end
        if end < self.capacity:
            return
        self._keys, self._until, self._why = target._keys, target._until, target._why
        self._mask, self._count = target._mask, target._count
        self._next = None
        self._sweep_at = 0
