// The console's own behaviour: dialogs, selection, upload progress. No inline
// scripts (the Content-Security-Policy forbids them), no eval.
(function () {
  "use strict";

  // The server shows times and reads expiry dates in the browser's time zone.
  try {
    var zone = Intl.DateTimeFormat().resolvedOptions().timeZone;
    if (zone) {
      document.cookie = "screening_console_tz=" + encodeURIComponent(zone) + "; path=/; max-age=31536000; SameSite=Strict";
    }
  } catch (e) { /* keep UTC */ }

  var opener = null;

  document.addEventListener("htmx:beforeRequest", function (event) {
    var target = event.detail.target;
    if (target && target.id === "dialog-host" && !document.querySelector("#dialog-host dialog[open]")) {
      opener = document.activeElement;
    }
  });

  function openDialogs(root) {
    root.querySelectorAll("dialog").forEach(function (dialog) {
      if (dialog.open || !dialog.closest("#dialog-host")) { return; }
      dialog.showModal();
      var focus = dialog.querySelector("[aria-invalid=true]") || dialog.querySelector("[autofocus]") ||
        dialog.querySelector("input:not([type=hidden]), select, textarea, button");
      if (focus) { focus.focus(); }
      dialog.addEventListener("close", function () {
        // A replacement dialog (errors, a stale edit) takes over; the last one out returns focus.
        window.setTimeout(function () {
          if (dialog.isConnected) { dialog.remove(); }
          if (!document.querySelector("#dialog-host dialog[open]") && opener && opener.isConnected) {
            opener.focus();
          }
        }, 0);
      });
    });
  }

  document.addEventListener("click", function (event) {
    var closer = event.target.closest("[data-close]");
    if (closer) {
      var dialog = closer.closest("dialog");
      if (dialog) { dialog.close(); }
    }
  });

  function updateSelection() {
    var boxes = document.querySelectorAll("input[name=ids][form=bulk-form]");
    var chosen = Array.prototype.filter.call(boxes, function (b) { return b.checked; }).length;
    var table = document.querySelector("table.entries");
    var label = document.getElementById("selected-count");
    if (label && table) {
      label.textContent = chosen ? table.dataset.selectedSome.replace("{n}", chosen) : table.dataset.selectedNone;
    }
    document.querySelectorAll("#bulk-form button[name=action]").forEach(function (b) { b.disabled = chosen === 0; });
    var all = document.getElementById("select-all");
    if (all) {
      all.checked = chosen > 0 && chosen === boxes.length;
      all.indeterminate = chosen > 0 && chosen < boxes.length;
    }
  }

  document.addEventListener("change", function (event) {
    if (event.target.id === "select-all") {
      document.querySelectorAll("input[name=ids][form=bulk-form]").forEach(function (b) { b.checked = event.target.checked; });
    }
    if (event.target.id === "select-all" || (event.target.name === "ids" && event.target.form && event.target.form.id === "bulk-form")) {
      updateSelection();
    }
  });

  document.addEventListener("htmx:xhr:progress", function (event) {
    var form = event.target.closest && event.target.closest("#import-form");
    var bar = document.getElementById("upload-progress");
    if (form && bar && event.detail.lengthComputable) {
      bar.value = Math.round(event.detail.loaded * 100 / event.detail.total);
      bar.textContent = bar.value + "%";
    }
  });

  function onLoad(root) {
    openDialogs(document);
    root.querySelectorAll && root.querySelectorAll("input[name=time_zone]").forEach(function (input) {
      try { input.value = Intl.DateTimeFormat().resolvedOptions().timeZone || ""; } catch (e) { /* UTC */ }
    });
    if (root.querySelector && (root.querySelector("input[name=ids]") || root.matches && root.matches("tr"))) {
      updateSelection();
    }
  }

  document.addEventListener("DOMContentLoaded", function () {
    window.htmx.onLoad(onLoad);
  });
}());
