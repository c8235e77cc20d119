"""Entry script: the auth gate and router (only pages the visitor may open are registered)."""

import streamlit as st

st.set_page_config(page_title="finsync", page_icon=":material/savings:", layout="wide")

home = st.Page("home.py", title="Home", icon=":material/home:", default=True)
st.navigation([home]).run()
