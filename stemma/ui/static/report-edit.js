// The report editor's niceties. The editor is plain forms that work without script;
// this only hides the add-block fields a type does not use, checks a run set's filter
// JSON as it is typed, and lets Ctrl/Cmd+Enter save a text area's form.
"use strict";
(function () {
  function setupAddBlock() {
    const form = document.getElementById("add-block-form");
    if (!form) return;
    const type = form.querySelector("#add-type");
    const text = form.querySelector("#add-text");
    const panelFields = [form.querySelector("#add-panel-type"), form.querySelector("#add-keys")];
    const sync = function () {
      const t = type.value;
      const wantsText = t === "h1" || t === "h2" || t === "p" || t === "markdown";
      text.closest("form").querySelector('label[for="add-text"]').hidden = !wantsText;
      text.hidden = !wantsText;
      for (const f of panelFields) if (f) f.closest(".field").hidden = t !== "panel_grid";
    };
    type.addEventListener("change", sync);
    sync();
  }

  function setupFilters() {
    for (const area of document.querySelectorAll('textarea[name="filters"]')) {
      const note = document.createElement("p");
      note.className = "small error";
      note.hidden = true;
      note.setAttribute("role", "status");
      area.after(note);
      const check = function () {
        const text = area.value.trim();
        let problem = "";
        if (text) {
          try {
            const value = JSON.parse(text);
            if (value === null || typeof value !== "object" || Array.isArray(value)) problem = "Filters must be a JSON object.";
          } catch (e) {
            problem = "Not valid JSON yet: " + e.message;
          }
        }
        note.textContent = problem;
        note.hidden = !problem;
        area.setAttribute("aria-invalid", problem ? "true" : "false");
      };
      area.addEventListener("input", check);
    }
  }

  function setupShortcuts() {
    document.addEventListener("keydown", function (event) {
      const el = event.target;
      if (event.key === "Enter" && (event.ctrlKey || event.metaKey) && el.tagName === "TEXTAREA" && el.form) {
        event.preventDefault();
        el.form.requestSubmit();
      }
    });
  }

  setupAddBlock();
  setupFilters();
  setupShortcuts();
})();
