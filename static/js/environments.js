// Environments pages: small enhancements on top of pages that work without JavaScript.
(function () {
  "use strict";

  // A refused action (409) carries the page's live part with the message: show it.
  document.addEventListener("htmx:beforeSwap", function (event) {
    if (event.detail.xhr.status === 409) {
      event.detail.shouldSwap = true;
      event.detail.isError = false;
    }
  });

  // After a button's request replaced the live part, put focus back where the result is: on the
  // refusal message, or on the status (the pressed button may no longer exist). Polling never moves it.
  var pressed = false;
  document.addEventListener("htmx:beforeRequest", function (event) {
    pressed = event.detail.elt.tagName === "FORM";
  });
  document.addEventListener("htmx:afterSettle", function () {
    if (!pressed) {
      return;
    }
    pressed = false;
    var active = document.activeElement;
    if (!active || active === document.body) {
      var target = document.getElementById("action-error") || document.getElementById("status-heading");
      if (target) {
        target.focus();
      }
    }
  });

  // Keep the build log scrolled to its newest line unless the reader scrolled up.
  function stickToBottom(root) {
    var log = root.querySelector ? root.querySelector(".log") : null;
    if (log) {
      log.scrollTop = log.scrollHeight;
    }
  }
  var wasAtBottom = true;
  document.addEventListener("htmx:beforeSwap", function () {
    var log = document.querySelector(".log");
    wasAtBottom = !log || log.scrollHeight - log.scrollTop - log.clientHeight < 24;
  });
  document.addEventListener("htmx:afterSettle", function () {
    if (wasAtBottom) {
      stickToBottom(document);
    }
  });

  // The create form: show the chosen image's minimums and use them as the fields' lower bounds.
  function showMinimums() {
    var select = document.getElementById("id_image_tag");
    var note = document.getElementById("image-minimums");
    if (!select || !note) {
      return;
    }
    var option = select.options[select.selectedIndex];
    var fields = [["cpu_millicores", "millicores"], ["memory_mib", "MiB"], ["disk_gib", "GiB"]];
    var parts = [];
    fields.forEach(function (pair) {
      var minimum = option ? option.getAttribute("data-min-" + pair[0]) : null;
      var input = document.getElementById("id_" + pair[0]);
      if (minimum && input) {
        input.min = minimum;
        parts.push(minimum + " " + pair[1]);
      }
    });
    note.textContent = parts.length ? "This image needs at least " + parts.join(", ") + "." : "";
  }

  document.addEventListener("DOMContentLoaded", function () {
    // After a refused submission, take keyboard and screen-reader users to the list of errors.
    var errors = document.getElementById("form-errors");
    if (errors) {
      errors.focus();
    }
    stickToBottom(document);
    var select = document.getElementById("id_image_tag");
    if (select) {
      select.addEventListener("change", showMinimums);
      showMinimums();
    }
  });
})();
