"""The browser labeling app: labelers rank K completions per prompt, with ties, skips and flags.

`labeling_app.store.LabelStore` is the database (SQLite in WAL mode, or PostgreSQL by URL),
`labeling_app.agreement` the inter-labeler agreement math, `labeling_app.app` the Gradio UI and
`labeling_app.cli` the `rlhf label`, `rlhf users` and `rlhf export` commands. Importing this package
loads neither Gradio nor the database: import the submodule you need.
"""
