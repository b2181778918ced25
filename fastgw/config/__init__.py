from .loader import ConfigError, LoadedConfig, load_config
from .schema import Config, Deployment

__all__ = ["Config", "ConfigError", "Deployment", "LoadedConfig", "load_config"]
