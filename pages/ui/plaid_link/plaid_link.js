// Opens Plaid Link (or the demo bank's stand-in, same interface) and sends the outcome to Python.
export default function (component) {
  const { data, setTriggerValue, parentElement } = component;
  const root = parentElement.querySelector(".finsync-link") || parentElement;
  root.replaceChildren();
  const button = document.createElement("button");
  button.type = "button";
  button.textContent = data.label || "Link a bank";
  const note = document.createElement("span");
  note.style.marginLeft = "0.75rem";
  root.append(button, note);

  function loadScript(src) {
    return new Promise((resolve, reject) => {
      if (window.Plaid && window.__finsyncLinkSrc === src) return resolve();
      const tag = document.createElement("script");
      tag.src = src;
      tag.async = true;
      tag.onload = () => { window.__finsyncLinkSrc = src; resolve(); };
      tag.onerror = () => reject(new Error("Link could not be loaded"));
      document.head.appendChild(tag);
    });
  }

  let handler = null;
  function open() {
    button.disabled = true;
    note.textContent = "Opening…";
    loadScript(data.script_url).then(() => {
      const config = {
        token: data.link_token,
        onSuccess: (public_token, metadata) => {
          note.textContent = "Connecting…";
          setTriggerValue("result", { kind: "success", public_token: public_token, metadata: metadata || {} });
        },
        onExit: (error, metadata) => {
          button.disabled = false;
          note.textContent = "";
          setTriggerValue("result", { kind: "exit", error: error || null, metadata: metadata || {} });
        },
        onEvent: () => {},
      };
      if (data.received_redirect_uri) config.receivedRedirectUri = data.received_redirect_uri;
      handler = window.Plaid.create(config);
      note.textContent = "";
      handler.open();
    }).catch((err) => {
      button.disabled = false;
      note.textContent = err.message + ". Check your connection and try again.";
    });
  }
  button.addEventListener("click", open);
  if (data.received_redirect_uri) open();
  return () => { if (handler && handler.destroy) handler.destroy(); };
}
