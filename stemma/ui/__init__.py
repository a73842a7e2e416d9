"""The web UI: server-rendered pages (Jinja2) with a little JavaScript of our own.

* :mod:`stemma.ui.render`: the template environment and :func:`~stemma.ui.render.render`,
  which every page uses (escaping on, security headers, who is signed in, CSRF token).
* :mod:`stemma.ui.views`: the pages, one module per area (projects and runs, artifacts,
  team settings, administration). They call the same store as the API, bound to the
  signed-in caller, so a page can show no more than the API would answer.
* ``static/``: our CSS and scripts, and ``static/vendor/`` (uPlot, plotly.js) copied from
  the pinned npm packages by ``make`` (``package.json``); nothing loads from a CDN.
"""
