// Stemma's shared page script: calls to the API with the session's CSRF token, the
// data blocks pages embed, and small behaviours forms opt into with data- attributes.
"use strict";
(function () {
  const Stemma = {};

  /** The session's CSRF token (from <meta name=csrf-token>), sent on unsafe calls. */
  Stemma.csrf = function () {
    const meta = document.querySelector('meta[name="csrf-token"]');
    return meta ? meta.content : "";
  };

  /** JSON embedded by the page in <script type="application/json" id=...>. */
  Stemma.data = function (id) {
    const el = document.getElementById(id);
    return el ? JSON.parse(el.textContent) : null;
  };

  /** fetch() against our API: JSON in and out, errors thrown with the server's message. */
  Stemma.api = async function (path, options) {
    const opts = Object.assign({ method: "GET", headers: {} }, options || {});
    opts.credentials = "same-origin";
    opts.headers = Object.assign({ accept: "application/json" }, opts.headers);
    if (opts.method !== "GET" && opts.method !== "HEAD") opts.headers["x-csrf-token"] = Stemma.csrf();
    if (opts.json !== undefined) {
      opts.headers["content-type"] = "application/json";
      opts.body = JSON.stringify(opts.json);
      delete opts.json;
    }
    const response = await fetch(path, opts);
    if (response.status === 204) return null;
    const type = response.headers.get("content-type") || "";
    const body = type.includes("json") ? await response.json() : await response.text();
    if (!response.ok) {
      const message = body && body.message ? body.message : response.status + " " + response.statusText;
      const error = new Error(message);
      error.status = response.status;
      error.body = body;
      throw error;
    }
    return body;
  };

  /** A short message in the page's live region (or an alert when there is none). */
  Stemma.notify = function (message, isError) {
    let box = document.getElementById("notice");
    if (!box) {
      box = document.createElement("p");
      box.id = "notice";
      box.setAttribute("role", "status");
      box.className = "flash";
      document.querySelector("main").prepend(box);
    }
    box.textContent = message;
    box.classList.toggle("error", !!isError);
  };

  document.addEventListener("submit", function (event) {
    const form = event.target;
    const question = form.getAttribute("data-confirm");
    if (question && !window.confirm(question)) event.preventDefault();
  });
  document.addEventListener("change", function (event) {
    const el = event.target;
    if (el.matches && el.matches("[data-autosubmit]") && el.form) el.form.requestSubmit();
  });

  window.Stemma = Stemma;
})();
