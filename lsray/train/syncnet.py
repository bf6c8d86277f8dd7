"""SyncNet training: BCE on the cosine similarity of in-sync pairs vs time-shifted negatives.

Each sequence gives one positive (its frames with their own mel window) and one negative (the
same frames with a mel window at least ``negative_shift`` frames away), so batches are balanced.
"""

from __future__ import annotations

from typing import Any

import torch

from lsray.models.syncnet import SyncNet
from lsray.train.config import SyncNetTrainConfig
from lsray.train.optim import clipped_step, data_parallel


class SyncNetJob:
    def __init__(self, cfg: SyncNetTrainConfig, device: torch.device, world: int = 1) -> None:
        self.cfg, self.device = cfg, device
        if cfg.init:
            self.net = SyncNet.from_pretrained(cfg.init, device).requires_grad_(True)
        else:
            self.net = SyncNet(cfg.model).to(device)
        self.net.train()
        self.model = data_parallel(self.net, world)
        self.opt = torch.optim.AdamW(self.net.parameters(), lr=cfg.lr)

    def state_dict(self) -> dict[str, Any]:
        return {"syncnet": self.net.state_dict(), "opt": self.opt.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.net.load_state_dict(state["syncnet"])
        self.opt.load_state_dict(state["opt"])

    def export(self, out: str) -> None:
        self.net.save_pretrained(out)

    def losses(self, batch: dict[str, torch.Tensor], step: int) -> dict[str, torch.Tensor]:
        n = self.cfg.model.num_frames
        frames = batch["frames"][:, :n].to(self.device)  # b n 3 S S
        mels = torch.cat([batch["mel"], batch["mel_neg"]]).to(self.device)  # 2b 80 M
        labels = torch.cat([torch.ones(len(frames)), torch.zeros(len(frames))]).to(self.device)
        prob = self.model(torch.cat([frames, frames]), mels)
        loss = torch.nn.functional.binary_cross_entropy(prob, labels)
        acc = ((prob > 0.5).float() == labels).float().mean()
        return {"total": loss, "bce": loss.detach(), "accuracy": acc}

    def step(self, batch: dict[str, torch.Tensor], step: int) -> dict[str, float]:
        out = self.losses(batch, step)
        clipped_step(self.opt, out["total"], self.cfg.max_grad_norm)
        return {k: float(v.detach()) for k, v in out.items()}
