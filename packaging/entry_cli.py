"""Entry point of the bundled command-line tool (PyInstaller runs this file as ``interhand``)."""

import multiprocessing
import sys

if __name__ == "__main__":
    multiprocessing.freeze_support()  # `interhand synth --workers N` spawns workers: they re-enter here
    from core_model.cli import main

    sys.exit(main())
