"""Timestamps answer in UTC with a Z whatever zone the database session reads them in (PostgreSQL answers a
timestamptz in the session's zone, which need not be UTC)."""
from datetime import datetime, timedelta, timezone

from ufdl_pyramid.models.meta import UTCDateTime
from ufdl_pyramid.representations import timestamp

KOLKATA = timezone(timedelta(hours=5, minutes=30))


def test_values_read_in_another_zone_come_back_in_utc():
    read = datetime(2026, 11, 23, 22, 36, 7, tzinfo=KOLKATA)
    value = UTCDateTime().process_result_value(read, None)
    assert value == read and value.utcoffset() == timedelta(0)
    # SQLite keeps no zone: its naive values are UTC.
    assert UTCDateTime().process_result_value(datetime(2026, 11, 23, 17, 6, 7), None).tzinfo == timezone.utc


def test_the_api_writes_utc_with_a_z():
    assert timestamp(datetime(2026, 11, 23, 22, 36, 7, tzinfo=KOLKATA)) == "2026-11-23T17:06:07Z"
    assert timestamp(datetime(2026, 11, 23, 17, 6, 7, tzinfo=timezone.utc)) == "2026-11-23T17:06:07Z"
    assert timestamp(None) is None
