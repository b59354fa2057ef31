/* Marks the page as scripted before it is drawn, so controls that need
 * JavaScript show only when it runs (a static file: the CSP allows no inline script). */
document.documentElement.classList.add("js");
