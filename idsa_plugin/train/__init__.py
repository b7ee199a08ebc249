"""The trainer: ``idsa-sr train --config configs/NAME.toml``."""
from .config import TrainConfig, load_config
from .trainer import Trainer

__all__ = ["TrainConfig", "Trainer", "load_config"]
