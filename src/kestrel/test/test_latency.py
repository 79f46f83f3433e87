"""kestrel.latency: each observation lands in the bucket of the first bound not below it."""

from bisect import bisect_left

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kestrel.latency import DELIVERY_BOUNDS, REQUEST_BOUNDS, LatencyHistogram


@given(
    bounds=st.sampled_from([REQUEST_BOUNDS, DELIVERY_BOUNDS]),
    seconds=st.one_of(st.floats(allow_nan=True), st.sampled_from(REQUEST_BOUNDS + DELIVERY_BOUNDS)),
)
def test_an_observation_counts_where_bisect_left_puts_it(bounds, seconds):
    histogram = LatencyHistogram(bounds)
    histogram.observe(seconds)
    expected = [0] * (len(bounds) + 1)
    expected[bisect_left(bounds, seconds)] = 1
    assert histogram.counts == expected


def test_a_bound_itself_counts_in_its_own_bucket_and_beyond_the_last_in_inf():
    histogram = LatencyHistogram((0.1, 1.0))
    for seconds in (0.05, 0.1, 0.5, 1.0, 7.0):
        histogram.observe(seconds)
    assert histogram.cumulative() == [(0.1, 2), (1.0, 4), (float("inf"), 5)]
    assert histogram.sum == pytest.approx(8.65)
