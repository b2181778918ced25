"""Virtual keys, teams and users; budgets, rate limits and the cost of every request (issue 5).

Request path: ``Governance.resolve`` (auth), ``admit`` (model access, budget reservation,
rate limits), ``settle`` (cost, reconcile) — memory only. Admin path: ``manage.Manager``.
"""
from .service import Admission, Governance

__all__ = ["Admission", "Governance"]
