"""The portal's rate limiter: burst, refill, bounded memory."""

from __future__ import annotations

from service.portal.guard import RateLimiter


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_burst_then_refill_at_the_rate() -> None:
    clock = Clock()
    limiter = RateLimiter(per_minute=60, burst=3, clock=clock)
    assert [limiter.wait_seconds("a") for _ in range(3)] == [0, 0, 0]
    assert limiter.wait_seconds("a") == 1
    clock.now += 1.0
    assert limiter.wait_seconds("a") == 0
    assert limiter.wait_seconds("a") == 1


def test_clients_have_their_own_buckets() -> None:
    limiter = RateLimiter(per_minute=6, burst=1, clock=Clock())
    assert limiter.wait_seconds("a") == 0
    assert limiter.wait_seconds("a") == 10
    assert limiter.wait_seconds("b") == 0


def test_memory_is_bounded_to_the_most_recent_clients() -> None:
    limiter = RateLimiter(per_minute=60, burst=1, max_clients=100, clock=Clock())
    for index in range(1000):
        limiter.wait_seconds(f"10.0.{index // 256}.{index % 256}")
    assert len(limiter) == 100
