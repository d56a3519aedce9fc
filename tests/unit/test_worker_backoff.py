"""The wait before ``ufdl serve --workers N`` replaces a dead worker."""
from ufdl_pyramid.serving import MAX_DELAY, STEADY, Backoff


def test_one_early_death_is_replaced_at_once_and_a_row_of_them_backs_off():
    backoff = Backoff()
    assert [backoff.delay(0.1) for _ in range(5)] == [0, 0.5, 1, 2, 4]
    assert [backoff.delay(STEADY - 0.1) for _ in range(10)][-1] == MAX_DELAY


def test_a_worker_that_lived_long_enough_ends_the_row():
    backoff = Backoff()
    for _ in range(4):
        backoff.delay(1)
    assert backoff.delay(STEADY) == 0
    assert [backoff.delay(1) for _ in range(2)] == [0, 0.5]
