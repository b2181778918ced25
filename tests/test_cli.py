"""The command line, run as real processes."""
from __future__ import annotations

import subprocess
import sys

import fastgw


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "fastgw", *args], capture_output=True, text=True, timeout=60)


def test_version():
    result = run("version")
    assert result.returncode == 0 and result.stdout.strip() == f"fastgw {fastgw.__version__}"


def test_check_config_ok(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("model_list:\n  - model_name: g\n    litellm_params: {model: groq/llama-3.1-8b-instant}\n")
    result = run("check-config", str(path))
    assert result.returncode == 0, result.stderr
    assert "groq" in result.stdout and "llama-3.1-8b-instant" in result.stdout


def test_check_config_error_is_one_clear_line(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("model_list:\n  - model_name: g\n    litellm_params: {model: opnai/gpt-4o}\n")
    result = run("check-config", str(path))
    assert result.returncode == 1
    assert 'model_list[0].litellm_params.model: unknown provider "opnai"' in result.stderr
    assert "Traceback" not in result.stderr


def test_serve_refuses_bad_config(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("model_list:\n  - model_name: g\n    litellm_params: {model: openai/x, timeout: -1}\n")
    result = run("serve", "--config", str(path), "--port", "0")
    assert result.returncode == 1 and "timeout: must be greater than 0" in result.stderr
    assert "Traceback" not in result.stderr


def test_serve_refuses_a_negative_busy_poll_window():
    result = run("serve", "--busy-poll-us", "-1", "--port", "0")
    assert result.returncode == 2 and "--busy-poll-us must be between 0 and 1000000" in result.stderr
