"""Self-MM's Unimodal Label Generation Module (ULGM), with the semantics of the official code.

Memory banks hold, for every training sample, the post-layer features of each mode (fusion, text, audio,
vision) and the unimodal labels (initialised to the multimodal labels y_m; the fusion labels stay y_m).
Per training batch, [`UnimodalLabelBank.step`] follows Self-MM's order: (the loss was computed with the current
labels;) from epoch 2 on, move the labels with the previous centres; store the batch's features; recompute the
centres on the whole bank.

    d_p, d_n   = ||f - c_pos||_2, ||f - c_neg||_2            (per mode, plain L2)
    delta      = (d_n - d_p) / (d_p + 1e-8)
    alpha_s    = delta_s / (delta_f + 1e-8)
    y_s_new    = clamp(0.5 * alpha_s * y_m + 0.5 * (y_m + delta_s - delta_f), -H, H)
    y_s        = (n - 1) / (n + 1) * y_s + 2 / (n + 1) * y_s_new        (n = current epoch, from 1)

Centres: mean feature of the samples whose label (of that mode) is > 0 (>= 0 without `exclude_zero`)
and < 0. Under DDP every rank passes its own batch; features and indexes are gathered so that every rank
applies the same update and holds the same bank.
"""

import torch
import torch.distributed as dist
from safetensors.torch import load_file, save_file

from modeling_msa.msa_utils import MODALITIES

MODES = ("fusion", *MODALITIES)
EPSILON = 1e-8


def _gather(tensor: torch.Tensor) -> torch.Tensor:
    """Concatenate `tensor` from every rank (ranks may hold different batch sizes)."""
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return tensor
    size = torch.tensor([tensor.shape[0]], device=tensor.device)
    sizes = [torch.zeros_like(size) for _ in range(dist.get_world_size())]
    dist.all_gather(sizes, size)
    longest = int(max(s.item() for s in sizes))
    padded = torch.zeros((longest, *tensor.shape[1:]), dtype=tensor.dtype, device=tensor.device)
    padded[: tensor.shape[0]] = tensor
    gathered = [torch.zeros_like(padded) for _ in sizes]
    dist.all_gather(gathered, padded)
    return torch.cat([chunk[: int(s.item())] for chunk, s in zip(gathered, sizes)])


