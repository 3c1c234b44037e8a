"""The QA harness: real server and device processes behind fault-injecting proxies.

``python -m simulations run SCENARIO --seed N --out DIR`` runs a scenario (a TOML
file, or a built-in one by name) and writes ``report.json`` and ``report.html``.
"""
