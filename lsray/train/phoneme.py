"""Phoneme-CTC Wav2Vec2 training on the synthetic world's speech (``job: phoneme``, upgrade 1).

The fused audio branch reads a phoneme-CTC Wav2Vec2's hidden states; none can be downloaded here,
so this job trains one from random init on espeak speech whose phonemes are known exactly
(:mod:`lsray.train.phoneme_data`). One step: whole utterances, padded, with attention masks (CTC
needs every labelled phoneme inside the input, and a fixed-length crop would cut phonemes at its
edges; utterances are 1-4 s, so padding wastes little), white noise on half of them, each
normalised to zero mean / unit variance as :class:`PhonemeEncoder` normalises a file, then
transformers' CTC loss (``labels``; blank = index 0 = ``pad_token_id``).

Export (:meth:`PhonemeJob.export`): ``PhonemeEncoder.save_pretrained`` whose projection is a fixed
standardisation of the hidden states (:func:`standardising_projection`, measured over training
speech), so fused tokens get unit-scale phoneme entries without a trained projection; plus
``vocab.json`` and ``eval.json``: the phoneme error rate of greedy CTC decodes on held-out
test-split utterances (and on training utterances, and two no-skill baselines).
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import numpy as np
import torch

from lsray.eval.per import PERResult, ctc_greedy_decode, phoneme_error_rate
from lsray.train.config import PhonemeTrainConfig
from lsray.train.optim import clipped_step, data_parallel, set_lr, warmup_cosine_lr
from lsray.train.phoneme_vocab import label_symbols, phoneme_vocabulary

VOCAB_FILE = "vocab.json"
EVAL_FILE = "eval.json"


def phoneme_model_config(cfg: PhonemeTrainConfig):
    """The ``Wav2Vec2Config`` of the job (conv kernels / strides: transformers' defaults, 320 per frame)."""
    from transformers import Wav2Vec2Config

    m = cfg.model
    return Wav2Vec2Config(
        vocab_size=len(phoneme_vocabulary()), pad_token_id=0, hidden_size=m.hidden_size,
        num_hidden_layers=m.num_hidden_layers, num_attention_heads=m.num_attention_heads,
        intermediate_size=m.intermediate_size, conv_dim=m.conv_dim, num_conv_pos_embeddings=m.num_conv_pos_embeddings,
        num_conv_pos_embedding_groups=m.num_conv_pos_embedding_groups, feat_extract_activation=m.conv_activation,
        feat_extract_norm="layer",
        do_stable_layer_norm=True, hidden_dropout=m.dropout, attention_dropout=m.dropout,
        activation_dropout=m.dropout, feat_proj_dropout=m.dropout, final_dropout=m.dropout, layerdrop=0.0,
        mask_time_prob=m.mask_time_prob, mask_time_min_masks=0,  # ~mask_time_prob of frames, none forced
        ctc_loss_reduction="mean", ctc_zero_infinity=True,
    )


def normalize_batch(wave: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-utterance zero mean / unit variance over its own samples (PhonemeEncoder's formula),
    padding kept at 0: (B, N) -> (B, N) and the attention mask (B, N) long."""
    mask = (torch.arange(wave.shape[1])[None, :] < lengths[:, None]).to(wave.dtype)  # (B, N)
    n = lengths.to(wave.dtype)[:, None]
    mean = (wave * mask).sum(1, keepdim=True) / n
    var = (((wave - mean) * mask) ** 2).sum(1, keepdim=True) / n
    return (wave - mean) / torch.sqrt(var + 1e-7) * mask, mask.long()


def add_noise(wave: torch.Tensor, lengths: torch.Tensor, snr_db: tuple[float, float]) -> torch.Tensor:
    """White noise on a random half of the utterances at an SNR drawn uniformly from ``snr_db``."""
    mask = (torch.arange(wave.shape[1])[None, :] < lengths[:, None]).to(wave.dtype)  # (B, N)
    rms = ((wave**2 * mask).sum(1) / lengths.to(wave.dtype)).sqrt()  # (B,)
    snr = torch.empty_like(rms).uniform_(*snr_db)
    on = (torch.rand_like(rms) < 0.5).to(wave.dtype)
    return wave + torch.randn_like(wave) * (on * rms * 10 ** (-snr / 20))[:, None] * mask


def standardising_projection(
    mean: torch.Tensor, std: torch.Tensor, out_dim: int, seed: int = 0
) -> tuple[torch.Tensor, torch.Tensor]:
    """Linear weights (out, H) and bias (out,) that standardise hidden states per dimension and,
    when H != out, map them with a fixed seeded orthogonal matrix whose rows are scaled to unit
    norm, so every output entry is a unit-norm mix of unit-variance dims (unit scale)."""
    h = mean.numel()
    if h == out_dim:
        rot = torch.eye(h)
    else:
        g = torch.Generator().manual_seed(seed)
        q = torch.linalg.qr(torch.randn(max(h, out_dim), min(h, out_dim), generator=g, dtype=torch.float64)).Q
        rot = (q if out_dim > h else q.T).float()  # (out, H), orthonormal columns / rows
        rot = rot / rot.norm(dim=1, keepdim=True)
    scale = 1.0 / std.clamp_min(1e-6)
    weight = rot * scale[None, :]  # (out, H)
    return weight, -(weight @ mean)


@torch.no_grad()
def hidden_moments(encoder, waves: list[np.ndarray]) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-dimension mean and std (H,) of the encoder's hidden states over ``waves`` (the inference path)."""
    total = None
    for w in waves:
        h = encoder.hidden_frames(w).double()  # (F, H)
        part = torch.stack([h.sum(0), (h * h).sum(0), torch.full((h.shape[1],), float(h.shape[0]), dtype=torch.float64)])
        total = part if total is None else total + part
    mean = total[0] / total[2]
    return mean.float(), (total[1] / total[2] - mean**2).clamp_min(0).sqrt().float()


@torch.no_grad()
def greedy_decode(encoder, wave: np.ndarray) -> list[int]:
    """Label indices of one utterance: the CTC head on the encoder's hidden frames, best path."""
    logits = encoder.model.lm_head(encoder.hidden_frames(wave).to(encoder.device))  # (F, V)
    return ctc_greedy_decode(logits.argmax(-1).tolist(), blank=0)


def evaluate(encoder, rows: list[dict[str, np.ndarray]]) -> tuple[PERResult, list[list[int]]]:
    """PER of greedy decodes of ``rows`` (``{"wave" int16, "labels"}``), and the decodes."""
    from lsray.train.phoneme_data import PCM_SCALE

    hyps = [greedy_decode(encoder, r["wave"].astype(np.float32) / PCM_SCALE) for r in rows]
    return phoneme_error_rate([r["labels"].tolist() for r in rows], hyps), hyps


def baselines(refs: list[list[int]], train_refs: list[list[int]], seed: int = 0) -> dict[str, float]:
    """No-skill PERs for comparison: nothing decoded (1.0); the most frequent training phoneme
    repeated to each reference's length; phonemes drawn from the training unigram distribution at
    each reference's length."""
    flat = np.concatenate([np.asarray(r, dtype=np.int64) for r in train_refs])
    counts = np.bincount(flat, minlength=len(phoneme_vocabulary()))
    top = int(counts.argmax())
    rng = np.random.default_rng(seed)
    unigram = [rng.choice(len(counts), size=len(r), p=counts / counts.sum()).tolist() for r in refs]
    return {
        "empty": phoneme_error_rate(refs, [[] for _ in refs]).per,
        "most_frequent": phoneme_error_rate(refs, [[top] * len(r) for r in refs]).per,
        "unigram": phoneme_error_rate(refs, unigram).per,
    }


class PhonemeJob:
    """Model, optimizer and step of the phoneme-CTC training on one worker."""

    def __init__(self, cfg: PhonemeTrainConfig, device: torch.device, world: int = 1) -> None:
        from transformers import Wav2Vec2ForCTC

        self.cfg, self.device = cfg, device
        self.net = Wav2Vec2ForCTC(phoneme_model_config(cfg)).to(device).train()
        # find_unused_parameters: the time-mask embedding is used only on steps that draw a mask
        self.model = data_parallel(self.net, world, find_unused_parameters=True)
        self.opt = torch.optim.AdamW(self.net.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)

    def state_dict(self) -> dict[str, Any]:
        return {"model": self.net.state_dict(), "opt": self.opt.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.net.load_state_dict(state["model"])
        self.opt.load_state_dict(state["opt"])

    def losses(self, batch: dict[str, torch.Tensor], step: int) -> dict[str, torch.Tensor]:
        wave, lengths = batch["wave"], batch["lengths"].long()  # (B, N) in [-1, 1], (B,)
        if self.net.training and self.cfg.data.noise_snr_db is not None:
            wave = add_noise(wave, lengths, self.cfg.data.noise_snr_db)
        x, mask = normalize_batch(wave, lengths)  # (B, N), (B, N)
        out = self.model(input_values=x.to(self.device), attention_mask=mask.to(self.device),
                         labels=batch["labels"].long().to(self.device))  # logits (B, F, V)
        return {"total": out.loss, "ctc": out.loss.detach()}

    def step(self, batch: dict[str, torch.Tensor], step: int) -> dict[str, float]:
        cfg = self.cfg
        lr = warmup_cosine_lr(step, cfg.lr, cfg.steps, cfg.warmup_steps, cfg.min_lr_ratio)
        set_lr(self.opt, lr)
        out = self.losses(batch, step)
        grad = clipped_step(self.opt, out["total"], self.cfg.max_grad_norm)
        return {**{k: float(v.detach()) for k, v in out.items()}, "grad_norm": grad, "lr": lr}

    def export(self, out: str) -> dict[str, Any]:
        """Write the encoder folder, ``vocab.json`` and ``eval.json`` (also printed); returns the eval."""
        from lsray.audio.phoneme import PhonemeEncoder
        from lsray.media.atomic import atomic_directory
        from lsray.train.phoneme_data import PCM_SCALE, local_utterances

        cfg = self.cfg
        encoder = PhonemeEncoder(copy.deepcopy(self.net), device=torch.device("cpu"))  # eval mode, training copy untouched
        train_rows = local_utterances(cfg.data, "train", limit=max(cfg.stats_utterances, cfg.data.test_utterances))
        stats_waves = [r["wave"].astype(np.float32) / PCM_SCALE for r in train_rows[: cfg.stats_utterances]]
        mean, std = hidden_moments(encoder, stats_waves)  # (H,) each
        weight, bias = standardising_projection(mean, std, encoder.dim, seed=cfg.data.seed)
        with torch.no_grad():
            encoder.proj.weight.copy_(weight)
            encoder.proj.bias.copy_(bias)
        test_rows = local_utterances(cfg.data, "test")
        test, hyps = evaluate(encoder, test_rows)
        train, _ = evaluate(encoder, train_rows[: cfg.data.test_utterances])
        refs = [r["labels"].tolist() for r in test_rows]
        report = {
            **test.as_dict(), "split": "test", "train": train.as_dict(),
            "baselines": baselines(refs, [r["labels"].tolist() for r in train_rows], seed=cfg.data.seed),
            "vocabulary_size": len(phoneme_vocabulary()), "steps": cfg.steps,
            "examples": [{"ref": " ".join(label_symbols(r)), "hyp": " ".join(label_symbols(h))}
                         for r, h in zip(refs[:3], hyps[:3])],
        }
        with atomic_directory(out) as tmp:
            encoder.save_pretrained(tmp)
            vocab = {s: i for i, s in enumerate(phoneme_vocabulary())}
            (Path(tmp) / VOCAB_FILE).write_text(json.dumps(vocab, ensure_ascii=False, indent=1))
            (Path(tmp) / EVAL_FILE).write_text(json.dumps(report, ensure_ascii=False, indent=2))
        print(json.dumps({k: report[k] for k in ("per", "utterances", "phonemes", "train", "baselines")}), flush=True)
        return report
