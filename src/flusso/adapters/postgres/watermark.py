"""The per-transaction ack watermark: which replication position may be reported as flushed.

Pure bookkeeping, no I/O. The replication task registers transactions as they
commit; acks confirm from any thread; feedback reads `confirmed` at each send.
"""

from __future__ import annotations

import threading
from collections import deque
from dataclasses import dataclass


@dataclass
class _Transaction:
    seq: int
    end_lsn: int
    outstanding: int


class AckWatermark:
    """The highest LSN below which every delivered change is durably applied.

    Each committed transaction gets one sequence number and a count of its
    changes. It is confirmed when all its changes are; the watermark is the end
    LSN of the newest transaction in the contiguous confirmed prefix, so the
    first part of a transaction split across batches never confirms the rest.
    When nothing is outstanding and no transaction is open, the watermark rises
    to the latest keepalive WAL end: everything before it was delivered or was
    of no interest.
    """

    def __init__(self, start: int = 0) -> None:
        self._lock = threading.Lock()
        self._confirmed = start
        self._pending: deque[_Transaction] = deque()
        self._by_seq: dict[int, _Transaction] = {}
        self._next_seq = 0
        self._open = False
        self._wal_end = 0

    @property
    def confirmed(self) -> int:
        with self._lock:
            return self._confirmed

    @property
    def outstanding_transactions(self) -> int:
        with self._lock:
            return len(self._pending)

    def begin(self) -> None:
        """A transaction's Begin arrived; its WAL is not yet fully received."""
        with self._lock:
            self._open = True

    def commit(self, end_lsn: int, changes: int) -> list[TransactionAck]:
        """Register a committed transaction and return one ack per emitted change.

        A transaction without changes is confirmed at once.
        """
        with self._lock:
            self._open = False
            seq = self._next_seq
            self._next_seq += 1
            txn = _Transaction(seq, end_lsn, changes)
            self._pending.append(txn)
            self._by_seq[seq] = txn
            self._settle()
        return [TransactionAck(self, seq, end_lsn) for _ in range(changes)]

    def observe_wal_end(self, wal_end: int) -> None:
        """A keepalive reported the server's WAL end.

        Confirming it when nothing is outstanding lets the slot move over WAL that
        touched no indexed table; otherwise the slot would pin WAL and lag would grow.
        """
        with self._lock:
            self._wal_end = max(self._wal_end, wal_end)
            self._settle()

    def _confirm(self, seq: int) -> None:
        with self._lock:
            txn = self._by_seq.get(seq)
            if txn is None or txn.outstanding <= 0:
                return
            txn.outstanding -= 1
            self._settle()

    def _settle(self) -> None:
        while self._pending and self._pending[0].outstanding <= 0:
            txn = self._pending.popleft()
            del self._by_seq[txn.seq]
            self._confirmed = max(self._confirmed, txn.end_lsn)
        if not self._pending and not self._open:
            # Safe: a transaction still in progress commits after this position
            # and will be sent in full.
            self._confirmed = max(self._confirmed, self._wal_end)


class TransactionAck:
    """The ack of one change: confirming counts it off its transaction, once."""

    __slots__ = ("_watermark", "_seq", "_done", "end_lsn")

    def __init__(self, watermark: AckWatermark, seq: int, end_lsn: int) -> None:
        self._watermark = watermark
        self._seq = seq
        self._done = False
        self.end_lsn = end_lsn
        """The end LSN of the change's transaction (diagnostics)."""

    def confirm(self) -> None:
        # The flag is checked under the watermark's lock so a double confirm
        # from two threads still counts once.
        with self._watermark._lock:
            if self._done:
                return
            self._done = True
        self._watermark._confirm(self._seq)
