"""A tiny component that POSTs to one of our routes and reloads: how the HttpOnly cookie is set and cleared.

With ``failed_url``, a refusal (any status but 2xx, such as the 401 for a dead sign-in ticket) loads that
page instead of ``next_url``, so the user is told instead of landing silently on the sign-in form; with
``busy_url``, a 429 (too many tries from this address) loads that one, so it is not told as an expiry.
"""

from __future__ import annotations

import streamlit as st

_JS = """
export default function (component) {
  const { data, parentElement } = component;
  const note = document.createElement("span");
  note.textContent = data.message || "";
  parentElement.appendChild(note);
  fetch(data.url, {
    method: "POST",
    credentials: "same-origin",
    headers: { "Content-Type": "text/plain" },
    body: data.body || "",
  }).then((response) => {
    if (data.stay && response.ok) { note.textContent = ""; return; }
    let target = (!response.ok && data.failed) || data.next || "/";
    if (response.status === 429 && data.busy) {  // too many tries: the page says so, and for how long
      const wait = encodeURIComponent(response.headers.get("Retry-After") || "");
      target = data.busy + (data.busy.includes("?") ? "&" : "?") + "wait=" + wait;
    }
    window.location.replace(target);
  })
    .catch(() => { note.textContent = "Could not reach the server. Reload the page."; });
  return () => {};
}
"""

_post_and_reload = st.components.v2.component("finsync_post_and_reload", js=_JS)


def post_and_reload(
    url: str,
    body: str,
    message: str,
    *,
    next_url: str = "/",
    failed_url: str = "",
    busy_url: str = "",
    key: str = "post_and_reload",
    stay: bool = False,
) -> None:
    """Ask the browser to POST ``body`` to ``url`` on our origin, then load ``next_url`` (``failed_url`` if refused).

    ``stay``: once the POST succeeds, stay on the page drawn (what it says would go with a reload). ``busy_url``:
    where a 429 (too many tries) goes instead of ``failed_url``, with ``wait=`` the answer's Retry-After added."""
    data = {"url": url, "body": body, "message": message, "next": next_url, "failed": failed_url, "busy": busy_url,
            "stay": stay}  # fmt: skip
    _post_and_reload(key=key, data=data, height=30)
