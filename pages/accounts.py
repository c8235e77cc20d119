"""Accounts: link banks through Plaid Link, see balances, repair and remove connections."""

from collections import Counter
from urllib.parse import urlencode, urlsplit

import streamlit as st

from pages.ui import accounts_view, link_finish, sync_watch
from pages.ui.format import bank_labels
from pages.ui.kept_view import kept_section
from pages.ui.plaid_link import plaid_link
from pages.ui.session import require_user
from pages.ui.state import container, flash, show_flash
from pages.ui.verification import verify_reminder
from services import banking, link_return, sync
from services.errors import FinsyncError

view = require_user()
c = container()
uid = view.user.id
st.title("Accounts")

# Coming back from an OAuth bank: a new browser session, so resume the stored link token.
if link_return.OAUTH_STATE_PARAM in st.query_params:
    state = link_return.oauth_state_id(st.query_params.get(link_return.OAUTH_STATE_PARAM))
    resumed = banking.resume_link(c, uid) if state else None
    if resumed is None:  # expired, finished, or never this user's: say so rather than show nothing
        flash("warning", "The bank sign-in could not be resumed; link the bank again.")
    else:
        repair = str(resumed.repair_item_id) if resumed.repair_item_id else None
        st.session_state["link_start"] = (resumed.link_token, str(resumed.link_session_id), resumed.script_url, repair)
        # Link wants the URI as received (window.location.href), oauth_state_id included; st.context.url leaves
        # out the query string and the root's "/".
        url = st.context.url
        if url and not urlsplit(url).path:
            url += "/"
        st.session_state["link_redirect"] = f"{url}?{urlencode(st.query_params.to_dict())}" if url else None
    del st.query_params[link_return.OAUTH_STATE_PARAM]  # resume once: a rerun or "Cancel" must not reopen Link

items = banking.list_items(c, uid)
with st.container():  # "Link a bank", or Link with "Cancel": one place, so the cards below keep their identity
    pending = st.session_state.get("link_start")
    if not view.user.email_verified:
        verify_reminder(view, key="accounts_resend_verification")  # the way to linking, not a refusal after a click
    elif pending is None:
        if st.button("Link a bank", type="primary", icon=":material/add_link:", key="link_start_button"):
            try:
                start = banking.start_link(c, uid)
            except FinsyncError as exc:
                st.error(str(exc))
            else:
                st.session_state["link_start"] = (start.link_token, str(start.link_session_id), start.script_url, None)
                st.rerun()
    else:
        token, link_session_id, script_url, repair_item = pending
        fixing = next((i.institution_name for i in items if str(i.id) == repair_item), "your bank")
        label = f"Sign in to {fixing} again" if repair_item else "Choose your bank"
        outcome = plaid_link(
            link_token=token,
            script_url=script_url,
            label=label,
            key=f"plaid_link_{link_session_id}",
            received_redirect_uri=st.session_state.get("link_redirect"),
        )
        if st.button("Cancel", key="link_cancel"):
            st.session_state.pop("link_start", None)
            st.rerun()
        if outcome is not None:
            link_finish.finish_link(c, uid, outcome, link_session_id, repair_item)

st.session_state.pop("link_redirect", None)
show_flash(grace=True)  # the page reruns by itself (it follows the bot): news stays long enough to be read

statuses = {s.item_id: s for s in sync.item_sync_status(c, uid)}
with st.container():  # present or not, the follow-up poll takes one place: the cards below keep their identity
    sync_watch.watch_syncing(c, uid, items, list(statuses.values()))
if not items and view.user.email_verified:
    st.info("No bank linked yet. Link one with the button above; finsync then keeps it in sync by itself.")
# A bank that needs the person comes first (its card keeps its widgets, keyed by the bank, wherever it stands).
names = Counter(i.institution_name for i in items)  # two logins at one bank: each card says which it is
labels = bank_labels(items)  # and news about it says which one it means
offered = st.session_state.get("offer_repair")  # a refused link again points at this card's Repair: it leads
for item in sorted(
    items, key=lambda i: (str(i.id) != offered, not accounts_view.needs_attention(i, statuses.get(i.id)))
):
    twin = names[item.institution_name] > 1
    accounts_view.item_card(
        c, uid, item, statuses.get(item.id), two_factor=view.user.totp_enabled, twin=twin, name=labels[item.id]
    )
kept_section(c, uid, two_factor=view.user.totp_enabled)
