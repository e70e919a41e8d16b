"""The per-transaction ack watermark and its advance over idle WAL."""

from __future__ import annotations

import threading

from hypothesis import given, settings
from hypothesis import strategies as st

from flusso.adapters.postgres.watermark import AckWatermark


def committed(watermark: AckWatermark, end_lsn: int, changes: int):
    watermark.begin()
    return watermark.commit(end_lsn, changes)


def test_a_split_transaction_is_not_confirmed_until_its_last_change_is():
    watermark = AckWatermark()
    acks = committed(watermark, 1000, 300)
    for ack in acks[:256]:
        ack.confirm()
    assert watermark.confirmed == 0
    for ack in acks[256:]:
        ack.confirm()
    assert watermark.confirmed == 1000


def test_out_of_order_confirmations_hold_the_watermark_until_the_gap_fills():
    watermark = AckWatermark()
    first = committed(watermark, 100, 1)
    second = committed(watermark, 200, 1)
    second[0].confirm()
    assert watermark.confirmed == 0
    first[0].confirm()
    assert watermark.confirmed == 200


def test_a_transaction_without_changes_is_confirmed_at_commit():
    watermark = AckWatermark()
    assert committed(watermark, 500, 0) == []
    assert watermark.confirmed == 500


def test_an_empty_transaction_behind_an_unconfirmed_one_waits_its_turn():
    watermark = AckWatermark()
    (ack,) = committed(watermark, 100, 1)
    committed(watermark, 200, 0)
    assert watermark.confirmed == 0
    ack.confirm()
    assert watermark.confirmed == 200


def test_confirming_the_same_ack_twice_counts_once():
    watermark = AckWatermark()
    acks = committed(watermark, 100, 2)
    acks[0].confirm()
    acks[0].confirm()
    assert watermark.confirmed == 0


def test_keepalive_wal_end_raises_the_watermark_when_everything_is_confirmed():
    watermark = AckWatermark()
    (ack,) = committed(watermark, 100, 1)
    ack.confirm()
    watermark.observe_wal_end(5000)
    assert watermark.confirmed == 5000


def test_keepalive_wal_end_waits_for_outstanding_transactions():
    watermark = AckWatermark()
    (ack,) = committed(watermark, 100, 1)
    watermark.observe_wal_end(5000)
    assert watermark.confirmed == 0
    ack.confirm()
    assert watermark.confirmed == 5000


def test_keepalive_wal_end_is_ignored_while_a_transaction_is_open():
    watermark = AckWatermark()
    watermark.begin()
    watermark.observe_wal_end(5000)
    assert watermark.confirmed == 0


def test_the_watermark_never_moves_backwards():
    watermark = AckWatermark(start=900)
    committed(watermark, 100, 0)
    watermark.observe_wal_end(50)
    assert watermark.confirmed == 900


def test_each_ack_names_its_transactions_end_and_the_open_count_falls_as_they_settle():
    watermark = AckWatermark()
    first = committed(watermark, 100, 2)
    (second,) = committed(watermark, 200, 1)
    assert [ack.end_lsn for ack in first] == [100, 100] and second.end_lsn == 200
    assert watermark.outstanding_transactions == 2
    second.confirm()
    assert watermark.outstanding_transactions == 2  # settled only behind the first
    for ack in first:
        ack.confirm()
    assert (watermark.outstanding_transactions, watermark.confirmed) == (0, 200)


def test_a_keepalive_seen_during_a_transaction_counts_once_it_is_confirmed():
    watermark = AckWatermark()
    watermark.begin()
    watermark.observe_wal_end(5000)
    (ack,) = watermark.commit(300, 1)
    assert watermark.confirmed == 0
    ack.confirm()
    assert watermark.confirmed == 5000


def test_confirmations_from_many_threads_all_count():
    watermark = AckWatermark()
    acks = committed(watermark, 777, 4000)
    threads = [threading.Thread(target=lambda part=acks[i::8]: [a.confirm() for a in part])
               for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert watermark.confirmed == 777


@settings(max_examples=300, deadline=None)
@given(st.lists(st.integers(0, 5), min_size=1, max_size=12), st.randoms(use_true_random=False),
       st.data())
def test_the_watermark_is_the_end_of_the_longest_fully_confirmed_prefix(sizes, rng, data):
    watermark = AckWatermark()
    txns = [(100 * (i + 1), committed(watermark, 100 * (i + 1), n)) for i, n in enumerate(sizes)]
    every = [(i, ack) for i, (_, acks) in enumerate(txns) for ack in acks]
    rng.shuffle(every)
    confirmed = every[: data.draw(st.integers(0, len(every)))]
    for _, ack in confirmed:
        ack.confirm()
    done = {i for i, _ in confirmed}
    counts = {i: sum(1 for j, _ in confirmed if j == i) for i in done}
    expected = 0
    for i, (end, acks) in enumerate(txns):
        if counts.get(i, 0) < len(acks):
            break
        expected = end
    assert watermark.confirmed == expected
