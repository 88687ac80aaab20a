// The desk's own script. Every page works without it; it only saves round trips:
// adding and removing child rows, running totals, link suggestions, select-all and
// confirmations. Loaded with `defer` from the same origin (the CSP allows nothing else).
(function () {
  "use strict";

  function parse(text) {
    var n = parseFloat(String(text || "").replace(/,/g, ""));
    return isNaN(n) ? 0 : n;
  }

  // Running totals: <output data-sum="table.field"> sums that column's inputs, and
  // <output data-diff="table.a table.b"> shows their difference.
  function sumOf(key) {
    var parts = key.split(".");
    var total = 0;
    var inputs = document.querySelectorAll("input[name^='t." + parts[0] + ".']");
    for (var i = 0; i < inputs.length; i++) {
      var name = inputs[i].name;
      if (name.slice(-(parts[1].length + 1)) === "." + parts[1] && !inputs[i].closest("template")) {
        total += parse(inputs[i].value);
      }
    }
    return total;
  }

  function refreshTotals() {
    var sums = document.querySelectorAll("output[data-sum]");
    for (var i = 0; i < sums.length; i++) {
      sums[i].value = sumOf(sums[i].getAttribute("data-sum")).toFixed(2);
    }
    var diffs = document.querySelectorAll("output[data-diff]");
    for (var j = 0; j < diffs.length; j++) {
      var keys = diffs[j].getAttribute("data-diff").split(" ");
      var diff = sumOf(keys[0]) - sumOf(keys[1]);
      diffs[j].value = diff.toFixed(2);
      var holder = diffs[j].closest("[data-balance]");
      if (holder) {
        var balanced = Math.abs(diff) < 0.005;
        holder.classList.toggle("unbalanced", !balanced);
        var note = holder.querySelector("[data-balance-note]");
        if (note) { note.textContent = balanced ? "Balanced" : "Not balanced"; }
      }
    }
  }

  // Adds a row by copying the table's <template>, numbered after the last row.
  function addRow(table) {
    var template = document.querySelector("template[data-row-template='" + table + "']");
    var body = document.querySelector("table[data-table='" + table + "'] tbody");
    if (!template || !body) { return false; }
    var next = 0;
    var rows = body.querySelectorAll("tr[data-row]");
    for (var i = 0; i < rows.length; i++) {
      next = Math.max(next, parseInt(rows[i].getAttribute("data-row"), 10) + 1);
    }
    var html = template.innerHTML
      .split("t." + table + ".0.").join("t." + table + "." + next + ".")
      .split("t-" + table + "-0-").join("t-" + table + "-" + next + "-")
      .split('value="' + table + '.0"').join('value="' + table + "." + next + '"')
      .replace(/row 1\b/g, "row " + (next + 1))
      .replace(/data-row="0"/, 'data-row="' + next + '"')
      .replace(/<th scope="row">1<\/th>/, '<th scope="row">' + (next + 1) + "</th>");
    body.insertAdjacentHTML("beforeend", html);
    var added = body.lastElementChild;
    var first = added && added.querySelector("input, select, textarea");
    if (first) { first.focus(); }
    return true;
  }

  document.addEventListener("click", function (event) {
    var target = event.target.closest ? event.target.closest("button") : null;
    if (!target) { return; }
    if (target.hasAttribute("data-add-row")) {
      if (addRow(target.getAttribute("data-add-row"))) { event.preventDefault(); refreshTotals(); }
    } else if (target.hasAttribute("data-remove-row")) {
      var row = target.closest("tr");
      var body = row && row.parentNode;
      if (row && body) {
        event.preventDefault();
        var focus = row.nextElementSibling || row.previousElementSibling;
        body.removeChild(row);
        refreshTotals();
        var into = focus && focus.querySelector("input, select, textarea, button");
        if (into) { into.focus(); }
      }
    }
  });

  document.addEventListener("input", function (event) {
    if (event.target.name && event.target.name.indexOf("t.") === 0) { refreshTotals(); }
    if (event.target.hasAttribute && event.target.hasAttribute("data-search")) { suggest(event.target); }
  });

  // Link suggestions: fills the input's <datalist> from /app/search/{entity}.
  var pending = null;
  function suggest(input) {
    var list = input.list;
    if (!list) { return; }
    clearTimeout(pending);
    pending = setTimeout(function () {
      var url = input.getAttribute("data-search") + "?q=" + encodeURIComponent(input.value);
      var company = document.querySelector("input[name='f.company']");
      if (company && input.name !== "f.company") {
        var id = document.querySelector("input[name='f.company.id']");
        if (id && id.value) { url += "&company=" + encodeURIComponent(id.value); }
      }
      fetch(url, { credentials: "same-origin" }).then(function (r) {
        return r.ok ? r.json() : [];
      }).then(function (rows) {
        while (list.firstChild) { list.removeChild(list.firstChild); }
        rows.forEach(function (row) {
          var option = document.createElement("option");
          option.value = row.title || row.id;
          list.appendChild(option);
        });
      }).catch(function () {});
    }, 150);
  }
  document.addEventListener("focusin", function (event) {
    if (event.target.hasAttribute && event.target.hasAttribute("data-search")) { suggest(event.target); }
  });

  // Select all rows of a list.
  document.addEventListener("change", function (event) {
    if (event.target.hasAttribute && event.target.hasAttribute("data-select-all")) {
      var boxes = document.querySelectorAll("input[name='ids']");
      for (var i = 0; i < boxes.length; i++) { boxes[i].checked = event.target.checked; }
    }
  });

  // Asks before a destructive action.
  document.addEventListener("submit", function (event) {
    var message = event.target.getAttribute && event.target.getAttribute("data-confirm");
    if (message && !window.confirm(message)) { event.preventDefault(); }
  });

  if (document.readyState !== "loading") { refreshTotals(); }
  else { document.addEventListener("DOMContentLoaded", refreshTotals); }
})();
