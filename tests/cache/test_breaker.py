from oauthvault.cache.breaker import CircuitBreaker, Decision


class Ticker:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


def test_a_new_breaker_asks_for_one_probe_first():
    breaker = CircuitBreaker(clock=Ticker())
    assert breaker.decide() is Decision.PROBE
    assert breaker.decide() is Decision.OPEN
    assert breaker.record_success() is True
    assert breaker.decide() is Decision.CLOSED


def test_a_failure_opens_it_for_the_cooldown_then_allows_one_probe():
    clock = Ticker()
    breaker = CircuitBreaker(cooldown=1.0, clock=clock)
    breaker.record_success()
    assert breaker.record_failure() is True
    assert breaker.decide() is Decision.OPEN
    clock.now += 1.0
    assert breaker.decide() is Decision.PROBE
    assert breaker.decide() is Decision.OPEN  # only one caller probes


def test_failed_probes_back_off_up_to_the_ceiling():
    clock = Ticker()
    breaker = CircuitBreaker(cooldown=1.0, max_cooldown=4.0, clock=clock)
    breaker.record_success()
    breaker.record_failure()
    waits = []
    for _ in range(5):
        start = clock.now
        while breaker.decide() is not Decision.PROBE:
            clock.now += 0.5
        waits.append(clock.now - start)
        breaker.record_failure()
    assert waits == [1.0, 2.0, 4.0, 4.0, 4.0]


def test_success_resets_the_cooldown():
    clock = Ticker()
    breaker = CircuitBreaker(cooldown=1.0, clock=clock)
    breaker.record_success()
    breaker.record_failure()
    clock.now += 1.0
    breaker.decide()
    breaker.record_failure()  # cooldown now 2
    clock.now += 2.0
    breaker.decide()
    breaker.record_success()
    breaker.record_failure()
    clock.now += 1.0
    assert breaker.decide() is Decision.PROBE
