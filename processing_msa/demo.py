"""Gradio demo: a video and its transcript in; intensity, class probabilities, what each modality contributed, the
gate values and (for long videos) sentiment over time out.

    python -m processing_msa.demo MODEL_DIR_OR_HUB_ID [--port 7860] [--host 127.0.0.1] [--share]

API (`gradio_client`): `Client(url).predict(handle_file("clip.mp4"), "transcript", 4.0, api_name="/predict")`
returns (summary markdown, class probabilities, contributions table, gates table, timeline table, details dict).
"""

import argparse
import logging
from pathlib import Path

from .pipeline_msa import TASK

INTRO = ("Upload a video (with its soundtrack) and type what is said, or pick an example, then press **Analyse**. "
         "The model rates the sentiment from -3 (strongly negative) to +3 (strongly positive).")
logger = logging.getLogger(__name__)
NOT_RUN = "*No result yet: upload a video or pick an example, then press Analyse.*"


def example_clips(model_source: str) -> list[list[str]]:
    """[[video path, transcript], ...] from the model folder's `examples/examples.json` (local folders only; a Hub
    id is looked up in the local cache, never downloaded by the demo)."""
    folder = Path(model_source)
    if not folder.is_dir():
        try:
            from huggingface_hub import snapshot_download

            folder = Path(snapshot_download(model_source, allow_patterns=["examples/*"], local_files_only=True))
        except Exception:  # noqa: BLE001  (not cached / offline: the demo simply has no examples)
            return []
    listing = folder / "examples" / "examples.json"
    if not listing.is_file():
        return []
    from dataset_scripts.safe_paths import path_inside
    from training_msa.export import check_examples

    try:  # examples/ and every listed video inside the folder (no "..", absolute path or symlink out)
        items = check_examples(path_inside(folder, "examples", f"{folder}/examples"))
    except ValueError as error:
        logger.warning("The demo offers no examples: %s", error)
        return []
    return [[str(folder / "examples" / item["video"]), str(item.get("text", ""))] for item in items]


def _tables(result: dict):
    import pandas as pd

    contributions = result.get("modality_contributions") or {}
    contribution_table = pd.DataFrame({"modality": list(contributions), "contribution": list(contributions.values())})
    gates = result.get("gate_values") or {}
    gate_table = pd.DataFrame({"position": list(gates), "InterMA weight": list(gates.values())})
    timeline = result.get("timeline") or []
    timeline_table = pd.DataFrame({"time (s)": [(w["start"] + w["end"]) / 2 for w in timeline],
                                   "score": [w["score"] for w in timeline]})
    return contribution_table, gate_table, timeline_table


def summary_markdown(result: dict, window: float = 0.0) -> str:
    """The headline (the regression head's intensity and its Acc-7 bin), what the separately trained 7-class head
    says, and why there is no timeline when there is none."""
    lines = [f"## {result['score']:+.2f} — {result['emotion']}",
             f"Polarity **{result['label']}**. Headline: the regression head's intensity in [-3, 3] and its Acc-7 bin."]
    scores = result.get("emotion_scores") or {}
    if scores:
        top = max(scores, key=scores.get)
        verdict = "agrees" if top == result["emotion"] else "disagrees (the two heads are trained separately)"
        lines.append(f"The 7-class head {verdict}: its top class is **{top}** ({scores[top]:.0%}).")
    if window > 0 and len(result.get("timeline") or []) < 2:
        lines.append(f"Sentiment over time: the clip is shorter than the {window:g} s window, so the score above is "
                     "the one for the whole clip.")
    return "\n\n".join(lines)


def user_error(message: str):
    """A `gr.Error` shown on the page (and to API clients) without a server traceback: the user's mistake, not a bug."""
    import gradio as gr

    try:
        return gr.Error(message, print_exception=False)
    except TypeError:  # a gradio without print_exception
        return gr.Error(message)


def without_server_paths(message: str, video: str) -> str:
    """`message` naming the uploaded file by its own name instead of the server's copy (`/tmp/gradio/<hash>/x.mp4`)."""
    upload = Path(video)
    for text in (str(upload), str(upload.resolve()), str(upload.parent), str(upload.resolve().parent)):
        message = message.replace(text, upload.name if text.endswith(upload.name) else "<upload>")
    return message


def show_timeline(table):
    """Show the timeline chart only when it has a line to draw (two windows or more)."""
    import gradio as gr

    # the plot's value: a dict or PlotData with its rows under "data" (a DataFrame in older gradio versions)
    points = table.get("data") if isinstance(table, dict) else getattr(table, "data", table)
    return gr.update(visible=points is not None and len(points) > 1)


