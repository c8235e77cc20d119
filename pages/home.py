"""Home: what finsync is and whether it is healthy."""

import streamlit as st

from pages.ui.state import container

st.title("finsync")
st.write("Your banks, synced by themselves: dashboards, a searchable ledger, budgets and monthly reports.")
settings = container().settings
st.caption(f"Bank connection mode: {settings.effective_plaid_env}")
