"""msa-hub processing: video decoding (PyAV), `MSAProcessor`, the `multimodal-sentiment-analysis` pipeline.

Importing the package registers `MSAProcessor` with `AutoProcessor` (and for `auto_map`) and the pipeline
task with `PIPELINE_REGISTRY`. The modules are flat (relative imports only): they travel to the Hub as remote
code next to the model.
"""

from transformers import AutoProcessor

from modeling_msa import SemiIINConfig

from .pipeline_msa import SENTIMENT_CLASSES, TASK, MultimodalSentimentPipeline, polarity
from .processing_msa import MSAProcessor
from .video_io import DecodedVideo, MediaDecodingError, decode_video

AutoProcessor.register(SemiIINConfig, MSAProcessor, exist_ok=True)
MSAProcessor.register_for_auto_class("AutoProcessor")

__all__ = [
    "DecodedVideo",
    "MSAProcessor",
    "MediaDecodingError",
    "MultimodalSentimentPipeline",
    "SENTIMENT_CLASSES",
    "TASK",
    "decode_video",
    "polarity",
]
