"""The Users and audit page's tabs: users and what an admin may do to one, the audit log, the mail outbox,
bank revocations and the sync bot's health."""

import uuid

import pandas as pd
import streamlit as st

from pages.ui.format import activity_detail, activity_from, activity_words, count, when
from pages.ui.text import md, unbroken
from services import admin, scheduler
from services.admin import AdminUserRow
from services.bot_health import BotHealth
from services.container import Container
from services.errors import FinsyncError


def users_tab(c: Container, admin_id: uuid.UUID, rows: list[AdminUserRow]) -> None:
    """Every user in a table; one chosen below, with what an admin may do to them."""
    st.dataframe(
        pd.DataFrame(
            [
                {
                    "Username": r.username,
                    "Email": r.email,
                    "Role": r.role,
                    "Status": "stopped until password reset or unlock"
                    if r.stopped
                    else (f"paused until {when(r.locked_until)}" if r.locked_until else r.status),
                    "Email verified": r.email_verified,
                    "Two-factor": r.totp_enabled,
                    "Last sign-in": when(r.last_sign_in_at),
                    "Created": when(r.created_at),
                }
                for r in rows
            ]
        ),
        hide_index=True,
        width="stretch",
    )
    for message in st.session_state.pop("admin_flash", []):
        st.success(message)
    by_label = {f"{r.username} <{r.email}>": r for r in rows}
    choice = st.selectbox("User", list(by_label), key="admin_user", index=None, placeholder="Choose a user")
    if choice:
        _user_actions(c, admin_id, by_label[choice])


def _user_actions(c: Container, admin_id: uuid.UUID, target: AdminUserRow) -> None:
    yourself = target.id == admin_id
    if yourself:
        st.caption("This is you: sign out with Sign out, and end your other sessions in Settings → Sessions.")
    cols = st.columns(3)
    try:
        paused = target.stopped or target.locked_until is not None
        if cols[0].button("Unlock", key="admin_unlock", disabled=not paused, help=None if paused else "Not paused"):
            admin.unlock_user(c, admin_id, target.id)
            st.session_state["admin_flash"] = [f"{md(target.username)} can sign in again."]
            st.rerun()  # the table above still shows the pause, and Unlock is still offered
        with cols[1].popover("Force sign-out", disabled=yourself):
            st.write(f"End every session of {md(target.username)}? They can sign in again.")
            if st.button("Sign them out everywhere", key="admin_signout", type="primary"):
                ended = admin.force_sign_out(c, admin_id, target.id)
                st.session_state["admin_flash"] = [f"Signed out {md(target.username)}: {count(ended, 'session')}."]
                st.rerun()
        disabled = target.status == "disabled"
        with cols[2].popover("Enable" if disabled else "Disable", disabled=yourself):
            st.write(
                f"Let {md(target.username)} sign in again?"
                if disabled
                else f"Stop {md(target.username)} from signing in, and end every session now?"
            )
            confirmed = st.button("Enable" if disabled else "Disable", key="admin_disable", type="primary")
        if confirmed:
            admin.set_disabled(c, admin_id, target.id, not disabled)
            done = "enabled: they can sign in again" if disabled else "disabled and signed out everywhere"
            st.session_state["admin_flash"] = [f"{md(target.username)} is {done}."]
            st.rerun()
    except FinsyncError as exc:
        st.error(str(exc))


def audit_tab(c: Container, admin_id: uuid.UUID, names: dict[uuid.UUID, str]) -> None:
    events = admin.audit_log(c, admin_id)

    def who(user_id: object) -> str:
        return names.get(user_id, "(deleted account)") if user_id else ""  # type: ignore[call-overload]

    table = [
        {
            "When": when(e.at),
            "Event": activity_words(e.event),
            "Account": who(e.user_id),
            "By": who(e.actor_id),
            "From": activity_from(e, "—"),
            "Detail": activity_detail(e.event, e.detail),
        }
        for e in events
    ]
    st.dataframe(pd.DataFrame(table), hide_index=True, width="stretch")


def outbox_tab(c: Container, admin_id: uuid.UUID) -> None:
    waiting = admin.waiting_mail(c, admin_id)
    if waiting:
        st.warning(
            f"{count(len(waiting), 'email')} could not be sent yet. finsync retries (1 minute, doubling up to 30 "
            "minutes) until each one is past its use (a reset link after 30 minutes); check SMTP_URL and the mail server."
        )
        rows = [{"Kind": m.kind, "Tries": m.attempts, "Last error": m.last_error or "", "Queued": when(m.created_at, ""),
                 "Next try": when(m.next_attempt_at, ""), "Dropped after": when(m.expires_at, "")} for m in waiting]  # fmt: skip
        st.dataframe(pd.DataFrame(rows), hide_index=True, width="stretch")
    elif c.settings.smtp_url:
        st.success("Every email went out: nothing is waiting for the mail server.")
    path, messages = admin.outbox(c, admin_id)
    if c.settings.smtp_url:
        st.write("Mail goes out through the server in SMTP_URL.")
    else:
        st.write(f"Without SMTP_URL, mail is written as .eml files to `{path}`.")
    if messages or not c.settings.smtp_url:
        outbox = [{"Sent": when(m.date, ""), "To": m.to, "Subject": m.subject, "File": m.name} for m in messages]
        st.dataframe(pd.DataFrame(outbox), hide_index=True, width="stretch")


