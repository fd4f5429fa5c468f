"""``omnieval report``: one self-contained HTML page per run folder -- metric tables, every item with its output and
scores, think off and on side by side, failures and provenance -- built from the folder alone (the model is never
loaded).  :func:`omnieval.report.render.write_report` is the entry point; see that module for the page layout,
:mod:`.collect` for what is read, :mod:`.failures` for what counts as a failure, :mod:`.media` for the browser copies
of videos and :mod:`.urls` for linking vs embedding media."""
