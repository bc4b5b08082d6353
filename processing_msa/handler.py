"""Hugging Face Inference Endpoints handler: a video (bytes, base64 or path) + transcript -> sentiment.

Request: `{"inputs": <video bytes | base64 string | path>, "parameters": {"text": "transcript"}}`.
Response: the `multimodal-sentiment-analysis` pipeline's dict (or `{"error": ...}` for an unreadable video).
"""

import base64
import binascii
import os
import tempfile
from typing import Any


class EndpointHandler:
    def __init__(self, path: str = ""):
        from transformers import pipeline

        self.pipeline = pipeline("multimodal-sentiment-analysis", model=path or ".", trust_remote_code=True)

    def __call__(self, data: dict[str, Any]) -> dict[str, Any]:
        inputs = data.get("inputs", data.get("video"))
        text = (data.get("parameters") or {}).get("text", data.get("text", ""))
        if isinstance(inputs, str) and os.path.isfile(inputs):
            return self.pipeline(inputs, text=text)
        if isinstance(inputs, str):
            try:
                inputs = base64.b64decode(inputs, validate=True)
            except (binascii.Error, ValueError):
                return {"error": "inputs must be video bytes, a base64-encoded video or a file path."}
        if not isinstance(inputs, (bytes, bytearray)) or not inputs:
            return {"error": "inputs must be video bytes, a base64-encoded video or a file path."}
        with tempfile.NamedTemporaryFile(suffix=".mp4") as handle:
            handle.write(inputs)
            handle.flush()
            return self.pipeline(handle.name, text=text)
