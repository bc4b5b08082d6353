"""End-to-end real-time factor (processing time / clip duration) of the multimodal-sentiment-analysis pipeline
on a 10 s clip, CPU, randomly initialised encoders: decode (PyAV) -> processor -> encoders -> Semi-IIN.

    python benchmarks/video_pipeline_rtf.py [--sizes base large] [--seconds 10] [--fps 3] [--repeats 3]

"base": BERT-base text (MiniLM tokenizer, offline), HuBERT-base audio, FabNet-style CNN on 256x256 frames.
"large": the paper's sizes (RoBERTa-large-shaped text with 24 layers / 1024 wide, HuBERT-large audio).
"""

import argparse
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]
from encoders import minilm_path  # noqa: E402
from media import write_clip  # noqa: E402

from modeling_msa import FaceCNNConfig, SemiIINConfig, SemiIINForSentimentAnalysis  # noqa: E402
from modeling_msa.modeling_encoders import encode_audio, encode_frames, encode_text  # noqa: E402
from processing_msa import MSAProcessor, decode_video  # noqa: E402

TEXT = {
    "base": dict(model_type="bert", hidden_size=768, num_hidden_layers=12, num_attention_heads=12,
                 intermediate_size=3072),
    "large": dict(model_type="bert", hidden_size=1024, num_hidden_layers=24, num_attention_heads=16,
                  intermediate_size=4096),
}
AUDIO = {
    "base": dict(model_type="hubert"),
    "large": dict(model_type="hubert", hidden_size=1024, num_hidden_layers=24, num_attention_heads=16,
                  intermediate_size=4096, feat_extract_norm="layer", do_stable_layer_norm=True),
}
TRANSCRIPT = "well honestly i thought the movie was going to be much better than it turned out to be in the end"


def timed(fn, *args, **kwargs):
    start = time.perf_counter()
    result = fn(*args, **kwargs)
    return result, time.perf_counter() - start


def run(size: str, clip: Path, seconds: float, fps: float, repeats: int) -> dict:
    config = SemiIINConfig(text_config=TEXT[size], audio_config=AUDIO[size], vision_config=FaceCNNConfig(),
                           max_vision_tokens=512)
    model = SemiIINForSentimentAnalysis(config).eval()
    processor = MSAProcessor.from_encoders(text=minilm_path(), image_size=256, fps=fps, max_frames=512)
    params = sum(p.numel() for p in model.parameters()) / 1e6
    stages = {name: [] for name in ("decode", "processor", "text", "audio", "vision", "fusion", "total")}
    with torch.inference_mode():
        for _ in range(repeats + 1):  # the first run warms up and is dropped
            t0 = time.perf_counter()
            decoded, t_decode = timed(decode_video, clip, fps=fps)
            inputs, t_proc = timed(processor, text=TRANSCRIPT, audio=decoded.audio, frames=decoded.frames)
            (text, text_mask), t_text = timed(encode_text, model.encoders["text"], inputs["input_ids"],
                                              inputs["attention_mask"], num_layers=config.text_encoder_layers)
            (audio, audio_mask), t_audio = timed(encode_audio, model.encoders["audio"], inputs["input_values"],
                                                 inputs["waveform_attention_mask"])
            (vision, vision_mask), t_vision = timed(encode_frames, model.encoders["vision"], inputs["pixel_values"],
                                                    inputs["frame_attention_mask"])
            _, t_fusion = timed(model, text_features=text, text_attention_mask=text_mask, audio_features=audio,
                                audio_attention_mask=audio_mask, vision_features=vision,
                                vision_attention_mask=vision_mask)
            total = time.perf_counter() - t0
            for name, value in zip(stages, (t_decode, t_proc, t_text, t_audio, t_vision, t_fusion, total)):
                stages[name].append(value)
    median = {name: sorted(values[1:])[len(values[1:]) // 2] for name, values in stages.items()}
    return {"size": size, "params_m": params, "frames": int(inputs["pixel_values"].shape[1]), **median,
            "rtf": median["total"] / seconds}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", nargs="+", default=["base", "large"], choices=["base", "large"])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--fps", type=float, default=3.0)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    torch.manual_seed(0)
    with tempfile.TemporaryDirectory() as tmp:
        clip = write_clip(Path(tmp) / "clip.mp4", seconds=args.seconds, fps=25, size=256)
        rows = [run(size, clip, args.seconds, args.fps, args.repeats) for size in args.sizes]
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {args.seconds:g} s clip (256x256, 25 fps), "
          f"frames sampled at {args.fps:g} fps; median of {args.repeats} runs, seconds per stage")
    print("| encoders | params (M) | frames | decode | processor | text | audio | vision | fusion | total | RTF |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for row in rows:
        print(f"| {row['size']} | {row['params_m']:.0f} | {row['frames']} | {row['decode']:.2f} | {row['processor']:.2f} "
              f"| {row['text']:.2f} | {row['audio']:.2f} | {row['vision']:.2f} | {row['fusion']:.3f} "
              f"| {row['total']:.2f} | {row['rtf']:.3f} |")


if __name__ == "__main__":
    main()
