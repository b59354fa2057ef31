// Loaded in <head> of every page (not deferred, so styles keyed on .js apply before paint).
// Lives here rather than inline so the Content-Security-Policy can forbid inline scripts.
document.documentElement.classList.add("js");

// Polling that should pause while the tab is hidden: mark the element data-when-visible.
// (htmx's `[!document.hidden]` trigger filter would need eval, which the CSP forbids.)
document.addEventListener("htmx:beforeRequest", function (event) {
  if (document.hidden && event.target.closest && event.target.closest("[data-when-visible]")) {
    event.preventDefault();
  }
});
