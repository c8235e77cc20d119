"""The Notifications tab of the Settings page: digests, connection alerts and amount thresholds."""

from __future__ import annotations

import streamlit as st

from pages.ui.state import container
from services import sync
from services.errors import FinsyncError
from services.sessions import SessionView


def _threshold(label: str, minor: int | None, key: str) -> float:
    """An amount in currency units; 0 turns the alert off."""
    return st.number_input(label, min_value=0.0, max_value=10_000_000.0, value=(minor or 0) / 100, step=50.0, key=key)


def _to_minor(amount: float) -> int | None:
    """Whole cents, as the box shows them: an amount it shows as 0.00 (0.004 typed) is off, as 0 is."""
    minor = round(amount * 100)
    return minor if minor > 0 else None


def notifications_section(view: SessionView) -> None:
    c = container()
    prefs = sync.get_notification_prefs(c, view.user.id)
    with st.form("notify_form"):
        digest = st.checkbox(
            "Email me a digest after a sync brings new transactions", value=prefs.digest, key="n_digest"
        )
        alerts = st.checkbox(
            "Email me when a bank connection needs my attention", value=prefs.connection_alerts, key="n_alerts"
        )
        large = _threshold(
            "Alert me about any single transaction at or above this amount, in its own currency (0 = off)",
            prefs.large_transaction_minor,
            "n_large",
        )
        low = _threshold(
            "Alert me when a checking or savings account's available balance falls below this amount, in its currency "
            "(0 = off)",
            prefs.low_balance_minor,
            "n_low",
        )
        saved = st.form_submit_button("Save notification settings")
    if saved:
        try:
            sync.set_notification_prefs(
                c,
                view.user.id,
                sync.NotificationSettings(digest, _to_minor(large), _to_minor(low), alerts),
            )
        except FinsyncError as exc:
            st.error(str(exc))
        else:
            st.success("Saved.")
