"""The playground: engines (vLLM on a GPU, PyTorch on the CPU), side-by-side comparison, benchmark."""
