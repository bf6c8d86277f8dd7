"""Torch modules and their loading: the lip-sync UNet, its config, checkpoints and bundles."""

from lsray.models.config import MotionModuleConfig, TemporalUpgradeConfig, UNetConfig
from lsray.models.unet import LipSyncUNet

__all__ = ["LipSyncUNet", "MotionModuleConfig", "TemporalUpgradeConfig", "UNetConfig"]
