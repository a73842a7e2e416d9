// The runs table of a project page. The page works without this script (the filters are a
// GET form, sorting and paging are links); this adds: selecting runs (checkboxes,
// select-all, shift-click ranges, arrow keys, remembered across pages for this tab) for
// "Compare selected", the chosen columns remembered per project (localStorage), adding and
// removing filter conditions, filtering the column list, and closing menus.
"use strict";
(function () {
  const info = Stemma.data("runs-page");
  if (!info) return;
  const form = document.getElementById("runs-filter");
  const table = document.getElementById("runs-table");
  const COLUMNS_KEY = "stemma.runs.columns:" + info.project;
  const SELECTED_KEY = "stemma.runs.selected:" + info.project;

  function load(storage, key) {
    try {
      const value = JSON.parse(storage.getItem(key));
      return Array.isArray(value) ? value.filter((v) => typeof v === "string") : null;
    } catch (e) {
      return null; // storage disabled or a stale value: start afresh
    }
  }
  function save(storage, key, value) {
    try {
      storage.setItem(key, JSON.stringify(value));
    } catch (e) {
      /* storage disabled: nothing is remembered */
    }
  }

  // ---------------------------------------------------------------- columns
  // A link without chosen columns (colset) shows the columns last chosen here.
  if (!info.colset) {
    const cols = load(localStorage, COLUMNS_KEY);
    if (cols && cols.join("\n") !== info.columns.join("\n")) {
      const url = new URL(window.location.href);
      url.searchParams.delete("col");
      url.searchParams.set("colset", "1");
      cols.forEach((c) => url.searchParams.append("col", c));
      window.location.replace(url.toString());
      return;
    }
  }
  let columnsChanged = false;
  if (form) {
    form.addEventListener("change", function (event) {
      if (event.target.name === "col") columnsChanged = true;
    });
    form.addEventListener("submit", function (event) {
      if (columnsChanged) {
        const cols = Array.from(form.querySelectorAll('input[name="col"]:checked')).map((b) => b.value);
        save(localStorage, COLUMNS_KEY, cols);
      }
      // The same query the form would send, without its empty fields and blank
      // conditions: short links to share.
      event.preventDefault();
      const entries = Array.from(new FormData(form).entries());
      const params = new URLSearchParams();
      for (let i = 0; i < entries.length; i++) {
        const [name, value] = entries[i];
        if (name === "cf" && !String(value).trim()) {
          while (i + 1 < entries.length && (entries[i + 1][0] === "co" || entries[i + 1][0] === "cv")) i++;
          continue;
        }
        if (value === "" || (name === "per" && value === "50")) continue;
        params.append(name, value);
      }
      window.location.assign(form.action + (params.toString() ? "?" + params.toString() : ""));
    });
  }
  const colFilter = document.querySelector(".columns-menu .col-filter");
  if (colFilter) {
    colFilter.hidden = false;
    colFilter.addEventListener("input", function () {
      const needle = colFilter.value.trim().toLowerCase();
      document.querySelectorAll(".columns-menu label.check").forEach(function (label) {
        label.hidden = needle !== "" && !label.textContent.toLowerCase().includes(needle);
      });
    });
  }

  // ---------------------------------------------------------------- conditions
  const conditions = document.getElementById("conditions");
  const addCondition = document.getElementById("add-condition");
  if (conditions && addCondition) {
    const blank = conditions.lastElementChild.cloneNode(true);
    const showRemove = (row) => row.querySelectorAll(".remove-condition").forEach((b) => (b.hidden = false));
    conditions.querySelectorAll(".condition").forEach(showRemove);
    addCondition.hidden = false;
    addCondition.addEventListener("click", function () {
      const row = blank.cloneNode(true);
      showRemove(row);
      conditions.appendChild(row);
      row.querySelector("input").focus();
    });
    conditions.addEventListener("click", function (event) {
      const button = event.target.closest(".remove-condition");
      if (!button) return;
      button.closest(".condition").remove();
      if (!conditions.querySelector(".condition")) addCondition.click();
      else addCondition.focus();
    });
  }

  // ---------------------------------------------------------------- menus
  document.addEventListener("click", function (event) {
    document.querySelectorAll("details.menu[open]").forEach(function (menu) {
      if (!menu.contains(event.target)) menu.open = false;
    });
  });
  document.addEventListener("keydown", function (event) {
    const typing = event.target.closest && event.target.closest("input, textarea, select");
    if (event.key === "Escape") {
      const menu = event.target.closest && event.target.closest("details.menu[open]");
      if (menu) {
        menu.open = false;
        menu.querySelector("summary").focus();
      }
    } else if (event.key === "/" && !typing) {
      const search = document.getElementById("f-q");
      if (search) {
        event.preventDefault();
        search.focus();
        search.select();
      }
    }
  });

  // ---------------------------------------------------------------- selection
  const compareForm = document.getElementById("compare-form");
  const compareButton = document.getElementById("compare-selected");
  const countLabel = document.getElementById("selection-count");
  const clearButton = document.getElementById("clear-selection");
  const selectAll = document.getElementById("select-all");
  const boxes = Array.from(document.querySelectorAll("input.run-select"));
  let selected = load(sessionStorage, SELECTED_KEY) || [];
  let anchor = null; // the last box clicked: the start of a shift-click range

  function show() {
    const onPage = new Set();
    boxes.forEach(function (box) {
      box.checked = selected.includes(box.value);
      box.closest("tr").classList.toggle("selected", box.checked);
      onPage.add(box.value);
    });
    const here = boxes.filter((b) => b.checked).length;
    if (selectAll) {
      selectAll.checked = boxes.length > 0 && here === boxes.length;
      selectAll.indeterminate = here > 0 && here < boxes.length;
    }
    const elsewhere = selected.filter((id) => !onPage.has(id)).length;
    if (countLabel) {
      countLabel.textContent = selected.length
        ? selected.length + " selected" + (elsewhere ? " (" + elsewhere + " on other pages)" : "")
        : "";
    }
    if (clearButton) clearButton.hidden = selected.length === 0;
    if (compareButton) compareButton.disabled = selected.length === 0;
  }
  function set(box, on) {
    const i = selected.indexOf(box.value);
    if (on && i < 0) selected.push(box.value);
    if (!on && i >= 0) selected.splice(i, 1);
  }
  function commit() {
    save(sessionStorage, SELECTED_KEY, selected);
    show();
  }

  if (table) {
    table.addEventListener("click", function (event) {
      const box = event.target.closest("input.run-select");
      if (!box) return;
      if (event.shiftKey && anchor && anchor !== box) {
        const a = boxes.indexOf(anchor);
        const b = boxes.indexOf(box);
        boxes.slice(Math.min(a, b), Math.max(a, b) + 1).forEach((x) => set(x, box.checked));
      } else {
        set(box, box.checked);
      }
      anchor = box;
      commit();
    });
    table.addEventListener("keydown", function (event) {
      const box = event.target.closest("input.run-select");
      if (!box || (event.key !== "ArrowDown" && event.key !== "ArrowUp")) return;
      const next = boxes[boxes.indexOf(box) + (event.key === "ArrowDown" ? 1 : -1)];
      event.preventDefault();
      if (!next) return;
      next.focus();
      if (event.shiftKey) {
        set(next, true);
        anchor = next;
        commit();
      }
    });
  }
  if (selectAll) {
    selectAll.addEventListener("change", function () {
      boxes.forEach((box) => set(box, selectAll.checked));
      commit();
    });
  }
  if (clearButton) {
    clearButton.addEventListener("click", function () {
      selected = [];
      commit();
    });
  }
  if (compareForm) {
    compareForm.addEventListener("submit", function (event) {
      event.preventDefault();
      if (!selected.length) {
        Stemma.notify("Select the runs to compare first (the boxes at the start of each row).", true);
        return;
      }
      window.location.assign(info.compare + "?runs=" + selected.map(encodeURIComponent).join(","));
    });
  }
  show();
  if (table) table.setAttribute("data-ready", "");
})();
