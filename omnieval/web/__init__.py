"""Self-contained HTML building blocks shared by the leaderboards and the run report: a table model with
Markdown / LaTeX / CSV / HTML renderings (:mod:`.table`), the page shell with its inline stylesheet and
sorting script (:mod:`.page`), and inline SVG plots (:mod:`.svg`)."""
