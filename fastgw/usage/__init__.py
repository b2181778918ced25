from .log import UsageLog
from .record import UsageRecord

__all__ = ["UsageLog", "UsageRecord"]
