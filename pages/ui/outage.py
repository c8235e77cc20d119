"""When the database cannot be reached during a page run: plain words for the person, a line for the operator."""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import ParamSpec

import streamlit as st

from services.db import is_outage, outage_reason
from services.ratelimit import TokenBucket

log = logging.getLogger("finsync.pages")
P = ParamSpec("P")
# One line a minute while the outage lasts (a page following a sync asks every 2 s).
_said = TokenBucket(rate=1 / 60, burst=1)
MESSAGE = (
    "finsync cannot reach its database right now. Please try again in a minute; "
    "if this goes on, tell whoever runs this finsync."
)


CALLBACK_OUTAGE = "outage_in_callback"  # session state: a widget's callback met the outage before this run


def _log(exc: BaseException) -> None:
    if _said.take() == 0.0:
        log.error("a page could not use the database: %s", outage_reason(exc))


@contextmanager
def database_outage_notice(*, retry: bool = True) -> Iterator[None]:
    """Run the page (or a fragment); a database outage ends it with MESSAGE, not Streamlit's bare error box, and
    is logged (at most once a minute). ``retry``: offer a "Try again" button (a polling fragment tries again by
    itself). An outage a callback met (``survives_outage``) is said here too, once."""
    said = bool(st.session_state.pop(CALLBACK_OUTAGE, False))
    if said:
        st.error(MESSAGE, icon=":material/cloud_off:")
    try:
        yield
    except Exception as exc:
        if not is_outage(exc):
            raise
        _log(exc)
        if not said:
            st.error(MESSAGE, icon=":material/cloud_off:")
        if retry:
            st.button("Try again", key="outage_retry")  # a click reruns the page: nothing more to do


def survives_outage(callback: Callable[P, None]) -> Callable[P, None]:
    """A widget's callback runs before the page, outside ``database_outage_notice``: an outage there is logged and
    said on the page that follows in the same words, instead of Streamlit's bare error box."""

    @functools.wraps(callback)
    def run(*args: P.args, **kwargs: P.kwargs) -> None:
        try:
            callback(*args, **kwargs)
        except Exception as exc:
            if not is_outage(exc):
                raise
            _log(exc)
            st.session_state[CALLBACK_OUTAGE] = True

    return run
