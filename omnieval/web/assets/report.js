/* Run report: sorting and filtering of the item cards, lazy video posters.
   Each .item-controls[data-for=ID] drives the cards (article.pair) of #ID:
   - a .sort-key button sorts by its data-key in the cards' data-keys JSON ("" = doc order, by data-index);
     the first click puts the best first (data-higher=0: ascending, else descending), a second click reverses;
     cards without that value go last in both directions; ties keep doc order;
   - .only-failures keeps cards with data-failed=1; .filter-text keeps cards whose data-text contains the text;
   - .shown b counts the visible cards.
   Videos carry data-poster; the poster is set when the video comes within 800px of the viewport. */
(function () {
  "use strict";
  function keysOf(card) {
    if (!card._keys) card._keys = JSON.parse(card.getAttribute("data-keys") || "{}");
    return card._keys;
  }
  function sortCards(box, key, dir) {
    var cards = Array.prototype.slice.call(box.querySelectorAll(":scope > article.pair"));
    var sign = dir === "ascending" ? 1 : -1;
    var rows = cards.map(function (c) {
      var v = key === "" ? parseInt(c.getAttribute("data-index"), 10) : keysOf(c)[key];
      return { card: c, v: typeof v === "number" && isFinite(v) ? v : null, i: parseInt(c.getAttribute("data-index"), 10) };
    });
    rows.sort(function (a, b) {
      if (a.v === null || b.v === null) return a.v === b.v ? a.i - b.i : (a.v === null ? 1 : -1);
      if (a.v !== b.v) return (a.v < b.v ? -1 : 1) * sign;
      return a.i - b.i;
    });
    rows.forEach(function (r) { box.appendChild(r.card); });
  }
  function applyFilters(controls, box) {
    var failures = controls.querySelector(".only-failures");
    var text = controls.querySelector(".filter-text");
    var needle = text ? text.value.trim().toLowerCase() : "";
    var shown = 0;
    Array.prototype.forEach.call(box.querySelectorAll(":scope > article.pair"), function (c) {
      var ok = (!failures || !failures.checked || c.getAttribute("data-failed") === "1") &&
               (!needle || (c.getAttribute("data-text") || "").indexOf(needle) >= 0);
      c.hidden = !ok;
      if (ok) shown += 1;
    });
    var count = controls.querySelector(".shown b");
    if (count) count.textContent = String(shown);
  }
  function setup(controls) {
    var box = document.getElementById(controls.getAttribute("data-for"));
    if (!box) return;
    controls.addEventListener("click", function (ev) {
      var btn = ev.target.closest && ev.target.closest("button.sort-key");
      if (!btn) return;
      var key = btn.getAttribute("data-key") || "";
      var first = key !== "" && btn.getAttribute("data-higher") !== "0" ? "descending" : "ascending";
      var dir = btn.getAttribute("aria-pressed") === "true" && btn.getAttribute("data-dir") === first && key !== ""
        ? (first === "ascending" ? "descending" : "ascending") : first;
      Array.prototype.forEach.call(controls.querySelectorAll("button.sort-key"), function (b) {
        b.setAttribute("aria-pressed", "false");
        b.removeAttribute("data-dir");
      });
      btn.setAttribute("aria-pressed", "true");
      btn.setAttribute("data-dir", dir);
      sortCards(box, key, dir);
    });
    controls.addEventListener("change", function () { applyFilters(controls, box); });
    controls.addEventListener("input", function () { applyFilters(controls, box); });
    applyFilters(controls, box);
  }
  function showPoster(v) {
    if (v.hasAttribute("data-poster") && !v.getAttribute("poster")) v.setAttribute("poster", v.getAttribute("data-poster"));
  }
  function lazyPosters() {
    var videos = document.querySelectorAll("video[data-poster]");
    if (!("IntersectionObserver" in window)) {
      Array.prototype.forEach.call(videos, showPoster);
      return;
    }
    var io = new IntersectionObserver(function (entries) {
      entries.forEach(function (e) {
        if (e.isIntersecting) { showPoster(e.target); io.unobserve(e.target); }
      });
    }, { rootMargin: "800px 0px" });
    Array.prototype.forEach.call(videos, function (v) { io.observe(v); });
  }
  function revealTarget() {
    var id = decodeURIComponent(location.hash.slice(1));
    var card = id && document.getElementById(id);
    if (!card || !card.hidden) return;
    var box = card.parentNode;
    var controls = document.querySelector('.item-controls[data-for="' + box.id + '"]');
    if (!controls) return;
    var f = controls.querySelector(".only-failures"), t = controls.querySelector(".filter-text");
    if (f) f.checked = false;
    if (t) t.value = "";
    applyFilters(controls, box);
    card.scrollIntoView();
  }
  Array.prototype.forEach.call(document.querySelectorAll(".item-controls"), setup);
  lazyPosters();
  window.addEventListener("hashchange", revealTarget);
})();
