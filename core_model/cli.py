"""``interhand``: every non-interactive thing the app does, headless."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

log = logging.getLogger("interhand")


def _cmd_info(args: argparse.Namespace) -> int:
    from core_model.info import collect_info, format_info

    print(format_info(collect_info(hand_model=args.hand_model)))
    if args.preset is not None or args.complexity:
        from core_model.network.config import STCNetConfig

        config = STCNetConfig.from_preset(args.preset or "lite")
        print(f"STCNet preset {config.preset!r}: " + ", ".join(f"{k}={v}" for k, v in config.to_dict().items()
                                                              if k != "preset"))
        if args.complexity:
            from core_model.handmodel.registry import load_hand_model
            from core_model.network.complexity import format_complexity, measure_complexity

            print("measuring (random weights; latency on CPU, batch 1) ...", flush=True)
            print(format_complexity(measure_complexity(config, load_hand_model(args.hand_model))))
    return 0


def _cmd_mano_import(args: argparse.Namespace) -> int:
    from core_model.handmodel.mano_import import import_mano

    for path in import_mano(args.source_dir, args.out):
        print(f"wrote {path}")
    print("MANO will now be used in place of OpenHand (set --hand-model openhand to choose OpenHand).")
    return 0


def _cmd_figures(args: argparse.Namespace) -> int:
    from core_model.handmodel.figures import render_pose_figure
    from core_model.handmodel.registry import load_hand_model

    model = load_hand_model(args.hand_model)
    print(f"hand model: {model.name}")
    print(f"wrote {render_pose_figure(model, args.out, poses=tuple(args.poses))}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    from core_model import __version__
    from core_model.handmodel.poses import NAMED_POSES
    from core_model.handmodel.registry import MODEL_CHOICES
    from core_model.network.config import PRESETS

    parser = argparse.ArgumentParser(prog="interhand", description=__doc__)
    parser.add_argument("--version", action="version", version=f"interhand-studio {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, handler: Callable[[argparse.Namespace], int], help: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help, description=help)
        p.set_defaults(handler=handler)
        return p

    def hand_model_option(p: argparse.ArgumentParser,
                          auto: str = "MANO if imported, else OpenHand") -> None:
        p.add_argument("--hand-model", choices=MODEL_CHOICES, default="auto",
                       help=f"hand model: imported MANO, shipped OpenHand, or auto ({auto})")

    p = command("info", _cmd_info, "versions, device, the hand model in use and where MANO is looked for")
    hand_model_option(p)
    p.add_argument("--preset", choices=sorted(PRESETS), default=None,
                   help="also show this STCNet preset's configuration (with --complexity: default lite)")
    p.add_argument("--complexity", action="store_true",
                   help="measure the STCNet preset: parameters, FLOPs per frame and per window, CPU latency")

    p = command("mano-import", _cmd_mano_import,
                "import the official MANO_RIGHT.pkl / MANO_LEFT.pkl (no chumpy needed) into the user data directory")
    p.add_argument("source_dir", type=Path, help="folder holding MANO_RIGHT.pkl and MANO_LEFT.pkl (mano_v1_2/models)")
    p.add_argument("--out", type=Path, default=None, help="output folder (default: $INTERHAND_MANO_DIR or user data)")

    p = command("figures", _cmd_figures, "render figures headless")
    fig = p.add_subparsers(dest="figure", required=True, metavar="FIGURE")
    q = fig.add_parser("hand-poses", help="both hands of the hand model in named poses, two views")
    q.add_argument("--out", type=Path, required=True, help="PNG to write")
    q.add_argument("--poses", nargs="+", choices=sorted(NAMED_POSES), default=["open", "fist", "pinch", "point"])
    hand_model_option(q)
    from core_model.figures.cli import add_result_figure_parsers

    add_result_figure_parsers(fig)  # figures multiview|accel|attention RESULT.npz ...; each sets its own handler

    from core_model.data.synth_cli import add_synth_parser

    add_synth_parser(sub, MODEL_CHOICES)

    from core_model.train import add_train_parser

    add_train_parser(sub, MODEL_CHOICES)  # interhand train ...; interhand train --curve RUN

    from core_model.perception.train import add_perceive_train_parser
    from core_model.pipeline.perceive import add_perceive_parser

    add_perceive_parser(sub)
    add_perceive_train_parser(sub)

    from core_model.evaluate import add_evaluate_parser

    add_evaluate_parser(sub)

    from core_model.pipeline import cli_commands

    p = command("export", cli_commands.cmd_export,
                "export a result's meshes (OBJ/PLY/GLB per frame) and one animated GLB of the sequence")
    cli_commands.add_export_arguments(p)

    p = command("run", cli_commands.cmd_run, "reconstruct both hands in a video or image folder into a result file")
    cli_commands.add_run_arguments(p)
    hand_model_option(p, "the one the checkpoint was trained with")

    from core_model.pipeline import batch_cli

    p = command("batch", batch_cli.cmd_batch, "reconstruct many videos (folders, patterns, lists) into a folder of "
                "results and a summary table; resumable; on this machine or a Ray cluster")
    batch_cli.add_batch_arguments(p)
    hand_model_option(p, "the one the checkpoint was trained with")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO, format="%(levelname)s %(message)s")
    try:
        return args.handler(args)
    except (ValueError, FileNotFoundError, PermissionError, OSError) as exc:
        # Errors of core_model name the argument or file; show them without a traceback.
        print(f"interhand {args.command}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
