"""Model bundles: the directory format (``config``), opening one (``load``), making one from a
LatentSync checkpoint (``convert``; ``lsray convert`` in ``cli``) and what identifies one in
fingerprints (``identity``). Torch modules themselves live in :mod:`lsray.models`."""

from lsray.bundle.config import BundleConfig
from lsray.bundle.load import ModelBundle, load_bundle, register_resolver, resolve_bundle

__all__ = ["BundleConfig", "ModelBundle", "load_bundle", "register_resolver", "resolve_bundle"]
