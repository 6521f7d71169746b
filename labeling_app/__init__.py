"""The browser labeling app: labelers rank K completions per prompt, with ties, skips and flags.

The database is `rlhf.store.LabelStore` (SQLite in WAL mode, or PostgreSQL by URL; shared with the
sampling stage and the simulated labelers), `labeling_app.app` is the Gradio UI on top of it and
`labeling_app.cli` the `rlhf label`, `rlhf users` and `rlhf export` commands. Importing this package
loads neither Gradio nor the database: import the submodule you need.
"""
