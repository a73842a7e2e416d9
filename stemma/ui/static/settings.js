// Pages that show a secret once (a new API key, a generated password): copy buttons, and
// a reload that goes back to the settings page rather than to the secret.
"use strict";
(function () {
  async function copy(button) {
    const field = document.querySelector(button.getAttribute("data-copy"));
    if (!field) return;
    const text = field.value !== undefined ? field.value : field.textContent;
    let done = false;
    try {
      await navigator.clipboard.writeText(text);
      done = true;
    } catch (_err) {
      // No clipboard permission (plain http, an old browser): select it for Ctrl+C.
      if (field.select) field.select();
      done = document.execCommand && document.execCommand("copy");
    }
    button.textContent = done ? "Copied" : "Selected: press Ctrl+C";
  }

  document.addEventListener("click", function (event) {
    const button = event.target.closest && event.target.closest("button[data-copy]");
    if (button) copy(button);
  });

  // The secret lives only in this page's HTML: the address becomes the page the form came
  // from, so reloading (or reopening the tab) shows that page, never the secret again.
  const page = document.querySelector("[data-replace-url]");
  if (page && window.history && window.history.replaceState) {
    window.history.replaceState(null, "", page.getAttribute("data-replace-url"));
  }
})();
