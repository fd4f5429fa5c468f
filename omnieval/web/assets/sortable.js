/* Sortable tables: a click on a header of a table.sortable sorts its body rows by that column.
   Numeric columns (th[data-type=num]) sort by the cells' data-v; the first click puts the best value
   first (th[data-higher=0]: ascending, else descending), the next click reverses. Cells without a
   value sort last in both directions; equal values keep their previous order (stable). */
(function () {
  "use strict";
  function cellKey(cell, type) {
    if (!cell) return null;
    if (type === "num") {
      var v = cell.getAttribute("data-v");
      return v === null || v === "" ? null : parseFloat(v);
    }
    var t = cell.textContent.trim().toLowerCase();
    return t === "" || t === "\u2013" ? null : t;
  }
  function sortBy(th) {
    var table = th.closest("table");
    var headers = Array.prototype.slice.call(th.parentNode.children);
    var idx = headers.indexOf(th);
    var type = th.getAttribute("data-type") || "text";
    var first = type === "num" && th.getAttribute("data-higher") !== "0" ? "descending" : "ascending";
    var dir = th.getAttribute("aria-sort") === first ? (first === "ascending" ? "descending" : "ascending") : first;
    headers.forEach(function (h) { h.removeAttribute("aria-sort"); });
    th.setAttribute("aria-sort", dir);
    var sign = dir === "ascending" ? 1 : -1;
    Array.prototype.forEach.call(table.tBodies, function (body) {
      var rows = Array.prototype.map.call(body.rows, function (r, i) {
        return { row: r, key: cellKey(r.cells[idx], type), i: i };
      });
      rows.sort(function (a, b) {
        if (a.key === null || b.key === null) {
          return a.key === b.key ? a.i - b.i : (a.key === null ? 1 : -1);
        }
        if (a.key < b.key) return -sign;
        if (a.key > b.key) return sign;
        return a.i - b.i;
      });
      rows.forEach(function (x) { body.appendChild(x.row); });
    });
  }
  document.addEventListener("click", function (ev) {
    var th = ev.target.closest && ev.target.closest("table.sortable > thead th");
    if (th) sortBy(th);
  });
})();
