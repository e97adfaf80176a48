"""The Gradio adapter: one builder per tab, and the public API. Only this package and app.py import Gradio."""
