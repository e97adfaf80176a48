"""The comparison's columns: `--engine LABEL=FOLDER[,quantization=fp8][,kv-cache-dtype=fp8]`, one per column.

A column is a model folder with its own engine settings, so one page can hold the 16-bit checkpoint,
its online FP8 twin, a published FP8 checkpoint and FP8 + FP8 KV. Parsing (the syntax) is refused at
start-up with the flag named; what a folder says (no config.json, a `quantization=` that contradicts
its `quantization_config`) is that column's own error, found by ``check_column`` when its engine
starts, so the other columns go on.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from planner.engine_config import EngineConfig
from playground.engines.base import RequestError

MIN_COLUMNS, MAX_COLUMNS = 2, 4
EMBEDDED = "smollm2-135m"  # the CPU backend's embedded model (the name `python -m playground.model_dirs` writes)
SETTINGS = {"quantization": (None, "fp8"), "kv-cache-dtype": ("auto", "fp8", "fp8_e4m3", "fp8_e5m2")}


def split_label(text: str, example: str) -> tuple[str, str]:
    """`LABEL=VALUE` → (label, value); the one parser of --engine's label, for folders and for URLs."""
    label, sep, value = str(text).partition("=")
    if not sep or not label.strip() or not value.strip():
        raise RequestError("engine", f"{text!r}: expected LABEL=VALUE, e.g. {example}")
    return label.strip(), value.strip()


@dataclass(frozen=True)
class ColumnSpec:
    """One column: what it is called, the folder it loads, and its engine settings (vLLM's names)."""

    label: str
    folder: str
    quantization: str | None = None
    kv_cache_dtype: str = "auto"

    @classmethod
    def parse(cls, text: str) -> ColumnSpec:
        label, rest = split_label(text, "FP8=/models/llama,quantization=fp8")
        folder, *settings = [p.strip() for p in rest.split(",")]
        if not folder:
            raise RequestError("engine", f"{text!r}: the folder is empty (LABEL=FOLDER[,quantization=fp8][,kv-cache-dtype=fp8])")
        values: dict[str, str | None] = {}
        for setting in settings:
            name, sep, value = setting.partition("=")
            name = name.strip().replace("_", "-")
            if not sep or name not in SETTINGS:
                raise RequestError("engine", f"{text!r}: {setting!r} is not a column setting; use "
                                             f"{', '.join(k + '=...' for k in SETTINGS)}")
            value = value.strip()
            allowed = SETTINGS[name]
            chosen = None if value.lower() in ("", "none") and None in allowed else value.lower()
            if chosen not in allowed:
                raise RequestError("engine", f"{text!r}: {name}={value!r} is not one of "
                                             f"{', '.join(str(a) for a in allowed)}")
            values[name] = chosen
        return cls(label, folder, values.get("quantization"), values.get("kv-cache-dtype") or "auto")

    def engine_config(self, args, **overrides) -> EngineConfig:
        """This column's EngineConfig: the command line's engine arguments with its own folder and settings."""
        return EngineConfig.from_args(args, model=self.folder, quantization=self.quantization,
                                      kv_cache_dtype=self.kv_cache_dtype, **overrides)

    @property
    def embedded(self) -> bool:
        return self.folder == EMBEDDED


def parse_columns(texts: list[str] | tuple[str, ...]) -> list[ColumnSpec]:
    """Every --engine of the vLLM and CPU backends; 2..4 of them, labels distinct."""
    check_count(len(texts))
    columns = [ColumnSpec.parse(t) for t in texts]
    check_labels([c.label for c in columns])
    return columns


def check_count(n: int) -> None:
    if not MIN_COLUMNS <= n <= MAX_COLUMNS:
        raise RequestError("engine", f"{n} given: the comparison takes {MIN_COLUMNS} to {MAX_COLUMNS} --engine "
                                     "columns (one --engine LABEL=... per column)")


def check_labels(labels: list[str]) -> None:
    if len({label.lower() for label in labels}) != len(labels):
        raise RequestError("engine", f"labels must differ: {', '.join(labels)}")


def checkpoint_quantization(folder: str | Path) -> str | None:
    """The method a folder's config.json names in quantization_config (None: a 16-bit checkpoint)."""
    config = json.loads((Path(folder) / "config.json").read_text())
    quant = config.get("quantization_config") or {}
    if not isinstance(quant, dict):
        raise RequestError("model", f"{folder}/config.json: quantization_config is not an object")
    return quant.get("quant_method") or None


def check_column(column: ColumnSpec) -> str | None:
    """What the column's folder says, checked as vLLM checks it (ModelConfig._verify_quantization):
    a config.json must be there, and a ``quantization=`` different from the checkpoint's own method is
    an error. Returns the checkpoint's method (None for 16-bit). Raises the column's RequestError."""
    if column.embedded:
        return None
    folder = Path(column.folder)
    if not (folder / "config.json").is_file():
        what = "has no config.json" if folder.is_dir() else "is not a folder"
        raise RequestError("engine", f"{column.folder} {what} (python -m playground.model_dirs writes one)")
    try:
        method = checkpoint_quantization(folder)
    except ValueError as e:  # json.JSONDecodeError is a ValueError
        raise RequestError("engine", f"{folder}/config.json is not valid JSON ({e})") from e
    if column.quantization and method and column.quantization != method:
        raise RequestError("engine", f"quantization={column.quantization} conflicts with {column.folder}'s "
                                     f"quantization_config ({method}); drop quantization= (vLLM reads "
                                     "the method from config.json) or pick a 16-bit folder for online FP8")
    return method