class UnimodalLabelBank:
    """Feature and label memory banks of ULGM for `num_samples` training samples.

    Args:
        labels: [N] multimodal labels y_m of the training set, in dataset index order.
        feature_sizes: Width of each mode's post-layer feature, e.g. {"fusion": 128, "text": 32, ...}.
        label_bound: H, the clamp of the generated labels (3 for MOSI/MOSEI, 1 for SIMS).
        exclude_zero: Positive centre from labels > 0 (Self-MM's MMSA config) instead of >= 0.
    """

    def __init__(self, labels: torch.Tensor, feature_sizes: dict[str, int], label_bound: float = 3.0,
                 exclude_zero: bool = True):
        labels = torch.as_tensor(labels, dtype=torch.float32).reshape(-1)
        if not torch.isfinite(labels).all():
            raise ValueError("UnimodalLabelBank needs finite multimodal labels for every training sample.")
        missing = set(MODES) - set(feature_sizes)
        if missing:
            raise ValueError(f"feature_sizes lacks modes {sorted(missing)}; expected {MODES}.")
        self.label_bound = float(label_bound)
        self.exclude_zero = exclude_zero
        self.label_map = {mode: labels.clone() for mode in MODES}
        self.feature_map = {mode: torch.zeros(len(labels), feature_sizes[mode]) for mode in MODES}
        self.center_map = {mode: {"pos": torch.zeros(feature_sizes[mode]), "neg": torch.zeros(feature_sizes[mode])}
                           for mode in MODES}

    def __len__(self) -> int:
        return len(self.label_map["fusion"])

    def labels(self, mode: str) -> torch.Tensor:
        """Current labels of `mode` for every sample ("fusion" gives y_m)."""
        return self.label_map[mode]

    def _gathered(self, mode_features: dict[str, torch.Tensor], indexes: torch.Tensor):
        indexes = _gather(torch.as_tensor(indexes, dtype=torch.long).reshape(-1))
        features = {mode: _gather(mode_features[mode].detach().float()).cpu() for mode in MODES}
        indexes = indexes.cpu()
        # DistributedSampler repeats samples to even out ranks: keep each index's first occurrence.
        order = torch.arange(len(indexes))
        first = torch.full((len(self),), len(indexes), dtype=torch.long).scatter_reduce(
            0, indexes, order, reduce="amin"
        )
        keep = first[indexes] == order
        return {mode: value[keep] for mode, value in features.items()}, indexes[keep]

    def _store_features(self, features: dict[str, torch.Tensor], indexes: torch.Tensor) -> None:
        for mode in MODES:
            self.feature_map[mode][indexes] = features[mode]

    def step(self, mode_features: dict[str, torch.Tensor], indexes: torch.Tensor, epoch: int) -> None:
        """One training batch in Self-MM's order (labels from epoch 2 on, features, centres), gathering across
        ranks once."""
        if epoch < 1:  # before the gather: a bad argument must not leave other ranks waiting in a collective
            raise ValueError(f"epoch counts from 1, got {epoch}.")
        features, indexes = self._gathered(mode_features, indexes)
        if epoch > 1:
            self._move_labels(features, indexes, epoch)
        self._store_features(features, indexes)
        self._update_centers()

    def _update_centers(self) -> None:
        """Positive/negative centre of each mode over the whole bank, by that mode's current labels."""
        for mode in MODES:
            labels = self.label_map[mode]
            positive = labels > 0 if self.exclude_zero else labels >= 0
            for side, members in (("pos", positive), ("neg", labels < 0)):
                if members.any():  # an empty side keeps its previous centre instead of becoming NaN
                    self.center_map[mode][side] = self.feature_map[mode][members].mean(0)

    def _relative_distance(self, features: torch.Tensor, mode: str) -> torch.Tensor:
        distance_pos = torch.norm(features - self.center_map[mode]["pos"], dim=-1)
        distance_neg = torch.norm(features - self.center_map[mode]["neg"], dim=-1)
        return (distance_neg - distance_pos) / (distance_pos + EPSILON)

    def _move_labels(self, features: dict[str, torch.Tensor], indexes: torch.Tensor, epoch: int) -> None:
        """Momentum update of the text/audio/vision labels of this batch (from epoch 2 on)."""
        delta_fusion = self._relative_distance(features["fusion"], "fusion")
        multimodal = self.label_map["fusion"][indexes]
        for mode in MODALITIES:
            delta = self._relative_distance(features[mode], mode)
            alpha = delta / (delta_fusion + EPSILON)
            new_labels = 0.5 * alpha * multimodal + 0.5 * (multimodal + delta - delta_fusion)
            new_labels = torch.clamp(new_labels, min=-self.label_bound, max=self.label_bound)
            previous = self.label_map[mode][indexes]
            self.label_map[mode][indexes] = (epoch - 1) / (epoch + 1) * previous + 2 / (epoch + 1) * new_labels

    def state_dict(self) -> dict[str, torch.Tensor]:
        state = {}
        for mode in MODES:
            state[f"labels.{mode}"] = self.label_map[mode]
            state[f"features.{mode}"] = self.feature_map[mode]
            state[f"centers.{mode}.pos"] = self.center_map[mode]["pos"]
            state[f"centers.{mode}.neg"] = self.center_map[mode]["neg"]
        return state

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        for mode in MODES:
            if state[f"labels.{mode}"].shape != self.label_map[mode].shape:
                raise ValueError(f"Saved bank has {len(state[f'labels.{mode}'])} samples, this one {len(self)}.")
            self.label_map[mode] = state[f"labels.{mode}"].clone()
            self.feature_map[mode] = state[f"features.{mode}"].clone()
            self.center_map[mode] = {k: state[f"centers.{mode}.{k}"].clone() for k in ("pos", "neg")}

    def save(self, path) -> None:
        save_file({k: v.contiguous() for k, v in self.state_dict().items()}, str(path))

    def load(self, path) -> None:
        self.load_state_dict(load_file(str(path)))
