"""``interhand figures multiview|accel|attention|sheet RESULT.npz ...``: the GUI's figure generator, headless."""

from __future__ import annotations

import argparse
from pathlib import Path


def _frames(text: str) -> list[int]:
    try:
        return [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected frame indices like 3,10,25, got {text!r}") from None


def _cmd_multiview(args: argparse.Namespace) -> int:
    from core_model.figures.multiview import comparison_figure, methods_of
    from core_model.pipeline.models import faces_of, hand_model_of_result
    from core_model.results import load_result

    labels = args.labels or [Path(p).stem for p in args.results]
    if len(labels) != len(args.results):
        raise ValueError(f"--labels: {len(labels)} labels for {len(args.results)} result files")
    faces = {}  # per hand model: results of one clip mostly share it
    triples = []
    for label, path in zip(labels, args.results):
        result = load_result(path)
        name = result.meta.hand_model.lower()
        if name not in faces:
            faces[name] = faces_of(hand_model_of_result(result.meta.hand_model))
        triples.append((label, result, faces[name]))
    methods = methods_of(triples, refined=args.refined)
    if len(methods) == 1:
        methods[0].label = ""  # one method: no method header, the view titles suffice
    path = comparison_figure(methods, args.frames, args.out, video=args.video, views=args.views, dpi=args.dpi,
                             panel_in=args.panel_size)
    print(f"wrote {path}")
    return 0


def _cmd_accel(args: argparse.Namespace) -> int:
    from core_model.figures.accel import acceleration_figure
    from core_model.results import load_result

    labels = args.labels or [Path(p).stem for p in args.results]
    if len(labels) != len(args.results):
        raise ValueError(f"--labels: {len(labels)} labels for {len(args.results)} result files")
    results = [(label, load_result(path)) for label, path in zip(labels, args.results)]
    print(f"wrote {acceleration_figure(results, args.out, dpi=args.dpi)}")
    return 0


def _cmd_attention(args: argparse.Namespace) -> int:
    from core_model.figures.attention import attention_figure
    from core_model.results import load_result

    result = load_result(args.result)
    path = attention_figure(result, args.frame, args.out, block=args.block - 1, heads=[h - 1 for h in args.heads],
                            dpi=args.dpi)
    print(f"wrote {path}")
    return 0


def _cmd_sheet(args: argparse.Namespace) -> int:
    from core_model.figures.sheet import contact_sheet
    from core_model.results import load_result

    print(f"wrote {contact_sheet(load_result(args.result), args.video, args.out, args.every, args.columns)}")
    return 0


def add_result_figure_parsers(figures: argparse._SubParsersAction) -> None:
    """Add the result figures beside ``figures hand-poses``."""
    from core_model.figures.multiview import VIEW_LABELS

    def common(p: argparse.ArgumentParser) -> None:
        p.add_argument("--out", type=Path, required=True, help="figure to write (.png, .pdf or .svg)")
        p.add_argument("--dpi", type=int, default=300, help="print resolution (default 300)")

    q = figures.add_parser("multiview", help="chosen frames' meshes from two views beside the crop, one or several "
                           "methods side by side (paper Fig. 8/9)")
    q.add_argument("results", type=Path, nargs="+", metavar="result",
                   help="result files (.npz) of the same clip, one per method, in column order")
    q.add_argument("--frames", type=_frames, required=True, help="frame indices, e.g. 3,10,25 (a row each)")
    q.add_argument("--labels", nargs="+", default=None, help="column headers of the results (default: file names)")
    q.add_argument("--refined", action="store_true",
                   help="also show the test-time refinement of each result that holds one (interhand run "
                        "--refine), right after it, as \"<label> (refined)\"")
    q.add_argument("--video", type=Path, default=None, help="the results' video, to show the input crops")
    q.add_argument("--views", nargs="+", choices=sorted(VIEW_LABELS), default=["front", "alternative"])
    q.add_argument("--panel-size", type=float, default=1.6, metavar="INCHES",
                   help="side of one panel in print (default 1.6)")
    common(q)
    q.set_defaults(handler=_cmd_multiview)

    q = figures.add_parser("accel", help="per-frame acceleration error of several methods (paper Fig. 7)")
    q.add_argument("results", type=Path, nargs="+", help="result files of the same clip, one per method")
    q.add_argument("--labels", nargs="+", default=None, help="legend labels (default: file names)")
    common(q)
    q.set_defaults(handler=_cmd_accel)

    q = figures.add_parser("attention", help="MHSA and MHCA attention maps of a frame's window (paper Fig. 11/12)")
    q.add_argument("result", type=Path, help="result file (.npz) with attention maps")
    q.add_argument("--frame", type=int, required=True, help="frame whose window is shown (and marked)")
    q.add_argument("--block", type=int, default=1, help="temporal block, from 1 (default 1)")
    q.add_argument("--heads", type=int, nargs="+", default=[1, 2], help="heads, from 1 (default 1 2)")
    common(q)
    q.set_defaults(handler=_cmd_attention)

    q = figures.add_parser("sheet", help="contact sheet: every k-th frame's crop with masks, witnesses' landmarks, "
                                         "network and refined keypoints")
    q.add_argument("result", type=Path, help="result file (.npz)")
    q.add_argument("video", type=Path, help="the result's video or image folder")
    q.add_argument("--every", type=int, default=15, help="frame step (default 15)")
    q.add_argument("--columns", type=int, default=4, help="frames per row (default 4)")
    q.add_argument("--out", type=Path, required=True, help="sheet to write (.png or .jpg)")
    q.set_defaults(handler=_cmd_sheet)
