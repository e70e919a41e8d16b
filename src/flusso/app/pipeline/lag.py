"""The slot-lag poller (engine spec §8): samples `capture.lag()` beside the pipeline, never stopping it."""

from __future__ import annotations

import asyncio
import logging
import math

from flusso.app.ports import ChangeCapture, Observer

logger = logging.getLogger(__name__)


async def poll_lag(capture: ChangeCapture, observer: Observer, interval: float) -> None:
    """Report `capture.lag()` now and every `interval` seconds until cancelled.

    Missed ticks are skipped, not bunched; unknown lag (None) reports nothing;
    negative lag reports 0.
    """
    loop = asyncio.get_running_loop()
    interval = max(interval, 0.0)
    next_tick = loop.time()
    while True:
        try:
            lag = await capture.lag()
        except asyncio.CancelledError:
            raise
        # Any failure of a lag probe is only worth a warning: the poller must
        # never take the pipeline down (spec §8), whatever the adapter raised.
        except Exception as exc:  # noqa: BLE001
            logger.warning("failed to poll replication slot lag: %s", exc, extra={"error": str(exc)})
        else:
            if lag is not None:
                observer.on_slot_lag(max(0, lag))
        now = loop.time()
        next_tick += interval
        if interval > 0 and next_tick < now:
            next_tick += math.ceil((now - next_tick) / interval) * interval
        await asyncio.sleep(max(0.0, next_tick - now))
