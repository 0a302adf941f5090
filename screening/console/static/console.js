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
        // An import ended while it was open: the page behind it shows the numbers before it.
        if (dialog.querySelector("[data-reload-on-close]")) {
          window.location.reload();
          return;
        }
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

  // The browser's upload to the console. htmx reports the request's and the answer's
  // progress alike, so the bar only moves forward; the answer means all was sent.
  function showUpload(percent) {
    var bar = document.getElementById("upload-progress");
    if (!bar || percent < bar.value) { return; }
    bar.value = percent;
    bar.textContent = percent + "%";
    var label = bar.parentNode.querySelector(".percent");
    if (label) { label.textContent = percent + "%"; }
  }

  document.addEventListener("htmx:beforeRequest", function (event) {
    if (event.target.id === "import-form") {
      var bar = document.getElementById("upload-progress");
      if (bar) { bar.value = 0; showUpload(0); }
    }
  });

  document.addEventListener("htmx:xhr:progress", function (event) {
    if (event.target.id === "import-form" && event.detail.lengthComputable && event.detail.total) {
      showUpload(Math.round(event.detail.loaded * 100 / event.detail.total));
    }
  });

  document.addEventListener("htmx:afterRequest", function (event) {
    if (event.target.id === "import-form" && event.detail.successful) { showUpload(100); }
  });

  // One import at a time from the dialog: its button waits while the upload it started runs.
  document.addEventListener("htmx:afterSettle", function () {
    var form = document.getElementById("import-form");
    if (!form) { return; }
    var running = document.querySelector("#import-result [data-testid=upload]:not([data-reload-on-close])");
    form.querySelectorAll("button[type=submit]").forEach(function (b) { b.disabled = running !== null; });
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
