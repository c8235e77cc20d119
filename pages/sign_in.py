"""Sign in with email or username and password, then a code when two-factor is on."""

import re
from collections.abc import Callable
from urllib.parse import urlencode

import streamlit as st

from pages.ui import routes
from pages.ui.browser import post_and_reload
from pages.ui.outage import survives_outage
from pages.ui.reauth import take_secret
from pages.ui.session import client_ip, user_agent
from pages.ui.state import container
from services import auth, link_return, throttle
from services.container import Container
from services.errors import FinsyncError, SignInEnded

EXPIRED = "expired"  # ?signin=expired: the browser came back from a refused hand-off
BUSY = "busy"  # ?signin=busy&wait=SECONDS: refused for too many dead tickets from this address (a 429)
REFUSED = "sign_in_refused"  # session state: why the last try failed, said once on the page that follows


@survives_outage
def _check_password() -> None:
    """The form's submit, run before the page: the login stays as typed, the password goes from the screen."""
    login, password = str(st.session_state.get("sign_in_login") or ""), take_secret("sign_in_password")
    _advance(lambda c: auth.begin_sign_in(c, login=login, password=password, ip=client_ip(), user_agent=user_agent()))


@survives_outage
def _verify_code() -> None:
    challenge, code = str(st.session_state.get("sign_in_challenge") or ""), take_secret("totp_code")
    _advance(lambda c: auth.complete_totp(c, challenge=challenge, code=code, ip=client_ip(), user_agent=user_agent()))


def _advance(attempt: Callable[[Container], auth.SignInStep | str]) -> None:
    """The next stage after a step that passed (a code to ask for, or the hand-off ticket), else why it failed."""
    state = st.session_state
    try:
        step = attempt(container())
    except FinsyncError as exc:
        state[REFUSED] = str(exc)
        if isinstance(exc, SignInEnded):  # the code step is dead: back to the password, not more codes into it
            state.update(sign_in_stage="password", sign_in_challenge=None)
        return
    if isinstance(step, auth.SignInStep) and step.kind == "totp":
        state.update(sign_in_stage="totp", sign_in_challenge=step.challenge)
        return
    state.pop("sign_in_challenge", None)
    state.update(sign_in_stage="handoff", handoff_ticket=step if isinstance(step, str) else step.ticket)


def _busy_words(wait: str | None) -> str:
    """What a 429 of the hand-off means, for as long as its Retry-After says (a number in a link, so only a
    plausible one is repeated: anything else is "later")."""
    seconds = int(wait) if wait and re.fullmatch(r"[0-9]{1,6}", wait) else 0
    if 0 < seconds <= throttle.IP_WINDOW.total_seconds():
        return auth.TICKET_THROTTLED.format(when=f"in {(seconds + 59) // 60} minutes")
    return auth.TICKET_THROTTLED.format(when="later")


def _say_refusal() -> None:
    if refused := st.session_state.pop(REFUSED, None):
        st.error(refused)


st.title("Sign in to finsync")
stage = st.session_state.get("sign_in_stage", "password")
if st.query_params.get("signin") == EXPIRED:
    st.warning("Your sign-in expired before it could finish. Please sign in again.")
    del st.query_params["signin"]  # said once: a reload shows the plain form
elif st.query_params.get("signin") == BUSY:
    st.warning(_busy_words(st.query_params.get("wait")))
    del st.query_params["signin"]
    if "wait" in st.query_params:
        del st.query_params["wait"]
# Back from a bank's OAuth sign-in with the session gone: after signing in, Accounts resumes Link. Kept for this
# browser tab too, so a detour (Forgot password, Create account: page changes drop the query) does not lose it.
oauth_state = link_return.oauth_state_id(st.query_params.get(link_return.OAUTH_STATE_PARAM))
oauth_state = oauth_state or st.session_state.get(link_return.OAUTH_STATE_PARAM)
st.session_state[link_return.OAUTH_STATE_PARAM] = oauth_state
if oauth_state and stage != "handoff":
    st.info("Sign in to finish linking your bank.")
elif (asked := routes.asked_private_page()) and stage != "handoff" and "farewell" not in st.session_state:
    # (after deleting the account, the farewell above says what happened: no "sign in to open Settings" for it)
    st.info(f"Sign in to open {routes.PRIVATE[asked]}.")

if stage == "handoff":
    # The ticket is single-use and dies in 60 s; the browser trades it for the HttpOnly cookie.
    ticket = st.session_state.get("handoff_ticket", "")
    resume = link_return.after_sign_in(container().settings.plaid_redirect_uri, oauth_state)
    if resume == "/" and (asked := routes.asked_private_page()):
        resume = f"/{asked}"  # one of our page names, never a path taken from the URL
    kept = {link_return.OAUTH_STATE_PARAM: oauth_state} if oauth_state else {}  # refused: sign in again, still resume
    failed, busy = ("/?" + urlencode({"signin": why, **kept}) for why in (EXPIRED, BUSY))
    post_and_reload(
        "/auth/session", ticket, "Signing you in…", next_url=resume, failed_url=failed, busy_url=busy, key="handoff"
    )
    st.session_state["sign_in_stage"] = "password"
    st.stop()

if stage == "totp":
    with st.form("totp_form"):
        st.write("Enter the 6-digit code from your authenticator app, or one of your recovery codes.")
        st.text_input("Code", max_chars=64, key="totp_code", autocomplete="one-time-code")
        st.form_submit_button("Verify", type="primary", on_click=_verify_code)
    _say_refusal()
    if st.button("Start over", key="totp_restart"):
        st.session_state.update(sign_in_stage="password", sign_in_challenge=None)
        st.rerun()
    st.stop()

with st.form("sign_in_form"):
    st.text_input("Email or username", max_chars=320, key="sign_in_login", autocomplete="username")
    st.text_input("Password", type="password", max_chars=1024, key="sign_in_password", autocomplete="current-password")
    st.form_submit_button("Sign in", type="primary", on_click=_check_password)
_say_refusal()

st.page_link("register.py", label="New here? Create an account", icon=":material/person_add:")
st.page_link("forgot_password.py", label="Forgot your password?", icon=":material/key:")
