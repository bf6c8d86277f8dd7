"""Random-weight LatentSync-format checkpoints, for tests, benchmarks and bootstrapping training.

No weights can be downloaded here, so tests and benchmarks build small models with random
weights in the exact formats lsray reads from users (OpenAI Whisper checkpoints, upstream UNet
checkpoints, diffusers VAE folders) and go through the same converter and loaders.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any


def random_vae(path: Path, seed: int = 0, channels: tuple[int, ...] = (8, 8, 16, 16)) -> Path:
    """A random 4-level AutoencoderKL saved with save_pretrained: 4 latent channels and /8
    downsampling like the SD VAE, so latents of a 256 crop are 32 x 32 as in production."""
    import torch
    from diffusers import AutoencoderKL

    torch.manual_seed(seed)
    vae = AutoencoderKL(
        block_out_channels=channels,
        layers_per_block=1,
        norm_num_groups=min(channels),
        latent_channels=4,
        down_block_types=("DownEncoderBlock2D",) * 4,
        up_block_types=("UpDecoderBlock2D",) * 4,
    )
    vae.save_pretrained(str(path), safe_serialization=True)
    return path


def random_openai_whisper(path: Path, n_state: int = 384, n_layer: int = 1, n_head: int = 6, seed: int = 0) -> Path:
    """A random Whisper encoder checkpoint in OpenAI's format (``{"dims", "model_state_dict"}``).

    384 wide like the released tiny (so its tokens fit the parity UNet's 384-d audio attention)
    but one block deep, to stay fast: 10 x 2 = 20 tokens per frame.
    """
    import torch

    g = torch.Generator().manual_seed(seed)
    dims = {"n_mels": 80, "n_audio_ctx": 1500, "n_audio_state": n_state, "n_audio_head": n_head, "n_audio_layer": n_layer,
            "n_vocab": 51865, "n_text_ctx": 448, "n_text_state": n_state, "n_text_head": n_head, "n_text_layer": 1}

    def rand(*shape: int) -> torch.Tensor:
        return torch.randn(*shape, generator=g) * 0.05

    sd = {
        "encoder.conv1.weight": rand(n_state, 80, 3), "encoder.conv1.bias": rand(n_state),
        "encoder.conv2.weight": rand(n_state, n_state, 3), "encoder.conv2.bias": rand(n_state),
        "encoder.positional_embedding": rand(1500, n_state),
        "encoder.ln_post.weight": torch.ones(n_state), "encoder.ln_post.bias": torch.zeros(n_state),
    }
    for i in range(n_layer):
        p = f"encoder.blocks.{i}."
        for name in ("query", "key", "value", "out"):
            sd[p + f"attn.{name}.weight"] = rand(n_state, n_state)
            if name != "key":
                sd[p + f"attn.{name}.bias"] = rand(n_state)
        for ln in ("attn_ln", "mlp_ln"):
            sd[p + f"{ln}.weight"], sd[p + f"{ln}.bias"] = torch.ones(n_state), torch.zeros(n_state)
        sd[p + "mlp.0.weight"], sd[p + "mlp.0.bias"] = rand(4 * n_state, n_state), rand(4 * n_state)
        sd[p + "mlp.2.weight"], sd[p + "mlp.2.bias"] = rand(n_state, 4 * n_state), rand(n_state)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"dims": dims, "model_state_dict": sd}, path)
    return path


def random_latentsync_unet(path: Path, config: dict[str, Any], seed: int = 0) -> Path:
    """An upstream-format ``latentsync_unet.pt`` (``{"global_step", "state_dict"}``) for ``config``
    (the ``model:`` section of a unet yaml), random weights, zero-initialised layers left at zero."""
    import torch

    from lsray.models.config import UNetConfig
    from lsray.models.unet import LipSyncUNet

    torch.manual_seed(seed)
    model = LipSyncUNet(UNetConfig.from_latentsync(config))
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"global_step": 0, "state_dict": model.state_dict()}, path)
    return path
