"""AWS Bedrock Runtime provider (Converse / ConverseStream, SigV4 or Bedrock API keys)."""
from .provider import BedrockProvider

__all__ = ["BedrockProvider"]
