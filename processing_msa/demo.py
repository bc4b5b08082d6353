"""Gradio demo: upload a video and its transcript, see the intensity, class probabilities and gate values.

    python -m processing_msa.demo MODEL_DIR_OR_HUB_ID [--port 7860] [--share]
"""

import argparse

from .pipeline_msa import TASK


def build_demo(sentiment_pipeline):
    """A `gr.Interface` around a `multimodal-sentiment-analysis` pipeline (API name `/predict`)."""
    import gradio as gr

    def predict(video: str | None, transcript: str):
        if not video:
            raise gr.Error("Upload a video first.")
        result = sentiment_pipeline(video, text=transcript or "")
        if "error" in result:
            raise gr.Error(result["error"])
        details = {"label": result["label"], "emotion": result["emotion"], "gate_values": result.get("gate_values")}
        return round(result["score"], 4), result["emotion_scores"], details

    return gr.Interface(
        fn=predict,
        inputs=[gr.Video(label="Video (with its soundtrack)"), gr.Textbox(label="Transcript", lines=2)],
        outputs=[
            gr.Number(label="Sentiment intensity [-3, 3]"),
            gr.Label(label="Sentiment class probabilities", num_top_classes=7),
            gr.JSON(label="Polarity, class and gate values (InterMA weight at val/cls)"),
        ],
        title="Multimodal sentiment analysis (msa-hub)",
        description="Text + audio + video -> sentiment intensity in [-3, 3] and a 7-way class.",
        api_name="predict",
        flagging_mode="never",
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model", help="a published folder or Hub id (model + processor + pipeline code)")
    parser.add_argument("--port", type=int, default=7860)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--share", action="store_true")
    args = parser.parse_args(argv)
    from transformers import pipeline

    sentiment_pipeline = pipeline(TASK, model=args.model, trust_remote_code=True)
    build_demo(sentiment_pipeline).launch(server_name=args.host, server_port=args.port, share=args.share)


if __name__ == "__main__":
    main()
