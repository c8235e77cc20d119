"""What happens when Plaid Link finishes: the public token exchanged, or the exit recorded."""

from __future__ import annotations

import uuid
from typing import Any

import streamlit as st

from pages.ui.format import bank_labels, count, masks
from pages.ui.session import client_ip
from pages.ui.sync_watch import last_attempt, watch
from services import banking
from services.container import Container
from services.errors import DuplicateConnection, FinsyncError


def finish_link(
    c: Container, uid: uuid.UUID, outcome: dict[str, Any], link_session_id: str, repair: str | None
) -> None:
    """Exchange the public token (or record the exit), then rerun with the outcome in plain words."""
    st.session_state.pop("link_start", None)
    try:
        if outcome.get("kind") != "success":
            message = banking.link_exit(
                c, uid, link_session_id=uuid.UUID(link_session_id), error=outcome.get("error"), ip=client_ip()
            )
            st.session_state["flash"] = [("warning", message)]
        elif repair:
            before = last_attempt(c, uid, uuid.UUID(repair))
            was = next((i.status for i in banking.list_items(c, uid) if str(i.id) == repair), None)
            item = banking.complete_repair(c, uid, uuid.UUID(repair), ip=client_ip())
            name = bank_labels(banking.list_items(c, uid)).get(item.id, item.institution_name)  # which of two
            if item.needs_attention:  # Plaid still says no (a login, or an error): no sync is coming to follow
                st.session_state["flash"] = [("warning", f"{name}: {item.status_message}")]
            else:
                # it was never cut off when all it asked was which new accounts to share
                done = "now shares the accounts you chose" if was == "new_accounts_available" else "is connected again"
                st.session_state["flash"] = [("success", f"{name} {done}.")]
                watch(item.id, before)
        else:
            item = banking.complete_link(
                c,
                uid,
                public_token=str(outcome.get("public_token", "")),
                metadata=dict(outcome.get("metadata") or {}),
                link_session_id=uuid.UUID(link_session_id),
                ip=client_ip(),
            )
            linked = f"Linked {item.institution_name} with {count(len(item.accounts), 'account')}."
            st.session_state["flash"] = [("success", linked)]
            watch(item.id, None)
    except DuplicateConnection as exc:
        st.session_state["flash"] = [("error", str(exc) + _which(c, uid, exc.item_id))]
        if exc.repairable:  # its card shows "Repair connection" though healthy, and comes first
            st.session_state["offer_repair"] = str(exc.item_id)
    except FinsyncError as exc:
        st.session_state["flash"] = [("error", str(exc))]
    st.rerun()


def _which(c: Container, uid: uuid.UUID, item_id: object) -> str:
    """With two connections to the bank a refusal names, which one it means: its card's accounts."""
    items = banking.list_items(c, uid)
    meant = next((i for i in items if i.id == item_id), None)
    if meant is None or sum(i.institution_name == meant.institution_name for i in items) < 2 or not masks(meant):
        return ""
    return f" It is the card of {meant.institution_name} with the accounts {masks(meant)}."
