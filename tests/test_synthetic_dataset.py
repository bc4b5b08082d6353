import numpy as np
import pytest

from dataset_scripts import SyntheticMSAConfig, load_msa_dataset, make_synthetic_dataset
from dataset_scripts.synthetic import generate_synthetic_examples

SMALL = dict(num_train=600, num_validation=20, num_test=20, num_unlabeled=30, text_length=12, text_dim=16,
             audio_length=20, audio_dim=5, vision_length=15, vision_dim=6)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    return make_synthetic_dataset(SyntheticMSAConfig(**SMALL), cache_dir=str(tmp_path_factory.mktemp("cache")))


def test_splits_columns_and_shapes(dataset):
    assert set(dataset) == {"train", "validation", "test", "unlabeled"}
    assert dataset["train"].num_rows == 600 and dataset["unlabeled"].num_rows == 30
    row = dataset["train"][0]
    assert row["text_features"].shape[1] == 16 and row["audio_features"].shape[1] == 5
    assert 6 <= row["text_features"].shape[0] <= 12
    lengths = {dataset["train"][i]["vision_features"].shape[0] for i in range(40)}
    assert len(lengths) > 1, "lengths must vary so that padding matters"
    assert np.isnan(dataset["unlabeled"][0]["label"])
    labels = np.asarray(dataset["train"]["label"])
    assert labels.min() >= -3 and labels.max() <= 3


def test_generation_is_deterministic_per_sample():
    config = dict(SyntheticMSAConfig(**SMALL).__dict__)
    first = next(generate_synthetic_examples(config, "test"))
    again = next(generate_synthetic_examples(config, "test"))
    np.testing.assert_array_equal(first["audio_features"], again["audio_features"])
    assert first["label"] == again["label"]
    other_seed = next(generate_synthetic_examples({**config, "seed": 1}, "test"))
    assert first["label"] != other_seed["label"]


def r2_of_ridge(x, y):
    x = np.hstack([x, np.ones((len(x), 1))])
    weights = np.linalg.solve(x.T @ x + 1e-3 * np.eye(x.shape[1]), x.T @ y)
    residual = y - x @ weights
    return 1 - residual.var() / y.var()


def test_no_single_modality_suffices(dataset):
    train = dataset["train"]
    y = np.asarray(train["label"][:], dtype=np.float64)
    means = {
        m: np.stack([np.asarray(f).mean(0) for f in train[f"{m}_features"]]) for m in ("text", "audio", "vision")
    }
    single = {m: r2_of_ridge(x, y) for m, x in means.items()}
    everything = np.hstack([means["text"], means["audio"], means["vision"]])
    interaction = np.einsum("ni,nj->nij", means["audio"], means["vision"]).reshape(len(y), -1)
    together = r2_of_ridge(np.hstack([everything, interaction]), y)
    assert max(single.values()) < 0.5, single
    assert together > max(single.values()) + 0.3, (together, single)


def test_unknown_dataset_name_is_a_clear_error():
    with pytest.raises(ValueError, match="Unknown dataset 'iemocap'"):
        load_msa_dataset("iemocap")
