"""The page's few style rules (gradio's launch(css=...)): what the stock theme does not do at a phone's width."""

PAGE_CSS = """
/* a long word in a hint (an engine argument such as gpu_memory_utilization) breaks inside its field at
   390 px instead of running under the next field */
[data-testid="block-info"], .info-text { overflow-wrap: break-word; }
/* a table keeps its words whole and scrolls inside its panel: Gradio's markdown breaks a cell's words
   anywhere, and at 390 px "16-bit decode" came out a letter a line */
.prose table { display: block; overflow-x: auto; width: max-content; max-width: 100%; border: 0; padding: 0; }
.prose th, .prose td { overflow-wrap: normal; word-break: normal; }
/* a printed `vllm serve` line wraps in its box, read whole on the page (the copy button copies it as one line) */
.prose pre code { white-space: pre-wrap; overflow-wrap: anywhere; }
"""
