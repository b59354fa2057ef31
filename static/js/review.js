/* Review pages: keyboard shortcuts, time on screen, tag chips, leases.
 *
 * Everything here enhances forms and links that work without it: decisions
 * are plain forms (htmx posts them and swaps in the next item), Edit is a
 * link to ?edit=1, the image links to the full-size file. */
(function () {
  "use strict";

  // Keys typed into these are text, not shortcuts.
  var TEXT_INPUT =
    "input:not([type]), input[type=text], input[type=search], input[type=number], " +
    "textarea, select, [contenteditable='true'], [contenteditable='']";
  // A new item takes keys this long after it is painted: no one decides on
  // an image in less, so a double tap or a held key cannot decide it.
  var GUARD_MS = 150;

  // No decision without the item on screen. `ready` is false from the moment
  // a decision is sent until the next item is painted and GUARD_MS have
  // passed; keys and submits meanwhile are dropped (never queued) with a cue.
  // The server checks it too: the forms carry the rendering's token only once
  // the item is painted, and a decision without it is refused (409).
  var ready = false;
  var clock = { id: null, visibleMs: 0, since: null };

  function page() {
    return document.querySelector(".review-page, .bulk-page");
  }
  function mode() {
    var p = page();
    return p ? p.dataset.mode : null;
  }
  function item() {
    return document.getElementById("review-item");
  }
  function editing() {
    var el = item();
    return !!el && el.classList.contains("editing");
  }
  function csrfToken() {
    var input = document.querySelector("input[name=csrfmiddlewaretoken]");
    return input ? input.value : "";
  }

  // ---- time on screen (only while the tab is visible) -------------------------

  function clockStart(id) {
    if (clock.id === id) return; // the same item re-rendered (an edit error): keep counting
    clock.id = id;
    clock.visibleMs = 0;
    clock.since = document.hidden ? null : performance.now();
  }
  function clockSeconds() {
    var ms = clock.visibleMs + (clock.since === null ? 0 : performance.now() - clock.since);
    return (Math.min(ms, 3600000) / 1000).toFixed(1);
  }
  document.addEventListener("visibilitychange", function () {
    if (document.hidden && clock.since !== null) {
      clock.visibleMs += performance.now() - clock.since;
      clock.since = null;
    } else if (!document.hidden && clock.since === null) {
      clock.since = performance.now();
    }
  });

  function isGated(form) {
    return (
      form.method === "post" &&
      !form.classList.contains("heartbeat") &&
      !!form.closest(".review-page, .bulk-page")
    );
  }

  var cueTimer = null;
  function cue(message) {
    var el = document.querySelector(".key-cue");
    if (!el) return;
    el.textContent = message;
    el.hidden = false;
    el.classList.remove("flash");
    void el.offsetWidth; // restart the animation
    el.classList.add("flash");
    window.clearTimeout(cueTimer);
    cueTimer = window.setTimeout(function () {
      el.hidden = true;
    }, 1200);
  }
  function dropped() {
    cue("Key ignored: the next item is not on screen yet.");
  }

  // Capture phase: runs before htmx serialises (or the browser sends) the form.
  document.addEventListener(
    "submit",
    function (event) {
      var form = event.target;
      if (!(form instanceof HTMLFormElement)) return;
      if (isGated(form)) {
        if (!ready) {
          event.preventDefault();
          event.stopImmediatePropagation();
          dropped();
          return;
        }
        ready = false; // until the answer is painted
      }
      if (form.id === "edit-form") flushTagEntries();
      var seconds = form.elements.namedItem("seconds");
      if (seconds) seconds.value = clockSeconds();
    },
    true
  );

  // ---- actions ------------------------------------------------------------------

  function submit(selector) {
    var form = document.querySelector(selector);
    if (!form) return false;
    if (!ready) dropped();
    else form.requestSubmit();
    return true;
  }

  function accept() {
    var form = document.querySelector("#review-item form[data-action=accept]");
    if (!form) return false;
    var button = form.querySelector("button[type=submit]");
    if (button && button.disabled) {
      var reveal = document.querySelector("#review-item [data-action=reveal]");
      if (reveal) {
        reveal.classList.remove("nudge");
        void reveal.offsetWidth; // restart the animation
        reveal.classList.add("nudge");
      }
      return true;
    }
    return submit("#review-item form[data-action=accept]");
  }

  function firstField() {
    var el = item();
    if (!el) return null;
    var first = el.querySelector(".edit [data-first]");
    if (first && first.type === "hidden") first = first.parentNode.querySelector(".chip-entry");
    return first || el.querySelector(".edit input:not([type=hidden])");
  }

  function enterEdit() {
    var el = item();
    if (!el || !el.dataset.productId) return;
    cancelReject();
    el.classList.add("editing");
    var field = firstField();
    if (field) {
      field.focus();
      if (field.select) field.select();
    }
  }

  function leave() {
    var el = item();
    if (!el) return false;
    if (el.classList.contains("rejecting")) {
      cancelReject();
      return true;
    }
    if (el.classList.contains("editing")) {
      el.classList.remove("editing");
      if (document.activeElement) document.activeElement.blur();
      return true;
    }
    return false;
  }

  function startReject() {
    var el = item();
    if (!el) return;
    var reason = el.querySelector("form[data-action=reject] input[name=reason]");
    if (el.classList.contains("rejecting")) {
      submit("#review-item form[data-action=reject]");
      return;
    }
    el.classList.add("rejecting");
    if (reason) reason.focus();
  }

  function cancelReject() {
    var el = item();
    if (!el || !el.classList.contains("rejecting")) return;
    el.classList.remove("rejecting");
    var reason = el.querySelector("input[name=reason]");
    if (reason) {
      reason.value = "";
      reason.blur();
    }
  }

  function reveal() {
    var el = item();
    if (!el || !el.classList.contains("blind")) return;
    el.classList.remove("blind");
    el.classList.add("revealed");
    var button = el.querySelector("form[data-action=accept] button[type=submit]");
    if (button) {
      button.disabled = false;
      button.removeAttribute("title");
    }
    el.querySelectorAll(".edit input[data-suggested]").forEach(function (input) {
      if (!input.value) {
        input.value = input.dataset.suggested;
        if (input.renderChips) input.renderChips();
      }
    });
  }

  function zoom() {
    var link = document.querySelector("#review-item a.zoom");
    var dialog = document.getElementById("review-zoom");
    if (!link || !dialog) return;
    var img = dialog.querySelector("img");
    var shown = link.querySelector("img");
    img.src = link.href;
    img.classList.toggle("small", !!shown && shown.classList.contains("small"));
    dialog.showModal();
  }

  function toggleHelp() {
    var dialog = document.getElementById("review-help");
    if (!dialog) return;
    if (dialog.open) dialog.close();
    else dialog.showModal();
  }

  function nextField(from) {
    var fields = Array.prototype.slice.call(
      item().querySelectorAll(".edit input:not([type=hidden])")
    );
    var index = fields.indexOf(from);
    if (index >= 0 && index + 1 < fields.length) {
      fields[index + 1].focus();
      if (fields[index + 1].select) fields[index + 1].select(); // typing replaces, as after e
    }
  }

  // ---- tag chips ------------------------------------------------------------------

  function splitTags(text) {
    return text
      .split(",")
      .map(function (tag) {
        return tag.trim().toLowerCase();
      })
      .filter(Boolean);
  }

  function enhanceTags(root) {
    root.querySelectorAll("input.tags-input:not([data-chips])").forEach(function (input) {
      input.dataset.chips = "1";
      var box = document.createElement("div");
      box.className = "chips";
      var entry = document.createElement("input");
      entry.type = "text";
      entry.className = "chip-entry";
      entry.autocomplete = "off";
      entry.placeholder = "add a tag";
      entry.id = input.id; // the row's <label for> now points at the entry
      input.removeAttribute("id");
      if (input.hasAttribute("aria-invalid")) box.classList.add("invalid");
      if (input.hasAttribute("autofocus")) entry.autofocus = true;
      input.type = "hidden";
      box.appendChild(entry);
      input.after(box);

      function tags() {
        return splitTags(input.value);
      }
      function save(list) {
        var seen = [];
        list.forEach(function (tag) {
          if (seen.indexOf(tag) < 0) seen.push(tag);
        });
        input.value = seen.join(", ");
        render();
      }
      function render() {
        box.querySelectorAll(".chip").forEach(function (chip) {
          chip.remove();
        });
        tags().forEach(function (tag, index) {
          var chip = document.createElement("span");
          chip.className = "chip";
          chip.textContent = tag;
          var remove = document.createElement("button");
          remove.type = "button";
          remove.tabIndex = -1;
          remove.className = "chip-remove";
          remove.setAttribute("aria-label", "Remove " + tag);
          remove.textContent = "×";
          remove.addEventListener("click", function () {
            var list = tags();
            list.splice(index, 1);
            save(list);
            entry.focus();
          });
          chip.appendChild(remove);
          box.insertBefore(chip, entry);
        });
      }
      function add() {
        var text = entry.value;
        entry.value = "";
        if (text.trim()) save(tags().concat(splitTags(text)));
      }
      input.renderChips = render;
      input.flushEntry = add;
      entry.addEventListener("keydown", function (event) {
        if ((event.key === "Enter" && !event.ctrlKey) || event.key === ",") {
          event.preventDefault();
          if (entry.value.trim()) add();
        } else if (event.key === "Backspace" && entry.value === "") {
          event.preventDefault();
          save(tags().slice(0, -1));
        }
      });
      entry.addEventListener("blur", add);
      box.addEventListener("click", function (event) {
        if (event.target === box) entry.focus();
      });
      render();
    });
  }

  function flushTagEntries() {
    document.querySelectorAll("#review-item input.tags-input").forEach(function (input) {
      if (input.flushEntry) input.flushEntry();
    });
  }

  // ---- bulk grid ----------------------------------------------------------------------

  function tiles() {
    return Array.prototype.slice.call(document.querySelectorAll("#bulk .tile input[type=checkbox]"));
  }

  function bulkCount() {
    var boxes = tiles();
    var count = document.querySelector("#bulk .bulk-count");
    if (!count) return;
    var ticked = boxes.filter(function (box) {
      return box.checked;
    }).length;
    count.textContent = ticked + " of " + boxes.length + " ticked";
  }

  function moveFocus(key) {
    var boxes = tiles();
    if (!boxes.length) return;
    var index = boxes.indexOf(document.activeElement);
    if (index < 0) {
      boxes[0].focus();
      return;
    }
    var top = boxes[0].closest(".tile").offsetTop;
    var columns = boxes.filter(function (box) {
      return box.closest(".tile").offsetTop === top;
    }).length;
    var step = { ArrowLeft: -1, ArrowRight: 1, ArrowUp: -columns, ArrowDown: columns }[key];
    var next = Math.max(0, Math.min(boxes.length - 1, index + step));
    boxes[next].focus();
    boxes[next].closest(".tile").scrollIntoView({ block: "nearest" });
  }

  // ---- keyboard --------------------------------------------------------------------

  function queueKey(event, key) {
    if (key === "?") {
      toggleHelp();
      return true;
    }
    if (key === "u") return submit("form[data-action=undo]");
    var el = item();
    if (!el || !el.dataset.productId) return false;
    if (key === "z") {
      zoom();
      return true;
    }
    if (editing()) return false;
    if (!ready) {
      dropped();
      return true;
    }
    switch (key) {
      case "Enter":
        if (event.target.closest && event.target.closest("a, button, summary")) return false;
        return accept();
      case "a":
        return accept();
      case "e":
        enterEdit();
        return true;
      case "r":
        startReject();
        return true;
      case "s":
        return submit("#review-item form[data-action=skip]");
      case "v":
        reveal();
        return true;
    }
    return false;
  }

  function bulkKey(event, key) {
    if (key === "?") {
      toggleHelp();
      return true;
    }
    if (key === "a" || (key === "Enter" && !event.target.closest("a, button"))) {
      return submit("#bulk-form");
    }
    if (key.indexOf("Arrow") === 0) {
      moveFocus(key);
      return true;
    }
    return false;
  }

  document.addEventListener("keydown", function (event) {
    if (event.defaultPrevented || event.altKey || event.metaKey || event.isComposing) return;
    var current = mode();
    if (!current) return;
    var target = event.target;
    var typing = target instanceof Element && target.matches(TEXT_INPUT);
    var dialog = document.querySelector("dialog[open]");
    if (event.key === "Escape") {
      if (!dialog && leave()) event.preventDefault();
      return; // an open dialog closes itself on Escape
    }
    if (event.key === "Enter" && event.ctrlKey) {
      if (current === "queue" && editing()) {
        event.preventDefault();
        submit("#edit-form");
      }
      return;
    }
    if (dialog) {
      if (event.key === "?") {
        dialog.close();
        event.preventDefault();
      }
      return;
    }
    if (typing) {
      // Enter in an edit field moves on instead of saving half an edit.
      if (event.key === "Enter" && target.form && target.form.id === "edit-form") {
        event.preventDefault();
        nextField(target);
      }
      return;
    }
    if (event.repeat) {
      // A held key decides once: its repeats are nobody's decision.
      if (!event.ctrlKey) event.preventDefault();
      return;
    }
    if (event.ctrlKey) return;
    var key = event.key.length === 1 ? event.key.toLowerCase() : event.key;
    if (key === "?" || event.key === "?") key = "?";
    var handled = current === "bulk" ? bulkKey(event, key) : queueKey(event, key);
    if (handled) event.preventDefault();
  });

  document.addEventListener("click", function (event) {
    var target = event.target.closest ? event.target.closest("[data-action]") : null;
    if (!target || !mode()) return;
    var action = target.dataset.action;
    if (action === "edit") {
      event.preventDefault();
      enterEdit();
    } else if (action === "cancel-edit") {
      event.preventDefault();
      leave();
    } else if (action === "reveal") {
      event.preventDefault();
      reveal();
    } else if (action === "zoom") {
      event.preventDefault();
      zoom();
    } else if (action === "help") {
      toggleHelp();
    } else if (
      action === "reject" &&
      event.target.closest("button[type=submit]") &&
      !item().classList.contains("rejecting")
    ) {
      // First click opens the reason field; the second (or Enter) rejects.
      event.preventDefault();
      startReject();
    }
  });

  document.addEventListener("change", function (event) {
    if (event.target.matches && event.target.matches("#bulk .tile input[type=checkbox]")) {
      bulkCount();
    }
  });

  // Any click closes the zoomed image.
  document.addEventListener("DOMContentLoaded", function () {
    var dialog = document.getElementById("review-zoom");
    if (dialog) {
      dialog.addEventListener("click", function () {
        dialog.close();
      });
    }
  });

  // ---- htmx: set up each new item once it is painted -----------------------------

  function isDecision(elt) {
    return !(elt.classList && elt.classList.contains("heartbeat")) && elt.id !== "review-item";
  }
  document.addEventListener("htmx:afterRequest", function (event) {
    // Nothing swapped in (a network or server error): the same item is still
    // on screen and painted, so it takes keys again.
    if (isDecision(event.detail.elt) && event.detail.xhr !== swappedXhr) ready = true;
  });
  var swappedXhr = null;
  document.addEventListener("htmx:beforeSwap", function (event) {
    var status = event.detail.xhr && event.detail.xhr.status;
    if (status === 409) {
      // Refused, nothing saved: the answer is the item to look at, with why.
      event.detail.shouldSwap = true;
      event.detail.isError = false;
    }
    if (event.detail.shouldSwap) swappedXhr = event.detail.xhr;
  });

  function decoded(img) {
    return new Promise(function (resolve) {
      if (img.complete) resolve();
      else {
        img.addEventListener("load", resolve, { once: true });
        img.addEventListener("error", resolve, { once: true });
      }
    }).then(function () {
      return img.decode ? img.decode().catch(function () {}) : null;
    });
  }

  function painted(root) {
    // The images decoded (the item's, or every tile's thumbnail in bulk
    // mode), then two frames: the first frame with them is on screen.
    var images = root.querySelectorAll(".review-image img, .tiles img");
    var loaded = Promise.all(Array.prototype.map.call(images, decoded));
    return loaded.then(function () {
      return new Promise(function (resolve) {
        window.requestAnimationFrame(function () {
          window.requestAnimationFrame(resolve);
        });
      });
    });
  }

  function arm(root) {
    // The forms get the rendering's token only now: whatever was sent before
    // this point is refused by the server.
    var token = root.dataset.shownToken || "";
    root.querySelectorAll("form[method=post]").forEach(function (form) {
      if (!isGated(form) || form.matches("[data-action=undo]")) return;
      var input = form.querySelector("input[name=shown]");
      if (!input) {
        input = document.createElement("input");
        input.type = "hidden";
        input.name = "shown";
        form.appendChild(input);
      }
      input.value = token;
    });
  }

  function setUp() {
    var el = item() || document.getElementById("bulk");
    if (!el) return;
    ready = false;
    delete el.dataset.ready;
    if (el.id === "review-item") {
      clockStart(el.dataset.productId || null);
      enhanceTags(el);
    } else bulkCount();
    painted(el).then(function () {
      if ((item() || document.getElementById("bulk")) !== el) return; // replaced meanwhile
      // For bench/bulk_grid_bench.py: when the images were first all on screen.
      if (window.performance && !performance.getEntriesByName("loupe:painted").length) {
        performance.mark("loupe:painted");
      }
      arm(el);
      window.setTimeout(function () {
        if ((item() || document.getElementById("bulk")) !== el) return;
        ready = true;
        el.dataset.ready = "1"; // tests wait on this too
      }, GUARD_MS);
    });
  }
  document.addEventListener("htmx:load", function (event) {
    var elt = event.detail.elt;
    if (elt && (elt.id === "review-item" || elt.id === "bulk" || elt === document.body)) setUp();
  });
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", setUp);
  else setUp();

  function alertNote(message) {
    var el = item() || document.getElementById("bulk");
    if (!el || el.querySelector(".page-alert")) return;
    var note = document.createElement("p");
    note.className = "page-alert";
    note.setAttribute("role", "alert");
    note.textContent = message;
    el.prepend(note);
  }
  document.addEventListener("leaseLost", function () {
    alertNote("Your hold on this ran out and someone else may have it now. Reload for a fresh item.");
  });
  document.addEventListener("htmx:responseError", function () {
    alertNote("Something went wrong on the server; nothing was lost. Reload to go on.");
  });
  document.addEventListener("htmx:sendError", function () {
    alertNote("The server cannot be reached. Check the connection, then reload.");
  });
  // A session that ran out answers with the login page: go there instead of
  // swapping it into the item.
  document.addEventListener("htmx:beforeSwap", function (event) {
    var url = event.detail.xhr && event.detail.xhr.responseURL;
    var login = page() && page().dataset.loginUrl;
    if (url && login && new URL(url).pathname === login) {
      event.detail.shouldSwap = false;
      window.location.href = url;
    }
  });

  // ---- leaving the page gives the items back --------------------------------------

  window.addEventListener("pagehide", function () {
    var p = page();
    var shown = item() || document.getElementById("bulk");
    if (!p || !shown || !shown.dataset.shownToken || !navigator.sendBeacon) return;
    var ids = [];
    if (p.dataset.mode === "bulk") {
      ids = tiles().map(function (box) {
        return box.value;
      });
    } else if (item() && item().dataset.productId) {
      ids = [item().dataset.productId];
    }
    if (!ids.length) return;
    var body = new FormData();
    body.append("csrfmiddlewaretoken", csrfToken());
    body.append("page", shown.dataset.shownToken);
    body.append("mode", p.dataset.mode);
    ids.forEach(function (id) {
      body.append("product", id);
    });
    navigator.sendBeacon(p.dataset.releaseUrl, body);
  });

  // Back from the bfcache: the items were released on the way out, so claim afresh.
  window.addEventListener("pageshow", function (event) {
    if (event.persisted && page()) window.location.reload();
  });
})();
