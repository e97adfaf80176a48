"""Gradio builds the configuration of every block on the page for every new session, to recreate
it for deep links (gradio/state_holder.py, SessionState.__init__). Every API call opens a session,
so with this app's ~100 blocks that was the largest single cost of a request: measured with
py-spy under 64 concurrent /generate calls, 19% of the web server's time, and the reason the web
path delivered 41% of what the engines did. Here each block's configuration is built when it is
first asked for (a deep link asks for all of them), so an API call builds none.
"""

from __future__ import annotations

from copy import copy


class LazyBlockConfigs(dict):
    """SessionState.config_values that builds a block's configuration on first use."""

    def __init__(self, build, keys):
        super().__init__()
        self._build, self._pending = build, dict.fromkeys(keys)

    def _fill(self, key) -> None:
        if key in self._pending:
            del self._pending[key]
            dict.__setitem__(self, key, self._build(key))

    def _fill_all(self) -> None:
        for key in list(self._pending):
            self._fill(key)

    def __contains__(self, key) -> bool:
        return dict.__contains__(self, key) or key in self._pending

    def __getitem__(self, key):
        self._fill(key)
        return dict.__getitem__(self, key)

    def get(self, key, default=None):
        return self[key] if key in self else default

    def __setitem__(self, key, value) -> None:
        self._pending.pop(key, None)
        dict.__setitem__(self, key, value)

    def __iter__(self):
        self._fill_all()
        return dict.__iter__(self)

    def __len__(self) -> int:
        return dict.__len__(self) + len(self._pending)

    def items(self):
        self._fill_all()
        return dict.items(self)

    def keys(self):
        self._fill_all()
        return dict.keys(self)

    def values(self):
        self._fill_all()
        return dict.values(self)


def make_session_configs_lazy() -> bool:
    """Patch gradio's SessionState (once); False, and nothing changed, if its shape is not the one known."""
    from gradio import state_holder

    session_class = state_holder.SessionState
    if getattr(session_class, "_playground_lazy", False):
        return True
    original = session_class.__init__

    def __init__(self, blocks):
        original(self, _NoBlocks(blocks))  # every other attribute as gradio sets it, with no block configs built
        configs = self.blocks_config
        self.config_values = LazyBlockConfigs(lambda k: configs.config_for_block(k, [], configs.blocks[k]),
                                              [k for k in configs.blocks if k in blocks.blocks])

    try:
        probe = session_class.__new__(session_class)
        original(probe, _NoBlocks(_Shape()))
        if not isinstance(getattr(probe, "config_values", None), dict) or not hasattr(probe, "blocks_config"):
            return False
    except Exception:  # noqa: BLE001 - another gradio: leave it as it is
        return False
    session_class.__init__ = __init__
    session_class._playground_lazy = True
    return True


class _NoBlocks:
    """Looks like the Blocks to SessionState.__init__ but lists no blocks, so it builds no configs."""

    def __init__(self, blocks):
        self._blocks = blocks
        self.default_config = _EmptyConfig(blocks.default_config)
        self.blocks = {}

    def __getattr__(self, name):
        return getattr(self._blocks, name)


class _EmptyConfig:
    def __init__(self, real):
        self._real = real

    def __copy__(self):
        # SessionState copies the default config: hand it the real copy, whose blocks it then skips
        # because _NoBlocks.blocks is empty
        return copy(self._real)


class _Shape:
    default_config = type("C", (), {"blocks": {}, "__copy__": lambda self: self})()
    blocks: dict = {}