def revocations_tab(c: Container, admin_id: uuid.UUID) -> None:
    queued = admin.pending_revocations(c, admin_id)
    st.write(
        "Bank connections deleted here whose revocation Plaid has not confirmed. finsync retries them "
        "(5 minutes, doubling up to 6 hours) for 7 days."
    )
    if not queued:
        st.info("No bank connections waiting to be revoked.")
    else:
        given_up = [r for r in queued if r.outcome == "given_up"]
        if given_up:
            st.warning(
                f"finsync stopped trying for {count(len(given_up), 'connection')}: remove these items in the Plaid "
                "Dashboard, or Plaid keeps them (and bills them)."
            )
        table = pd.DataFrame([r.__dict__ for r in queued]).drop(columns=["id"])
        st.dataframe(table, hide_index=True, width="stretch")


def bot_tab(c: Container, admin_id: uuid.UUID) -> None:
    bot = admin.bot_health(c, admin_id)
    _bot_state(bot)
    _bot_figures(bot)


def _bot_state(bot: BotHealth) -> None:
    """Whether the bot keeps up, in words: what is waiting, failing or lost, and why."""
    hours = f"{bot.behind_after.total_seconds() / 3600:g} hours"
    if (waited := bot.waiting_for) is not None:
        minutes = int(waited.total_seconds() // 60)
        who = (
            "the workers are busy"
            if bot.running and not bot.stalled
            else "no scheduler or worker is picking them up: is the app running, or a "
            "`python -m services.cli worker`, against this database?"
        )
        st.error(f"{count(bot.due, 'sync')} due, the oldest waiting {minutes} minutes: {who}")
    elif bot.behind:
        st.warning(
            f"{count(bot.behind, 'connected bank')} not synced for over {hours}: the bot runs but their syncs fail. "
            "Their owners' Sync history says why; so does the server log."
        )
    elif bot.keeping_up:
        # a bank that has only answered "preparing" (or not yet been asked) has not synced: not "every bank synced"
        pending = bot.preparing + bot.unsynced
        others = "every other" if pending else "every"
        banks = (
            "no bank is connected yet"
            if not bot.banks
            else f"{others} connected bank synced within {hours}"
            if bot.banks - bot.need_owner > pending
            else "no connected bank has synced yet"
        )
        st.success(f"The bot keeps up: no sync is waiting, and {banks}.")
        if bot.preparing:
            st.info(
                f"Not synced yet: {count(bot.preparing, 'connected bank')} whose bank is still preparing the first "
                "data. Nothing to do: the bot asks again and syncs once the bank is ready."
            )
        if bot.unsynced:
            st.info(f"Not synced yet: {count(bot.unsynced, 'connected bank')} waiting for its first sync.")
    if bot.stalled:  # not keeping up either, though its sync is taken over by the next pass
        st.warning(
            f"{count(bot.stalled, 'running sync')} lost its worker (the lease ran out): the next pass of any "
            "worker takes it over."
        )


def _bot_figures(bot: BotHealth) -> None:
    """The queue in numbers, this server's scheduler, and the workers."""
    due, later, running, done, failed = st.columns(5)
    due.metric("Due now", bot.due)
    later.metric("Queued for later", bot.later)
    running.metric("Running", len(bot.running))
    done.metric("Done, last 24 h", bot.done_24h)
    failed.metric("Failed, last 24 h", bot.failed_24h)
    here = "runs" if scheduler.running_here() else "does not run"
    st.caption(
        f"This server's scheduler {here}. Last job finished: {unbroken(when(bot.last_finished_at))}. "
        f"{count(bot.banks, 'bank connection')}; {bot.need_owner} waiting for their owner (sign in again at the "
        "bank, or link it again): the bot does not retry those, it probes them once a day."
    )
    if bot.running:
        jobs = [{"Worker": r.worker, "Due at": when(r.due_at), "Lease until": when(r.lease_expires_at, ""),
                 "Stalled": "yes" if r.stalled else ""} for r in bot.running]  # fmt: skip
        st.dataframe(pd.DataFrame(jobs), hide_index=True, width="stretch")
    if bot.workers_24h:
        st.write("Workers that finished a sync in the last 24 hours:")
        st.dataframe(pd.DataFrame({"Worker": list(bot.workers_24h)}), hide_index=True, width="stretch")
