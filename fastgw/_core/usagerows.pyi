"""Type stubs for the usage writer's row binding (fastgw/_core/usagerows.pyx)."""

KEEP: int  # bound as it is
TEXT: int  # str | None: None binds as 0, for NULLIF(?, 0) in the statement
REAL: int  # float | None: None binds as NaN, which SQLite stores as NULL
BOOL: int  # bool: binds as 0 or 1

def bindable(rows: list[tuple], kinds: bytes) -> list[tuple]:
    """The rows with each value in the form its column's kind binds as, without adaptation."""
