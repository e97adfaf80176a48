"""Where does "Model loading took X GiB" go? Load a model in vLLM and count, inside the worker,
the bytes of every parameter and buffer by (module type, tensor name, dtype), plus CUDA tensors
that belong to no module. Used to ground the planner's weight formula (docs/planner.md).

    VLLM_ALLOW_INSECURE_SERIALIZATION=1 python benchmarks/inspect_weights.py --model-dir DIR --quantization fp8
"""

from __future__ import annotations

import argparse
import json


def census(model):
    import collections
    import gc

    import torch

    groups = collections.Counter()
    seen = set()
    for _, module in model.named_modules():
        for tensor_name, tensor in list(module.named_parameters(recurse=False)) + list(module.named_buffers(recurse=False)):
            if tensor is None or not tensor.is_cuda:
                continue
            seen.add(tensor.data_ptr())
            groups[f"{type(module).__name__}.{tensor_name}:{str(tensor.dtype).replace('torch.', '')}"] += tensor.numel() * tensor.element_size()
    loose = collections.Counter()
    for obj in gc.get_objects():
        try:
            if isinstance(obj, torch.Tensor) and obj.is_cuda and obj.data_ptr() not in seen:
                loose[f"{tuple(obj.shape)}:{str(obj.dtype).replace('torch.', '')}"] += obj.numel() * obj.element_size()
        except (RuntimeError, ReferenceError):
            continue
    return {"modules": dict(groups.most_common()), "loose_top": dict(loose.most_common(15)),
            "module_bytes": sum(groups.values()), "loose_bytes": sum(loose.values()),
            "allocated_bytes": torch.cuda.memory_allocated()}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model-dir", required=True)
    p.add_argument("--quantization", default=None)
    p.add_argument("--dtype", default="auto")
    args = p.parse_args()
    from vllm import LLM

    llm = LLM(model=args.model_dir, load_format="dummy", quantization=args.quantization, dtype=args.dtype,
              max_model_len=2048, gpu_memory_utilization=0.5, enforce_eager=True, skip_tokenizer_init=True)
    result = llm.apply_model(census)[0]
    print("CENSUS " + json.dumps({"model": args.model_dir, "quantization": args.quantization, **result}))


if __name__ == "__main__":
    main()
