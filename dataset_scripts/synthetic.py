"""A deterministic synthetic multimodal sentiment dataset (the embedded default of `train.py`).

Each sample has three latent sentiments s_t, s_a, s_v ~ N(0, 1). Every real frame of modality m is
`noise * N(0, I) + signal * s_m * u_m` with a fixed random unit direction u_m, and the label is

    y = clip(1.0 s_t + 0.7 s_a + 0.7 s_v + 0.9 s_a s_v + label_noise * N(0, 1), -3, 3)

so the text alone explains about a third of the variance, audio or vision alone less, and the product term
needs audio and vision together: no single modality suffices. Lengths vary per sample (padding matters).
"""

from dataclasses import asdict, dataclass

import numpy as np

from modeling_msa.msa_utils import MODALITIES

TEXT_WEIGHT, AUDIO_WEIGHT, VISION_WEIGHT, INTERACTION_WEIGHT = 1.0, 0.7, 0.7, 0.9
SPLITS = ("train", "validation", "test", "unlabeled")
_WORDS = {
    "negative": ["awful", "boring", "terrible", "disappointing", "weak", "dull"],
    "neutral": ["the", "movie", "plot", "actor", "scene", "story", "was", "really"],
    "positive": ["great", "brilliant", "fun", "lovely", "moving", "excellent"],
}


@dataclass
class SyntheticMSAConfig:
    """Sizes and shapes of the synthetic dataset (defaults: CMU-MOSI unaligned shapes).

    Args:
        num_train / num_validation / num_test: Labelled samples per split.
        num_unlabeled: Unlabelled samples (the self-training pool).
        text_length / audio_length / vision_length: Frames of the longest sample per modality.
        text_dim / audio_dim / vision_dim: Feature width per modality.
        min_length_fraction: The shortest sample's frames as a fraction of the longest (lengths are uniform between).
        signal: Weight of the planted sentiment direction in each frame.
        noise: Standard deviation of the per-frame Gaussian noise.
        label_noise: Standard deviation of the noise added to each label before clipping to [-3, 3].
        seed: Seed of the generator.
    """

    num_train: int = 1000
    num_validation: int = 200
    num_test: int = 200
    num_unlabeled: int = 500
    text_length: int = 50
    text_dim: int = 768
    audio_length: int = 375
    audio_dim: int = 5
    vision_length: int = 500
    vision_dim: int = 20
    min_length_fraction: float = 0.5
    signal: float = 0.5
    noise: float = 1.0
    label_noise: float = 0.1
    seed: int = 0

    def split_sizes(self) -> dict[str, int]:
        return {
            "train": self.num_train,
            "validation": self.num_validation,
            "test": self.num_test,
            "unlabeled": self.num_unlabeled,
        }


def synthetic_features(config: SyntheticMSAConfig):
    from datasets import Array2D, Features, Value  # on use: `datasets` costs ~1 s of start-up (train.py --help)

    return Features({
        "id": Value("string"),
        "raw_text": Value("string"),
        "text_features": Array2D(shape=(None, config.text_dim), dtype="float32"),
        "audio_features": Array2D(shape=(None, config.audio_dim), dtype="float32"),
        "vision_features": Array2D(shape=(None, config.vision_dim), dtype="float32"),
        "label": Value("float32"),
    })


def synthetic_label(s_text: np.ndarray, s_audio: np.ndarray, s_vision: np.ndarray) -> np.ndarray:
    """Noise-free label as a function of the latents (before clipping)."""
    return TEXT_WEIGHT * s_text + AUDIO_WEIGHT * s_audio + VISION_WEIGHT * s_vision + INTERACTION_WEIGHT * s_audio * s_vision


def _directions(config: SyntheticMSAConfig) -> dict[str, np.ndarray]:
    rng = np.random.default_rng([config.seed, 10_000])
    directions = {}
    for name, dim in (("text", config.text_dim), ("audio", config.audio_dim), ("vision", config.vision_dim)):
        vector = rng.standard_normal(dim)
        directions[name] = vector / np.linalg.norm(vector)
    return directions


def _words(rng: np.random.Generator, sentiment: float, count: int) -> str:
    p_positive = 1.0 / (1.0 + np.exp(-2.0 * sentiment))
    words = []
    for _ in range(count):
        if rng.random() < 0.5:
            words.append(rng.choice(_WORDS["neutral"]))
        else:
            words.append(rng.choice(_WORDS["positive"] if rng.random() < p_positive else _WORDS["negative"]))
    return " ".join(words)


def generate_synthetic_examples(config_dict: dict, split: str):
    """Yield the examples of one split; sample i of a split is the same whatever else is generated."""
    config = SyntheticMSAConfig(**config_dict)
    directions = _directions(config)
    split_id = SPLITS.index(split)
    shapes = {
        "text": (config.text_length, config.text_dim),
        "audio": (config.audio_length, config.audio_dim),
        "vision": (config.vision_length, config.vision_dim),
    }
    for index in range(config.split_sizes()[split]):
        rng = np.random.default_rng([config.seed, split_id, index])
        latents = dict(zip(MODALITIES, rng.standard_normal(3)))
        example = {"id": f"synthetic_{split}_{index:06d}"}
        for name, (max_length, dim) in shapes.items():
            length = int(rng.integers(max(1, int(np.ceil(config.min_length_fraction * max_length))), max_length + 1))
            frames = config.noise * rng.standard_normal((length, dim)) + config.signal * latents[name] * directions[name]
            example[f"{name}_features"] = frames.astype(np.float32)
        example["raw_text"] = _words(rng, latents["text"], int(rng.integers(5, 15)))
        label = synthetic_label(latents["text"], latents["audio"], latents["vision"])
        label = float(np.clip(label + config.label_noise * rng.standard_normal(), -3.0, 3.0))
        example["label"] = None if split == "unlabeled" else label
        yield example


def make_synthetic_dataset(config: SyntheticMSAConfig | None = None, cache_dir: str | None = None):
    """Build (or reuse from the `datasets` cache) the synthetic DatasetDict: train/validation/test/unlabeled."""
    from datasets import Dataset, DatasetDict

    config = config or SyntheticMSAConfig()
    features = synthetic_features(config)
    splits = {}
    for split, size in config.split_sizes().items():
        if size <= 0:
            continue
        splits[split] = Dataset.from_generator(
            generate_synthetic_examples,
            features=features,
            gen_kwargs={"config_dict": asdict(config), "split": split},
            cache_dir=cache_dir,
            split=split,
        )
    return DatasetDict(splits).with_format("numpy")
