"""Torch modules only: the lip-sync UNet (:mod:`.unet`) and its config (:mod:`.config`),
checkpoints, discriminator, SyncNet, losses. Bundles (files on disk -> these modules) are
:mod:`lsray.bundle`.

Import from the submodules. This package hands on no names: a bundle's config
(:mod:`.config`, pydantic only) must be readable by workers that never load torch or diffusers
(render, assemble)."""
