"""Hugging Face Inference Endpoints handler: a video (bytes or base64) + transcript -> sentiment.

Request: `{"inputs": <video bytes | base64 string>, "parameters": {"text": "transcript"}}`; the parameters may add the
pipeline's options `window_seconds`, `stride_seconds` (a timeline) and `explain` (modality contributions); any other
parameter is refused.
Response: the `multimodal-sentiment-analysis` pipeline's dict, or `{"error": ...}` saying what was wrong.

A served model opens no server-side file and fetches no URL unless the deployment opts in: environment
`MSA_HANDLER_ALLOW_PATHS=1` (an `inputs` string naming a file the server can read) or `MSA_HANDLER_ALLOW_URLS=1`
(an http(s) URL, opened by PyAV), or the matching constructor arguments. Payloads above
`MSA_HANDLER_MAX_BYTES` (default 100 MiB of video) are refused.
"""

import base64
import binascii
import os
import tempfile
from typing import Any

DEFAULT_MAX_BYTES = 100 * 2**20
EXPECTED = ('expected {"inputs": <video bytes or a base64-encoded video>, "parameters": {"text": "<transcript>"}}')
# parameters beside "text": the pipeline's options, with the types they take
OPTIONS = {"window_seconds": (int, float), "stride_seconds": (int, float), "explain": (bool,)}


class RequestError(ValueError):
    """A request the handler refuses; its message goes back as `{"error": ...}`."""


def _flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in ("1", "true", "yes")


class EndpointHandler:
    def __init__(self, path: str = "", allow_paths: bool | None = None, allow_urls: bool | None = None,
                 max_bytes: int | None = None):
        from transformers import pipeline

        self.allow_paths = _flag("MSA_HANDLER_ALLOW_PATHS") if allow_paths is None else allow_paths
        self.allow_urls = _flag("MSA_HANDLER_ALLOW_URLS") if allow_urls is None else allow_urls
        self.max_bytes = int(os.environ.get("MSA_HANDLER_MAX_BYTES", DEFAULT_MAX_BYTES)) if max_bytes is None else max_bytes
        self.pipeline = pipeline("multimodal-sentiment-analysis", model=path or ".", trust_remote_code=True)

    def __call__(self, data: Any) -> dict[str, Any]:
        upload = None
        try:
            video, text = self._parse(data)
            if text is None:  # as the pipeline: a transcript must be given ("" runs the model without words)
                raise RequestError(f'parameters.text is missing: the transcript ("" for none); {EXPECTED}.')
            options = self._options(data.get("parameters") or {})
            if isinstance(video, str):  # a path or URL the deployment allowed
                return self.pipeline(video, text=text, **options)
            with tempfile.NamedTemporaryFile(suffix=".mp4") as handle:
                upload = handle.name
                handle.write(video)
                handle.flush()
                result = self.pipeline(handle.name, text=text, **options)
        except (RequestError, ValueError) as error:  # a refused option value (e.g. a window below the minimum)
            result = {"error": str(error)}
        if "error" in result and upload is not None:  # never echo the server's temporary path
            result = {"error": result["error"].replace(upload, "<uploaded video>")}
        return result

    def _parse(self, data: Any) -> tuple[bytes | str, str | None]:
        if not isinstance(data, dict):
            raise RequestError(f"the request is a {type(data).__name__}; {EXPECTED}.")
        parameters = data.get("parameters")
        if parameters is None:
            parameters = {}
        if not isinstance(parameters, dict):
            raise RequestError(f"parameters must be an object, got {type(parameters).__name__}; {EXPECTED}.")
        text = parameters.get("text", data.get("text"))
        if text is not None and not isinstance(text, str):
            raise RequestError(f"parameters.text must be a string (the transcript), got {type(text).__name__}.")
        inputs = data.get("inputs", data.get("video"))
        if isinstance(inputs, str):
            if self.allow_urls and inputs.startswith(("http://", "https://")):
                return inputs, text
            if self.allow_paths and os.path.isfile(inputs):
                return inputs, text
            inputs = self._decode_base64(inputs)
        if not isinstance(inputs, (bytes, bytearray)):
            raise RequestError(f"inputs must be video bytes or a base64-encoded video, got "
                               f"{type(inputs).__name__}; {EXPECTED}.")
        if not inputs:
            raise RequestError("inputs is empty: send the bytes of a video file.")
        self._check_size(len(inputs))
        return bytes(inputs), text

    @staticmethod
    def _options(parameters: dict) -> dict:
        """The pipeline options among `parameters`; an unknown name or a value of the wrong type is refused."""
        unknown = sorted(set(parameters) - set(OPTIONS) - {"text"})
        if unknown:
            raise RequestError(f"unknown parameters {unknown}: this endpoint takes text, {', '.join(OPTIONS)}.")
        options = {name: parameters[name] for name in OPTIONS if parameters.get(name) is not None}
        for name, value in options.items():
            if not isinstance(value, OPTIONS[name]) or (name != "explain" and isinstance(value, bool)):
                raise RequestError(f"parameters.{name} must be a {OPTIONS[name][-1].__name__}, got {value!r}.")
        return options

    def _check_size(self, size: int, about: bool = False) -> None:
        if size > self.max_bytes:
            raise RequestError(f"the video is {'about ' if about else ''}{size} bytes, above this endpoint's limit of "
                               f"{self.max_bytes} bytes (MSA_HANDLER_MAX_BYTES): send a shorter or smaller clip.")

    def _decode_base64(self, value: str) -> bytes:
        if value.startswith("data:") and "," in value:  # a data URL: data:video/mp4;base64,....
            value = value.split(",", 1)[1]
        self._check_size(len(value) * 3 // 4, about=True)  # before decoding it
        try:
            return base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError):
            raise RequestError(f"inputs is not valid base64; {EXPECTED}.") from None
