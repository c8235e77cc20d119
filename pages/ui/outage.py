"""When the database cannot be reached during a page run: plain words for the person, a line for the operator."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager

import streamlit as st

from services.db import is_outage, outage_reason
from services.ratelimit import TokenBucket

log = logging.getLogger("finsync.pages")
# One line a minute while the outage lasts (a page following a sync asks every 2 s).
_said = TokenBucket(rate=1 / 60, burst=1)
MESSAGE = (
    "finsync cannot reach its database right now. Please try again in a minute; "
    "if this goes on, tell whoever runs this finsync."
)


@contextmanager
def database_outage_notice(*, retry: bool = True) -> Iterator[None]:
    """Run the page (or a fragment); a database outage ends it with MESSAGE, not Streamlit's bare error box, and
    is logged (at most once a minute). ``retry``: offer a "Try again" button (a polling fragment tries again by
    itself)."""
    try:
        yield
    except Exception as exc:
        if not is_outage(exc):
            raise
        if _said.take() == 0.0:
            log.error("a page could not use the database: %s", outage_reason(exc))
        st.error(MESSAGE, icon=":material/cloud_off:")
        if retry:
            st.button("Try again", key="outage_retry")  # a click reruns the page: nothing more to do
