"""A bank card's Remove popover: disconnect the bank, its history kept or deleted, after the password."""

from __future__ import annotations

import uuid

import streamlit as st
from streamlit.delta_generator import DeltaGenerator

from pages.ui.outage import survives_outage
from pages.ui.reauth import proof_inputs, take_proof
from pages.ui.session import client_ip
from pages.ui.state import flash
from pages.ui.text import md
from services import banking
from services.banking import ItemView
from services.container import Container
from services.errors import FinsyncError

KEEP = "Keep its accounts and transactions"


def remove_form(
    c: Container, uid: uuid.UUID, item: ItemView, place: DeltaGenerator, *, two_factor: bool, label: str | None = None
) -> None:
    """The Remove popover in ``place``; what the form says back shows inside it, beside the fields. ``label``: the
    bank as the person tells it apart from another connection to it (its name when it has none)."""
    name = label or item.institution_name
    # keyed by bank: when a card above goes (this one's neighbour removed), its popover must not open here
    remove = place.popover("Remove", icon=":material/delete:", key=f"remove_popover_{item.id}")
    with remove, st.form(f"remove_form_{item.id}", border=False):
        st.write(f"Disconnect {md(name)} from finsync and from Plaid.")
        st.radio(
            "Its history",
            [KEEP, "Delete them too"],
            key=f"keep_{item.id}",
            captions=[
                "They stay in your ledger and exports; its past syncs stay in Sync history, marked (removed).",
                "Its accounts, transactions, notes and past syncs are deleted from finsync for good.",
            ],
        )
        proof_inputs(two_factor, f"remove_{item.id}")
        st.form_submit_button("Remove this bank", on_click=_remove, args=(c, uid, item.id, name))
        refused = st.session_state.pop(f"remove_error_{item.id}", None)
        if refused:
            st.error(refused)


@survives_outage
def _remove(c: Container, uid: uuid.UUID, item_id: uuid.UUID, name: str) -> None:
    """The form's submit, before the page: the password (and code) go from the screen, refused or used; the choice
    of what to keep stays as ticked."""
    proof = take_proof(f"remove_{item_id}", uid)
    if proof is None:
        return
    _, password, code = proof
    keep = st.session_state.get(f"keep_{item_id}", KEEP) == KEEP
    try:
        banking.remove_bank(c, uid, item_id, keep_history=keep, password=password, code=code, ip=client_ip())
    except FinsyncError as exc:
        st.session_state[f"remove_error_{item_id}"] = str(exc)
    else:
        flash("success", f"Removed {name}.")
