/* Type-ahead for the review form's taxonomy fields.
 *
 * A small component of our own (no library, no CDN): the taxonomy's names,
 * synonyms and paths come once per taxonomy version from the versioned JSON
 * URL on the page (cached by the browser: `immutable`), so the item fragments
 * carry only the item. Ranking: a name that starts with what was typed, then a
 * synonym that does, then a word of either, then a match anywhere in the path.
 * The best match is active as you type: Enter takes it, the arrows move.
 * Without JavaScript the field is a plain text box the server matches by
 * name, synonym or path. */
(function () {
  "use strict";

  var LIMIT = 8;
  var terms = null; // {category: [[value, name, [synonyms]], ...], attributes: {code: [...]}}
  var loading = null;
  var uid = 0;

  function load() {
    if (terms || loading) return loading;
    var page = document.querySelector("[data-terms-url]");
    if (!page || !page.dataset.termsUrl) return null;
    loading = fetch(page.dataset.termsUrl, { credentials: "same-origin" })
      .then(function (response) {
        if (!response.ok) throw new Error("terms " + response.status);
        return response.json();
      })
      .then(function (data) {
        terms = data;
        return data;
      })
      .catch(function () {
        loading = null; // try again on the next keystroke
      });
    return loading;
  }

  function listFor(input) {
    if (!terms) return [];
    var kind = input.dataset.terms;
    return kind === "category" ? terms.category : terms.attributes[kind] || [];
  }

  function words(text) {
    return text.toLowerCase().split(/[^a-z0-9]+/).filter(Boolean);
  }

  // Score of one typed word against one text: 0 when it does not match.
  function scoreWord(word, text, start, wordStart, anywhere) {
    var lower = text.toLowerCase();
    if (lower.indexOf(word) === 0) return start;
    if (words(lower).some(function (w) { return w.indexOf(word) === 0; })) return wordStart;
    return lower.indexOf(word) >= 0 ? anywhere : 0;
  }

  function rank(list, query) {
    var typed = words(query);
    if (!typed.length) return [];
    var whole = query.trim().toLowerCase();
    var results = [];
    list.forEach(function (term) {
      var value = term[0], name = term[1], synonyms = term[2];
      var total = 0, via = "";
      for (var i = 0; i < typed.length; i++) {
        var word = typed[i];
        var best = scoreWord(word, name, 100, 80, 30);
        var viaWord = "";
        synonyms.forEach(function (synonym) {
          var score = scoreWord(word, synonym, 70, 60, 20);
          if (score > best) {
            best = score;
            viaWord = synonym;
          }
        });
        var pathScore = scoreWord(word, value, 0, 40, 10);
        if (pathScore > best) {
          best = pathScore;
          viaWord = "";
        }
        if (!best) return; // every typed word must match something
        total += best;
        if (viaWord && !via) via = viaWord;
      }
      if (name.toLowerCase() === whole) total += 50;
      else if (synonyms.indexOf(whole) >= 0) total += 40;
      results.push({ value: value, name: name, via: via, score: total });
    });
    results.sort(function (a, b) {
      return (
        b.score - a.score ||
        a.value.split(" > ").length - b.value.split(" > ").length ||
        a.value.localeCompare(b.value)
      );
    });
    return results.slice(0, LIMIT);
  }

  function enhance(input) {
    if (input.dataset.typeahead) return;
    input.dataset.typeahead = "1";
    var id = "ta-" + ++uid;
    var box = document.createElement("ul");
    box.className = "ta-list";
    box.id = id;
    box.setAttribute("role", "listbox");
    box.hidden = true;
    input.after(box);
    input.setAttribute("role", "combobox");
    input.setAttribute("aria-autocomplete", "list");
    input.setAttribute("aria-expanded", "false");
    input.setAttribute("aria-controls", id);
    var options = [];
    var active = -1;

    function close() {
      box.hidden = true;
      box.textContent = "";
      options = [];
      active = -1;
      input.setAttribute("aria-expanded", "false");
      input.removeAttribute("aria-activedescendant");
    }

    function highlight(index) {
      active = index;
      Array.prototype.forEach.call(box.children, function (li, i) {
        li.setAttribute("aria-selected", i === index ? "true" : "false");
        if (i === index) {
          input.setAttribute("aria-activedescendant", li.id);
          li.scrollIntoView({ block: "nearest" });
        }
      });
    }

    function choose(index) {
      var option = options[index];
      if (!option) return;
      input.value = option.value;
      close();
      input.dispatchEvent(new Event("change", { bubbles: true }));
    }

    function show() {
      var found = rank(listFor(input), input.value);
      box.textContent = "";
      options = found;
      if (!found.length) {
        close();
        return;
      }
      found.forEach(function (option, index) {
        var li = document.createElement("li");
        li.id = id + "-" + index;
        li.setAttribute("role", "option");
        var name = document.createElement("span");
        name.className = "ta-name";
        name.textContent = option.name;
        li.appendChild(name);
        if (option.via) {
          var via = document.createElement("span");
          via.className = "ta-via";
          via.textContent = "“" + option.via + "”";
          li.appendChild(via);
        }
        if (option.value !== option.name) {
          var path = document.createElement("span");
          path.className = "ta-path";
          path.textContent = option.value;
          li.appendChild(path);
        }
        // mousedown, not click: the input keeps focus
        li.addEventListener("mousedown", function (event) {
          event.preventDefault();
          choose(index);
        });
        box.appendChild(li);
      });
      box.hidden = false;
      input.setAttribute("aria-expanded", "true");
      highlight(0); // Enter takes the best match
    }

    input.addEventListener("input", function () {
      if (terms) show();
      else {
        var pending = load();
        if (pending) pending.then(function () {
          if (document.activeElement === input) show();
        });
      }
    });
    input.addEventListener("focus", load);
    input.addEventListener("blur", close);
    input.addEventListener("keydown", function (event) {
      var open = !box.hidden && options.length > 0;
      if (event.key === "ArrowDown" || event.key === "ArrowUp") {
        event.preventDefault();
        if (!open) {
          show();
          return;
        }
        var step = event.key === "ArrowDown" ? 1 : -1;
        highlight((active + step + options.length) % options.length);
      } else if (event.key === "Enter" && !event.ctrlKey && open && active >= 0) {
        // Take the option; the page's Enter (next field) waits for the next press.
        event.preventDefault();
        choose(active);
      } else if (event.key === "Escape" && open) {
        event.preventDefault(); // close the list, stay in edit mode
        close();
      }
    });
  }

  function enhanceAll(root) {
    (root || document).querySelectorAll("input[data-terms]").forEach(enhance);
  }

  document.addEventListener("htmx:load", function (event) {
    enhanceAll(event.detail.elt);
  });
  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", function () {
      enhanceAll(document);
    });
  } else enhanceAll(document);

  window.loupeTypeahead = { rank: rank, load: load }; // for tests and the console
})();
