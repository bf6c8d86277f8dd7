"""Torch modules and their loading: the lip-sync UNet, its config, checkpoints and bundles."""

from lsray.models.bundle import BundleConfig, ModelBundle, load_bundle, resolve_bundle
from lsray.models.config import MotionModuleConfig, TemporalUpgradeConfig, UNetConfig
from lsray.models.unet import LipSyncUNet

__all__ = [
    "BundleConfig",
    "LipSyncUNet",
    "ModelBundle",
    "MotionModuleConfig",
    "TemporalUpgradeConfig",
    "UNetConfig",
    "load_bundle",
    "resolve_bundle",
]
