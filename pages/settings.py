"""Settings: password, email, two-factor, sessions, activity and account deletion."""

import streamlit as st

from pages.ui import settings_sections as sections
from pages.ui.session import require_user

view = require_user()
st.title("Settings")
password, two_factor, sessions_tab, notifications, activity, account = st.tabs(
    ["Password", "Two-factor", "Sessions", "Notifications", "Activity", "Email and account"]
)
with password:
    sections.password_section(view)
with two_factor:
    sections.two_factor_section(view)
with sessions_tab:
    sections.sessions_section(view)
with notifications:
    sections.notifications_section(view)
with activity:
    sections.activity_section(view)
with account:
    sections.email_section(view)
    st.divider()
    sections.delete_section(view)
