"""Routing across deployments: strategies, retries, fallbacks, cooldowns, health.

Kept import-free so ``fastgw.config.loader`` can validate router settings without a cycle;
import the submodules directly (``fastgw.router.router.Router``).
"""
