"""Metrics, access log, traces and the webhook: what the gateway tells operators.

Submodules are imported where used so that reading the config never pulls in
prometheus-client or OpenTelemetry.
"""
