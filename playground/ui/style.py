"""The page's few style rules (gradio's launch(css=...)): what the stock theme does not do at a phone's width."""

PAGE_CSS = """
/* a long word in a hint (an engine argument such as gpu_memory_utilization) breaks inside its field at
   390 px instead of running under the next field */
[data-testid="block-info"], .info-text { overflow-wrap: break-word; }
"""