def build_demo(sentiment_pipeline, examples: list[list[str]] | None = None, window_seconds: float = 4.0):
    """A `gr.Blocks` app around a `multimodal-sentiment-analysis` pipeline (API name `/predict`)."""
    import gradio as gr

    def predict(video: str | None, transcript: str, window: float):
        if not video:
            raise user_error("Upload a video (or pick an example) first.")
        window = float(window or 0)
        options = {"explain": True, **({"window_seconds": window} if window > 0 else {})}
        try:
            result = sentiment_pipeline(video, text=transcript or "", **options)
        except ValueError as error:  # a bad request (too long, bad parameter): the message, without server paths
            raise user_error(without_server_paths(str(error), video)) from None
        if "error" in result:
            raise user_error(without_server_paths(result["error"], video))
        contributions, gates, timeline = _tables(result)
        probabilities = result.get("emotion_scores") or {result["emotion"]: 1.0}
        details = {key: value for key, value in result.items() if key not in ("timeline",)}
        return summary_markdown(result, window), probabilities, contributions, gates, timeline, details

    with gr.Blocks(title="Multimodal sentiment analysis (msa-hub)") as demo:
        gr.Markdown("# Multimodal sentiment analysis (msa-hub)\n" + INTRO)
        with gr.Row():
            with gr.Column():
                video = gr.Video(label="Video (with its soundtrack)", sources=["upload"])
                transcript = gr.Textbox(label="Transcript", lines=2, placeholder="What is said in the clip")
                window = gr.Slider(0, 15, value=window_seconds, step=0.5, label="Window for sentiment over time "
                                   "(seconds; 0 = off)")
                run = gr.Button("Analyse", variant="primary", elem_id="analyse")
                if examples:
                    gr.Examples(examples, inputs=[video, transcript], label="Example clips", elem_id="examples")
            with gr.Column():
                summary = gr.Markdown(NOT_RUN, elem_id="summary")
                probabilities = gr.Label(label="7-class head probabilities", num_top_classes=7)
                contributions = gr.BarPlot(x="modality", y="contribution", elem_id="contributions",
                                           label="What each modality contributed (Semi-IIN: score minus the score "
                                                 "with it masked out; shared/private: its unimodal head's score)")
                gates = gr.BarPlot(x="position", y="InterMA weight", label="Gate values (0 = IntraMA, 1 = InterMA)",
                                   y_lim=[0, 1], elem_id="gates")
                timeline = gr.LinePlot(x="time (s)", y="score", label="Sentiment over time (sliding windows; the "
                                       "whole transcript is used for every window)", y_lim=[-3, 3],
                                       elem_id="timeline")
                details = gr.JSON(label="Pipeline output")
        analysed = run.click(predict, inputs=[video, transcript, window],
                             outputs=[summary, probabilities, contributions, gates, timeline, details],
                             api_name="predict")
        # a clip shorter than the window has one whole-clip score: no line to draw, the summary says why
        analysed.then(show_timeline, inputs=timeline, outputs=timeline, api_name=False)
    return demo


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model", help="a published folder or Hub id (model + processor + pipeline code)")
    parser.add_argument("--port", type=int, default=7860, help="port of the local server")
    parser.add_argument("--host", default="127.0.0.1", help="interface to listen on (0.0.0.0: every interface)")
    parser.add_argument("--share", action="store_true", help="also open a temporary public gradio.live link")
    parser.add_argument("--window-seconds", type=float, default=4.0, help="default window for sentiment over time")
    parser.add_argument("--trust_remote_code", action="store_true",
                        help="run the model folder's own Python files (default: the installed msa-hub's code, which "
                             "reads any folder msa-hub saved)")
    args = parser.parse_args(argv)
    from transformers import pipeline

    import modeling_msa  # noqa: F401  (registers the models: the installed code reads the folder)

    from .pipeline_msa import MultimodalSentimentPipeline

    installed = {} if args.trust_remote_code else {"pipeline_class": MultimodalSentimentPipeline}
    sentiment_pipeline = pipeline(TASK, model=args.model, trust_remote_code=args.trust_remote_code, **installed)
    demo = build_demo(sentiment_pipeline, example_clips(args.model), args.window_seconds)
    demo.launch(server_name=args.host, server_port=args.port, share=args.share, show_error=True)


if __name__ == "__main__":
    main()
