"""Torch modules only: the lip-sync UNet and its config, checkpoints, discriminator, SyncNet,
losses. Bundles (files on disk -> these modules) are :mod:`lsray.bundle`."""

from lsray.models.config import MotionModuleConfig, TemporalUpgradeConfig, UNetConfig
from lsray.models.unet import LipSyncUNet

__all__ = ["LipSyncUNet", "MotionModuleConfig", "TemporalUpgradeConfig", "UNetConfig"]
