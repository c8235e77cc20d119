"""The Sessions and Activity tabs of the Settings page: where you are signed in, and what happened."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from pages.ui import session as ui_session  # read_cookie looked up at call time: one seam for tests
from pages.ui.format import activity_detail, activity_from, activity_words, device, when
from pages.ui.format import count as plural
from pages.ui.state import container, flash, show_flash
from pages.ui.text import md, unbroken
from services import audit, sessions
from services.errors import FinsyncError
from services.sessions import SessionView


def sessions_section(view: SessionView) -> None:
    c = container()
    show_flash()  # a Revoke that failed says why after its rerun
    rows = sessions.list_sessions(c, view.user.id, ui_session.read_cookie())
    for row in rows:
        # where and when under the device, each time whole with its words (a narrow column broke "2026-12-" / "07")
        about, action = st.columns([5, 1], vertical_alignment="center")
        about.text(
            device(row.user_agent) + ("  (this one)" if row.current else ""), help=md(row.user_agent[:300]) or None
        )
        about.caption(
            f"from {md(row.ip or 'unknown')} · {unbroken(f'started {when(row.created_at)}')} · "
            f"{unbroken(f'last seen {when(row.last_seen_at)}')}"
        )
        if not row.current and action.button("Revoke", key=f"revoke_{row.id}"):
            try:
                sessions.revoke_session(c, view.user.id, row.id, ip=ui_session.client_ip())
            except FinsyncError as exc:
                flash("error", str(exc))
            st.rerun()
    if len(rows) > 1 and st.button("Sign out all other sessions", key="revoke_others"):
        count = sessions.revoke_other_sessions(c, view.user.id, ui_session.read_cookie(), ip=ui_session.client_ip())
        flash("success", f"Signed out {plural(count, 'other session')}.")
        st.rerun()  # the list drawn above still shows them


def activity_section(view: SessionView) -> None:
    events = audit.list_events(container(), view.user.id)
    if not events:
        st.info("No activity yet.")
        return
    frame = pd.DataFrame(
        [
            {
                "When": when(e.at),
                "What": activity_words(e.event),
                "From": activity_from(e),
                "Detail": activity_detail(e.event, e.detail),
            }
            for e in events
        ]
    )
    st.dataframe(frame, hide_index=True, width="stretch")
