"""Entry point of the bundled desktop app (PyInstaller runs this file as ``interhand-studio``)."""

import multiprocessing
import sys

if __name__ == "__main__":
    multiprocessing.freeze_support()  # a spawned worker of a frozen app re-enters here
    from viewer.app import main

    sys.exit(main())
