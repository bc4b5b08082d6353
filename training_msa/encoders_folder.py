"""The starting folder of end-to-end training on raw clips: a model bundling pretrained encoders (its fusion part
untrained) and the matching processor, saved pipeline-ready. Then `train.py` trains it on the clips:

    python -m training_msa.encoders_folder encoders --text FacebookAI/roberta-large \
        --audio facebook/hubert-large-ll60k [--vision face_cnn] [--model semi_iin | shared_private | self_mm]
    accelerate launch train.py --model_name_or_path encoders --dataset_name custom --data_dir clips/ --lora_r 8

Encoders are Hub ids or local folders (offline: download them once, then pass the folders). `--vision face_cnn` is
the FabNet-style CNN with random weights (FabNet's are not on the Hub); any transformers image backbone works.
"""

import argparse
from pathlib import Path

from transformers import AutoConfig

MODELS = ("semi_iin", "shared_private", "self_mm")


def encoders_model(model: str, text: str, audio: str, vision: str = "face_cnn", freeze_encoders: bool = False,
                   **config_kwargs):
    """A new model of kind `model` whose text/audio/vision encoders start from pretrained checkpoints."""
    from modeling_msa import (
        FaceCNNConfig,
        SharedPrivateConfig,
        SharedPrivateForSentimentAnalysis,
        semi_iin_from_pretrained_encoders,
    )
    from modeling_msa.modeling_encoders import load_encoder_weights

    if model == "semi_iin":
        return semi_iin_from_pretrained_encoders(text=text, audio=audio, vision=vision,
                                                 freeze_encoders=freeze_encoders, **config_kwargs)
    if model not in MODELS:
        raise ValueError(f"model {model!r}: expected one of {list(MODELS)}.")
    factory = SharedPrivateConfig.self_mm if model == "self_mm" else SharedPrivateConfig
    config = factory(
        text_input="input_ids", text_config=AutoConfig.from_pretrained(text),
        audio_config=AutoConfig.from_pretrained(audio),
        vision_config=FaceCNNConfig() if vision == "face_cnn" else AutoConfig.from_pretrained(vision),
        freeze_encoders=freeze_encoders, **config_kwargs,
    )
    built = SharedPrivateForSentimentAnalysis(config)
    built.load_pretrained_text_encoder(text)
    load_encoder_weights(built.encoders["audio"], audio, "audio_config")
    if vision != "face_cnn":
        load_encoder_weights(built.encoders["vision"], vision, "vision_config")
    return built  # frozen by its constructor when configured (loading weights keeps requires_grad)


def save_encoders_folder(folder: str | Path, model, processor, command: str = "") -> Path:
    """`model` + `processor` as a pipeline-ready folder whose card says that the fusion part is untrained."""
    from .export import save_hub_ready

    return save_hub_ready(model, folder, processor=processor, dataset_name="none", command=command,
                          not_evaluated_reason="encoders with an untrained fusion part: the starting point of "
                                               "train.py --model_name_or_path on raw clips")


def main(argv: list[str] | None = None) -> Path:
    import shlex
    import sys

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
                                     allow_abbrev=False)
    parser.add_argument("output_dir", help="the folder to write (refused when it exists)")
    parser.add_argument("--model", default="semi_iin", choices=MODELS, help="which fusion model")
    parser.add_argument("--text", required=True, help="text encoder: Hub id or folder (with its tokenizer)")
    parser.add_argument("--audio", required=True, help="audio encoder (HuBERT/wav2vec2-style): Hub id or folder")
    parser.add_argument("--vision", default="face_cnn", help="vision backbone: Hub id, folder, or face_cnn")
    parser.add_argument("--fps", type=float, default=3.0, help="frames per second read from each clip")
    parser.add_argument("--max_frames", type=int, default=64, help="frames kept per clip (evenly spaced)")
    parser.add_argument("--image_size", type=int, default=112, help="face_cnn's input size in pixels")
    parser.add_argument("--freeze_encoders", action="store_true",
                        help="keep the encoders fixed (train only the fusion); leave off for LoRA or full fine-tuning")
    args = parser.parse_args(argv)
    if Path(args.output_dir).exists():
        parser.error(f"{args.output_dir} exists; pass a new folder.")
    from processing_msa import MSAProcessor

    model = encoders_model(args.model, args.text, args.audio, args.vision, freeze_encoders=args.freeze_encoders)
    processor = MSAProcessor.from_encoders(text=args.text, audio=args.audio, vision=args.vision,
                                           image_size=args.image_size, fps=args.fps, max_frames=args.max_frames)
    command = "python -m training_msa.encoders_folder " + shlex.join(sys.argv[1:] if argv is None else argv)
    folder = save_encoders_folder(args.output_dir, model, processor, command)
    print(f"Encoders folder: {folder}\nNext: accelerate launch train.py --model {args.model} --model_name_or_path "
          f"{folder} --dataset_name custom --data_dir CLIPS [--lora_r 8]")
    return folder


if __name__ == "__main__":
    main()
