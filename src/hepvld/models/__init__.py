"""Model families. Each is registered under a name used by the CLI and checkpoints."""

from hepvld.models.config import PRESETS, VARIANTS, ModelConfig, model_config
from hepvld.models.registry import MODELS, build_model

__all__ = ["MODELS", "PRESETS", "VARIANTS", "ModelConfig", "build_model", "model_config"]
