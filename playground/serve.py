"""python -m playground.serve: start one engine as an OpenAI-compatible server, and say how.

    python -m playground.serve --model DIR --precision fp8 --port 8001 --gpu 1       # a whole GPU each
    python -m playground.serve --model DIR --precision fp16 --port 8000 --share-gpu  # two engines, one GPU
    python -m playground.serve --backend cpu --precision fp8 --port 8001             # no GPU: the CPU engine
    python -m playground.serve --model DIR --precision fp8 --dry-run                 # print the line only

For vLLM it prints the exact `vllm serve` line (engine arguments from the planner: with
--share-gpu, each precision's gpu_memory_utilization from the side-by-side split, so that an FP16
and an FP8 server started one after the other fit on one GPU) and runs it, so the same line can be
run by hand on any node. Then point the app at the servers:

    ./run.sh app --backend openai --engine FP16=http://host:8000/v1 --engine FP8=http://host:8001/v1
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
from dataclasses import replace

from planner.engine_config import EngineConfig
from planner.errors import PlannerError
from planner.fit import PRECISIONS


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m playground.serve", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--backend", choices=["vllm", "cpu"], default="vllm",
                   help="vllm: run `vllm serve` (default); cpu: serve the embedded CPU engine (no GPU)")
    p.add_argument("--model", default="", help="vLLM: model folder or HF id")
    p.add_argument("--precision", choices=list(PRECISIONS), default="fp8",
                   help="fp16: 16-bit weights; fp8: quantization=fp8; fp8-kv8: also kv_cache_dtype=fp8")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--gpu", type=int, default=None, help="which GPU (CUDA_VISIBLE_DEVICES); default: the process's")
    p.add_argument("--share-gpu", action="store_true",
                   help="this server shares its GPU with the other precision's: use the planner's split")
    p.add_argument("--batch-size", type=int, default=16, help="--share-gpu: KV for this many sequences each ...")
    p.add_argument("--context-len", type=int, default=1024, help="... of this many tokens")
    p.add_argument("--api-key-env", default=None, help="name of an environment variable holding the API key to require")
    p.add_argument("--dry-run", action="store_true", help="print the command line and exit")
    EngineConfig.add_arguments(p)
    return p


def vllm_command(args: argparse.Namespace) -> tuple[EngineConfig, list[str]]:
    """The engine this precision gets, and the `vllm serve` words (without the environment)."""
    config = EngineConfig.from_args(args, **PRECISIONS[args.precision],
                                    gpu_ids=(args.gpu,) if args.gpu is not None else None)
    if args.share_gpu:
        from planner import model_spec, read_gpus, side_by_side_split

        # the whole GPU, as if empty: the partner server may already be running there
        gpu = replace(read_gpus(args.gpu or 0)[0].to_spec(), free_bytes=None)
        split = side_by_side_split(model_spec(args.model), gpu, batch_size=args.batch_size,
                                   context_len=args.context_len, fp8_kv_cache=args.precision == "fp8-kv8",
                                   dtype=args.dtype, max_model_len=args.max_model_len,
                                   tensor_parallel_size=args.tensor_parallel_size, enforce_eager=args.enforce_eager)
        if not split.fits:
            raise PlannerError("share_gpu", split.reason)
        chosen = split.baseline.config if args.precision == "fp16" else split.fp8.config
        # the batch limits too: `vllm serve` would otherwise take its own (8192 batched tokens, not the
        # 16,384 the split was planned with: vllm/engine/arg_utils.py, get_batch_defaults)
        config = replace(config, gpu_memory_utilization=chosen.gpu_memory_utilization,
                         max_model_len=chosen.max_model_len, dtype=chosen.dtype, max_num_seqs=chosen.max_num_seqs,
                         max_num_batched_tokens=chosen.max_num_batched_tokens)
    extra = ["--host", args.host, "--port", str(args.port)]
    return config, [config.model, *config.cli_args(), *extra]


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    api_key = None
    if args.api_key_env:
        api_key = os.environ.get(args.api_key_env)
        if not api_key and not args.dry_run:
            print(f"error: --api-key-env {args.api_key_env}: that environment variable is empty", file=sys.stderr)
            return 2
    if args.backend == "cpu":
        return _serve_cpu(args, api_key)
    if not args.model:
        print("error: --model is required with --backend vllm (a folder with config.json, or an HF id)", file=sys.stderr)
        return 2
    try:
        config, words = vllm_command(args)
    except PlannerError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    env_prefix = f"CUDA_VISIBLE_DEVICES={','.join(map(str, config.gpu_ids))} " if config.gpu_ids else ""
    key_words = f' --api-key "${args.api_key_env}"' if args.api_key_env else ""
    print(env_prefix + shlex.join(["vllm", "serve", *words]) + key_words, flush=True)
    if args.dry_run:
        return 0
    env = dict(os.environ)
    if config.gpu_ids:
        env["CUDA_VISIBLE_DEVICES"] = ",".join(map(str, config.gpu_ids))
    if api_key:
        words += ["--api-key", api_key]
    # `python -m vllm.entrypoints.cli.main` is what the `vllm` script runs; it also works where the
    # script is not on PATH (a --target install).
    os.execvpe(sys.executable, [sys.executable, "-m", "vllm.entrypoints.cli.main", "serve", *words], env)
    return 0  # not reached


def _serve_cpu(args: argparse.Namespace, api_key: str | None) -> int:
    import uvicorn

    from playground.engines.cpu_engine import CpuEngine
    from playground.openai_server import build_app

    if args.precision == "fp8-kv8":
        print("error: --precision fp8-kv8: the CPU engine has no FP8 KV cache; choose fp16 or fp8", file=sys.stderr)
        return 2
    label = "FP8" if args.precision == "fp8" else "16-bit"
    engine = CpuEngine(label, fp8=args.precision == "fp8")
    print(f"serving the CPU engine ({label}, {engine.info.model}) at http://{args.host}:{args.port}/v1", flush=True)
    uvicorn.run(build_app(engine, f"smollm2-135m-instruct-{args.precision}", api_key), host=args.host, port=args.port,
                log_level="warning")
    return 0


if __name__ == "__main__":
    sys.exit(main())
