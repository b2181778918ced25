"""Type stubs for the event loop's busy poller (fastgw/_core/busypoll.pyx)."""
import asyncio

class BusyPoll:
    """Keeps ``loop`` polling (not sleeping) for ``window`` seconds after the last activity."""

    window: float
    gap: float
    active: bool
    steps: int  # idle poll steps, each one yield of the core
    kicks: int

    def __init__(self, loop: asyncio.AbstractEventLoop, window: float, gap: float = ...) -> None: ...
    def kick(self) -> None: ...
    def __call__(self) -> None: ...
